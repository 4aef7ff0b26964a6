//! `fanout_cancel`: a cancellation signal, with an optional deadline, for one or more
//! calls.

use std::time::Duration;

use fanout::CancelToken;

use crate::boundary::{guard, handle};
use crate::error::FanoutStatus;
use crate::handle::{free, into_handle, live};
use crate::unwind::guard_value;

/// The `timeout_ms` of `fanout_cancel_new` that means no deadline.
pub const FANOUT_NO_TIMEOUT: u64 = u64::MAX;

/// A cancellation signal: pass it to `fanout_fetch_all`, and cancel it from any
/// thread with `fanout_cancel_cancel`. Every wait of the calls using it ends at once.
#[derive(Debug)]
pub struct FanoutCancel {
    pub(crate) token: CancelToken,
}

/// A new cancel token whose deadline is `timeout_ms` milliseconds from now, or none
/// with `FANOUT_NO_TIMEOUT`. A call using it fails with
/// `FANOUT_STATUS_DEADLINE_EXCEEDED` once the deadline passes (or would pass before
/// its next request could be sent). NULL only if the library failed inside (a bug).
/// Free it with `fanout_cancel_free`.
///
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn fanout_cancel_new(timeout_ms: u64) -> *mut FanoutCancel {
    guard_value(std::ptr::null_mut(), || {
        let token = match timeout_ms {
            FANOUT_NO_TIMEOUT => CancelToken::new(),
            ms => CancelToken::with_timeout(Duration::from_millis(ms)),
        };
        into_handle(FanoutCancel { token })
    })
}

/// Cancels the token: calls using it return `FANOUT_STATUS_CANCELLED` promptly.
/// Cancelling twice is harmless.
///
/// Any thread, at any time, also while calls are using the token.
///
/// # Safety
///
/// `cancel` is NULL or a live cancel token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_cancel_cancel(cancel: *const FanoutCancel) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `cancel` is NULL or a live cancel token, by this function's contract.
        let cancel = unsafe { handle(cancel, "cancel") }?;
        cancel.token.cancel();
        Ok(())
    })
}

/// True once the token was cancelled or its deadline has passed; false for NULL.
///
/// Any thread, at any time.
///
/// # Safety
///
/// `cancel` is NULL or a live cancel token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_cancel_is_cancelled(cancel: *const FanoutCancel) -> bool {
    guard_value(false, || {
        // SAFETY: `cancel` is NULL or a live cancel token, by this function's contract.
        unsafe { live(cancel) }.is_some_and(|c| c.token.is_cancelled())
    })
}

/// Frees a cancel token. NULL is ignored.
///
/// One thread, once no call uses the token and no other thread may cancel it.
///
/// # Safety
///
/// `cancel` is NULL or a live cancel token, not used again after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_cancel_free(cancel: *mut FanoutCancel) {
    guard_value((), || {
        // SAFETY: the caller hands over NULL or a live cancel token, used no more.
        unsafe { free(cancel) }
    })
}
