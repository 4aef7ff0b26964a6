//! Status codes, and the error handle that says more than a code.

use std::ffi::{CStr, CString, c_char};

use fanout::{BuildError, ConfigError, ErrorKind, FetchError};

use crate::handle::{free, live};
use crate::out::Out;
use crate::unwind::guard_value;

/// What a function returns: `FANOUT_STATUS_OK`, or why it failed. The kind of a
/// `fanout_error` is one of these too.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutStatus {
    /// Success.
    Ok = 0,
    /// A NULL pointer where one is required, a length too large, a string that is not
    /// UTF-8, or a configuration the client refuses (the error's message says which).
    InvalidArgument = 1,
    /// The ID, or the index, is not in the results.
    NotFound = 2,
    /// The server answered with a status that is not a success, after any retries.
    HttpStatus = 3,
    /// The request could not be sent or its answer could not be read.
    Transport = 4,
    /// An attempt took longer than the configured timeout.
    Timeout = 5,
    /// A response body was larger than the client accepts.
    TooLarge = 6,
    /// The call was cancelled with `fanout_cancel_cancel`.
    Cancelled = 7,
    /// The cancel token's deadline passed.
    DeadlineExceeded = 8,
    /// A bug in this library, such as a panic caught at the boundary.
    Internal = 9,
    /// The rate limiter could not answer, such as a shared limiter whose store is
    /// unreachable.
    Limiter = 10,
    /// The system refused what the client needs, such as a worker thread.
    System = 11,
    /// The callback of `fanout_fetch_each` returned non-zero, which stopped the call.
    Stopped = 12,
}

impl From<ErrorKind> for FanoutStatus {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Status => FanoutStatus::HttpStatus,
            ErrorKind::Transport => FanoutStatus::Transport,
            ErrorKind::Timeout => FanoutStatus::Timeout,
            ErrorKind::TooLarge => FanoutStatus::TooLarge,
            ErrorKind::Cancelled => FanoutStatus::Cancelled,
            ErrorKind::DeadlineExceeded => FanoutStatus::DeadlineExceeded,
            ErrorKind::Limiter => FanoutStatus::Limiter,
            ErrorKind::InvalidKey => FanoutStatus::InvalidArgument,
            // Internal, and any kind a newer library adds.
            _ => FanoutStatus::Internal,
        }
    }
}

/// Why a call failed: a kind, a message, and the ID or key and HTTP status it
/// concerns, if any. Made by `fanout_client_new` and the fetch functions; freed with
/// `fanout_error_free`.
#[derive(Debug)]
pub struct FanoutError {
    kind: FanoutStatus,
    message: CString,
    user_id: Option<u64>,
    /// The text key it concerns, if any.
    key: Option<CString>,
    http_status: u16,
}

impl FanoutError {
    pub(crate) fn new(kind: FanoutStatus, message: impl Into<String>) -> Self {
        let mut message = message.into();
        // A C string ends at its first NUL; keep the rest readable instead.
        message.retain(|c| c != '\0');
        FanoutError {
            kind,
            message: CString::new(message).unwrap_or_default(),
            user_id: None,
            key: None,
            http_status: 0,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(FanoutStatus::InvalidArgument, message)
    }

    pub(crate) fn kind(&self) -> FanoutStatus {
        self.kind
    }
}

impl From<FetchError> for FanoutError {
    fn from(e: FetchError) -> Self {
        FanoutError {
            user_id: e.user_id(),
            // Keys come from C strings, so hold no NUL.
            key: e.key().and_then(|k| CString::new(k).ok()),
            http_status: e.status().unwrap_or(0),
            ..FanoutError::new(e.kind().into(), e.to_string())
        }
    }
}

impl From<ConfigError> for FanoutError {
    fn from(e: ConfigError) -> Self {
        FanoutError::invalid(e.to_string())
    }
}

impl From<BuildError> for FanoutError {
    fn from(e: BuildError) -> Self {
        let kind = match &e {
            BuildError::Config(_) => FanoutStatus::InvalidArgument,
            BuildError::Spawn(_) => FanoutStatus::System,
            // Any kind a newer library adds.
            _ => FanoutStatus::Internal,
        };
        // C gets one line: the system's reason follows ours.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        FanoutError::new(kind, message)
    }
}

/// The kind of `error`; `FANOUT_STATUS_INVALID_ARGUMENT` if `error` is NULL.
///
/// Any thread, at once with other readers of the same error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_kind(error: *const FanoutError) -> FanoutStatus {
    guard_value(FanoutStatus::Internal, || {
        // SAFETY: `error` is NULL or a live error, by this function's contract.
        unsafe { live(error) }.map_or(FanoutStatus::InvalidArgument, |e| e.kind)
    })
}

/// What went wrong, in one line of UTF-8 ending in NUL; NULL if `error` is NULL. The
/// string belongs to `error` and lives until it is freed.
///
/// Any thread, at once with other readers of the same error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_message(error: *const FanoutError) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: `error` is NULL or a live error, by this function's contract.
        unsafe { live(error) }.map_or(std::ptr::null(), |e| e.message.as_ptr())
    })
}

/// True if the error concerns one ID, which is then written to `*user_id` (if
/// `user_id` is not NULL). False for NULL `error`, and for errors of the whole call
/// (cancelled, deadline exceeded, invalid argument), with `*user_id` set to 0.
///
/// Any thread, at once with other readers of the same error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library; `user_id` is NULL or valid for
/// one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_user_id(
    error: *const FanoutError,
    user_id: *mut u64,
) -> bool {
    guard_value(false, || {
        // SAFETY: `user_id` is NULL or valid for one write, by this function's contract.
        let user_id = unsafe { Out::take(user_id) };
        // SAFETY: `error` is NULL or a live error, by this function's contract.
        let Some(id) = unsafe { live(error) }.and_then(|e| e.user_id) else {
            return false;
        };
        if let Some(user_id) = user_id {
            user_id.set(id);
        }
        true
    })
}

/// The text key the error concerns, as a NUL-terminated UTF-8 string that belongs to
/// `error` and lives until it is freed; NULL for errors of the whole call, for errors
/// of a `uint64_t` ID (see `fanout_error_user_id`), and for NULL `error`.
///
/// Any thread, at once with other readers of the same error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_key(error: *const FanoutError) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: `error` is NULL or a live error, by this function's contract.
        let key = unsafe { live(error) }.and_then(|e| e.key.as_deref());
        key.map_or(std::ptr::null(), CStr::as_ptr)
    })
}

/// The HTTP status the server answered with, for `FANOUT_STATUS_HTTP_STATUS` errors;
/// 0 otherwise, and for NULL `error`.
///
/// Any thread, at once with other readers of the same error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_http_status(error: *const FanoutError) -> u16 {
    guard_value(0, || {
        // SAFETY: `error` is NULL or a live error, by this function's contract.
        unsafe { live(error) }.map_or(0, |e| e.http_status)
    })
}

/// Frees an error and its message. NULL is ignored.
///
/// One thread, once no other thread uses the error.
///
/// # Safety
///
/// `error` is NULL or a live error from this library, not used again after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_error_free(error: *mut FanoutError) {
    guard_value((), || {
        // SAFETY: the caller hands over NULL or a live error, used no more.
        unsafe { free(error) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_the_system_refuses_is_not_an_invalid_argument() {
        let refused = std::io::Error::other("no threads left");
        let error = FanoutError::from(fanout::BuildError::Spawn(refused));
        assert_eq!(error.kind(), FanoutStatus::System);
        assert_eq!(
            error.message.to_str().unwrap(),
            "cannot start worker thread: no threads left"
        );

        let config = FanoutError::from(fanout::BuildError::from(ConfigError::ZeroBurst));
        assert_eq!(config.kind(), FanoutStatus::InvalidArgument);
        assert_eq!(config.message.to_str().unwrap(), "burst must be at least 1");
    }

    #[test]
    fn the_message_of_a_failed_fetch_says_why() {
        // Bound, then closed: nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = fanout::FanOutClient::builder(format!("http://127.0.0.1:{port}/u/{{id}}"))
            .max_attempts(1)
            .build()
            .unwrap();
        let error = FanoutError::from(client.fetch_all([5]).unwrap_err());
        // SAFETY: `error` is live for the whole test.
        let message = unsafe { fanout_error_message(&error) };
        // SAFETY: the message of a live error is a C string that lives as long as it.
        let message = unsafe { std::ffi::CStr::from_ptr(message) };
        assert_eq!(
            message.to_str().unwrap(),
            format!("user 5: connect 127.0.0.1:{port}: connection refused")
        );
    }
}
