//! Helpers shared by the integration tests.
//!
//! `TestServer` is a small HTTP/1.1 server on 127.0.0.1 with keep-alive and one thread
//! per connection. Unlike a mock server it records when each request arrived and how
//! many were in flight, can delay or hang an answer, and answers every request through
//! one handler. mockito serves the tests that only need canned answers. `TlsServer`
//! (in `tls`) is the same server behind TLS. The command-line tests include this file
//! too.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

mod quota;
mod redis_server;
mod tls;
#[allow(unused_imports)] // used by the tests of servers that limit their clients only
pub use quota::{QuotaArrival, QuotaConfig, QuotaHeaders, QuotaServer, RetryAfterForm, http_date};
#[allow(unused_imports)] // used by the shared rate limit's tests only
pub use redis_server::RedisServer;
#[allow(unused_imports)] // used by the TLS tests only
pub use tls::{Issued, TestCa, TlsServer, TlsServerConfig};

mod recording;
mod tinyproxy;
#[allow(unused_imports)] // used by the tests of what reaches the server only
pub use recording::{RecordingServer, Seen, response};
#[allow(unused_imports)] // used by the proxy tests only
pub use tinyproxy::TinyProxy;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer `status` with `headers` and `body` after `delay`.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Never answer (until the server is dropped, or 30 s pass).
    Hang,
    /// Answer 200 with this body once `release` disconnects (or the server stops).
    After(Receiver<()>, Vec<u8>),
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply::delayed(body, Duration::ZERO)
    }

    pub fn status(status: u16) -> Self {
        Reply::ok(Vec::new()).with_status(status)
    }

    pub fn delayed(body: impl Into<Vec<u8>>, delay: Duration) -> Self {
        Reply::Respond {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay,
        }
    }

    /// The same reply with another status.
    pub fn with_status(mut self, new_status: u16) -> Self {
        if let Reply::Respond { status, .. } = &mut self {
            *status = new_status;
        }
        self
    }

    /// The same reply with one more response header (only `Respond` has headers).
    pub fn with_header(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.to_string()));
        }
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub path: String,
    pub id: Option<u64>,
}

type Handler = dyn Fn(Option<u64>) -> Reply + Send + Sync;

struct State {
    handler: Box<Handler>,
    arrivals: Mutex<Vec<Arrival>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    stopping: AtomicBool,
    /// Responses after which a connection is closed (`connection: close`); 0 for never.
    close_after: AtomicUsize,
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// Disconnected when the server is dropped, releasing hanging handlers.
    stop_rx: Receiver<()>,
    /// Told of each request's ID as it arrives, for tests that wait for one.
    arrival_tx: Sender<Option<u64>>,
}

/// How the accept loop serves one connection: plain HTTP, or TLS first (see `tls`).
type Serve = dyn Fn(&State, TcpStream) + Send + Sync;

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    _stop_tx: Sender<()>,
    arrival_rx: Receiver<Option<u64>>,
}

impl TestServer {
    /// Starts a server answering each request with `handler(id)`, where `id` is the
    /// number in the last path segment.
    pub fn start(handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_serving(handler, Arc::new(serve_connection))
    }

    /// Starts a server whose connections are handed to `serve`.
    fn start_serving(
        handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static,
        serve: Arc<Serve>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let (arrival_tx, arrival_rx) = crossbeam_channel::unbounded();
        let state = Arc::new(State {
            handler: Box::new(handler),
            arrivals: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            close_after: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stop_rx,
            arrival_tx,
        });
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<TcpStream>(0);
        // Threads wait for connections before they come, so that a new connection is
        // read as soon as a kept-alive one would be: starting a thread per connection
        // takes milliseconds on a busy machine, which would delay the first requests
        // against the later ones and skew the arrival times the tests measure.
        for _ in 0..READY_THREADS {
            spawn_handler(&state, &serve, &ready_rx, None);
        }
        let accept_state = Arc::clone(&state);
        thread::Builder::new()
            .name(SERVER_THREAD.to_string())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accept_state.connections.fetch_add(1, Ordering::SeqCst);
                    // A waiting thread takes it; if none waits, one more is started.
                    if let Err(e) = ready_tx.try_send(stream) {
                        spawn_handler(&accept_state, &serve, &ready_rx, Some(e.into_inner()));
                    }
                }
            })
            .expect("spawn server thread");
        TestServer {
            addr,
            state,
            _stop_tx: stop_tx,
            arrival_rx,
        }
    }

    /// `http://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        format!("http://{}/users/{{id}}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.arrivals.lock().unwrap().len()
    }

    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the requests seen so far and the peak in flight.
    pub fn forget_arrivals(&self) {
        self.state.arrivals.lock().unwrap().clear();
        self.state.peak_in_flight.store(0, Ordering::SeqCst);
    }

    /// How many connections the server accepted.
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// From now on, closes each connection after `responses` answers on it, as servers
    /// behind load balancers do; the last answer says `connection: close`.
    pub fn close_after(&self, responses: usize) {
        self.state.close_after.store(responses, Ordering::SeqCst);
    }

    /// Waits up to `limit` for the next request; returns its ID, if one came.
    pub fn next_arrival(&self, limit: Duration) -> Option<Option<u64>> {
        self.arrival_rx.recv_timeout(limit).ok()
    }
}

/// How many connection threads wait ready from the start: more than any test keeps
/// open at once.
const READY_THREADS: usize = 16;

/// Starts a connection thread: it serves `first` if given, then each connection handed
/// to it through `ready`, until the accept loop ends.
fn spawn_handler(
    state: &Arc<State>,
    serve: &Arc<Serve>,
    ready: &Receiver<TcpStream>,
    first: Option<TcpStream>,
) {
    let (state, serve, ready) = (Arc::clone(state), Arc::clone(serve), ready.clone());
    thread::Builder::new()
        .name(SERVER_THREAD.to_string())
        .spawn(move || {
            if let Some(stream) = first {
                serve(&state, stream);
            }
            for stream in ready {
                serve(&state, stream);
            }
        })
        .expect("spawn server thread");
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stopping` and exits.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(state: &State, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    serve_http(state, stream);
}

/// Answers the requests of one connection, plain or TLS, until it closes.
fn serve_http(state: &State, stream: impl Read + Write) {
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Headers: read to the blank line. Requests here have no body.
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => {}
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let id = path.rsplit('/').next().and_then(|s| s.parse().ok());

        let now_in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state
            .peak_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        state.arrivals.lock().unwrap().push(Arrival {
            at: Instant::now(),
            path,
            id,
        });

        let _ = state.arrival_tx.send(id);

        let reply = match (state.handler)(id) {
            Reply::After(release, body) => {
                crossbeam_channel::select! {
                    recv(release) -> _ => {}
                    recv(state.stop_rx) -> _ => {
                        state.in_flight.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                }
                Reply::ok(body)
            }
            reply => reply,
        };
        let closing;
        let written = match reply {
            Reply::Respond {
                status,
                headers,
                body,
                delay,
            } => {
                if !delay.is_zero() {
                    // A test server may sleep: it plays a slow API.
                    thread::sleep(delay);
                }
                answered += 1;
                let close_after = state.close_after.load(Ordering::SeqCst);
                closing = close_after > 0 && answered >= close_after;
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                if closing {
                    head.push_str("connection: close\r\n");
                }
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let mut answer = head.into_bytes();
                answer.extend_from_slice(&body);
                // Leave in-flight before the answer is on the wire, so a client that
                // sends its next request at once never sees a stale count here.
                state.in_flight.fetch_sub(1, Ordering::SeqCst);
                let writer = reader.get_mut();
                writer.write_all(&answer).and_then(|()| writer.flush())
            }
            Reply::Hang => {
                let _ = state.stop_rx.recv_timeout(Duration::from_secs(30));
                state.in_flight.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            Reply::After(..) => unreachable!("released above"),
        };
        if written.is_err() || closing {
            return;
        }
    }
}

/// The name of every test server thread, so that thread counts can leave them out.
const SERVER_THREAD: &str = "test-server";

/// The names of this process's threads, from /proc/self/task.
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// The number of threads in this process that are not test server threads.
pub fn thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| !name.starts_with(SERVER_THREAD))
        .count()
}

/// The number of threads started by the library (its workers are named `fanout-...`,
/// and a thread started by one of them inherits its name).
pub fn library_thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("fanout"))
        .count()
}

/// True once no library thread is listed, within 5 s. A joined thread can stay listed
/// in /proc for a moment after `join` returns: the kernel wakes the joiner as the
/// thread exits, before it removes the thread from the process.
pub fn library_threads_gone() -> bool {
    eventually(Duration::from_secs(5), || library_thread_count() == 0)
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Arrival jitter allowed on top of a token bucket's bound: loopback plus scheduling.
pub const ARRIVAL_JITTER: Duration = Duration::from_millis(15);

/// How many more of `times` (sorted) fall inside some window than a bucket of `burst`
/// tokens refilled at `rate` per second allows there (`burst + rate * window`, with
/// [`ARRIVAL_JITTER`] added to the window): at most 0 for a client that keeps to it.
pub fn worst_window_excess(times: &[Instant], rate: f64, burst: f64) -> f64 {
    let mut worst = f64::MIN;
    for i in 0..times.len() {
        for j in i..times.len() {
            let window = times[j].duration_since(times[i]) + ARRIVAL_JITTER;
            let allowed = burst + rate * window.as_secs_f64();
            let seen = (j - i + 1) as f64;
            worst = worst.max(seen - allowed);
        }
    }
    worst
}

/// When `server`'s requests arrived, in order.
pub fn arrival_times(server: &TestServer) -> Vec<Instant> {
    let mut times: Vec<Instant> = server.arrivals().iter().map(|a| a.at).collect();
    times.sort();
    times
}

/// Opens `connections` kept-alive connections from `client` to `server`, then waits
/// until a bucket of `burst` tokens at `per_second` has refilled, and forgets the
/// warm-up's arrivals.
///
/// Timing tests start warm: on a cold start the first requests wait for connection
/// setup (and for this server to start a thread per connection), so they reach the
/// server late and compress the first window, which measures the machine, not the
/// client's pacing.
pub fn warm_up(
    client: &fanout::FanOutClient,
    server: &TestServer,
    connections: u64,
    per_second: u64,
    burst: u64,
) {
    let ids: Vec<u64> = (u64::MAX - connections..u64::MAX).collect();
    client.fetch_all(&ids).expect("warm-up");
    let refill = Duration::from_secs_f64(connections.min(burst) as f64 / per_second as f64);
    thread::sleep(refill + Duration::from_millis(300));
    server.forget_arrivals();
}

/// A server that hands each accepted connection to `serve` on its own thread, for
/// answers no well-behaved server gives: resets, garbage, trickles, lies about length.
/// Returns the base URL `http://127.0.0.1:PORT`. The accept loop ends when the test
/// process does.
pub fn raw_server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    thread::Builder::new()
        .name(SERVER_THREAD.to_string())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let serve = Arc::clone(&serve);
                let _ = thread::Builder::new()
                    .name(SERVER_THREAD.to_string())
                    .spawn(move || serve(stream));
            }
        })
        .expect("spawn server thread");
    format!("http://{addr}")
}

/// Reads one request's head (up to the blank line) from `stream`.
pub fn read_request_head(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}
