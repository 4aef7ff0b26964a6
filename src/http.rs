//! One HTTP attempt on the shared agent, and the classification of its outcome.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use ureq::config::{AutoHeaderValue, Config};
use ureq::http::{HeaderName, HeaderValue, Response, Uri};
use ureq::tls::TlsConfig;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{NextTimeout, time};
use ureq::{Agent, Body, Proxy};

use crate::error::{ErrorKind, FetchError};
use crate::phase::{self, Phase};
use crate::quota_headers::{self, ServerQuota};
use crate::retry::is_retryable_status;
use crate::throttle::Answer;
use crate::transport::TrackingConnector;
use crate::wire;

/// The shared agent and everything an attempt needs besides the URL.
#[derive(Debug)]
pub(crate) struct Http {
    agent: Agent,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    max_body_bytes: u64,
}

/// What a request that did not fail gave, and what its headers said of the quota.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) quota: Option<ServerQuota>,
}

/// What a request that did not fail gave.
#[derive(Debug)]
pub(crate) enum ReplyKind {
    /// A successful answer, whose body was read into the caller's buffer.
    Body { status: u16 },
    /// A redirect within the same origin, to this absolute URL.
    Redirect(String),
}

/// A failed attempt: the error it would end with, and whether another try may help.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) error: FetchError,
    pub(crate) retryable: bool,
    pub(crate) retry_after: Option<Duration>,
    /// How the server answered, if it did: `None` for a transport failure.
    pub(crate) answer: Option<Answer>,
    /// Boxed: failures are rare, and a small `Err` keeps `Result` cheap to move.
    pub(crate) quota: Option<Box<ServerQuota>>,
}

impl AttemptError {
    pub(crate) fn fatal(error: FetchError) -> Self {
        AttemptError {
            error,
            retryable: false,
            retry_after: None,
            answer: None,
            quota: None,
        }
    }

    fn transient(error: FetchError) -> Self {
        AttemptError {
            retryable: true,
            ..Self::fatal(error)
        }
    }
}

impl Http {
    pub(crate) fn new(
        pool_size: usize,
        headers: Vec<(HeaderName, HeaderValue)>,
        timeout: Duration,
        max_body_bytes: u64,
        proxy: Option<Proxy>,
        compression: bool,
        tls: TlsConfig,
    ) -> Self {
        let config = Config::builder()
            // Chosen by the builder, in place of ureq's own reading of the environment.
            .proxy(proxy)
            // Default asks for every encoding ureq decodes (gzip, br).
            .accept_encoding(if compression {
                AutoHeaderValue::Default
            } else {
                AutoHeaderValue::None
            })
            // Status codes are ours to classify: a 503 is retried, a 404 is not.
            .http_status_as_error(false)
            // Bounds connecting (TCP and TLS). From the moment the request takes its
            // token at the wire, the transport bounds the rest (see `wire.rs`): the
            // wait for a token is not the server's time. Safe only because our
            // resolver never spawns a thread to honour a timeout (see
            // ThreadlessResolver).
            .timeout_connect(Some(timeout))
            .max_idle_connections(pool_size)
            .max_idle_connections_per_host(pool_size)
            .user_agent(concat!("fanout/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `attempt`, within the same origin only.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .tls_config(tls)
            .build();
        let agent = Agent::with_parts(
            config,
            TrackingConnector::default(),
            ThreadlessResolver::default(),
        );
        Http {
            agent,
            headers,
            timeout,
            max_body_bytes,
        }
    }

    /// The per-attempt timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Interrupts every request in flight on the agent and refuses new ones.
    pub(crate) fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    /// One GET of `url`, bounded by the per-attempt timeout and by `deadline`. A
    /// successful answer's body replaces the contents of `body`.
    ///
    /// A redirect is not followed here but handed back, so that the next request
    /// takes its own rate-limit token like any other.
    pub(crate) fn request(
        &self,
        url: &str,
        deadline: Option<Instant>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, AttemptError> {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let connect_bound = remaining.is_some_and(|r| r < self.timeout);
        // The agent's own timeout serves the common case without a per-request config
        // to allocate.
        let connect_timeout = match remaining {
            Some(r) if r.is_zero() => {
                return Err(timed_out(
                    FetchError::new(ErrorKind::DeadlineExceeded),
                    true,
                ));
            }
            Some(r) if connect_bound => Some(r),
            _ => None,
        };
        // Once the request went, the caller's deadline or the attempt's timeout,
        // whichever came first, is what bounds it.
        let deadline_bound = || wire::deadline().map_or(connect_bound, |(_, callers)| callers);
        let classify = |e, phase| {
            FailedAt {
                url,
                phase,
                deadline_bound: deadline_bound(),
                timeout: self.timeout,
            }
            .classify(e)
        };
        phase::start();
        let mut response = self
            .send(url, connect_timeout)
            .map_err(|e| classify(e, phase::current()))?;
        let status = response.status().as_u16();
        let quota = quota_headers::read(response.headers(), SystemTime::now);

        if response.status().is_redirection() {
            if let Some(next) = self.follow(url, &response)? {
                return Ok(Reply {
                    kind: ReplyKind::Redirect(next),
                    quota,
                });
            }
        }
        if !response.status().is_success() {
            let retry_after = quota_headers::retry_after(response.headers(), SystemTime::now());
            // A 503 with Retry-After says "over capacity, come back then", as a 429 does.
            let throttled = status == 429 || (status == 503 && retry_after.is_some());
            let answer = if throttled {
                Answer::Throttled { retry_after }
            } else {
                Answer::Accepted
            };
            return Err(AttemptError {
                error: FetchError::new(ErrorKind::Status).with_status(status),
                retryable: is_retryable_status(status),
                retry_after,
                answer: Some(answer),
                quota: quota.map(Box::new),
            });
        }
        phase::reached(Phase::Body);
        read_body(response.body_mut(), self.max_body_bytes, body).map_err(|e| {
            let mut failed = with_status(classify(e, Phase::Body), status);
            // The server let it through; only reading its body failed.
            failed.answer = Some(Answer::Accepted);
            failed.quota = quota.clone().map(Box::new);
            failed
        })?;
        Ok(Reply {
            kind: ReplyKind::Body { status },
            quota,
        })
    }

    fn send(&self, url: &str, timeout: Option<Duration>) -> Result<Response<Body>, ureq::Error> {
        let mut request = self.agent.get(url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        match timeout {
            Some(t) => request.config().timeout_connect(Some(t)).build().call(),
            None => request.call(),
        }
    }

    /// Where a redirect from `url` leads, if it is to be followed: `None` for a 3xx
    /// without a usable `Location` (it is then an ordinary failed status), an error for
    /// a redirect to another origin.
    fn follow(&self, url: &str, response: &Response<Body>) -> Result<Option<String>, AttemptError> {
        let Some(location) = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let Some(next) = resolve_location(url, location) else {
            return Ok(None);
        };
        if origin(&next) != origin(url) {
            // Headers such as Authorization were configured for this API alone.
            return Err(AttemptError::fatal(
                FetchError::new(ErrorKind::Status)
                    .with_status(response.status().as_u16())
                    .with_detail(format!(
                        "redirect to another origin refused: {}",
                        without_query(&next)
                    )),
            ));
        }
        Ok(Some(next))
    }
}

/// How many redirects one attempt follows.
pub(crate) const MAX_REDIRECTS: u32 = 10;

/// Scheme, host and port of an absolute URL.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some((scheme, uri.host()?.to_ascii_lowercase(), port))
}

/// The absolute URL a `Location` header points to, seen from `base`.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.parse::<Uri>().is_ok_and(|u| u.scheme().is_some()) {
        return Some(location.to_owned());
    }
    let base_uri: Uri = base.parse().ok()?;
    let scheme = base_uri.scheme_str()?;
    let authority = base_uri.authority()?.as_str();
    let resolved = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base_uri.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    resolved.parse::<Uri>().is_ok().then_some(resolved)
}

/// `error`, a timeout, as an attempt's failure: retried unless the caller's deadline
/// ran out.
fn timed_out(error: FetchError, deadline_bound: bool) -> AttemptError {
    AttemptError {
        // A timeout may pass; the caller's deadline will not come back.
        retryable: !deadline_bound,
        ..AttemptError::fatal(error)
    }
}

fn with_status(mut err: AttemptError, status: u16) -> AttemptError {
    err.error = err.error.with_status(status);
    err
}

fn read_body(body: &mut Body, limit: u64, into: &mut Vec<u8>) -> Result<(), ureq::Error> {
    into.clear();
    if let Some(len) = body.content_length() {
        // Refuse an advertised oversize body before reading a byte of it.
        if len > limit {
            return Err(ureq::Error::BodyExceedsLimit(limit));
        }
        // At most `limit` bytes, which the caller chose to allow.
        into.reserve_exact(usize::try_from(len).unwrap_or(0));
    }
    // The limit counts decoded bytes, and a body being decoded has no content_length:
    // a gzip bomb stops at `limit`, whatever its size on the wire.
    let mut reader = body.with_config().limit(limit).reader();
    // ureq's own errors (the limit, a timeout) come back out of the `io::Error`.
    reader.read_to_end(into).map_err(ureq::Error::from)?;
    Ok(())
}

/// Where an attempt failed, and under which limits: what its message needs besides
/// ureq's error.
struct FailedAt<'a> {
    url: &'a str,
    phase: Phase,
    /// The caller's deadline, not the per-attempt timeout, bounded this attempt.
    deadline_bound: bool,
    timeout: Duration,
}

impl FailedAt<'_> {
    fn classify(&self, error: ureq::Error) -> AttemptError {
        use ureq::Error as E;
        // A certificate or handshake refused is refused again: not worth a retry.
        let error = match crate::tls::classify(error) {
            Ok(tls) => return AttemptError::fatal(tls),
            Err(other) => other,
        };
        match error {
            E::Timeout(_) => self.timed_out(error),
            E::Io(ref io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                self.timed_out(error)
            }
            E::BodyExceedsLimit(limit) => AttemptError::fatal(
                FetchError::new(ErrorKind::TooLarge)
                    .with_detail(format!("limit is {limit} bytes"))
                    .with_source(error),
            ),
            // Refused, reset, closed early: the next attempt may well get through.
            E::Io(_) | E::ConnectionFailed => AttemptError::transient(self.transport(error)),
            // A host that does not resolve, garbage instead of HTTP, a redirect loop:
            // retrying would fail the same way.
            _ => AttemptError::fatal(self.transport(error)),
        }
    }

    fn timed_out(&self, error: ureq::Error) -> AttemptError {
        let activity = self.phase.activity(self.url);
        let (kind, description) = if self.deadline_bound {
            let description = format!("deadline exceeded {activity}");
            (ErrorKind::DeadlineExceeded, description)
        } else {
            let after = seconds(self.timeout);
            (
                ErrorKind::Timeout,
                format!("timed out {activity} after {after}"),
            )
        };
        let error = FetchError::new(kind)
            .with_description(description)
            .with_source(error);
        timed_out(error, self.deadline_bound)
    }

    fn transport(&self, error: ureq::Error) -> FetchError {
        let why = match &error {
            ureq::Error::HostNotFound => phase::take_lookup_error().map(|e| io_reason(&e)),
            // ureq reads a reset as the end of input, and says only that it came early.
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                phase::transport_error().map(|kind| io_reason(&kind.into()))
            }
            _ => None,
        }
        .unwrap_or_else(|| reason(&error));
        let description = format!("{}: {why}", self.phase.subject(self.url));
        FetchError::new(ErrorKind::Transport)
            .with_description(description)
            .with_source(error)
    }
}

/// Why a request failed, from ureq's error, in the words of these messages: short and
/// lowercase, and never with a URL (some of ureq's messages carry one).
fn reason(error: &ureq::Error) -> String {
    use ureq::Error as E;
    match error {
        E::Io(io) => io_reason(io),
        E::HostNotFound => "host not found".to_owned(),
        E::ConnectionFailed => "connection failed".to_owned(),
        E::Protocol(e) => {
            let e = e.to_string();
            let what = e.strip_prefix("http parse fail: ").unwrap_or(&e);
            format!("not a valid http response: {what}")
        }
        E::LargeResponseHeader(size, limit) => {
            format!("response head too large ({size} bytes, the limit is {limit})")
        }
        E::Tls(what) => lowercase_first(what),
        E::Rustls(e) => e.to_string(),
        E::TlsRequired => "the connection is not encrypted".to_owned(),
        E::BadUri(_) => "invalid url".to_owned(),
        E::RequireHttpsOnly(_) => "https is required".to_owned(),
        E::TooManyRedirects => "too many redirects".to_owned(),
        E::RedirectFailed => "redirect failed".to_owned(),
        E::BodyStalled => "the body stopped arriving".to_owned(),
        other => lowercase_first(&other.to_string()),
    }
}

/// An I/O error in the words of these messages: the common socket failures by name,
/// anything else as it says, without the OS error number.
fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let named = match error.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by peer",
        K::ConnectionAborted => "connection aborted",
        // ureq's "Peer disconnected": the server closed before the answer was whole.
        K::UnexpectedEof => "connection closed early",
        K::BrokenPipe => "connection closed by peer (broken pipe)",
        K::NotConnected => "not connected",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrNotAvailable => "address not available",
        _ => {
            // A wrapped error (a TLS alert, say) says the most about itself.
            let text = match error.get_ref() {
                Some(inner) => inner.to_string(),
                None => error.to_string(),
            };
            let text = match text.find(" (os error ") {
                Some(at) => &text[..at],
                None => &text,
            };
            // std's words for a failed lookup, which the message says already.
            let text = text
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(text);
            return lowercase_first(text);
        }
    };
    named.to_owned()
}

/// `text` with its first letter lowercase, unless it starts an acronym (`TLS`).
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if !second.is_some_and(char::is_uppercase) => first
            .to_lowercase()
            .chain(text[first.len_utf8()..].chars())
            .collect(),
        _ => text.to_owned(),
    }
}

/// A duration as these messages give it: `500 ms`, `10 s`, `1.5 s`.
fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs_f64())
    }
}

/// `url` without its query string or credentials, which may hold secrets.
fn without_query(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "an invalid url".to_owned();
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

/// ureq's default resolver, minus the thread it spawns per request to enforce a
/// resolve timeout.
///
/// With any overall timeout set, ureq 3.5 resolves every request (even an IP literal on
/// a pooled connection) on a fresh OS thread, which costs several times the throughput
/// on a fast API and breaks our promise of a fixed thread count. An IP literal never
/// blocks; a host name lookup is bounded by the system resolver's own timeouts.
#[derive(Debug, Default)]
struct ThreadlessResolver(DefaultResolver);

impl Resolver for ThreadlessResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let timeout = NextTimeout {
            after: time::Duration::NotHappening,
            ..timeout
        };
        phase::reached(Phase::Resolve);
        // A failed lookup fails every ID alike, and at once: not worth a retry.
        self.0.resolve(uri, config, timeout).map_err(|e| match e {
            ureq::Error::Io(io) => {
                // Kept for the message: `HostNotFound` does not say why.
                phase::lookup_failed(io);
                ureq::Error::HostNotFound
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_current_url() {
        let base = "http://api.test:8080/v1/users/7?x=1";
        let cases = [
            ("https://other.test/a", "https://other.test/a"),
            ("//cdn.test/b", "http://cdn.test/b"),
            ("/v2/users/7", "http://api.test:8080/v2/users/7"),
            ("8", "http://api.test:8080/v1/users/8"),
        ];
        for (location, expected) in cases {
            assert_eq!(resolve_location(base, location).as_deref(), Some(expected));
        }
    }

    #[test]
    fn origin_compares_scheme_host_and_port() {
        assert_eq!(origin("http://a.test/x"), origin("http://A.test:80/y"));
        assert_ne!(origin("http://a.test/x"), origin("https://a.test/x"));
        assert_ne!(origin("http://a.test/x"), origin("http://a.test:81/x"));
        assert_ne!(origin("http://a.test/x"), origin("http://b.test/x"));
    }
}
