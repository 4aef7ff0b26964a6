//! `fanout_results`: the bodies of a `fanout_fetch_all` call, by ID.

use fanout::Bodies;

use crate::boundary::{guard, guard_value, handle, live};
use crate::error::{FanoutError, FanoutStatus};

/// The bodies of one call, by ID, in ascending ID order for iteration. Read-only: any
/// number of threads may read one at once.
#[derive(Debug)]
pub struct FanoutResults {
    bodies: Bodies,
}

impl FanoutResults {
    pub(crate) fn new(bodies: Bodies) -> Self {
        FanoutResults { bodies }
    }
}

/// How many IDs the results hold; 0 for NULL.
///
/// Any thread, at once with other readers.
///
/// # Safety
///
/// `results` is NULL or live results.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_len(results: *const FanoutResults) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's promise.
        unsafe { live(results) }.map_or(0, |r| r.bodies.len())
    })
}

/// Looks up the body of `id`: on success `*body` points to its `*len` bytes, which
/// belong to `results` and live until it is freed (for an empty body, `*body` is not
/// NULL but must not be read). `FANOUT_STATUS_NOT_FOUND` if the call did not include
/// `id`.
///
/// Any thread, at once with other readers.
///
/// # Safety
///
/// `results` is NULL or live results; `body` and `len` are NULL or valid for one
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_get(
    results: *const FanoutResults,
    id: u64,
    body: *mut *const u8,
    len: *mut usize,
) -> FanoutStatus {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        guard(std::ptr::null_mut(), || {
            let found = checked(results, body, len)?.bodies.get(id);
            let found = found.ok_or_else(|| FanoutError::new(FanoutStatus::NotFound, ""))?;
            body.write(found.as_ptr());
            len.write(found.len());
            Ok(())
        })
    }
}

/// The `index`th entry in ascending ID order, for iteration from 0 to
/// `fanout_results_len(results) - 1`: writes its ID to `*id` and its body to `*body`
/// and `*len`, as `fanout_results_get` does. `FANOUT_STATUS_NOT_FOUND` once `index`
/// is past the end.
///
/// Any thread, at once with other readers.
///
/// # Safety
///
/// `results` is NULL or live results; `id`, `body` and `len` are NULL or valid for
/// one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_at(
    results: *const FanoutResults,
    index: usize,
    id: *mut u64,
    body: *mut *const u8,
    len: *mut usize,
) -> FanoutStatus {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        guard(std::ptr::null_mut(), || {
            if id.is_null() {
                return Err(FanoutError::invalid("id is NULL"));
            }
            let results = checked(results, body, len)?;
            let (found_id, found) = results
                .bodies
                .iter()
                .nth(index)
                .ok_or_else(|| FanoutError::new(FanoutStatus::NotFound, ""))?;
            id.write(found_id);
            body.write(found.as_ptr());
            len.write(found.len());
            Ok(())
        })
    }
}

/// Frees results and every body in them. NULL is ignored.
///
/// One thread, once no other thread reads the results and no body pointer taken from
/// them is used again.
///
/// # Safety
///
/// `results` is NULL or live results, not used again after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_free(results: *mut FanoutResults) {
    // SAFETY: the caller hands over NULL or live results.
    guard_value((), || unsafe { crate::boundary::free(results) })
}

/// The results, once the pointers a lookup writes to are known not to be NULL.
///
/// # Safety
///
/// `results` is NULL or live results.
unsafe fn checked<'a>(
    results: *const FanoutResults,
    body: *mut *const u8,
    len: *mut usize,
) -> Result<&'a FanoutResults, FanoutError> {
    if body.is_null() || len.is_null() {
        return Err(FanoutError::invalid("body or len is NULL"));
    }
    // SAFETY: the caller's promise.
    unsafe { handle(results, "results") }
}
