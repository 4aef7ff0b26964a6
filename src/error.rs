//! The error types: a client that cannot be built, a bad configuration, a failed
//! fetch.

use std::error::Error as StdError;
use std::fmt;

use crate::key::KeyRef;

/// Why [`FanOutClientBuilder::build`](crate::FanOutClientBuilder::build) made no
/// client: a configuration it refuses, or a worker thread the system would not start.
///
/// ```
/// use fanout::{BuildError, ConfigError, FanOutClient};
///
/// let err = FanOutClient::builder("https://api.example.com/users/{id}")
///     .max_attempts(0)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, BuildError::Config(ConfigError::ZeroAttempts)));
/// assert_eq!(err.to_string(), "max_attempts must be at least 1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is refused; its message is the [`ConfigError`]'s.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The system would not start a worker thread (too many threads, or too little
    /// memory). [`source`](StdError::source) is the `io::Error` of the spawn.
    #[error("cannot start worker thread")]
    Spawn(#[source] std::io::Error),
}

/// A configuration that [`FanOutClientBuilder::build`](crate::FanOutClientBuilder::build)
/// (as [`BuildError::Config`]) or [`UrlTemplate::parse`](crate::UrlTemplate::parse)
/// refuses.
///
/// Every variant names the setting at fault, so the message alone tells the user
/// what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL template has no `{id}` placeholder.
    #[error("url template {0:?} has no {{id}} placeholder")]
    MissingPlaceholder(String),
    /// The URL template has a `{` or `}` that is not part of `{id}`.
    #[error("url template {0:?} has a brace that is not part of {{id}}")]
    StrayBrace(String),
    /// The URL template does not make a valid `http` or `https` URL.
    #[error("url template {template:?} is not a valid http(s) url: {reason}")]
    InvalidUrl {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `max_in_flight` was 0: no request could ever be sent.
    #[error("max_in_flight must be at least 1")]
    ZeroInFlight,
    /// `max_in_flight` was larger than [`MAX_IN_FLIGHT_LIMIT`](crate::MAX_IN_FLIGHT_LIMIT):
    /// each request in flight is an OS thread.
    #[error("max_in_flight is {0}, more than the limit of {limit}", limit = crate::MAX_IN_FLIGHT_LIMIT)]
    TooManyInFlight(usize),
    /// `rate_limit` was given 0 requests per second (or more than 10^9). Use
    /// `no_rate_limit()` for no limit.
    #[error(
        "rate must be from 1 to 1000000000 requests per second (use no_rate_limit() for no limit)"
    )]
    ZeroRate,
    /// The burst was 0: no request could ever be sent.
    #[error("burst must be at least 1")]
    ZeroBurst,
    /// `max_attempts` was 0: no request could ever be sent.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// The per-attempt timeout was zero.
    #[error("timeout must be greater than zero")]
    ZeroTimeout,
    /// The per-attempt timeout was longer than [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    #[error("timeout of {0:?} is longer than the limit of a day")]
    TimeoutTooLong(std::time::Duration),
    /// `max_body_bytes` was 0.
    #[error("max_body_bytes must be at least 1")]
    ZeroBodyLimit,
    /// A header name or value is not valid HTTP.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The proxy URL, set with
    /// [`proxy`](crate::FanOutClientBuilder::proxy) or read from the environment, is
    /// not one that can be used.
    #[error("invalid proxy {proxy:?} (from {origin}): {reason}")]
    InvalidProxy {
        /// The URL, with any password in it masked.
        proxy: String,
        /// Where it came from: `proxy` (the builder's setting) or the environment
        /// variable, such as `HTTPS_PROXY`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The PEM given to
    /// [`tls_root_certs_pem`](crate::FanOutClientBuilder::tls_root_certs_pem) holds no
    /// certificate, or a malformed one.
    #[error("root certificates: {0}")]
    InvalidRootCertificates(String),
    /// The chain given to
    /// [`tls_client_cert_pem`](crate::FanOutClientBuilder::tls_client_cert_pem) holds
    /// no certificate, or a malformed one.
    #[error("client certificate: {0}")]
    InvalidClientCertificate(String),
    /// The key given to
    /// [`tls_client_cert_pem`](crate::FanOutClientBuilder::tls_client_cert_pem) is
    /// missing, malformed, of a kind TLS cannot use, or not the certificate's. The
    /// message never quotes the key.
    #[error("client certificate key: {0}")]
    InvalidClientKey(String),
    /// A file or directory named by `SSL_CERT_FILE` or `SSL_CERT_DIR` cannot be read,
    /// or holds a malformed certificate.
    #[error("{variable} {path:?}: {reason}")]
    CertificateFile {
        /// `SSL_CERT_FILE` or `SSL_CERT_DIR`.
        variable: String,
        /// The file or directory at fault.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`tls_platform_verifier`](crate::FanOutClientBuilder::tls_platform_verifier)
    /// was combined with extra roots, which the platform verifier cannot take.
    #[error(
        "tls_platform_verifier cannot be combined with tls_root_certs_pem: the platform \
         verifier trusts the system's store only"
    )]
    PlatformVerifierWithRoots,
}

/// What kind of failure a [`FetchError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered with a status that is not a success (see
    /// [`FetchError::status`]), after any retries.
    Status,
    /// The request could not be sent or its answer could not be read: connection
    /// refused or reset, a malformed response, a host that does not resolve.
    Transport,
    /// An attempt took longer than the configured per-attempt timeout.
    Timeout,
    /// The response body was larger than `max_body_bytes`.
    TooLarge,
    /// The caller cancelled the call with [`CancelToken::cancel`](crate::CancelToken::cancel).
    Cancelled,
    /// The caller's deadline passed, or would pass before the next request could be
    /// sent.
    DeadlineExceeded,
    /// A bug inside this library: a worker panicked while fetching this ID. The
    /// worker survives and the client stays usable.
    Internal,
    /// The rate limiter could not answer, such as a shared limiter whose store is
    /// unreachable (see [`Limiter`](crate::Limiter)); the error's source says why.
    Limiter,
    /// A text key that can make no URL: an empty one. Refused before any request;
    /// [`FetchError::key`] says which.
    InvalidKey,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Status => "http status",
            ErrorKind::Transport => "transport error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::TooLarge => "response body too large",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::Internal => "internal error",
            ErrorKind::Limiter => "rate limiter failed",
            ErrorKind::InvalidKey => "invalid key",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A fetch that failed for good: which ID or key, how, and after how many attempts.
///
/// Its message is one short line: the ID, what failed and why, then notes in
/// parentheses, such as
/// `user 1: connect 127.0.0.1:1: connection refused (after 3 attempts)` or
/// `user 9: timed out reading the body after 10 s`. A text key is quoted instead:
/// `key "alice": http status 404`. It names the step that failed,
/// and the host and port for a connection; never a query string, credentials or
/// header. [`source`](StdError::source) keeps the error underneath (ureq's, the rate
/// limiter's, or the last attempt's) for code that wants to look at it.
///
/// ```
/// use fanout::{ErrorKind, FetchError};
///
/// fn report(err: &FetchError) -> String {
///     match (err.kind(), err.user_id(), err.status()) {
///         (ErrorKind::Status, Some(id), Some(code)) => format!("user {id}: server said {code}"),
///         (ErrorKind::DeadlineExceeded, _, _) => "out of time".to_string(),
///         _ => err.to_string(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct FetchError {
    kind: ErrorKind,
    user_id: Option<u64>,
    status: Option<u16>,
    attempts: u32,
    /// Boxed: most errors have none, and a small error keeps `Result` cheap to move.
    words: Option<Box<Words>>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What a [`FetchError`]'s message says besides its kind, status and attempts.
#[derive(Debug, Default)]
struct Words {
    /// The text key that failed (a `u64` one is `user_id`).
    key: Option<Box<str>>,
    /// What failed and why, when more is known than the kind: stands in for the kind
    /// in the message.
    description: Option<String>,
    /// A note on the failure, in parentheses after it.
    detail: Option<String>,
}

impl FetchError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        FetchError {
            kind,
            user_id: None,
            status: None,
            attempts: 0,
            words: None,
            source: None,
        }
    }

    pub(crate) fn with_user_id(mut self, user_id: u64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Names the key that failed, whichever kind it is.
    pub(crate) fn with_key(self, key: KeyRef<'_>) -> Self {
        match key {
            KeyRef::Id(id) => self.with_user_id(id),
            KeyRef::Text(text) => {
                let mut named = self;
                named.words.get_or_insert_default().key = Some(text.into());
                named
            }
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub(crate) fn with_description(mut self, description: impl Into<String>) -> Self {
        self.words.get_or_insert_default().description = Some(description.into());
        self
    }

    /// The same error, after `last`, the failure of the last attempt, which the
    /// message names: a stop during a retry's backoff says what was being retried.
    pub(crate) fn after_failure(self, last: FetchError) -> Self {
        let note = format!("last attempt: {last}");
        self.with_detail(note).with_source(last)
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.words.get_or_insert_default().detail = Some(detail.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The user ID whose fetch failed, or `None` when the whole call ended (cancelled
    /// or past its deadline) rather than one ID, or when the key was text (see
    /// [`key`](Self::key)).
    pub fn user_id(&self) -> Option<u64> {
        self.user_id
    }

    /// The text key whose fetch failed, or `None` when the whole call ended rather
    /// than one key, or when the key was a `u64` ID (see [`user_id`](Self::user_id)).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// if let Err(e) = client.fetch_all_keys(["alice", "bob"]) {
    ///     eprintln!("{:?} failed: {e}", e.key());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.words.as_deref().and_then(|w| w.key.as_deref())
    }

    /// The HTTP status of the last answer, if the server answered at all.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How many HTTP attempts were made for this ID (0 if none was sent).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// True if the call ended because the caller cancelled it or ran out of time,
    /// rather than because a request failed.
    pub fn is_cancellation(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Cancelled | ErrorKind::DeadlineExceeded
        )
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self.words.as_deref();
        if let Some(id) = self.user_id {
            write!(f, "user {id}: ")?;
        } else if let Some(key) = words.and_then(|w| w.key.as_deref()) {
            // Quoted and escaped: a key is the caller's text, and the message one line.
            write!(f, "key {key:?}: ")?;
        }
        match words.and_then(|w| w.description.as_deref()) {
            Some(description) => write_one_line(f, description)?,
            None => {
                f.write_str(self.kind.describe())?;
                // A body too large or cut short came with a 200: no news.
                if let (ErrorKind::Status, Some(status)) = (self.kind, self.status) {
                    write!(f, " {status}")?;
                }
            }
        }
        // Notes, in one pair of parentheses: what else is known, then the attempts.
        let attempts = (self.attempts > 1).then_some(self.attempts);
        let detail = words.and_then(|w| w.detail.as_deref());
        if detail.is_none() && attempts.is_none() {
            return Ok(());
        }
        f.write_str(" (")?;
        if let Some(detail) = detail {
            write_one_line(f, detail)?;
            if attempts.is_some() {
                f.write_str("; ")?;
            }
        }
        if let Some(n) = attempts {
            write!(f, "after {n} attempts")?;
        }
        f.write_str(")")
    }
}

/// Writes `text` with any line break as a space: text from elsewhere (a server, a
/// store) must not break the one-line message.
fn write_one_line(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let parts = text.split(['\n', '\r']).filter(|p| !p.is_empty());
    for (i, part) in parts.enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        f.write_str(part)?;
    }
    Ok(())
}

impl StdError for FetchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_id_status_and_attempts() {
        let err = FetchError::new(ErrorKind::Status)
            .with_user_id(42)
            .with_status(503)
            .with_attempts(3);
        assert_eq!(
            err.to_string(),
            "user 42: http status 503 (after 3 attempts)"
        );
    }

    #[test]
    fn a_description_stands_in_for_the_kind_and_notes_share_one_parenthesis() {
        let err = FetchError::new(ErrorKind::Transport)
            .with_user_id(1)
            .with_attempts(3)
            .with_description("connect 127.0.0.1:1: connection refused");
        assert_eq!(
            err.to_string(),
            "user 1: connect 127.0.0.1:1: connection refused (after 3 attempts)"
        );
        let stopped = FetchError::new(ErrorKind::DeadlineExceeded)
            .with_user_id(1)
            .with_attempts(2)
            .after_failure(FetchError::new(ErrorKind::Transport).with_description("reset"));
        assert_eq!(
            stopped.to_string(),
            "user 1: deadline exceeded (last attempt: reset; after 2 attempts)"
        );
        assert_eq!(stopped.source().unwrap().to_string(), "reset");
    }

    #[test]
    fn text_from_elsewhere_stays_on_one_line() {
        let err = FetchError::new(ErrorKind::Limiter).with_detail("redis says:\r\nno\n");
        assert_eq!(err.to_string(), "rate limiter failed (redis says: no)");
    }

    #[test]
    fn an_error_stays_small() {
        // Every `Result` of a fetch carries one, and an attempt's error wraps one.
        assert!(std::mem::size_of::<FetchError>() <= 64);
    }

    #[test]
    fn source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = FetchError::new(ErrorKind::Transport)
            .with_user_id(1)
            .with_source(io);
        let source = err.source().expect("source");
        assert_eq!(source.to_string(), "reset");
    }
}
