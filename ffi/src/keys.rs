//! Text keys from C: `fanout_fetch_all_keys`, and `fanout_fetch_each`, which streams
//! results to a callback.

use std::ffi::{CString, c_char, c_int, c_void};

use crate::boundary::{guard, handle, required_out, utf8};
use crate::cancel::FanoutCancel;
use crate::client::FanoutClient;
use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{into_handle, live};
use crate::out::Out;
use crate::results::FanoutResults;

/// What `fanout_fetch_each` calls once per key, in completion order, on the thread
/// that called `fanout_fetch_each`.
///
/// `key` is the key, NUL-terminated. On success `body` points to the body's `len`
/// bytes and `error` is NULL; on failure `body` is NULL, `len` is 0, and `error` says
/// why. All three live only until the callback returns: copy what is kept. Return 0
/// to go on, anything else to stop the call.
pub type FanoutEachCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        key: *const c_char,
        body: *const u8,
        len: usize,
        error: *const FanoutError,
    ) -> c_int,
>;

/// Fetches the `n` text keys at `keys` (NUL-terminated UTF-8 strings; repeats are
/// fetched once) and, on success, sets `*out` to the results, looked up with
/// `fanout_results_get_key` (free them with `fanout_results_free`).
///
/// Each key goes into the URL percent-encoded, so that no key can add a path segment
/// or a query parameter. An empty key, a NULL one or one that is not UTF-8 fails the
/// call with `FANOUT_STATUS_INVALID_ARGUMENT` before any request. Otherwise the first
/// key that fails for good ends the call as in `fanout_fetch_all`, and
/// `fanout_error_key` names it. `cancel` may be NULL, as in `fanout_fetch_all`.
///
/// `keys` may be NULL only when `n` is 0. Blocks until the call ends. Any number of
/// threads may call this at once on one client.
///
/// # Safety
///
/// `client` and `cancel` are NULL or live handles, not freed during the call; `keys`
/// is NULL or points to `n` readable pointers, each NULL or a NUL-terminated string,
/// unchanged during the call; `out` and `err` are NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_fetch_all_keys(
    client: *const FanoutClient,
    keys: *const *const c_char,
    n: usize,
    cancel: *const FanoutCancel,
    out: *mut *mut FanoutResults,
    err: *mut *mut FanoutError,
) -> FanoutStatus {
    // SAFETY: `err` is NULL or valid for one write, by this function's contract.
    let err = unsafe { Out::take(err) };
    guard(err, || {
        // SAFETY: `out` is NULL or valid for one write, by this function's contract.
        let out = unsafe { required_out(out, "out") }?;
        // SAFETY: `client` is NULL or a live client, not freed during the call, by this
        // function's contract.
        let client = unsafe { handle(client, "client") }?.client();
        // SAFETY: `keys` is NULL or points to `n` readable pointers, by this function's
        // contract.
        let keys = unsafe { key_slice(keys, n) }?;
        // SAFETY: each of `keys` is NULL or a NUL-terminated string that outlives the
        // call, by this function's contract.
        let keys = unsafe { texts(keys) }.collect::<Result<Vec<&str>, _>>()?;
        // SAFETY: `cancel` is NULL or a live cancel token, not freed during the call, by
        // this function's contract.
        let bodies = match unsafe { live(cancel) } {
            Some(cancel) => client.fetch_all_keys_with(&cancel.token, keys),
            None => client.fetch_all_keys(keys),
        }?;
        out.set(into_handle(FanoutResults::by_key(bodies)));
        Ok(())
    })
}

/// Fetches the `n` text keys at `keys` as `fanout_fetch_all_keys` does, but hands each
/// result to `callback` as it completes instead of keeping it: memory stays bounded
/// by the number of requests in flight (and the set of keys seen, to skip repeats),
/// whatever `n` is. `user_data` is passed to every call of `callback` as it is.
///
/// A key that fails does not stop the others: the callback gets its error (an empty
/// key's without a request). The call stops early when the callback returns non-zero
/// (`FANOUT_STATUS_STOPPED`) or when `cancel` is cancelled or its deadline passes
/// (`FANOUT_STATUS_CANCELLED` or `FANOUT_STATUS_DEADLINE_EXCEEDED`); its requests in
/// flight are then interrupted, and the callback is not called again. Otherwise it
/// returns `FANOUT_STATUS_OK` once every key has been handed to the callback. A NULL
/// or non-UTF-8 key fails the call with `FANOUT_STATUS_INVALID_ARGUMENT` before any
/// request.
///
/// The callback runs on the calling thread, one call at a time; it must not free the
/// client. Any number of threads may call this at once on one client.
///
/// # Safety
///
/// As `fanout_fetch_all_keys`; `callback` is not NULL and may be called with
/// `user_data` as described.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_fetch_each(
    client: *const FanoutClient,
    keys: *const *const c_char,
    n: usize,
    cancel: *const FanoutCancel,
    callback: FanoutEachCallback,
    user_data: *mut c_void,
    err: *mut *mut FanoutError,
) -> FanoutStatus {
    // SAFETY: `err` is NULL or valid for one write, by this function's contract.
    let err = unsafe { Out::take(err) };
    guard(err, || {
        let Some(callback) = callback else {
            return Err(FanoutError::invalid("callback is NULL"));
        };
        // SAFETY: `client` is NULL or a live client, not freed during the call, by this
        // function's contract.
        let client = unsafe { handle(client, "client") }?.client();
        // SAFETY: `keys` is NULL or points to `n` readable pointers, by this function's
        // contract.
        let keys = unsafe { key_slice(keys, n) }?;
        // Checked in full first, so that a bad key fails the call before any request;
        // read again as the stream takes them, so that no list is held.
        // SAFETY: each of `keys` is NULL or a NUL-terminated string that outlives the
        // call, by this function's contract.
        unsafe { texts(keys) }.try_for_each(|key| key.map(drop))?;
        // SAFETY: as above.
        let keys = unsafe { texts(keys) }.map_while(Result::ok);
        // SAFETY: `cancel` is NULL or a live cancel token, not freed during the call, by
        // this function's contract.
        let results = match unsafe { live(cancel) } {
            Some(cancel) => client.fetch_iter_keys_with(&cancel.token, keys),
            None => client.fetch_iter_keys(keys),
        };
        for item in results {
            let (key, body, error) = match item {
                Ok((key, body)) => (key, Some(body), None),
                Err(e) => match e.key() {
                    Some(key) => (key.to_owned(), None, Some(FanoutError::from(e))),
                    // The call ended (cancelled, past its deadline): no key, no callback.
                    None => return Err(e.into()),
                },
            };
            // Keys come from C strings, so hold no NUL.
            let key = CString::new(key).unwrap_or_default();
            let (body_ptr, len) = body
                .as_deref()
                .map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
            let error_ptr = error.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
            // SAFETY: the caller's promise that `callback` may be called with
            // `user_data`; every pointer passed lives until it returns.
            let stop = unsafe { callback(user_data, key.as_ptr(), body_ptr, len, error_ptr) };
            if stop != 0 {
                return Err(FanoutError::new(
                    FanoutStatus::Stopped,
                    "stopped by the callback",
                ));
            }
        }
        Ok(())
    })
}

/// The key pointers the caller passed, checked as far as a pointer and a length can be.
///
/// # Safety
///
/// `keys` is NULL or points to `n` readable pointers that outlive the result.
unsafe fn key_slice<'a>(
    keys: *const *const c_char,
    n: usize,
) -> Result<&'a [*const c_char], FanoutError> {
    if n == 0 {
        return Ok(&[]);
    }
    if keys.is_null() {
        return Err(FanoutError::invalid(format!("keys is NULL but n is {n}")));
    }
    if n > isize::MAX as usize / size_of::<*const c_char>() {
        return Err(FanoutError::invalid(format!(
            "n is {n}, more keys than memory can hold"
        )));
    }
    if !keys.is_aligned() {
        return Err(FanoutError::invalid("keys is not aligned for a pointer"));
    }
    // SAFETY: non-NULL, aligned, a length that fits, and the caller's promise for the rest.
    Ok(unsafe { std::slice::from_raw_parts(keys, n) })
}

/// Each key as UTF-8, or an error naming a NULL or non-UTF-8 one by its index.
///
/// # Safety
///
/// Each of `keys` is NULL or a NUL-terminated string that outlives the results.
unsafe fn texts<'a>(
    keys: &'a [*const c_char],
) -> impl Iterator<Item = Result<&'a str, FanoutError>> + 'a {
    keys.iter().enumerate().map(|(at, &key)| {
        // SAFETY: NULL or a NUL-terminated string that outlives the results, by this
        // function's contract.
        unsafe { utf8(key, "key") }.map_err(|e| {
            let what = if key.is_null() { "NULL" } else { "not UTF-8" };
            FanoutError::new(e.kind(), format!("keys[{at}] is {what}"))
        })
    })
}
