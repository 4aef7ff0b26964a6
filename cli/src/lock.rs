//! The poison-tolerant lock of the binary (the library's own is private to it).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking it over from a holder that panicked: what our mutexes guard
/// (a slot, a sender, the demo server's counters) stays meaningful after a panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
