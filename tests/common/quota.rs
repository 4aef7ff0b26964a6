//! `QuotaServer`: a strict local API with a token bucket, which tells clients so as real APIs do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Reply, TestServer, TlsServer, TlsServerConfig};

/// The rate-limit headers sent on every answer, 200 and 429 alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaHeaders {
    /// None: a client learns of the limit from its 429s only.
    None,
    /// `RateLimit-Policy: "default";q=RATE;w=1` and `RateLimit: "default";r=LEFT;t=FULL_IN`
    /// (the IETF draft's structured fields).
    Ietf,
    /// `X-RateLimit-Limit: BURST`, `X-RateLimit-Remaining: LEFT`, `X-RateLimit-Reset: FULL_IN`
    /// (delta seconds).
    XRateLimit,
}

/// How a 429 writes its `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterForm {
    /// Whole seconds: `Retry-After: 2`.
    Seconds,
    /// An IMF-fixdate: `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`. The date is rounded
    /// up to a whole second, so that a client waiting until it waits long enough.
    HttpDate,
}

/// The limit a `QuotaServer` enforces and how it talks about it. Start from
/// `QuotaConfig::new(rate, burst)` and set the other fields by struct update.
#[derive(Debug, Clone, Copy)]
pub struct QuotaConfig {
    /// Tokens added per second.
    pub rate: f64,
    /// The bucket's size, and what it holds at start.
    pub burst: f64,
    /// How long an accepted request takes to answer; a 429 is answered at once.
    pub latency: Duration,
    pub headers: QuotaHeaders,
    /// How early a request may come and still be accepted: the bucket is judged as if
    /// it had refilled for this much longer (the difference is owed).
    pub tolerance: Duration,
    pub retry_after: RetryAfterForm,
}

impl QuotaConfig {
    /// `rate` per second with bursts of `burst`, no latency, no rate-limit headers, no
    /// tolerance, `Retry-After` in seconds.
    pub fn new(rate: f64, burst: f64) -> Self {
        QuotaConfig {
            rate,
            burst,
            latency: Duration::ZERO,
            headers: QuotaHeaders::None,
            tolerance: Duration::ZERO,
            retry_after: RetryAfterForm::Seconds,
        }
    }
}

/// One request as the quota saw it.
#[derive(Debug, Clone)]
pub struct QuotaArrival {
    pub at: Instant,
    pub id: Option<u64>,
    /// False for a 429.
    pub accepted: bool,
}

/// A `TestServer` that answers like a rate-limited API: 200 with body `user-ID`, or
/// 429 with `Retry-After`. It records, for each arrival, whether it was accepted.
pub struct QuotaServer {
    server: Listening,
    arrivals: Arc<Mutex<Vec<QuotaArrival>>>,
}

/// Plain HTTP or HTTPS.
enum Listening {
    Plain(TestServer),
    Tls(Box<TlsServer>),
}

/// The token bucket, judged on arrivals the way an API gateway judges them.
struct Bucket {
    config: QuotaConfig,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Refills up to `now`, then takes a token if one is there (within the tolerance).
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.config.rate).min(self.config.burst);
        self.last = now;
        if self.tokens + self.config.tolerance.as_secs_f64() * self.config.rate >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left; none while a tolerated early request is owed.
    fn left(&self) -> u64 {
        self.tokens.max(0.0).floor() as u64
    }

    /// Whole seconds, rounded up, until the bucket is full.
    fn full_in(&self) -> u64 {
        ((self.config.burst - self.tokens) / self.config.rate).ceil() as u64
    }

    /// Whole seconds, rounded up, until one token is free: at least 1, since a
    /// `Retry-After: 0` would invite the client straight back.
    fn token_in(&self) -> u64 {
        (((1.0 - self.tokens) / self.config.rate).ceil() as u64).max(1)
    }

    fn headers(&self, mut reply: Reply) -> Reply {
        let config = &self.config;
        match config.headers {
            QuotaHeaders::None => reply,
            QuotaHeaders::Ietf => {
                let quota = (config.rate.floor() as u64).max(1);
                reply = reply.with_header("RateLimit-Policy", format!("\"default\";q={quota};w=1"));
                reply.with_header(
                    "RateLimit",
                    format!("\"default\";r={};t={}", self.left(), self.full_in()),
                )
            }
            QuotaHeaders::XRateLimit => reply
                .with_header("X-RateLimit-Limit", config.burst.floor() as u64)
                .with_header("X-RateLimit-Remaining", self.left())
                .with_header("X-RateLimit-Reset", self.full_in()),
        }
    }
}

impl QuotaServer {
    /// Starts a server enforcing `config`'s token bucket, full at start.
    pub fn start(config: QuotaConfig) -> Self {
        Self::start_on(config, None)
    }

    /// The same over HTTPS (see [`TlsServer`]); `template` is then an https URL and
    /// `ca_pem` the CA to trust.
    pub fn start_tls(config: QuotaConfig, tls: TlsServerConfig) -> Self {
        Self::start_on(config, Some(tls))
    }

    fn start_on(config: QuotaConfig, tls: Option<TlsServerConfig>) -> Self {
        assert!(config.rate > 0.0, "a quota needs a positive rate");
        assert!(config.burst >= 1.0, "a quota needs room for one request");
        let bucket = Mutex::new(Bucket {
            config,
            tokens: config.burst,
            last: Instant::now(),
        });
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let ledger = Arc::clone(&arrivals);
        let handler = move |id| {
            let mut bucket = bucket.lock().unwrap();
            // Read under the lock, so that times rise in the order of judgement.
            let now = Instant::now();
            let accepted = bucket.admit(now);
            // Recorded under the bucket's lock, so the order is the order of judgement.
            ledger.lock().unwrap().push(QuotaArrival {
                at: now,
                id,
                accepted,
            });
            let reply = if accepted {
                Reply::delayed(body_of(id), config.latency)
            } else {
                Reply::status(429).with_header(
                    "Retry-After",
                    retry_after(bucket.token_in(), config.retry_after),
                )
            };
            bucket.headers(reply)
        };
        let server = match tls {
            None => Listening::Plain(TestServer::start(handler)),
            Some(tls) => Listening::Tls(Box::new(TlsServer::start_with(tls, handler))),
        };
        QuotaServer { server, arrivals }
    }

    /// A server with no rate limit that answers the first request for `id` with 429
    /// and `Retry-After: seconds`, and everything else with 200 after `latency`.
    pub fn one_retry_after(id: u64, seconds: u64, latency: Duration) -> Self {
        Self::one_retry_after_as(id, seconds, latency, RetryAfterForm::Seconds)
    }

    /// `one_retry_after`, with `Retry-After` written in `form`.
    pub fn one_retry_after_as(
        id: u64,
        seconds: u64,
        latency: Duration,
        form: RetryAfterForm,
    ) -> Self {
        let refused = AtomicBool::new(false);
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let ledger = Arc::clone(&arrivals);
        let server = TestServer::start(move |got| {
            let mut ledger = ledger.lock().unwrap();
            let now = Instant::now();
            let accepted = got != Some(id) || refused.swap(true, Ordering::SeqCst);
            ledger.push(QuotaArrival {
                at: now,
                id: got,
                accepted,
            });
            if accepted {
                Reply::delayed(body_of(got), latency)
            } else {
                Reply::status(429).with_header("Retry-After", retry_after(seconds, form))
            }
        });
        QuotaServer {
            server: Listening::Plain(server),
            arrivals,
        }
    }

    /// `http://127.0.0.1:PORT/users/{id}`, or `https://` for `start_tls`.
    pub fn template(&self) -> String {
        match &self.server {
            Listening::Plain(server) => server.template(),
            Listening::Tls(server) => server.template(),
        }
    }

    /// The CA to trust for `start_tls`; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        match &self.server {
            Listening::Plain(_) => None,
            Listening::Tls(server) => Some(server.ca_pem()),
        }
    }

    /// The server underneath, for its in-flight count, `next_arrival` and `close_after`.
    pub fn server(&self) -> &TestServer {
        match &self.server {
            Listening::Plain(server) => server,
            Listening::Tls(server) => server.server(),
        }
    }

    pub fn arrivals(&self) -> Vec<QuotaArrival> {
        self.arrivals.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Requests answered 200.
    pub fn accepted(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.accepted)
            .count()
    }

    /// Requests answered 429.
    pub fn rejected(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| !a.accepted)
            .count()
    }

    /// The longest gap between an arrival answered 429 and the arrival right after
    /// it: how long a client held back after being refused. `None` until some 429 is
    /// followed by another request.
    pub fn longest_silence_after_first_429(&self) -> Option<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals
            .windows(2)
            .filter(|pair| !pair[0].accepted)
            .map(|pair| pair[1].at - pair[0].at)
            .max()
    }

    /// The time from the first 429 to the next arrival of any request. `None` until
    /// a request follows the first 429.
    pub fn gap_after_first_429(&self) -> Option<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        let first = arrivals.iter().position(|a| !a.accepted)?;
        let next = arrivals.get(first + 1)?;
        Some(next.at - arrivals[first].at)
    }

    /// One line per arrival: milliseconds since the first, the ID, and whether it
    /// was accepted; for the message of a failed assertion.
    pub fn arrival_table(&self) -> String {
        let arrivals = self.arrivals.lock().unwrap();
        let Some(first) = arrivals.first().map(|a| a.at) else {
            return String::new();
        };
        arrivals
            .iter()
            .map(|a| {
                let ms = (a.at - first).as_secs_f64() * 1e3;
                let verdict = if a.accepted { "ok" } else { "429" };
                format!("{ms:9.2} ms  id {:?}  {verdict}\n", a.id)
            })
            .collect()
    }
}

fn body_of(id: Option<u64>) -> String {
    format!("user-{}", id.unwrap_or(0))
}

/// A `Retry-After` value asking for `seconds`.
fn retry_after(seconds: u64, form: RetryAfterForm) -> String {
    match form {
        RetryAfterForm::Seconds => seconds.to_string(),
        RetryAfterForm::HttpDate => {
            let at = SystemTime::now() + Duration::from_secs(seconds);
            let since = at.duration_since(UNIX_EPOCH).expect("clock after 1970");
            let whole = since.as_secs() + u64::from(since.subsec_nanos() > 0);
            http_date(UNIX_EPOCH + Duration::from_secs(whole))
        }
    }
}

/// `at` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), truncated to the second.
pub fn http_date(at: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), with years starting in March
    // so that the leap day falls last.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}
