//! The rate limiter as a trait: the local token bucket by default, or any other source
//! of permission to send, such as one quota shared by many processes.

use std::fmt;
use std::time::{Duration, Instant};

use ratelimit::{Ratelimiter, TryWaitError};

use crate::rate::Rate;

/// A rate limit the workers of a client share: asked for a token right before each
/// attempt (retries and followed redirects included).
///
/// Workers wait for tokens in line, so `try_take` is called by one worker at a time
/// per client, and between calls the worker waits (cancellably, without sleeping)
/// for as long as the last answer said. An implementation needs no waiting of its own.
///
/// The default is [`TokenBucket`]; with the `redis` feature, `RedisGcra` shares one
/// quota among processes.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use fanout::{FanOutClient, Limiter, LimiterError, TryTake};
///
/// /// Allows 100 requests in all, then none.
/// #[derive(Debug, Default)]
/// struct Quota(AtomicU64);
///
/// impl Limiter for Quota {
///     fn try_take(&self) -> Result<TryTake, LimiterError> {
///         if self.0.fetch_add(1, Ordering::Relaxed) < 100 {
///             Ok(TryTake::Taken)
///         } else {
///             Err(LimiterError::new("the quota of 100 requests is spent"))
///         }
///     }
/// }
///
/// let client = FanOutClient::builder("http://127.0.0.1:8080/users/{id}")
///     .limiter(Arc::new(Quota::default()))
///     .build()?;
/// # Ok::<(), fanout::BuildError>(())
/// ```
pub trait Limiter: Send + Sync + fmt::Debug {
    /// Takes a token if one is free now, or says how long until one may be. An error
    /// fails the ID being fetched, which fails a `fetch_all` call.
    fn try_take(&self) -> Result<TryTake, LimiterError>;

    /// Told that the server asked for no request for `pause` (a 429 or 503 with
    /// `Retry-After`). The client holds its own workers in any case; a limiter shared
    /// with other processes holds them too. The default does nothing.
    fn pause(&self, pause: Duration) -> Result<(), LimiterError> {
        let _ = pause;
        Ok(())
    }

    /// Told the rate the client learned the server accepts, below the configured one
    /// (`None`: back to the configured rate). A limiter shared with other processes
    /// keeps it for all of them. The default does nothing: the client paces itself.
    fn adapt(&self, rate: Option<Rate>) -> Result<(), LimiterError> {
        let _ = rate;
        Ok(())
    }

    /// True when other processes take tokens from this limiter too. Then what this
    /// process sees the server accept is only its own share, so on a 429 the client
    /// halves the rate instead of measuring it. Default: false.
    fn is_shared(&self) -> bool {
        false
    }

    /// The rate this limiter keeps to, when it knows one: the ceiling that
    /// adaptation never goes above. Default: `None`.
    fn rate(&self) -> Option<Rate> {
        None
    }
}

/// What [`Limiter::try_take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryTake {
    /// A token was taken: the request may go.
    Taken,
    /// No token is free; ask again after this long.
    WaitFor(Duration),
}

/// A limiter that could not answer, such as a shared store that is unreachable.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LimiterError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl LimiterError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        LimiterError {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// The default limiter: a token bucket in this process (`ratelimit`), full at the
/// start, `burst` deep, refilled evenly at its [`Rate`], as Go's
/// `rate.NewLimiter(rate, burst)`.
pub struct TokenBucket {
    bucket: Ratelimiter<BucketClock>,
    rate: Rate,
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("rate", &self.rate)
            .field("burst", &self.bucket.max_tokens())
            .finish()
    }
}

impl TokenBucket {
    /// A bucket of `burst` tokens refilled at `rate` (such as `Rate::per_second(10)?`
    /// or `"5000/h".parse()?`). Fails if `burst` is 0.
    ///
    /// ```
    /// use fanout::{Rate, TokenBucket};
    ///
    /// let hourly = TokenBucket::new("5000/h".parse()?, 100)?;
    /// assert!(TokenBucket::new(Rate::per_second(10)?, 0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(rate: Rate, burst: u64) -> Result<Self, LimiterError> {
        Self::with_clock(rate, burst, SystemClock(Instant::now()))
    }

    /// Like [`new`](TokenBucket::new), on a [`Clock`] of the caller's: for tests that
    /// move time by hand.
    pub fn with_clock(
        rate: Rate,
        burst: u64,
        clock: impl Clock + 'static,
    ) -> Result<Self, LimiterError> {
        if burst == 0 {
            return Err(LimiterError::new("burst must be at least 1"));
        }
        // `ratelimit` counts `amount` tokens per `window`, refilled continuously, so
        // 5000/h is one token every 0.72 s. A `Rate` is never 0, which `ratelimit`
        // would read as no limit.
        let clock = BucketClock(Box::new(clock));
        let bucket = ratelimit::Builder::with_clock(rate.amount(), clock)
            .period(rate.window())
            .max_tokens(burst)
            .initial_available(burst)
            .build()
            .map_err(|e| LimiterError::new(format!("token bucket {rate}, burst {burst}: {e}")))?;
        Ok(TokenBucket { bucket, rate })
    }
}

/// Where a [`TokenBucket`] reads the time: the system's monotonic clock, or with
/// [`TokenBucket::with_clock`] one of the caller's, so that a test can move time by
/// hand and check the rate exactly, without waiting.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use fanout::{Clock, Limiter, Rate, TokenBucket, TryTake};
///
/// /// Moves only when told to.
/// #[derive(Clone, Default)]
/// struct ManualClock(Arc<AtomicU64>);
///
/// impl Clock for ManualClock {
///     fn elapsed(&self) -> Duration {
///         Duration::from_millis(self.0.load(Ordering::Relaxed))
///     }
/// }
///
/// let clock = ManualClock::default();
/// let bucket = TokenBucket::with_clock(Rate::per_second(10)?, 1, clock.clone())?;
/// assert_eq!(bucket.try_take()?, TryTake::Taken);
/// assert_eq!(bucket.try_take()?, TryTake::WaitFor(Duration::from_millis(100)));
/// clock.0.fetch_add(100, Ordering::Relaxed);
/// assert_eq!(bucket.try_take()?, TryTake::Taken);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Clock: Send + Sync {
    /// The time since the clock started. It must never go backwards.
    fn elapsed(&self) -> Duration;
}

/// The system's monotonic clock, from the bucket's creation.
struct SystemClock(Instant);

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Our [`Clock`] as `ratelimit` reads it: its trait stays out of our API.
struct BucketClock(Box<dyn Clock>);

impl ratelimit::Clock for BucketClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

impl Limiter for TokenBucket {
    fn rate(&self) -> Option<Rate> {
        Some(self.rate)
    }

    fn try_take(&self) -> Result<TryTake, LimiterError> {
        match self.bucket.try_wait() {
            Ok(()) => Ok(TryTake::Taken),
            Err(TryWaitError::Insufficient(wait)) => Ok(TryTake::WaitFor(wait)),
            // Not reachable with burst >= 1; waiting one token's time is the safe
            // answer, never sending early.
            Err(_) => Ok(TryTake::WaitFor(self.rate.interval())),
        }
    }
}
