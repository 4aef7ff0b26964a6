//! Handles: values boxed for C, borrowed back from their pointers, and freed.

/// Hands `value` to C as a handle it frees with the matching free function.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// The handle behind `ptr`, or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` made by [`into_handle`], not freed or changed
/// while the returned reference is used.
pub(crate) unsafe fn live<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the caller's promise: NULL, or a live and aligned `T` from a `Box`.
    unsafe { ptr.as_ref() }
}

/// The handle behind `ptr` for changing, or `None` for NULL.
///
/// # Safety
///
/// As [`live`], and no other reference to the handle is in use.
pub(crate) unsafe fn live_mut<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller's promise: NULL, or a live `T` from a `Box`, borrowed by no one
    // else.
    unsafe { ptr.as_mut() }
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
