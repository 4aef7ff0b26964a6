//! `fanout_client` and `fanout_fetch_all`.

use fanout::FanOutClient;

use crate::boundary::{guard, handle, required_out};
use crate::cancel::FanoutCancel;
use crate::config::FanoutConfig;
use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{free, into_handle, live};
use crate::out::Out;
use crate::results::FanoutResults;
use crate::unwind::guard_value;

/// A client: its rate limit, its worker threads and its connections, shared by every
/// call made on it.
#[derive(Debug)]
pub struct FanoutClient {
    client: FanOutClient,
}

impl FanoutClient {
    /// The library's client.
    pub(crate) fn client(&self) -> &FanOutClient {
        &self.client
    }
}

/// Checks `config` and makes a client from it, starting its worker threads. On
/// success `*out` is the client (free it with `fanout_client_free`); on failure
/// `*out` is NULL and `*err`, if `err` is not NULL, explains (free it with
/// `fanout_error_free`). A configuration the library refuses returns
/// `FANOUT_STATUS_INVALID_ARGUMENT`; worker threads the system will not start,
/// `FANOUT_STATUS_SYSTEM`. The configuration can be freed or reused after.
///
/// Any thread.
///
/// # Safety
///
/// `config` is NULL or a live configuration not being changed by another thread;
/// `out` and `err` are NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_client_new(
    config: *const FanoutConfig,
    out: *mut *mut FanoutClient,
    err: *mut *mut FanoutError,
) -> FanoutStatus {
    // SAFETY: `err` is NULL or valid for one write, by this function's contract.
    let err = unsafe { Out::take(err) };
    guard(err, || {
        // SAFETY: `out` is NULL or valid for one write, by this function's contract.
        let out = unsafe { required_out(out, "out") }?;
        // SAFETY: `config` is NULL or a live configuration that no other thread changes,
        // by this function's contract.
        let config = unsafe { handle(config, "config") }?;
        let client = config.builder()?.build()?;
        out.set(into_handle(FanoutClient { client }));
        Ok(())
    })
}

/// Fetches the `n` IDs at `ids` (repeats are fetched once) and, on success, sets
/// `*out` to the results (free them with `fanout_results_free`).
///
/// The first ID that fails for good ends the call at once: its requests in flight are
/// interrupted, the error comes back in `*err` (if `err` is not NULL), and `*out` is
/// NULL. `cancel` may be NULL; if not, cancelling it or its deadline passing ends the
/// call with `FANOUT_STATUS_CANCELLED` or `FANOUT_STATUS_DEADLINE_EXCEEDED`.
///
/// `ids` may be NULL only when `n` is 0. Blocks until the call ends.
///
/// Any number of threads may call this at once on one client: they share its rate
/// limit and its in-flight cap.
///
/// # Safety
///
/// `client` and `cancel` are NULL or live handles, not freed during the call; `ids`
/// is NULL or points to `n` readable `uint64_t`; `out` and `err` are NULL or valid for
/// one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_fetch_all(
    client: *const FanoutClient,
    ids: *const u64,
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
        let client = &unsafe { handle(client, "client") }?.client;
        // SAFETY: `ids` is NULL or points to `n` readable IDs, by this function's
        // contract.
        let ids = unsafe { id_slice(ids, n) }?;
        // SAFETY: `cancel` is NULL or a live cancel token, not freed during the call, by
        // this function's contract.
        let bodies = match unsafe { live(cancel) } {
            Some(cancel) => client.fetch_all_with(&cancel.token, ids),
            None => client.fetch_all(ids),
        }?;
        out.set(into_handle(FanoutResults::new(bodies)));
        Ok(())
    })
}

/// The IDs the caller passed, checked as far as a pointer and a length can be.
///
/// # Safety
///
/// `ids` is NULL or points to `n` readable `u64` that outlive the result.
unsafe fn id_slice<'a>(ids: *const u64, n: usize) -> Result<&'a [u64], FanoutError> {
    if n == 0 {
        return Ok(&[]);
    }
    if ids.is_null() {
        return Err(FanoutError::invalid(format!("ids is NULL but n is {n}")));
    }
    if n > isize::MAX as usize / size_of::<u64>() {
        return Err(FanoutError::invalid(format!(
            "n is {n}, more IDs than memory can hold"
        )));
    }
    if !ids.is_aligned() {
        return Err(FanoutError::invalid("ids is not aligned for uint64_t"));
    }
    // SAFETY: non-NULL, aligned, a length that fits, and the caller's promise for the rest.
    Ok(unsafe { std::slice::from_raw_parts(ids, n) })
}

/// Frees a client: waits for its worker threads to end, interrupting any request
/// still in flight. NULL is ignored.
///
/// One thread, once no call is running on the client.
///
/// # Safety
///
/// `client` is NULL or a live client, not used again after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_client_free(client: *mut FanoutClient) {
    guard_value((), || {
        // SAFETY: the caller hands over NULL or a live client, used no more.
        unsafe { free(client) }
    })
}
