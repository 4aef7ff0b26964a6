//! `fanout_results`: the bodies of a `fanout_fetch_all` call, by ID, or of a
//! `fanout_fetch_all_keys` call, by key.

use std::ffi::c_char;

use fanout::Bodies;

use crate::boundary::{guard, handle, null, utf8};
use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{free, live};
use crate::out::Out;
use crate::unwind::guard_value;

/// The bodies of one call, by ID in ascending ID order, or by text key in ascending
/// byte order, for iteration. Read-only: any number of threads may read one at once.
#[derive(Debug)]
pub struct FanoutResults {
    bodies: Keyed,
}

/// Bodies by whichever kind of key the call took.
#[derive(Debug)]
enum Keyed {
    Ids(Bodies),
    Text(Bodies<String>),
}

impl FanoutResults {
    pub(crate) fn new(bodies: Bodies) -> Self {
        FanoutResults {
            bodies: Keyed::Ids(bodies),
        }
    }

    pub(crate) fn by_key(bodies: Bodies<String>) -> Self {
        FanoutResults {
            bodies: Keyed::Text(bodies),
        }
    }

    fn ids(&self) -> Result<&Bodies, FanoutError> {
        match &self.bodies {
            Keyed::Ids(bodies) => Ok(bodies),
            Keyed::Text(_) => Err(FanoutError::invalid(
                "results are keyed by text: use fanout_results_get_key or fanout_results_key_at",
            )),
        }
    }

    fn text(&self) -> Result<&Bodies<String>, FanoutError> {
        match &self.bodies {
            Keyed::Text(bodies) => Ok(bodies),
            Keyed::Ids(_) => Err(FanoutError::invalid(
                "results are keyed by ID: use fanout_results_get or fanout_results_at",
            )),
        }
    }
}

/// How many IDs or keys the results hold; 0 for NULL.
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
        unsafe { live(results) }.map_or(0, |r| match &r.bodies {
            Keyed::Ids(bodies) => bodies.len(),
            Keyed::Text(bodies) => bodies.len(),
        })
    })
}

/// Looks up the body of `id`: on success `*body` points to its `*len` bytes, which
/// belong to `results` and live until it is freed (for an empty body, `*body` is not
/// NULL but must not be read). `FANOUT_STATUS_NOT_FOUND` if the call did not include
/// `id`; `FANOUT_STATUS_INVALID_ARGUMENT` for results of text keys. On failure
/// `*body` is NULL and `*len` is 0.
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
        let found = results.ids()?.get(id).ok_or_else(not_found)?;
        body.set(found.as_ptr());
        len.set(found.len());
        Ok(())
    })
}

/// The `index`th entry in ascending ID order, for iteration from 0 to
/// `fanout_results_len(results) - 1`: writes its ID to `*id` and its body to `*body`
/// and `*len`, as `fanout_results_get` does. `FANOUT_STATUS_NOT_FOUND` once `index`
/// is past the end; `FANOUT_STATUS_INVALID_ARGUMENT` for results of text keys. On
/// failure `*id` and `*len` are 0 and `*body` is NULL.
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
        let (found_id, found) = results.ids()?.iter().nth(index).ok_or_else(not_found)?;
        id.set(found_id);
        body.set(found.as_ptr());
        len.set(found.len());
        Ok(())
    })
}

/// Looks up the body of the text key `key` (NUL-terminated UTF-8), in results of
/// `fanout_fetch_all_keys`: on success `*body` points to its `*len` bytes, as
/// `fanout_results_get` gives them. `FANOUT_STATUS_NOT_FOUND` if the call did not
/// include `key`; `FANOUT_STATUS_INVALID_ARGUMENT` for results of IDs. On failure
/// `*body` is NULL and `*len` is 0.
///
/// Any thread, at once with other readers.
///
/// # Safety
///
/// `results` is NULL or live results; `key` is NULL or a NUL-terminated string;
/// `body` and `len` are NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_get_key(
    results: *const FanoutResults,
    key: *const c_char,
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
        // SAFETY: `key` is NULL or a NUL-terminated string, by this function's contract.
        let key = unsafe { utf8(key, "key") }?;
        let found = results.text()?.get(key).ok_or_else(not_found)?;
        body.set(found.as_ptr());
        len.set(found.len());
        Ok(())
    })
}

/// The `index`th entry in ascending byte order of the keys, in results of
/// `fanout_fetch_all_keys`, for iteration from 0 to `fanout_results_len(results) - 1`:
/// `*key` points to its key's `*key_len` bytes of UTF-8, **not** NUL-terminated, and
/// `*body` to its body's `*len` bytes; both belong to `results` and live until it is
/// freed. `FANOUT_STATUS_NOT_FOUND` once `index` is past the end;
/// `FANOUT_STATUS_INVALID_ARGUMENT` for results of IDs. On failure the pointers are
/// NULL and the lengths 0.
///
/// Any thread, at once with other readers.
///
/// # Safety
///
/// `results` is NULL or live results; `key`, `key_len`, `body` and `len` are NULL or
/// valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_results_key_at(
    results: *const FanoutResults,
    index: usize,
    key: *mut *const c_char,
    key_len: *mut usize,
    body: *mut *const u8,
    len: *mut usize,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `key` is NULL or valid for one write, by this function's contract.
        let key = unsafe { Out::take(key) };
        // SAFETY: `key_len` is NULL or valid for one write, by this function's contract.
        let key_len = unsafe { Out::take(key_len) };
        // SAFETY: `body` is NULL or valid for one write, by this function's contract.
        let body = unsafe { Out::take(body) };
        // SAFETY: `len` is NULL or valid for one write, by this function's contract.
        let len = unsafe { Out::take(len) };
        let (Some(key), Some(key_len)) = (key, key_len) else {
            return Err(null("key or key_len"));
        };
        let (Some(body), Some(len)) = (body, len) else {
            return Err(null("body or len"));
        };
        // SAFETY: `results` is NULL or live results, by this function's contract.
        let results = unsafe { handle(results, "results") }?;
        let (found_key, found) = results.text()?.iter().nth(index).ok_or_else(not_found)?;
        key.set(found_key.as_ptr().cast());
        key_len.set(found_key.len());
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
