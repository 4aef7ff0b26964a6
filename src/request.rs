//! One HTTP attempt on the shared agent, and the classification of its outcome.

use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::{HeaderName, HeaderValue};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{NextTimeout, time};
use ureq::{Agent, Body};

use crate::abort::TrackingConnector;
use crate::error::{ErrorKind, FetchError};
use crate::retry::{is_retryable_status, parse_retry_after};

/// The shared agent and everything an attempt needs besides the URL.
#[derive(Debug)]
pub(crate) struct Http {
    agent: Agent,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    max_body_bytes: u64,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// A failed attempt: the error it would end with, and whether another try may help.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) error: FetchError,
    pub(crate) retryable: bool,
    pub(crate) retry_after: Option<Duration>,
}

impl AttemptError {
    fn fatal(error: FetchError) -> Self {
        AttemptError {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    fn transient(error: FetchError) -> Self {
        AttemptError {
            error,
            retryable: true,
            retry_after: None,
        }
    }
}

impl Http {
    pub(crate) fn new(
        pool_size: usize,
        headers: Vec<(HeaderName, HeaderValue)>,
        timeout: Duration,
        max_body_bytes: u64,
    ) -> Self {
        let config = Config::builder()
            // Status codes are ours to classify: a 503 is retried, a 404 is not.
            .http_status_as_error(false)
            // Bounds connect, send and receive together. Safe only because our
            // resolver never spawns a thread to honour it (see ThreadlessResolver).
            .timeout_per_call(Some(timeout))
            .max_idle_connections(pool_size)
            .max_idle_connections_per_host(pool_size)
            .user_agent(concat!("fanout/", env!("CARGO_PKG_VERSION")))
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

    /// Interrupts every request in flight on the agent and refuses new ones.
    pub(crate) fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    /// One GET of `url`, bounded by the per-attempt timeout and by `deadline`.
    pub(crate) fn attempt(
        &self,
        url: &str,
        deadline: Option<Instant>,
    ) -> Result<Answer, AttemptError> {
        let mut request = self.agent.get(url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }

        // The caller's deadline shortens the attempt only when it is the nearer bound,
        // so the common case keeps the agent's config and allocates nothing extra.
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let deadline_bound = remaining.is_some_and(|r| r < self.timeout);
        let result = match remaining {
            Some(r) if r.is_zero() => {
                return Err(AttemptError::fatal(FetchError::new(
                    ErrorKind::DeadlineExceeded,
                )));
            }
            Some(r) if deadline_bound => request.config().timeout_per_call(Some(r)).build().call(),
            _ => request.call(),
        };

        let mut response = result.map_err(|e| classify_ureq_error(e, deadline_bound))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(AttemptError {
                error: FetchError::new(ErrorKind::Status).with_status(status),
                retryable: is_retryable_status(status),
                retry_after,
            });
        }

        let body = read_body(response.body_mut(), self.max_body_bytes)
            .map_err(|e| with_status(classify_ureq_error(e, deadline_bound), status))?;
        Ok(Answer { status, body })
    }
}

fn with_status(mut err: AttemptError, status: u16) -> AttemptError {
    err.error = err.error.with_status(status);
    err
}

fn read_body(body: &mut Body, limit: u64) -> Result<Vec<u8>, ureq::Error> {
    // Refuse an advertised oversize body before reading a byte of it.
    if let Some(len) = body.content_length() {
        if len > limit {
            return Err(ureq::Error::BodyExceedsLimit(limit));
        }
    }
    body.with_config().limit(limit).read_to_vec()
}

fn classify_ureq_error(error: ureq::Error, deadline_bound: bool) -> AttemptError {
    use ureq::Error as E;
    let timed_out = |error: ureq::Error| {
        if deadline_bound {
            AttemptError::fatal(FetchError::new(ErrorKind::DeadlineExceeded).with_source(error))
        } else {
            AttemptError::transient(FetchError::new(ErrorKind::Timeout).with_source(error))
        }
    };
    match error {
        E::Timeout(_) => timed_out(error),
        E::Io(ref io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            timed_out(error)
        }
        E::BodyExceedsLimit(limit) => AttemptError::fatal(
            FetchError::new(ErrorKind::TooLarge)
                .with_detail(format!("limit is {limit} bytes"))
                .with_source(error),
        ),
        // Refused, reset, closed early: the next attempt may well get through.
        E::Io(_) | E::ConnectionFailed => {
            AttemptError::transient(FetchError::new(ErrorKind::Transport).with_source(error))
        }
        // A host that does not resolve, garbage instead of HTTP, a redirect loop:
        // retrying would fail the same way.
        _ => AttemptError::fatal(FetchError::new(ErrorKind::Transport).with_source(error)),
    }
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
        // A failed lookup fails every ID alike, and at once: not worth a retry.
        self.0.resolve(uri, config, timeout).map_err(|e| match e {
            ureq::Error::Io(io) => {
                log::debug!("lookup of {uri} failed: {io}");
                ureq::Error::HostNotFound
            }
            other => other,
        })
    }
}
