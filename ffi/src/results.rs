//! `fanout_results`: the bodies of a `fanout_fetch_all` call, by ID.

use fanout::Bodies;

use crate::boundary::{guard, handle, null};
use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{free, live};
use crate::out::Out;
use crate::unwind::guard_value;

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
        // SAFETY: `results` is NULL or live results, by this function's contract.
        unsafe { live(results) }.map_or(0, |r| r.bodies.len())
    })
}

/// Looks up the body of `id`: on success `*body` points to its `*len` bytes, which
/// belong to `results` and live until it is freed (for an empty body, `*body` is not
/// NULL but must not be read). `FANOUT_STATUS_NOT_FOUND` if the call did not include
/// `id`. On failure `*body` is NULL and `*len` is 0.
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
    guard(None, || {
        // SAFETY: `body` is NULL or valid for one write, by this function's contract.
        let body = unsafe { Out::take(body) };
        // SAFETY: `len` is NULL or valid for one write, by this function's contract.
        let len = unsafe { Out::take(len) };
        let (Some(body), Some(len)) = (body, len) else {
            return Err(null("body or len"));
        };
        // SAFETY: `results` is NULL or live results, by this function's contract.
        let results = unsafe { handle(results, "results") }?;
        let found = results.bodies.get(id).ok_or_else(not_found)?;
        body.set(found.as_ptr());
        len.set(found.len());
        Ok(())
    })
}

/// The `index`th entry in ascending ID order, for iteration from 0 to
/// `fanout_results_len(results) - 1`: writes its ID to `*id` and its body to `*body`
/// and `*len`, as `fanout_results_get` does. `FANOUT_STATUS_NOT_FOUND` once `index`
/// is past the end. On failure `*id` and `*len` are 0 and `*body` is NULL.
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
    guard(None, || {
        // SAFETY: `id` is NULL or valid for one write, by this function's contract.
        let id = unsafe { Out::take(id) };
        // SAFETY: `body` is NULL or valid for one write, by this function's contract.
        let body = unsafe { Out::take(body) };
        // SAFETY: `len` is NULL or valid for one write, by this function's contract.
        let len = unsafe { Out::take(len) };
        let Some(id) = id else {
            return Err(null("id"));
        };
        let (Some(body), Some(len)) = (body, len) else {
            return Err(null("body or len"));
        };
        // SAFETY: `results` is NULL or live results, by this function's contract.
        let results = unsafe { handle(results, "results") }?;
        let (found_id, found) = results.bodies.iter().nth(index).ok_or_else(not_found)?;
        id.set(found_id);
        body.set(found.as_ptr());
        len.set(found.len());
        Ok(())
    })
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
    guard_value((), || {
        // SAFETY: the caller hands over NULL or live results, used no more.
        unsafe { free(results) }
    })
}

/// The error for an ID or index the results do not hold.
fn not_found() -> FanoutError {
    FanoutError::new(FanoutStatus::NotFound, "")
}
