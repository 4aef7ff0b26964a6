//! `FanOutClient` and its builder: validated configuration, and the calls.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue};

use crate::bodies::{Bodies, BodiesBuilder};
use crate::call::{AbortOnDrop, Call, Ids, Listed, Sink};
use crate::cancel::CancelToken;
use crate::collect::Collector;
use crate::engine::Engine;
use crate::error::{BuildError, ConfigError, FetchError};
use crate::http::Http;
use crate::key::{Key, KeyKind, TextKeys};
use crate::limiter::Limiter;
use crate::pool::Pool;
use crate::proxy::{self, ProxySetting};
use crate::rate::Rate;
use crate::rate_limit::{RateLimit, RateLimitConfig};
use crate::retry::RetryPolicy;
use crate::stats::Stats;
use crate::stream::FetchIter;
use crate::template::UrlTemplate;
use crate::tls::TlsOptions;

/// Default requests per second.
pub const DEFAULT_RATE: u64 = 10;
/// Default burst: how many requests may go out at once after a pause.
pub const DEFAULT_BURST: u64 = 20;
/// Default cap on requests in flight, which is also the number of worker threads.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
/// Default timeout of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default attempts per ID, the first one included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default largest response body accepted: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// The longest per-attempt timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest `max_in_flight` accepted: each one is an OS thread.
pub const MAX_IN_FLIGHT_LIMIT: usize = 4096;

/// Fetches many IDs from one HTTP API within its rate limit and concurrency cap.
///
/// Built by [`FanOutClient::builder`]. The client owns a fixed pool of
/// `max_in_flight` worker threads, one token bucket and one HTTP agent, all shared by
/// every call: several threads may call [`fetch_all`](Self::fetch_all) on one client at
/// once (it is `Send + Sync`; share it by reference or in an `Arc`), and the limits
/// hold across all of them together.
///
/// Dropping the client interrupts requests still in flight and joins its threads; it
/// does not wait for a slow server.
#[derive(Debug)]
pub struct FanOutClient {
    // Field order matters for drop: the pool (and its threads) goes first.
    pool: Pool,
    engine: Arc<Engine>,
    max_in_flight: usize,
}

/// Configuration for a [`FanOutClient`]; every setter takes and returns `self`.
///
/// Nothing is checked until [`build`](Self::build), which reports the first problem as
/// a [`ConfigError`] (in [`BuildError::Config`]).
#[derive(Debug, Clone)]
#[must_use = "call .build() to make the client"]
pub struct FanOutClientBuilder {
    template: String,
    rate: RateLimitConfig,
    max_in_flight: usize,
    timeout: Duration,
    retry: RetryPolicy,
    max_body_bytes: u64,
    headers: Vec<(String, String)>,
    adaptive: bool,
    proxy: ProxySetting,
    compression: bool,
    tls: TlsOptions,
}

impl FanOutClient {
    /// Starts a configuration for the API at `url_template`, in which `{id}` stands
    /// for the user ID, for example `"https://api.example.com/users/{id}/widgets"`.
    pub fn builder(url_template: impl Into<String>) -> FanOutClientBuilder {
        FanOutClientBuilder {
            template: url_template.into(),
            rate: RateLimitConfig::Limited {
                rate: Rate::per_second(DEFAULT_RATE).ok(),
                burst: DEFAULT_BURST,
            },
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                ..RetryPolicy::default()
            },
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            headers: Vec::new(),
            adaptive: true,
            proxy: ProxySetting::default(),
            compression: true,
            tls: TlsOptions::default(),
        }
    }

    /// Fetches every ID and returns each one's response body, as [`Bodies`] (a map
    /// from ID to body bytes), or the first error.
    ///
    /// Blocks until every ID is fetched, or until the first ID fails for good (after
    /// its retries): then the rest of the call is cancelled, and that error is
    /// returned at once, without waiting for requests still in flight. Duplicate IDs
    /// are fetched once; no IDs at all return empty `Bodies` without a request.
    ///
    /// `ids` is anything that iterates over IDs or references to them: a slice, a
    /// `Vec`, a range. Unlike [`fetch_iter`](Self::fetch_iter), the call reads it all
    /// before the first request. For text keys (logins, UUIDs, SKUs), see
    /// [`fetch_all_keys`](Self::fetch_all_keys).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}/widgets")
    ///     .build()?;
    /// let widgets = client.fetch_all(&[1, 2, 3])?;
    /// assert_eq!(widgets.len(), 3);
    /// let more = client.fetch_all(100..200)?;
    /// assert_eq!(more.len(), 100);
    /// # Ok(()) }
    /// ```
    pub fn fetch_all<I>(&self, ids: I) -> Result<Bodies, FetchError>
    where
        I: IntoIterator,
        I::Item: Borrow<u64>,
    {
        self.fetch_all_with(&CancelToken::new(), ids)
    }

    /// Like [`fetch_all`](Self::fetch_all), and also stops when `cancel` is cancelled
    /// or its deadline passes, returning [`ErrorKind::Cancelled`](crate::ErrorKind) or
    /// [`ErrorKind::DeadlineExceeded`](crate::ErrorKind) with no user ID.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use fanout::{CancelToken, FanOutClient};
    ///
    /// let client = FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// let cancel = CancelToken::with_timeout(Duration::from_secs(30));
    /// let bodies = client.fetch_all_with(&cancel, &[7, 8, 9])?;
    /// # Ok(()) }
    /// ```
    pub fn fetch_all_with<I>(&self, cancel: &CancelToken, ids: I) -> Result<Bodies, FetchError>
    where
        I: IntoIterator,
        I::Item: Borrow<u64>,
    {
        self.fetch_all_keys_with(cancel, ids.into_iter().map(|id| *id.borrow()))
    }

    /// Like [`fetch_all`](Self::fetch_all), for keys of any [`Key`] kind: text keys
    /// (`&str`, `String`, `Arc<str>`, ...) as well as `u64` IDs. Results are keyed the
    /// same way: `Bodies<String>` for text keys, `Bodies` for IDs.
    ///
    /// A text key is percent-encoded for where `{id}` stands (see
    /// [`UrlTemplate`]), so that `a/b`, `../admin` or `?x=1` stay one path segment or
    /// one query value. Duplicate keys are fetched once. An empty key fails the call
    /// before any request, with [`ErrorKind::InvalidKey`](crate::ErrorKind). A key
    /// that fails names itself in the error ([`FetchError::key`]):
    /// `key "alice": http status 404`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}")
    ///     .build()?;
    /// // Asks for /users/alice and /users/o%27brien.
    /// let bodies = client.fetch_all_keys(["alice", "o'brien", "alice"])?;
    /// assert_eq!(bodies.len(), 2);
    /// println!("{} bytes for alice", bodies["alice"].len());
    ///
    /// let logins: Vec<String> = vec!["carol".into(), "dave".into()];
    /// let bodies: fanout::Bodies<String> = client.fetch_all_keys(&logins)?;
    /// # Ok(()) }
    /// ```
    pub fn fetch_all_keys<I>(&self, keys: I) -> Result<Bodies<<I::Item as Key>::Kind>, FetchError>
    where
        I: IntoIterator,
        I::Item: Key,
    {
        self.fetch_all_keys_with(&CancelToken::new(), keys)
    }

    /// Like [`fetch_all_keys`](Self::fetch_all_keys), and also stops when `cancel` is
    /// cancelled or its deadline passes, as [`fetch_all_with`](Self::fetch_all_with)
    /// does.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use fanout::{CancelToken, FanOutClient};
    ///
    /// let client = FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// let cancel = CancelToken::with_timeout(Duration::from_secs(30));
    /// let bodies = client.fetch_all_keys_with(&cancel, ["alice", "bob"])?;
    /// # Ok(()) }
    /// ```
    pub fn fetch_all_keys_with<I>(
        &self,
        cancel: &CancelToken,
        keys: I,
    ) -> Result<Bodies<<I::Item as Key>::Kind>, FetchError>
    where
        I: IntoIterator,
        I::Item: Key,
    {
        // The only generic part: the keys in, the result's key out.
        let keys = keys.into_iter();
        if <<I::Item as Key>::Kind as KeyKind>::TEXT {
            let text = Arc::new(TextKeys::distinct(keys)?);
            let builder = self.fetch_listed(cancel, Listed::Text(Arc::clone(&text)))?;
            Ok(builder.finish(Some(text)))
        } else {
            let builder = self.fetch_listed(cancel, Listed::Ids(distinct(keys)))?;
            Ok(builder.finish(None))
        }
    }

    /// Runs a `fetch_all` call: the workers collect, this thread waits for the answer.
    fn fetch_listed(
        &self,
        cancel: &CancelToken,
        keys: Listed,
    ) -> Result<BodiesBuilder, FetchError> {
        if keys.len() == 0 {
            return Ok(BodiesBuilder::default());
        }
        let (collector, answered) = Collector::new(keys.len());
        let collector = Arc::new(collector);
        let servers = self.pool.size().min(keys.len());
        let call = Call::new(
            cancel,
            Ids::listed(keys),
            Sink::Collect(Arc::clone(&collector)),
        );
        // Stops the workers whichever way this function returns.
        let call = AbortOnDrop(Arc::new(call));
        self.pool.submit(&call.0, servers);

        let deadline = cancel.deadline_receiver();
        loop {
            crossbeam_channel::select! {
                recv(answered) -> _ => {}
                recv(cancel.receiver()) -> _ => {}
                recv(deadline) -> _ => {}
            }
            if let Err(stop) = cancel.check() {
                return Err(stop.into_error());
            }
            if let Some(answer) = collector.answer() {
                return answer;
            }
        }
    }

    /// Streams results in completion order, one item per distinct ID, without
    /// collecting bodies in memory. An ID that fails does not stop the others; see
    /// [`FetchIter`].
    ///
    /// IDs are read from `ids` lazily, as the pool has room, so `ids` may be an
    /// iterator over millions of IDs read from a file. For text keys, see
    /// [`fetch_iter_keys`](Self::fetch_iter_keys).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// for item in client.fetch_iter(1..=1_000_000) {
    ///     match item {
    ///         Ok((id, body)) => println!("{id}: {} bytes", body.len()),
    ///         Err(e) => eprintln!("{e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fetch_iter<I>(&self, ids: I) -> FetchIter<'_, I::IntoIter>
    where
        I: IntoIterator<Item = u64>,
    {
        self.fetch_iter_with(&CancelToken::new(), ids)
    }

    /// Like [`fetch_iter`](Self::fetch_iter), and also ends when `cancel` is cancelled
    /// or its deadline passes, with one last `Err` that has no user ID.
    pub fn fetch_iter_with<I>(&self, cancel: &CancelToken, ids: I) -> FetchIter<'_, I::IntoIter>
    where
        I: IntoIterator<Item = u64>,
    {
        self.fetch_iter_keys_with(cancel, ids)
    }

    /// Like [`fetch_iter`](Self::fetch_iter), for keys of any [`Key`] kind: each
    /// result carries its key as a `String` for text keys (a `u64` for IDs).
    ///
    /// Keys are encoded and deduplicated as by
    /// [`fetch_all_keys`](Self::fetch_all_keys). An empty key is one `Err` item
    /// ([`ErrorKind::InvalidKey`](crate::ErrorKind)), without a request, and the
    /// others go on.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::io::BufRead;
    ///
    /// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// let logins = std::io::stdin().lock().lines().map_while(Result::ok);
    /// for item in client.fetch_iter_keys(logins) {
    ///     match item {
    ///         Ok((login, body)) => println!("{login}: {} bytes", body.len()),
    ///         Err(e) => eprintln!("{e}"), // key "alice": http status 404
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fetch_iter_keys<I>(&self, keys: I) -> FetchIter<'_, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: Key,
    {
        self.fetch_iter_keys_with(&CancelToken::new(), keys)
    }

    /// Like [`fetch_iter_keys`](Self::fetch_iter_keys), and also ends when `cancel` is
    /// cancelled or its deadline passes, with one last `Err` that has no key.
    pub fn fetch_iter_keys_with<I>(
        &self,
        cancel: &CancelToken,
        keys: I,
    ) -> FetchIter<'_, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: Key,
    {
        FetchIter::new(&self.pool, cancel, keys.into_iter())
    }

    /// The client's counters since it was built, and the rate it keeps to now.
    /// Cheap; callable from any thread.
    pub fn stats(&self) -> Stats {
        let mut stats = self.engine.counters.snapshot();
        let (throttle, throttled) = self.engine.limit.snapshot();
        stats.effective_rate = throttle.rate.and_then(Rate::from_per_second);
        stats.rate_source = throttle.source;
        stats.paused = throttle.paused;
        stats.throttled = throttled;
        stats
    }

    /// The cap on requests in flight (and the number of worker threads).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

impl FanOutClientBuilder {
    /// Allows `per_second` requests per second on average, with bursts of up to
    /// `burst` at once (the bucket starts full). Default: 10 per second, burst 20.
    ///
    /// Retries take tokens like first attempts. Both numbers must be at least 1; for
    /// no limit at all, use [`no_rate_limit`](Self::no_rate_limit).
    pub fn rate_limit(mut self, per_second: u64, burst: u64) -> Self {
        self.rate = RateLimitConfig::Limited {
            rate: Rate::per_second(per_second).ok(),
            burst,
        };
        self
    }

    /// Allows `rate` on average, of any window, with bursts of up to `burst` at once
    /// (the bucket starts full): the general form of [`rate_limit`](Self::rate_limit).
    ///
    /// ```
    /// use fanout::{FanOutClient, Rate};
    ///
    /// let client = FanOutClient::builder("https://api.example.com/users/{id}")
    ///     .rate("5000/h".parse()?, 100) // one every 0.72 s, after a burst of 100
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate(mut self, rate: Rate, burst: u64) -> Self {
        self.rate = RateLimitConfig::Limited {
            rate: Some(rate),
            burst,
        };
        self
    }

    /// Lifts the rate limit: requests are bounded only by `max_in_flight`. For private
    /// APIs and benchmarks.
    pub fn no_rate_limit(mut self) -> Self {
        self.rate = RateLimitConfig::Unlimited;
        self
    }

    /// Uses `limiter` for the rate limit instead of a token bucket of this process:
    /// for example one quota shared by many processes (`RedisGcra`, feature `redis`).
    /// Replaces [`rate_limit`](Self::rate_limit) and
    /// [`no_rate_limit`](Self::no_rate_limit); the last of the three called wins.
    pub fn limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.rate = RateLimitConfig::Custom(limiter);
        self
    }

    /// Caps requests in flight at `n`, which is also the number of worker threads.
    /// Default: 8. Must be between 1 and [`MAX_IN_FLIGHT_LIMIT`].
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Bounds each attempt, from connecting to the last byte of the body. Default: 10
    /// seconds, at most [`MAX_TIMEOUT`] (a day). A caller's deadline that comes sooner
    /// shortens the attempt.
    ///
    /// A server that stops answering is given up on up to 1/32 later (10 s becomes
    /// 10.24 s): socket timeouts are rounded up so that they need not be set again for
    /// every request. A caller's deadline is kept exactly, whatever the rounding.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per ID in all, the first one included: 1 means no retries. Default: 3.
    ///
    /// Retried: 502, 503, 504, connection errors and timeouts. Any other status
    /// fails at once. A 429 (or a 503 with `Retry-After`) that the client answers by
    /// pausing or slowing down does not count: see [`max_throttled`](Self::max_throttled).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.retry.max_attempts = n;
        self
    }

    /// The backoff before a retry is random in `[0, ceiling)` ("full jitter"), where the
    /// ceiling starts at `base` and doubles per retry up to `max`. Default: 100 ms and
    /// 5 s.
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry.base_backoff = base;
        self.retry.max_backoff = max;
        self
    }

    /// The longest `Retry-After` that is obeyed (by pausing every worker). A server
    /// asking for a longer wait gets no retry: the ID fails with that status at once.
    /// Default: 30 s.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.retry.max_retry_after = max;
        self
    }

    /// Whether the client slows down when the server answers 429 without saying why
    /// in headers. Default: on.
    ///
    /// On, a fresh client still sends its configured burst at once and keeps its
    /// configured rate exactly, until a 429 shows the configuration to be more than
    /// the server allows. Then it lowers its rate to what the server was seen to
    /// accept, ramps bursts up again from one (doubling while they succeed, up to the
    /// configured burst), and raises the rate by small steps after runs of
    /// successes, never above the configured rate. Off, only the server's pauses
    /// (`Retry-After`) and rate-limit headers hold the configured bucket back.
    pub fn adaptive_rate(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// The longest one ID may go on being throttled before it fails with its 429 (or
    /// 503). Default: 10 minutes.
    ///
    /// A throttled answer (a 429, or a 503 with `Retry-After`, that the client
    /// answers by pausing or slowing down) is not the ID's failure and does not use
    /// up [`max_attempts`](Self::max_attempts): the ID is sent again once the server
    /// allows. Only a server that goes on refusing it for this long ends the call.
    pub fn max_throttled(mut self, max: Duration) -> Self {
        self.retry.max_throttled = max;
        self
    }

    /// Fails an ID whose response body is larger than `n` bytes, without reading more
    /// than `n` of them. Default: 16 MiB.
    ///
    /// A compressed body counts as it is decoded: a small gzip bomb fails once its
    /// first `n` decoded bytes are read, whatever its size on the wire.
    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Adds a header to every request, such as `Authorization`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends every request through the proxy at `url` (`http://`, `https://`,
    /// `socks4://`, `socks4a://`, `socks5://` or `socks5h://`, with `user:password@` if
    /// the proxy asks for it), or, given `None` or `""`, through no proxy at all, whatever
    /// the environment says.
    ///
    /// By default the proxy comes from the environment, as curl reads it:
    /// `https_proxy` or `HTTPS_PROXY` for an `https` template, `http_proxy` (lower-case
    /// only, as in curl) for an `http` one, else `all_proxy` or `ALL_PROXY`. Hosts that
    /// `no_proxy` or `NO_PROXY` lists (names, which cover their subdomains, IP addresses,
    /// `/bits` ranges, or `*`) are reached directly, even with a proxy set here. An
    /// HTTP proxy is asked to open a tunnel (`CONNECT`) for `http` and `https` alike.
    ///
    /// An invalid URL, here or in the environment, is a
    /// [`ConfigError::InvalidProxy`] from [`build`](Self::build).
    ///
    /// ```
    /// use fanout::FanOutClient;
    ///
    /// let client = FanOutClient::builder("https://api.example.com/users/{id}")
    ///     .proxy(Some("http://proxy.example.com:3128"))
    ///     .build()?;
    /// let direct = FanOutClient::builder("https://api.example.com/users/{id}")
    ///     .proxy(None)
    ///     .build()?;
    /// # Ok::<(), fanout::BuildError>(())
    /// ```
    pub fn proxy(mut self, url: Option<&str>) -> Self {
        self.proxy = match url {
            None | Some("") => ProxySetting::Off,
            Some(url) => ProxySetting::Url(url.to_owned()),
        };
        self
    }

    /// Whether to ask for compressed bodies (`Accept-Encoding: gzip, br`). Default: on.
    ///
    /// Bodies are always handed back decoded, and
    /// [`max_body_bytes`](Self::max_body_bytes) bounds their decoded size. Off, no
    /// `Accept-Encoding` is sent (a body the server compresses anyway is still decoded);
    /// an `Accept-Encoding` set with [`header`](Self::header) replaces either.
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `BEGIN CERTIFICATE` blocks), in
    /// addition to the default roots, for example a company's private CA. May be
    /// called more than once; every call adds.
    ///
    /// The default roots are Mozilla's, built in (the `webpki-roots` set that ureq
    /// trusts by default). With extra roots, the one CA that Mozilla trusts for its
    /// country's names only is left out, since a list of certificates cannot hold
    /// that constraint. The PEM is checked by [`build`](Self::build): one with no
    /// certificate, or a malformed one, is a
    /// [`ConfigError::InvalidRootCertificates`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.internal/users/{id}")
    ///     .tls_root_certs_pem(std::fs::read("company-ca.pem")?)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// ```
    /// use fanout::{BuildError, ConfigError, FanOutClient};
    ///
    /// let err = FanOutClient::builder("https://api.internal/users/{id}")
    ///     .tls_root_certs_pem("not a certificate")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     BuildError::Config(ConfigError::InvalidRootCertificates(_))
    /// ));
    /// ```
    pub fn tls_root_certs_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.add_roots_pem(pem.as_ref());
        self
    }

    /// Whether the certificates in the files named by the `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` environment variables are trusted, in addition to the default
    /// roots, as curl and OpenSSL do. Default: on.
    ///
    /// They are read by [`build`](Self::build), for an `https` template only (an
    /// `http` one never meets TLS: redirects stay on its origin). `SSL_CERT_FILE` is
    /// one PEM file of certificates; `SSL_CERT_DIR` is a `:`-separated list of
    /// directories, whose files are read (those with no certificate in them are
    /// skipped). A file that cannot be read or holds a malformed certificate is a
    /// [`ConfigError::CertificateFile`] naming it. With
    /// [`tls_platform_verifier`](Self::tls_platform_verifier) they are left to the
    /// platform's verifier instead (on Linux it too reads them, in place of the
    /// system's store).
    pub fn tls_env_roots(mut self, on: bool) -> Self {
        self.tls.set_env_roots(on);
        self
    }

    /// Verifies servers with the platform's trust store and verifier (the system's
    /// certificates on Linux; the OS verifier on macOS, Windows and Android) instead of
    /// the built-in roots. Default: off.
    ///
    /// The platform verifier takes no extra roots: combined with
    /// [`tls_root_certs_pem`](Self::tls_root_certs_pem), `build` fails with
    /// [`ConfigError::PlatformVerifierWithRoots`]. Add a private CA to the system's
    /// store instead.
    pub fn tls_platform_verifier(mut self, on: bool) -> Self {
        self.tls.set_platform_verifier(on);
        self
    }

    /// Presents this client certificate to servers that ask for one (mutual TLS).
    ///
    /// `cert_chain_pem` holds the client's certificate first, then any intermediate
    /// certificates; `key_pem` holds its private key (PKCS#8, PKCS#1 or SEC1, not
    /// encrypted). Both are checked by [`build`](Self::build), which fails with
    /// [`ConfigError::InvalidClientCertificate`] or
    /// [`ConfigError::InvalidClientKey`] (also when the key does not match the
    /// certificate). No message or `Debug` output ever shows the key.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = fanout::FanOutClient::builder("https://api.internal/users/{id}")
    ///     .tls_client_cert_pem(std::fs::read("client.pem")?, std::fs::read("client.key")?)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn tls_client_cert_pem(
        mut self,
        cert_chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Self {
        self.tls
            .set_client_cert(cert_chain_pem.as_ref(), key_pem.as_ref());
        self
    }

    /// Checks the configuration and starts the client's worker threads.
    ///
    /// ```
    /// use fanout::{BuildError, ConfigError, FanOutClient};
    ///
    /// let err = FanOutClient::builder("https://api.example.com/users").build().unwrap_err();
    /// assert!(matches!(err, BuildError::Config(ConfigError::MissingPlaceholder(_))));
    ///
    /// let err = FanOutClient::builder("https://api.example.com/users/{id}")
    ///     .max_in_flight(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, BuildError::Config(ConfigError::ZeroInFlight)));
    /// ```
    pub fn build(self) -> Result<FanOutClient, BuildError> {
        let template = UrlTemplate::parse(&self.template)?;
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroInFlight.into());
        }
        if self.max_in_flight > MAX_IN_FLIGHT_LIMIT {
            return Err(ConfigError::TooManyInFlight(self.max_in_flight).into());
        }
        if let RateLimitConfig::Limited { rate, burst } = self.rate {
            if rate.is_none() {
                return Err(ConfigError::ZeroRate.into());
            }
            if burst == 0 {
                return Err(ConfigError::ZeroBurst.into());
            }
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::ZeroAttempts.into());
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout.into());
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(ConfigError::TimeoutTooLong(self.timeout).into());
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit.into());
        }
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| parse_header(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        // Every URL has the template's scheme and host, so one choice serves them all.
        let target = template
            .url(0)
            .parse()
            .expect("a parsed template makes valid URLs");
        let proxy = proxy::choose(&self.proxy, &target, |name| std::env::var(name).ok())?;
        let tls = self.tls.config(&self.template)?;

        let engine = Arc::new(Engine {
            http: Http::new(
                self.max_in_flight,
                headers,
                self.timeout,
                self.max_body_bytes,
                proxy,
                self.compression,
                tls,
            ),
            limit: Arc::new(RateLimit::new(
                &self.rate,
                self.adaptive,
                self.max_in_flight,
            )?),
            template,
            retry: self.retry,
            counters: Arc::default(),
        });
        let pool =
            Pool::start(Arc::clone(&engine), self.max_in_flight).map_err(BuildError::Spawn)?;
        Ok(FanOutClient {
            pool,
            engine,
            max_in_flight: self.max_in_flight,
        })
    }
}

/// The IDs of `ids` without repeats, in their first order.
fn distinct<I>(ids: I) -> Box<[u64]>
where
    I: Iterator,
    I::Item: Key,
{
    let mut seen = HashSet::with_capacity(ids.size_hint().0);
    ids.map(|id| id.id())
        .filter(|id| seen.insert(*id))
        .collect()
}

fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidHeader {
        name: name.to_owned(),
        reason,
    };
    let parsed_name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let parsed_value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
    Ok((parsed_name, parsed_value))
}
