//! One quota shared by many processes: a GCRA rate limiter on Redis.
//!
//! Each token is one atomic Lua script on the Redis server, which keeps the quota's
//! "theoretical arrival time" under one key and reads the time from the server's own
//! clock (`TIME`), so the clocks of the hosts running the clients do not matter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::limiter::{Limiter, LimiterError, TokenBucket, TryTake};
use crate::lock;
use crate::rate::Rate;

/// GCRA with the bucket's semantics: `burst` requests at once after a quiet spell,
/// then one every `interval`, or every adapted interval (`KEYS[2]`) when the server
/// was found to allow less. Times are whole microseconds, formatted as integers so
/// that Redis does not round them.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local adapted = tonumber(redis.call('GET', KEYS[2]))
if adapted and adapted > interval then interval = adapted end
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat),
  'PX', math.floor((next_tat - now) / 1000) + 1)
return 0
";

/// A pause for everyone on the key: no token until `ARGV[1]` microseconds from now,
/// then one an interval (no burst banked during the pause).
const PAUSE: &str = r"
local pause = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local held = now + pause + tolerance
if held > tat then
  redis.call('SET', KEYS[1], string.format('%d', held), 'PX', math.floor((held - now) / 1000) + 1)
end
return 0
";

/// The adapted interval every process on the key keeps to (`ARGV[1]` microseconds),
/// remembered for `ARGV[2]` milliseconds; 0 forgets it.
const ADAPT: &str = r"
local interval = tonumber(ARGV[1])
if interval == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', interval), 'PX', tonumber(ARGV[2]))
end
return 0
";

/// How long an adapted rate is kept on Redis after the last process set it: past
/// that, the configured rate applies again.
const ADAPTED_FOR: Duration = Duration::from_secs(10 * 60);

/// How long a Redis connect, read or write may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// With a fallback, how long to use it before asking Redis again.
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// A rate limit shared by every process that uses the same Redis key: the same
/// rate and burst as [`TokenBucket`], for all of them together (feature `redis`).
///
/// Each token is one `EVALSHA` of a GCRA script on the server, timed by the server's
/// clock. Every process sharing a key must give it the same rate and burst.
///
/// When Redis cannot be reached, [`try_take`](Limiter::try_take) fails, and with it
/// the ID being fetched (`ErrorKind::Limiter`): no request is sent without a token.
/// [`with_local_fallback`](Self::with_local_fallback) opts in to a token bucket in
/// this process, holding this process's share of the quota, while Redis is away.
///
/// ```no_run
/// use std::sync::Arc;
/// use fanout::{FanOutClient, RedisGcra};
///
/// // 10 requests per second, bursts of 20, for every process using this key.
/// let quota = RedisGcra::connect("redis://127.0.0.1:6379/", "fanout:api-key-42", "10/s".parse()?, 20)?;
/// let client = FanOutClient::builder("https://api.example.com/users/{id}")
///     .limiter(Arc::new(quota))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisGcra {
    client: redis::Client,
    /// The URL without its password, for messages and logs.
    url: String,
    key: String,
    rate: Rate,
    burst: u64,
    interval_us: u64,
    tolerance_us: u64,
    script: redis::Script,
    timeout: Duration,
    connection: Mutex<Option<redis::Connection>>,
    fallback: Option<Fallback>,
    /// Where the adapted interval is kept: in the quota key's Redis Cluster slot.
    adapted_key: String,
    pause_script: redis::Script,
    adapt_script: redis::Script,
}

impl std::fmt::Debug for RedisGcra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGcra")
            .field("url", &self.url)
            .field("key", &self.key)
            .field("interval_us", &self.interval_us)
            .field("tolerance_us", &self.tolerance_us)
            .field("fallback", &self.fallback)
            .finish()
    }
}

#[derive(Debug)]
struct Fallback {
    bucket: TokenBucket,
    share: String,
    /// While set and in the future, tokens come from the bucket without asking Redis.
    redis_away_until: Mutex<Option<Instant>>,
    /// Tokens taken from the bucket, for [`RedisGcra::fallback_tokens`].
    taken: AtomicU64,
}

impl Fallback {
    fn try_take(&self) -> Result<TryTake, LimiterError> {
        let verdict = self.bucket.try_take()?;
        if verdict == TryTake::Taken {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        Ok(verdict)
    }
}

impl RedisGcra {
    /// Connects to the Redis server at `url` (such as `redis://127.0.0.1:6379/`) for a
    /// quota of `rate` (any window, such as `"5000/h".parse()?`) with bursts of
    /// `burst`, kept under `key`: [`new`](Self::new), then a first connection.
    ///
    /// Fails as `new` does, or if the server does not answer within a second.
    pub fn connect(
        url: &str,
        key: impl Into<String>,
        rate: Rate,
        burst: u64,
    ) -> Result<Self, LimiterError> {
        let limiter = Self::new(url, key, rate, burst)?;
        // Connect now, so a wrong address is reported before any fetching starts.
        let mut connection = limiter.lock_connection();
        *connection = Some(limiter.open().map_err(|e| limiter.error(e))?);
        drop(connection);
        Ok(limiter)
    }

    /// Like [`connect`](Self::connect), without connecting yet: the first token
    /// connects. For use with [`with_local_fallback`](Self::with_local_fallback), so
    /// that a process can start while Redis is away.
    ///
    /// Fails if the URL is not a Redis URL, the burst is 0, or the rate is over
    /// 1,000,000 a second.
    pub fn new(
        url: &str,
        key: impl Into<String>,
        rate: Rate,
        burst: u64,
    ) -> Result<Self, LimiterError> {
        if burst == 0 {
            return Err(LimiterError::new("redis burst must be at least 1"));
        }
        // Whole microseconds, rounded up so that the quota is never exceeded.
        let interval_us =
            u64::try_from(rate.interval().as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
        if rate.interval() < Duration::from_micros(1) {
            return Err(LimiterError::new(format!(
                "redis rate {rate} is over 1,000,000/s, the most whole microseconds allow"
            )));
        }
        let client = redis::Client::open(url).map_err(|e| {
            LimiterError::new(format!("invalid redis url {:?}: {e}", without_secrets(url)))
                .with_source(e)
        })?;
        let key = key.into();
        Ok(RedisGcra {
            client,
            url: without_secrets(url),
            adapted_key: adapted_key(&key),
            key,
            pause_script: redis::Script::new(PAUSE),
            adapt_script: redis::Script::new(ADAPT),
            rate,
            burst,
            interval_us,
            tolerance_us: interval_us * (burst - 1),
            script: redis::Script::new(GCRA),
            timeout: DEFAULT_TIMEOUT,
            connection: Mutex::new(None),
            fallback: None,
        })
    }

    /// How long a connect, read or write to Redis may take (default 1 s) before the
    /// server counts as unreachable.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        *lock::get_mut(&mut self.connection) = None;
        self
    }

    /// While Redis cannot be reached, takes tokens from a bucket in this process
    /// holding `1/processes` of the quota (the rate divided exactly, the burst
    /// rounded down but at least 1), and asks Redis again every second. With
    /// `processes` set to the number of processes sharing the key, the quota still
    /// holds in total.
    pub fn with_local_fallback(mut self, processes: u64) -> Self {
        let processes = processes.max(1);
        let window = self
            .rate
            .window()
            .saturating_mul(u32::try_from(processes).unwrap_or(u32::MAX));
        let burst = (self.burst / processes).max(1);
        // A share too slow for a window of a year is one request a year.
        let rate = Rate::new(self.rate.amount(), window)
            .or_else(|_| Rate::new(1, Duration::from_secs(365 * 86_400)))
            .expect("one a year is a valid rate");
        self.fallback = TokenBucket::new(rate, burst).ok().map(|bucket| Fallback {
            bucket,
            share: format!("{rate}, burst {burst}"),
            redis_away_until: Mutex::new(None),
            taken: AtomicU64::new(0),
        });
        self
    }

    /// How many tokens this process took from its local share because Redis could
    /// not be reached: requests that went out under `1/processes` of the quota
    /// rather than the shared one. Always 0 without
    /// [`with_local_fallback`](Self::with_local_fallback).
    ///
    /// ```
    /// use fanout::RedisGcra;
    ///
    /// // `new` does not connect: nothing has been taken yet, from Redis or locally.
    /// let quota = RedisGcra::new("redis://127.0.0.1:6379/", "quota:api-key-42", "10/s".parse()?, 20)?
    ///     .with_local_fallback(4);
    /// assert_eq!(quota.fallback_tokens(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback_tokens(&self) -> u64 {
        self.fallback
            .as_ref()
            .map_or(0, |fallback| fallback.taken.load(Ordering::Relaxed))
    }

    fn open(&self) -> redis::RedisResult<redis::Connection> {
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    fn lock_connection(&self) -> MutexGuard<'_, Option<redis::Connection>> {
        // A connection left by a panicking holder is dropped below on its next error.
        lock::lock(&self.connection)
    }

    /// Microseconds until a token is free, 0 if one was taken.
    fn ask(&self) -> redis::RedisResult<u64> {
        self.run(
            self.script
                .key(&self.key)
                .key(&self.adapted_key)
                .arg(self.interval_us)
                .arg(self.tolerance_us),
        )
    }

    /// Runs one script on the connection, opened if need be.
    fn run(&self, invocation: &redis::ScriptInvocation<'_>) -> redis::RedisResult<u64> {
        let mut connection = self.lock_connection();
        let open = match connection.as_mut() {
            Some(open) => open,
            None => connection.insert(self.open()?),
        };
        let answer = invocation.invoke(open);
        if answer.is_err() {
            // Whatever went wrong, the next question starts on a fresh connection.
            *connection = None;
        }
        answer
    }

    fn error(&self, e: redis::RedisError) -> LimiterError {
        LimiterError::new(format!("redis at {}: {e}", self.url)).with_source(e)
    }
}

impl Limiter for RedisGcra {
    fn try_take(&self) -> Result<TryTake, LimiterError> {
        if let Some(fallback) = &self.fallback {
            let mut away = lock::lock(&fallback.redis_away_until);
            if away.is_some_and(|until| Instant::now() < until) {
                return fallback.try_take();
            }
            match self.ask() {
                Ok(wait) => {
                    if away.take().is_some() {
                        log::warn!(
                            "redis at {} answers again: back to the shared quota",
                            self.url
                        );
                    }
                    return Ok(verdict(wait));
                }
                Err(e) => {
                    if away.is_none() {
                        log::warn!(
                            "redis at {} is unreachable ({e}): using this process's share, {}",
                            self.url,
                            fallback.share
                        );
                    }
                    *away = Some(Instant::now() + RETRY_REDIS_AFTER);
                    return fallback.try_take();
                }
            }
        }
        self.ask().map(verdict).map_err(|e| self.error(e))
    }

    /// Holds every process on the key until the pause ends.
    fn pause(&self, pause: Duration) -> Result<(), LimiterError> {
        self.run(
            self.pause_script
                .key(&self.key)
                .arg(micros(pause))
                .arg(self.tolerance_us),
        )
        .map(drop)
        .map_err(|e| self.error(e))
    }

    /// Keeps every process on the key to `rate` (never above the configured rate),
    /// for ten minutes after the last process set it.
    fn adapt(&self, rate: Option<Rate>) -> Result<(), LimiterError> {
        let interval = rate.map_or(0, |rate| micros(rate.interval()).max(self.interval_us));
        self.run(
            self.adapt_script
                .key(&self.adapted_key)
                .arg(interval)
                .arg(u64::try_from(ADAPTED_FOR.as_millis()).unwrap_or(u64::MAX)),
        )
        .map(drop)
        .map_err(|e| self.error(e))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn rate(&self) -> Option<Rate> {
        Some(self.rate)
    }
}

/// The key of the adapted interval, hashed to the quota key's Redis Cluster slot: the
/// quota key's own hash tag if it has one, or the whole quota key as the tag.
fn adapted_key(key: &str) -> String {
    let tagged = key
        .find('{')
        .and_then(|open| key[open + 1..].find('}').map(|len| len > 0))
        .unwrap_or(false);
    if tagged {
        format!("{key}:adapted")
    } else {
        format!("{{{key}}}:adapted")
    }
}

/// A Redis URL without what may be secret: the user and password, and the query
/// (where a `redis+unix` URL keeps its password).
fn without_secrets(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn verdict(wait_us: u64) -> TryTake {
    match wait_us {
        0 => TryTake::Taken,
        us => TryTake::WaitFor(Duration::from_micros(us)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_keep_no_password() {
        let cases = [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
            ("rediss://user:p@ss@cache/", "rediss://***@cache/"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(without_secrets(url), shown);
        }
    }
}
