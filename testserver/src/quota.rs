//! `QuotaServer`: a strict local API with a token bucket, which tells clients so as real APIs do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bucket::{Bucket, QuotaHeaders};
use crate::reply::Reply;
use crate::server::{Server, lock};
#[cfg(feature = "full")]
use crate::tls::{TlsServer, TlsServerConfig};

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
    /// The rate-limit headers on every answer.
    pub headers: QuotaHeaders,
    /// How early a request may come and still be accepted: the bucket is judged as if
    /// it had refilled for this much longer (the difference is owed).
    pub tolerance: Duration,
    /// How a 429 writes its `Retry-After`.
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
    /// When the quota judged it.
    pub at: Instant,
    /// The number in the last path segment.
    pub id: Option<u64>,
    /// False for a 429.
    pub accepted: bool,
}

/// A [`Server`] that answers like a rate-limited API: 200 with body `user-ID`, or
/// 429 with `Retry-After`. It records, for each arrival, whether it was accepted.
#[derive(Debug)]
pub struct QuotaServer {
    server: Listening,
    arrivals: Arc<Mutex<Vec<QuotaArrival>>>,
}

/// Plain HTTP or HTTPS.
#[derive(Debug)]
enum Listening {
    Plain(Server),
    #[cfg(feature = "full")]
    Tls(Box<TlsServer>),
}

impl QuotaServer {
    /// Starts a server enforcing `config`'s token bucket, full at start.
    ///
    /// # Panics
    /// If the rate is not positive, the burst below one, or the server cannot start.
    pub fn start(config: QuotaConfig) -> Self {
        let handler = Self::handler(config);
        QuotaServer {
            server: Listening::Plain(Server::start(handler.0)),
            arrivals: handler.1,
        }
    }

    /// The same over HTTPS (see [`TlsServer`]); `template` is then an https URL and
    /// `ca_pem` the CA to trust.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    #[cfg(feature = "full")]
    pub fn start_tls(config: QuotaConfig, tls: TlsServerConfig) -> Self {
        let handler = Self::handler(config);
        QuotaServer {
            server: Listening::Tls(Box::new(TlsServer::start_with(tls, handler.0))),
            arrivals: handler.1,
        }
    }

    /// The handler that judges each request by `config`, and the ledger it keeps.
    #[allow(clippy::type_complexity)] // a pair said once, here
    fn handler(
        config: QuotaConfig,
    ) -> (
        impl Fn(Option<u64>) -> Reply + Send + Sync + 'static,
        Arc<Mutex<Vec<QuotaArrival>>>,
    ) {
        assert!(config.rate > 0.0, "a quota needs a positive rate");
        assert!(config.burst >= 1.0, "a quota needs room for one request");
        let bucket = Mutex::new(Bucket::full(
            config.rate,
            config.burst,
            config.tolerance,
            Instant::now(),
        ));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let ledger = Arc::clone(&arrivals);
        let handler = move |id| {
            let mut bucket = lock(&bucket);
            // Read under the lock, so that times rise in the order of judgement.
            let now = Instant::now();
            let accepted = bucket.admit(now);
            // Recorded under the bucket's lock, so the order is the order of judgement.
            lock(&ledger).push(QuotaArrival {
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
            bucket
                .headers(config.headers)
                .into_iter()
                .fold(reply, |reply, (name, value)| reply.with_header(name, value))
        };
        (handler, arrivals)
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
        let server = Server::start(move |got| {
            let mut ledger = lock(&ledger);
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
            #[cfg(feature = "full")]
            Listening::Tls(server) => server.template(),
        }
    }

    /// The CA to trust for `start_tls`; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        match &self.server {
            Listening::Plain(_) => None,
            #[cfg(feature = "full")]
            Listening::Tls(server) => Some(server.ca_pem()),
        }
    }

    /// The server underneath, for its in-flight count, `next_arrival` and `close_after`.
    pub fn server(&self) -> &Server {
        match &self.server {
            Listening::Plain(server) => server,
            #[cfg(feature = "full")]
            Listening::Tls(server) => server.server(),
        }
    }

    /// Every request so far, in the order the quota judged them.
    pub fn arrivals(&self) -> Vec<QuotaArrival> {
        lock(&self.arrivals).clone()
    }

    /// How many requests came.
    pub fn request_count(&self) -> usize {
        lock(&self.arrivals).len()
    }

    /// Requests answered 200.
    pub fn accepted(&self) -> usize {
        lock(&self.arrivals).iter().filter(|a| a.accepted).count()
    }

    /// Requests answered 429.
    pub fn rejected(&self) -> usize {
        lock(&self.arrivals).iter().filter(|a| !a.accepted).count()
    }

    /// The longest gap between an arrival answered 429 and the arrival right after
    /// it: how long a client held back after being refused. `None` until some 429 is
    /// followed by another request.
    pub fn longest_silence_after_first_429(&self) -> Option<Duration> {
        let arrivals = lock(&self.arrivals);
        arrivals
            .windows(2)
            .filter(|pair| !pair[0].accepted)
            .map(|pair| pair[1].at - pair[0].at)
            .max()
    }

    /// The time from the first 429 to the next arrival of any request. `None` until
    /// a request follows the first 429.
    pub fn gap_after_first_429(&self) -> Option<Duration> {
        let arrivals = lock(&self.arrivals);
        let first = arrivals.iter().position(|a| !a.accepted)?;
        let next = arrivals.get(first + 1)?;
        Some(next.at - arrivals[first].at)
    }

    /// One line per arrival: milliseconds since the first, the ID, and whether it
    /// was accepted; for the message of a failed assertion.
    pub fn arrival_table(&self) -> String {
        let arrivals = lock(&self.arrivals);
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
