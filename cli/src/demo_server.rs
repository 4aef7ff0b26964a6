//! The demo's downstream API: a local HTTP server that enforces a token bucket and a
//! concurrency cap strictly, and counts every request that breaks them.
//!
//! It runs on the workspace's loopback server (`testserver`): one thread per
//! connection, so that every request is seen the moment it arrives: a request beyond
//! the cap is refused, never queued, and arrival times (which the token bucket judges)
//! carry no queueing delay of the server's own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use testserver::{Answer, Bucket, Request, Response, Server};

use crate::lock::lock;

/// Arrival jitter the server forgives, as a strict but real API would.
pub const TOLERANCE: Duration = Duration::from_millis(5);

/// How the server behaves.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Requests per second and burst (the bucket starts full); `None`: no rate.
    pub rate: Option<(fanout::Rate, u64)>,
    /// Most requests served at once.
    pub max_in_flight: usize,
    /// How long each request takes to answer.
    pub latency: Duration,
    /// An ID that answers 500.
    pub fail_id: Option<u64>,
}

/// What the server saw since it started or was last reset.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Requests received, refused ones included.
    pub requests: u64,
    /// Most requests being served at once.
    pub peak_in_flight: usize,
    /// Requests refused with 429: beyond the token bucket.
    pub rate_violations: u64,
    /// Requests refused with 503: beyond the concurrency cap.
    pub concurrency_violations: u64,
    /// The distinct IDs requested.
    pub ids: HashSet<u64>,
}

impl Seen {
    /// Every request that broke a limit.
    pub fn violations(&self) -> u64 {
        self.rate_violations + self.concurrency_violations
    }
}

/// The running server; dropping it stops it.
#[derive(Debug)]
pub struct DemoServer {
    server: Server,
    limits: Arc<Limits>,
}

/// The limits, judged on each request as it arrives.
#[derive(Debug)]
struct Limits {
    config: ServerConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    bucket: Option<Bucket>,
    /// Requests admitted and not yet answered: refused ones do not count.
    in_flight: usize,
    seen: Seen,
}

/// The verdict on one request as it arrives.
enum Admission {
    Serve,
    TooFast,
    TooMany,
}

impl DemoServer {
    /// Starts the server on 127.0.0.1, on a port the system chooses.
    pub fn start(config: ServerConfig) -> Result<Self, String> {
        let now = Instant::now();
        let bucket = config
            .rate
            .map(|(rate, burst)| Bucket::full(rate.as_per_second(), burst as f64, TOLERANCE, now));
        let limits = Arc::new(Limits {
            config,
            state: Mutex::new(State {
                bucket,
                in_flight: 0,
                seen: Seen::default(),
            }),
        });
        let judge = Arc::clone(&limits);
        let server = Server::builder()
            .thread_name("demo-server")
            .start(move |request: &Request<'_>| judge.answer(request))
            .map_err(|e| format!("cannot start the demo server: {e}"))?;
        Ok(DemoServer { server, limits })
    }

    /// The URL template of the API: `http://127.0.0.1:PORT/users/{id}/widgets`.
    pub fn template(&self) -> String {
        format!("http://{}/users/{{id}}/widgets", self.server.addr())
    }

    /// What the server saw so far.
    pub fn seen(&self) -> Seen {
        self.limits.lock().seen.clone()
    }
}

impl Limits {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Judges one request against the limits, waits the latency, and answers it.
    fn answer(&self, request: &Request<'_>) -> Answer {
        let id = user_id(&request.target);
        let admission = {
            let mut state = self.lock();
            state.seen.requests += 1;
            if let Some(id) = id {
                state.seen.ids.insert(id);
            }
            let within_rate = state
                .bucket
                .as_mut()
                .is_none_or(|b| b.admit(request.arrived));
            if !within_rate {
                state.seen.rate_violations += 1;
                Admission::TooFast
            } else if state.in_flight >= self.config.max_in_flight {
                state.seen.concurrency_violations += 1;
                Admission::TooMany
            } else {
                state.in_flight += 1;
                state.seen.peak_in_flight = state.seen.peak_in_flight.max(state.in_flight);
                Admission::Serve
            }
        };
        let (status, body) = match admission {
            Admission::TooFast => (429, "too many requests: over the rate limit\n".to_owned()),
            Admission::TooMany => (503, "too many requests in flight\n".to_owned()),
            Admission::Serve => {
                // The latency: a wait that shutdown cuts short.
                request.wait_until(Instant::now() + self.config.latency);
                let answer = match id {
                    Some(id) if Some(id) == self.config.fail_id => {
                        (500, "failed on purpose\n".into())
                    }
                    Some(id) => (200, widgets(id)),
                    None => (404, "not found\n".into()),
                };
                // Leave before the answer is on the wire: a client that sends its next
                // request the moment it reads this one must not find the slot taken.
                self.lock().in_flight -= 1;
                answer
            }
        };
        let content_type = if status == 200 {
            "application/json"
        } else {
            "text/plain"
        };
        Answer::Respond(Response::new(status, body).with_header("content-type", content_type))
    }
}

/// The ID in `/users/ID/widgets`.
fn user_id(url: &str) -> Option<u64> {
    let mut parts = url.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("users"), Some(id), Some("widgets"), None) => id.parse().ok(),
        _ => None,
    }
}

fn widgets(id: u64) -> String {
    format!("{{\"user_id\":{id},\"widgets\":[\"widget-{id}-a\",\"widget-{id}-b\"]}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_from_path() {
        assert_eq!(user_id("/users/42/widgets"), Some(42));
        assert_eq!(user_id("/users/x/widgets"), None);
        assert_eq!(user_id("/users/42"), None);
        assert_eq!(user_id("/other/42/widgets"), None);
    }
}
