//! The one poison-tolerant lock: a panic elsewhere does not take the client down.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking it over from a holder that panicked.
///
/// Every state behind our mutexes is left whole by each operation on it (no
/// multi-step invariant is broken mid-way), so a panic while it was held leaves
/// nothing to repair.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value in `mutex`, which nobody else can hold: as [`lock`], a panic of an
/// earlier holder is no reason to refuse it.
#[cfg(feature = "redis")]
pub(crate) fn get_mut<T>(mutex: &mut Mutex<T>) -> &mut T {
    mutex.get_mut().unwrap_or_else(PoisonError::into_inner)
}
