//! What every fallible entry point does at the boundary: catch panics, check
//! pointers, hand errors out.

use std::ffi::{CStr, c_char};

use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{live, live_mut};
use crate::out::{Cleared, Out};
use crate::unwind::catch_panic;

/// Runs `body` for a function that reports failures through a status and an optional
/// `fanout_error **err`, already taken (and so cleared): on failure `err` is set to a
/// new error.
pub(crate) fn guard(
    err: Option<Out<'_, *mut FanoutError>>,
    body: impl FnOnce() -> Result<(), FanoutError>,
) -> FanoutStatus {
    let error = match catch_panic(body) {
        Ok(Ok(())) => return FanoutStatus::Ok,
        Ok(Err(error)) => error,
        Err(panic) => FanoutError::new(FanoutStatus::Internal, format!("internal error: {panic}")),
    };
    let status = error.kind();
    if let Some(err) = err {
        err.set(Box::into_raw(Box::new(error)));
    }
    status
}

/// The handle behind `ptr`, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// As [`live`].
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, FanoutError> {
    // SAFETY: the caller's promise, the same as `live`'s.
    unsafe { live(ptr) }.ok_or_else(|| null(what))
}

/// The handle behind `ptr` for changing, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// As [`live_mut`].
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, FanoutError> {
    // SAFETY: the caller's promise, the same as `live_mut`'s.
    unsafe { live_mut(ptr) }.ok_or_else(|| null(what))
}

/// Takes the output at `ptr` (clearing it), or an invalid-argument error naming `what`
/// for NULL.
///
/// # Safety
///
/// As [`Out::take`].
pub(crate) unsafe fn required_out<'a, T: Cleared>(
    ptr: *mut T,
    what: &str,
) -> Result<Out<'a, T>, FanoutError> {
    // SAFETY: the caller's promise, the same as `Out::take`'s.
    unsafe { Out::take(ptr) }.ok_or_else(|| null(what))
}

/// The UTF-8 string behind `ptr`, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that outlives the result.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FanoutError> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: not NULL, and the caller's promise: NUL-terminated, outliving the result.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| FanoutError::invalid(format!("{what} is not UTF-8")))
}

/// The `len` bytes at `ptr`, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// `ptr` is NULL or points to `len` readable bytes that outlive the result.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], FanoutError> {
    if ptr.is_null() {
        return Err(null(what));
    }
    if len > isize::MAX as usize {
        return Err(FanoutError::invalid(format!(
            "{what} length {len} is larger than memory can hold"
        )));
    }
    // SAFETY: not NULL, a length that fits, bytes need no alignment, and the caller's
    // promise: `len` readable bytes that outlive the result.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The error for a NULL pointer where one is required.
pub(crate) fn null(what: &str) -> FanoutError {
    FanoutError::invalid(format!("{what} is NULL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let mut err: *mut FanoutError = std::ptr::null_mut();
        // SAFETY: `err` is a local, not otherwise used until `guard` returns.
        let out = unsafe { Out::take(&mut err) };
        let status = guard(out, || panic!("a bug"));
        assert_eq!(status, FanoutStatus::Internal);
        assert!(!err.is_null());
        // SAFETY: `guard` handed out a live error, freed once here.
        let error = unsafe { Box::from_raw(err) };
        assert_eq!(error.kind(), FanoutStatus::Internal);
        assert!(format!("{error:?}").contains("internal error: a bug"));
    }

    #[test]
    fn success_leaves_no_error() {
        let mut err: *mut FanoutError = std::ptr::dangling_mut(); // cleared when taken
        // SAFETY: `err` is a local, not otherwise used until `guard` returns.
        let out = unsafe { Out::take(&mut err) };
        let status = guard(out, || Ok(()));
        assert_eq!(status, FanoutStatus::Ok);
        assert!(err.is_null());
    }
}
