//! Fetch many resources from one HTTP API as fast as its limits allow, and never
//! faster.
//!
//! `fanout` is a blocking library: no async runtime, no futures. Give it a URL
//! template and a list of user IDs; it fetches every ID and hands back the bodies,
//! while keeping to
//!
//! - a **rate limit**: a token bucket of any window ([`Rate`]: 10/s, 900 per 15
//!   minutes, 5000/h), by default 10 requests per second with bursts of up to 20 (the
//!   first 20 go out at once, then 10 per second);
//! - **the server's word**: a 429 with `Retry-After` pauses every worker, rate-limit
//!   headers set the pace, and bare 429s slow the client to what the server accepts
//!   (see [Listening to the server](#listening-to-the-server));
//! - a **concurrency cap**: at most `max_in_flight` requests in flight, by default 8;
//! - **fail-fast**: the first ID that fails for good (after its retries) cancels the
//!   rest of the call, and [`FanOutClient::fetch_all`] returns that error at once;
//! - **cancellation**: a [`CancelToken`], cancelled from any thread or by its
//!   deadline, wakes every wait of the call at once.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use fanout::{CancelToken, FanOutClient};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = FanOutClient::builder("https://api.example.com/users/{id}/widgets")
//!     .rate_limit(10, 20) // requests per second, burst
//!     .max_in_flight(8)
//!     .timeout(Duration::from_secs(10)) // per attempt
//!     .max_attempts(3) // 1 = no retries
//!     .header("Authorization", "Bearer ...")
//!     .build()?;
//!
//! let widgets = client.fetch_all(&[1, 2, 3])?;
//! println!("user 1 has {} bytes of widgets", widgets[1].len());
//!
//! let cancel = CancelToken::with_timeout(Duration::from_secs(30));
//! let widgets = client.fetch_all_with(&cancel, &[4, 5, 6])?;
//! # Ok(()) }
//! ```
//!
//! [`fetch_all`](FanOutClient::fetch_all) returns [`Bodies`], a map from ID to body
//! bytes kept in one buffer. For millions of IDs, [`FanOutClient::fetch_iter`] streams
//! `(id, body)` results in completion order instead of collecting them.
//!
//! # Keys
//!
//! `fetch_all` and `fetch_iter` take `u64` IDs. Their `_keys` forms take any [`Key`]:
//! IDs, or text (`&str`, `String`, `Arc<str>`, ...), with results keyed the same way
//! (`Bodies<String>`, `(String, Vec<u8>)`). A text key is percent-encoded for where
//! `{id}` stands, so that no key can change the URL's structure (see
//! [`UrlTemplate`]); an empty key is refused with [`ErrorKind::InvalidKey`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
//! // GET /users/alice, /users/a%2Fb and /users/%2E%2E: never another path.
//! let bodies = client.fetch_all_keys(["alice", "a/b", ".."])?;
//! println!("{} bytes for a/b", bodies["a/b"].len());
//! # Ok(()) }
//! ```
//!
//! The rate limit is pluggable: [`FanOutClientBuilder::limiter`] takes any
//! [`Limiter`]. With the `redis` feature, `RedisGcra` keeps one quota for every
//! process that shares a Redis key, so that N replicas do not send N times the quota.
//!
//! # How it works
//!
//! [`FanOutClientBuilder::build`] starts `max_in_flight` worker threads, owned by the
//! client. A call gives the pool one job per worker it can use; a worker serving the
//! call takes the call's IDs one after another, takes a token from the shared bucket
//! right before each attempt (waiting in line, first come first served), and sends it
//! on one shared HTTP agent. When several calls
//! share the client, their workers take turns, one ID at a time. `fetch_all`'s caller
//! sleeps until the last body is in or the first ID fails; `fetch_iter` hands IDs over
//! from the caller's thread as workers have room. So 10 IDs or 10 million use the same
//! threads, and several threads calling one client share its limits. Every wait (for a
//! token, a retry backoff, results) is a channel wait that a cancellation ends at once;
//! nothing sleeps.
//!
//! # Errors
//!
//! [`FetchError`] tells which user ID (or text key) failed, the [`ErrorKind`], the
//! HTTP status if the server answered, and how many attempts were made; its message
//! says what failed and why
//! (`user 1: connect 127.0.0.1:1: connection refused (after 3 attempts)`, or
//! `key "alice": http status 404` for a text key).
//! Retried, with exponential backoff and full jitter: statuses 502, 503 and 504,
//! connection errors and timeouts.
//! A 429 (or a 503 with `Retry-After`) pauses and slows the client instead (see
//! above). Any other status fails at once.
//! A bad configuration is a [`ConfigError`] from `build` (inside a [`BuildError`],
//! which also tells when the system would not start a worker thread), never a panic.
//!
//! # Listening to the server
//!
//! The configured limit is a ceiling; the server can only lower it:
//!
//! - A 429, or a 503 with `Retry-After` (seconds or an HTTP-date), pauses every worker
//!   of the client, in every call, until then. The ID is sent again after the pause,
//!   and the throttled try does not count against `max_attempts`; an ID throttled for
//!   longer than [`FanOutClientBuilder::max_throttled`] fails.
//! - Rate-limit headers (IETF `RateLimit-Policy`/`RateLimit`, `X-RateLimit-*`,
//!   `RateLimit-Limit`/`-Remaining`/`-Reset`) set the pace: the server's refill rate
//!   when it is lower than the configured one, and a conservative estimate of what its
//!   bucket holds.
//! - Without headers, 429s lower the rate to what the server was measured to accept,
//!   bursts ramp up again from one, and the rate rises by small steps after runs of
//!   successes ([`FanOutClientBuilder::adaptive_rate`] turns this off).
//!
//! [`FanOutClient::stats`] shows the rate kept to, where it came from
//! ([`RateSource`]), and how many answers were throttled.
//!
//! ```no_run
//! use fanout::FanOutClient;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = FanOutClient::builder("https://api.example.com/users/{id}")
//!     .rate("5000/h".parse()?, 100) // the documented quota, as an upper bound
//!     .build()?;
//! let bodies = client.fetch_all(&[1, 2, 3])?;
//! let stats = client.stats();
//! println!(
//!     "{} bodies, {} throttled answers, now at {:?} ({:?})",
//!     bodies.len(),
//!     stats.throttled,
//!     stats.effective_rate,
//!     stats.rate_source
//! );
//! # Ok(()) }
//! ```
//!
//! # Timeouts
//!
//! Each attempt is bounded by [`FanOutClientBuilder::timeout`] (default 10 s), from
//! connecting to the last byte of the body, and by the caller's deadline if that comes
//! sooner. A wait for a rate-limit token or a backoff that would end past the deadline
//! fails at once with [`ErrorKind::DeadlineExceeded`] instead of waiting to fail. Host
//! names are resolved by the system resolver, whose own timeouts apply; an IP address in
//! the template needs no lookup.
//!
//! When a call ends early (its first failure, a cancel, its deadline, a dropped
//! [`FetchIter`]), its requests in flight are interrupted at the socket, so the workers
//! carrying them are free for other calls at once.
//!
//! # Redirects
//!
//! Followed within the same origin (scheme, host and port) only, up to 10 per attempt,
//! each taking its own rate-limit token. A redirect to another origin fails the ID with
//! its 3xx status: headers configured for this API never reach another host.
//!
//! # Logging
//!
//! Through the [`log`] crate, with structured key-values; the library never installs a
//! logger. Each attempt logs `user_id` (a number, or the text of a text key),
//! `attempt`, `latency_ms` and `status`: at
//! `debug` on success, `warn` before a retry (with `backoff_ms`), `error` when an ID
//! fails for good. With `env_logger` (feature `kv`), `RUST_LOG=fanout=debug` shows them.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod abort;
mod bodies;
mod call;
mod cancel;
mod client;
mod collect;
mod engine;
mod error;
mod http;
mod key;
mod limiter;
mod lock;
mod phase;
mod pool;
mod proxy;
mod quota_headers;
mod rate;
mod rate_limit;
#[cfg(feature = "redis")]
mod redis_gcra;
mod retry;
mod stats;
mod stream;
mod template;
mod throttle;
mod tls;
mod transport;
mod turns;
mod wire;

pub use bodies::{Bodies, BodiesIntoIter, BodiesIter};
pub use cancel::CancelToken;
pub use client::{
    DEFAULT_BURST, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RATE, DEFAULT_TIMEOUT, FanOutClient, FanOutClientBuilder, MAX_IN_FLIGHT_LIMIT,
    MAX_TIMEOUT,
};
pub use error::{BuildError, ConfigError, ErrorKind, FetchError};
pub use key::{Key, KeyKind};
pub use limiter::{Clock, Limiter, LimiterError, TokenBucket, TryTake};
pub use rate::{Rate, RateError};
#[cfg(feature = "redis")]
pub use redis_gcra::RedisGcra;
pub use stats::Stats;
pub use stream::FetchIter;
pub use template::UrlTemplate;
pub use throttle::RateSource;

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FanOutClient>();
    assert_send_sync::<CancelToken>();
    assert_send_sync::<FetchError>();
    assert_send_sync::<BuildError>();
    assert_send_sync::<ConfigError>();
};
