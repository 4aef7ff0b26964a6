//! What every entry point does at the boundary: catch panics, check pointers, hand
//! errors out.

use std::any::Any;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{FanoutError, FanoutStatus};

/// Runs `body`, returning `fallback` if it panics: unwinding into C is undefined
/// behaviour (Rust aborts the process instead), so no panic may leave this crate.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Runs `body` for a function that reports failures through a status and an optional
/// `fanout_error **err`: `*err` is set to NULL first, and to a new error on failure.
///
/// # Safety
///
/// `err` is NULL or valid for one write.
pub(crate) unsafe fn guard(
    err: *mut *mut FanoutError,
    body: impl FnOnce() -> Result<(), FanoutError>,
) -> FanoutStatus {
    if !err.is_null() {
        // SAFETY: the caller passes NULL or a pointer valid for writes.
        unsafe { err.write(std::ptr::null_mut()) };
    }
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return FanoutStatus::Ok,
        Ok(Err(error)) => error,
        Err(panic) => FanoutError::new(
            FanoutStatus::Internal,
            format!("internal error: {}", panic_message(&*panic)),
        ),
    };
    let status = error.kind();
    if !err.is_null() {
        // SAFETY: as above.
        unsafe { err.write(Box::into_raw(Box::new(error))) };
    }
    status
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with no message")
}

/// The handle behind `ptr`, or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` made by this library, not freed while the
/// returned reference is used.
pub(crate) unsafe fn live<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the caller's promise.
    unsafe { ptr.as_ref() }
}

/// The handle behind `ptr` for changing, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// As [`live`], and no other reference to the handle is in use.
pub(crate) unsafe fn live_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, FanoutError> {
    // SAFETY: the caller's promise.
    unsafe { ptr.as_mut() }.ok_or_else(|| FanoutError::invalid(format!("{what} is NULL")))
}

/// Hands `value` to C as a handle it frees with the matching free function.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`]; NULL is ignored.
///
/// # Safety
///
/// `ptr` is NULL or a live handle of type `T`, not used again.
pub(crate) unsafe fn free<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller's promise: it came from `Box::into_raw` and is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// The UTF-8 string behind `ptr`, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that outlives the result.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FanoutError> {
    if ptr.is_null() {
        return Err(FanoutError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: the caller's promise.
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
        return Err(FanoutError::invalid(format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(FanoutError::invalid(format!(
            "{what} length {len} is larger than memory can hold"
        )));
    }
    // SAFETY: non-NULL, a length that fits, and the caller's promise for the rest.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The handle behind `ptr`, or an invalid-argument error naming `what`.
///
/// # Safety
///
/// As [`live`].
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, FanoutError> {
    // SAFETY: the caller's promise.
    unsafe { live(ptr) }.ok_or_else(|| FanoutError::invalid(format!("{what} is NULL")))
}

/// Checks an out-pointer before any work is done, and sets it to NULL, which it stays
/// on every failure.
///
/// # Safety
///
/// `out` is NULL or valid for one write.
pub(crate) unsafe fn clear_out<T>(out: *mut *mut T, what: &str) -> Result<(), FanoutError> {
    if out.is_null() {
        return Err(FanoutError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: not NULL, and the caller's promise for the rest.
    unsafe { out.write(std::ptr::null_mut()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let mut err: *mut FanoutError = std::ptr::null_mut();
        // SAFETY: `err` is valid for writes.
        let status = unsafe { guard(&mut err, || panic!("a bug")) };
        assert_eq!(status, FanoutStatus::Internal);
        assert!(!err.is_null());
        // SAFETY: `guard` handed out a live error, freed once below.
        let error = unsafe { Box::from_raw(err) };
        assert_eq!(error.kind(), FanoutStatus::Internal);
        assert!(format!("{error:?}").contains("internal error: a bug"));
    }

    #[test]
    fn a_panic_where_a_value_is_returned_gives_the_fallback() {
        assert_eq!(guard_value(7, || -> i32 { panic!("a bug") }), 7);
    }

    #[test]
    fn success_leaves_no_error() {
        let mut err: *mut FanoutError = std::ptr::dangling_mut(); // overwritten first
        // SAFETY: `err` is valid for writes.
        let status = unsafe { guard(&mut err, || Ok(())) };
        assert_eq!(status, FanoutStatus::Ok);
        assert!(err.is_null());
    }
}
