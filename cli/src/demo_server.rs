//! The demo's downstream API: a local HTTP server that enforces a token bucket and a
//! concurrency cap strictly, and counts every request that breaks them.
//!
//! One thread per connection, so that every request is seen the moment it arrives:
//! a request beyond the cap is refused, never queued, and arrival times (which the
//! token bucket judges) carry no queueing delay of the server's own.

use std::collections::HashSet;
use std::io::BufReader;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::http1;
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
pub struct DemoServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    /// Dropped to cut short every latency wait at shutdown.
    stop: Option<Sender<()>>,
}

struct Shared {
    config: ServerConfig,
    state: Mutex<State>,
    stopping: AtomicBool,
    /// Disconnects when the server stops.
    stopped: Receiver<()>,
    /// A handle on every connection, to shut them down when the server stops.
    connections: Mutex<Vec<TcpStream>>,
}

#[derive(Debug)]
struct State {
    bucket: Option<Bucket>,
    in_flight: usize,
    seen: Seen,
}

/// The server's own token bucket: `tokens` as of `last`.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: fanout::Rate, burst: u64) -> Self {
        Bucket {
            per_second: rate.as_per_second(),
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
    }

    /// Takes a token for a request arriving `now`, if one is there (within the
    /// tolerance).
    fn admit(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens + TOLERANCE.as_secs_f64() * self.per_second >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
        let failed = |e: std::io::Error| format!("cannot start the demo server: {e}");
        let listener = TcpListener::bind("127.0.0.1:0").map_err(failed)?;
        let addr = listener.local_addr().map_err(failed)?;
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                bucket: config.rate.map(|(rate, burst)| Bucket::full(rate, burst)),
                in_flight: 0,
                seen: Seen::default(),
            }),
            stopping: AtomicBool::new(false),
            stopped,
            connections: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("demo-server".into())
            .spawn(move || accept(&accepting, &listener))
            .map_err(failed)?;
        Ok(DemoServer {
            addr,
            shared,
            acceptor: Some(acceptor),
            stop: Some(stop),
        })
    }

    /// The URL template of the API: `http://127.0.0.1:PORT/users/{id}/widgets`.
    pub fn template(&self) -> String {
        format!("http://{}/users/{{id}}/widgets", self.addr)
    }

    /// What the server saw so far.
    pub fn seen(&self) -> Seen {
        self.shared.lock().seen.clone()
    }
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        drop(self.stop.take());
        // Wake the accept loop so it sees `stopping`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Connection threads blocked on idle keep-alive connections read EOF and end.
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in connections {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Connection threads started before any connection comes, so that the first requests
/// are read as soon as later ones on kept-alive connections: starting a thread takes
/// milliseconds on a busy machine, and the server would see the first wave late.
const READY_THREADS: usize = 16;

fn accept(shared: &Arc<Shared>, listener: &TcpListener) {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<TcpStream>(0);
    for _ in 0..READY_THREADS {
        start_connection_thread(shared, &ready_rx, None);
    }
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        // A failed accept (the client gave up first) leaves the listener usable.
        let Ok(stream) = stream else { continue };
        if let Ok(handle) = stream.try_clone() {
            lock(&shared.connections).push(handle);
        }
        // A waiting thread takes it; if none waits, one more is started.
        if let Err(busy) = ready_tx.try_send(stream) {
            start_connection_thread(shared, &ready_rx, Some(busy.into_inner()));
        }
    }
}

/// Serves `first`, if given, then each connection handed over through `ready`, until
/// the accept loop ends. Without a thread the connection is dropped: the client sees
/// it closed.
fn start_connection_thread(
    shared: &Arc<Shared>,
    ready: &Receiver<TcpStream>,
    first: Option<TcpStream>,
) {
    let (shared, ready) = (Arc::clone(shared), ready.clone());
    let _ = thread::Builder::new()
        .name("demo-connection".into())
        .spawn(move || {
            if let Some(stream) = first {
                serve_connection(&shared, stream);
            }
            for stream in ready {
                serve_connection(&shared, stream);
            }
        });
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // Ends when the client closes, sends garbage, or the server stops.
    while let Ok(Some(request)) = http1::read_request(&mut reader) {
        let arrived = Instant::now();
        let (status, body) = handle(shared, &request.target, arrived);
        let content_type = if status == 200 {
            "application/json"
        } else {
            "text/plain"
        };
        let written = http1::write_response(
            &mut writer,
            status,
            content_type,
            body.as_bytes(),
            request.keep_alive,
        );
        if written.is_err() || !request.keep_alive {
            return;
        }
    }
}

/// Judges one request against the limits, waits the latency, and answers it.
fn handle(shared: &Shared, target: &str, arrived: Instant) -> (u16, String) {
    let id = user_id(target);
    let config = &shared.config;
    let admission = {
        let mut state = shared.lock();
        state.seen.requests += 1;
        if let Some(id) = id {
            state.seen.ids.insert(id);
        }
        let within_rate = state.bucket.as_mut().is_none_or(|b| b.admit(arrived));
        if !within_rate {
            state.seen.rate_violations += 1;
            Admission::TooFast
        } else if state.in_flight >= config.max_in_flight {
            state.seen.concurrency_violations += 1;
            Admission::TooMany
        } else {
            state.in_flight += 1;
            state.seen.peak_in_flight = state.seen.peak_in_flight.max(state.in_flight);
            Admission::Serve
        }
    };
    match admission {
        Admission::TooFast => (429, "too many requests: over the rate limit\n".to_owned()),
        Admission::TooMany => (503, "too many requests in flight\n".to_owned()),
        Admission::Serve => {
            // The latency: a wait that shutdown cuts short.
            let _ = shared.stopped.recv_timeout(config.latency);
            let answer = match id {
                Some(id) if Some(id) == config.fail_id => (500, "failed on purpose\n".into()),
                Some(id) => (200, widgets(id)),
                None => (404, "not found\n".into()),
            };
            // Leave before the answer is on the wire: a client that sends its next
            // request the moment it reads this one must not find the slot taken.
            shared.lock().in_flight -= 1;
            answer
        }
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
    fn bucket_admits_burst_then_rate() {
        let mut bucket = Bucket::full(fanout::Rate::per_second(10).unwrap(), 3);
        let start = bucket.last;
        for _ in 0..3 {
            assert!(bucket.admit(start));
        }
        assert!(!bucket.admit(start));
        // 94 ms refills 0.94 of a token; with the 5 ms tolerance that is not enough.
        assert!(!bucket.admit(start + Duration::from_millis(94)));
        assert!(bucket.admit(start + Duration::from_millis(96)));
    }

    #[test]
    fn bucket_refill_is_capped_at_burst() {
        let mut bucket = Bucket::full(fanout::Rate::per_second(10).unwrap(), 2);
        let start = bucket.last;
        assert!(bucket.admit(start));
        assert!(bucket.admit(start));
        let later = start + Duration::from_secs(60);
        assert!(bucket.admit(later));
        assert!(bucket.admit(later));
        assert!(!bucket.admit(later));
    }

    #[test]
    fn user_id_from_path() {
        assert_eq!(user_id("/users/42/widgets"), Some(42));
        assert_eq!(user_id("/users/x/widgets"), None);
        assert_eq!(user_id("/users/42"), None);
        assert_eq!(user_id("/other/42/widgets"), None);
    }
}
