//! The downstream the bench measures against: HTTP/1.1 keep-alive on 127.0.0.1, plain
//! or over TLS, one thread per connection so no request ever queues behind another.
//!
//! The request path chooses the behaviour, so one server serves every figure:
//!
//! - `/lat/MS/users/ID`: answers 200 with a 64-byte body, MS milliseconds after the
//!   request arrived;
//! - `/cancel/users/ID`: ID 0 answers 500 after [`FAIL_AFTER`]; any other ID hangs
//!   until [`Server::release_hung`] (or [`HANG_LIMIT`]), then answers 200;
//! - `/quota/HEADERS/RUN/users/ID`: a rate-limited API. A token bucket of
//!   [`QUOTA_RATE`] a second and [`QUOTA_BURST`] at once, full when RUN is first seen,
//!   judges each arrival: with a token, 200 after [`QUOTA_LATENCY`]; without, 429 at
//!   once with `Retry-After`. HEADERS is `none`, `ietf` (`RateLimit-Policy` and
//!   `RateLimit`) or `x` (`X-RateLimit-*`), sent on every answer.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use testserver::{
    Answer, Bucket, QuotaHeaders, Request, Response, Server as Loopback, TlsServer, TlsServerConfig,
};

/// How long the failing ID of `/cancel/` takes, so the other IDs are in flight first.
pub const FAIL_AFTER: Duration = Duration::from_millis(20);
/// The longest a hung request waits, should the bench never release it.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);
/// Size of every 200 body.
pub const BODY_BYTES: usize = 64;
/// Tokens a second of the `/quota/` bucket.
pub const QUOTA_RATE: f64 = 10.0;
/// Size of the `/quota/` bucket: the most requests it accepts at once.
pub const QUOTA_BURST: f64 = 5.0;
/// How long a request the `/quota/` bucket accepts takes; a 429 is answered at once.
pub const QUOTA_LATENCY: Duration = Duration::from_millis(50);
/// The name of the server's threads.
const THREAD_NAME: &str = "bench-server";

/// A running server (on the workspace's loopback server); dropping it stops it.
#[derive(Debug)]
pub struct Server {
    listening: Listening,
    shared: Arc<Shared>,
}

/// Plain HTTP or HTTPS.
#[derive(Debug)]
enum Listening {
    Plain(Loopback),
    Tls(Box<TlsServer>),
}

#[derive(Debug)]
struct Shared {
    /// Hung requests wait on the receiver; dropping the sender wakes them all.
    release: Mutex<(Sender<()>, Receiver<()>)>,
    /// When the last 500 of `/cancel/` was about to be written.
    fail_written: Mutex<Option<Instant>>,
    /// The `/quota/` buckets, by RUN: each run starts from a full bucket of its own.
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Server {
    /// Starts the server on 127.0.0.1, on a port the system chooses.
    pub fn start() -> io::Result<Self> {
        let shared = Shared::new();
        let answering = Arc::clone(&shared);
        let server = Loopback::builder()
            .thread_name(THREAD_NAME)
            .start(move |request: &Request<'_>| answering.answer(request))?;
        Ok(Server {
            listening: Listening::Plain(server),
            shared,
        })
    }

    /// The same server over HTTPS, with a CA made for this run (see [`Self::ca_pem`]).
    pub fn start_tls() -> io::Result<Self> {
        let shared = Shared::new();
        let answering = Arc::clone(&shared);
        let config = TlsServerConfig {
            names: vec!["127.0.0.1"],
            ..TlsServerConfig::default()
        };
        let server = Loopback::builder()
            .thread_name(THREAD_NAME)
            .start_tls(config, move |request: &Request<'_>| {
                answering.answer(request)
            })?;
        Ok(Server {
            listening: Listening::Tls(Box::new(server)),
            shared,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        match &self.listening {
            Listening::Plain(server) => server.addr(),
            Listening::Tls(server) => server.server().addr(),
        }
    }

    /// The PEM of the CA a client must trust; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        match &self.listening {
            Listening::Plain(_) => None,
            Listening::Tls(server) => Some(server.ca_pem()),
        }
    }

    /// Wakes every request hung so far.
    pub fn release_hung(&self) {
        *lock(&self.shared.release) = crossbeam_channel::bounded(0);
    }

    /// When the last 500 was about to be written, forgetting it.
    pub fn take_fail_written(&self) -> Option<Instant> {
        lock(&self.shared.fail_written).take()
    }
}

/// Locks `mutex`; what it guards stays meaningful even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            release: Mutex::new(crossbeam_channel::bounded(0)),
            fail_written: Mutex::new(None),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Waits as the path asks, then gives the answer.
    fn answer(&self, request: &Request<'_>) -> Answer {
        let arrived = request.arrived;
        let parts: Vec<&str> = request.target.trim_start_matches('/').split('/').collect();
        let response = match parts.as_slice() {
            ["lat", ms, "users", id] => {
                let (Ok(ms), Ok(id)) = (ms.parse::<u64>(), id.parse::<u64>()) else {
                    return not_found();
                };
                // The latency is measured from arrival, not from when this thread woke.
                request.wait_until(arrived + Duration::from_millis(ms));
                Response::new(200, body(id))
            }
            ["cancel", "users", id] => {
                let Ok(id) = id.parse::<u64>() else {
                    return not_found();
                };
                if id == 0 {
                    request.wait_until(arrived + FAIL_AFTER);
                    // Stamped as the answer leaves for the wire, so the figure includes
                    // the write itself.
                    *lock(&self.fail_written) = Some(Instant::now());
                    Response::new(500, &b"failed on purpose"[..])
                } else {
                    let released = lock(&self.release).1.clone();
                    // Ends early when the bench drops the sender: a disconnect, not a value.
                    let _ = released.recv_timeout(HANG_LIMIT);
                    Response::new(200, body(id))
                }
            }
            ["quota", headers, run, "users", id] => {
                let Ok(id) = id.parse::<u64>() else {
                    return not_found();
                };
                let style = match *headers {
                    "none" => QuotaHeaders::None,
                    "ietf" => QuotaHeaders::Ietf,
                    "x" => QuotaHeaders::XRateLimit,
                    _ => return not_found(),
                };
                let response = {
                    let mut buckets = lock(&self.buckets);
                    // Read under the lock, so the bucket sees arrivals in the order it judges them.
                    let now = Instant::now();
                    let bucket = buckets.entry((*run).to_owned()).or_insert_with(|| {
                        Bucket::full(QUOTA_RATE, QUOTA_BURST, Duration::ZERO, now)
                    });
                    let mut response = if bucket.admit(now) {
                        Response::new(200, body(id))
                    } else {
                        Response::new(429, Vec::new()).with_header("retry-after", bucket.token_in())
                    };
                    response.headers.extend(bucket.headers(style));
                    response
                };
                if response.status == 200 {
                    request.wait_until(arrived + QUOTA_LATENCY);
                }
                response
            }
            _ => return not_found(),
        };
        Answer::Respond(response)
    }
}

fn not_found() -> Answer {
    Answer::Respond(Response::new(404, Vec::new()))
}

/// A body of exactly [`BODY_BYTES`] bytes that names the ID.
fn body(id: u64) -> Vec<u8> {
    format!("{id:0width$}", width = BODY_BYTES).into_bytes()
}
