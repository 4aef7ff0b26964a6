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
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

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
/// Longest request head line accepted.
const MAX_LINE: u64 = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;

/// A running server. Its threads live as long as the process.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Hung requests wait on the receiver; dropping the sender wakes them all.
    release: Mutex<(Sender<()>, Receiver<()>)>,
    /// When the last 500 of `/cancel/` started to be written.
    fail_written: Mutex<Option<Instant>>,
    /// The `/quota/` buckets, by RUN: each run starts from a full bucket of its own.
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// What to answer: status, headers beyond `content-length`, body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

/// A token bucket judged on arrivals, as an API gateway judges them.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(now: Instant) -> Self {
        Bucket {
            tokens: QUOTA_BURST,
            last: now,
        }
    }

    /// Refills up to `now`, then takes a token if there is one.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * QUOTA_RATE).min(QUOTA_BURST);
        self.last = now;
        let accepted = self.tokens >= 1.0;
        if accepted {
            self.tokens -= 1.0;
        }
        accepted
    }

    /// Whole tokens left.
    fn left(&self) -> u64 {
        self.tokens.floor() as u64
    }

    /// Whole seconds, rounded up, until the bucket is full.
    fn full_in(&self) -> u64 {
        ((QUOTA_BURST - self.tokens) / QUOTA_RATE).ceil() as u64
    }

    /// Whole seconds, rounded up, until the next token: at least 1, since
    /// `Retry-After: 0` would invite the client straight back.
    fn token_in(&self) -> u64 {
        (((1.0 - self.tokens) / QUOTA_RATE).ceil() as u64).max(1)
    }
}

impl Server {
    /// Starts the server on 127.0.0.1, on a port the system chooses.
    pub fn start() -> io::Result<Self> {
        Self::start_with(None)
    }

    /// The same server over HTTPS, with `tls`.
    pub fn start_tls(tls: Arc<ServerConfig>) -> io::Result<Self> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<Arc<ServerConfig>>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            release: Mutex::new(crossbeam_channel::bounded(0)),
            fail_written: Mutex::new(None),
            buckets: Mutex::new(HashMap::new()),
        });
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || accept(&accepting, &listener, tls.as_ref()))?;
        Ok(Server { addr, shared })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wakes every request hung so far.
    pub fn release_hung(&self) {
        *lock(&self.shared.release) = crossbeam_channel::bounded(0);
    }

    /// When the last 500 started to be written, forgetting it.
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

fn accept(shared: &Arc<Shared>, listener: &TcpListener, tls: Option<&Arc<ServerConfig>>) {
    for stream in listener.incoming() {
        // A failed accept (the client gave up first) leaves the listener usable.
        let Ok(stream) = stream else { continue };
        // Responses leave at once, not when Nagle's algorithm allows.
        let _ = stream.set_nodelay(true);
        let connection = Arc::clone(shared);
        let tls = tls.map(Arc::clone);
        // Without a thread the connection is dropped: the client sees it closed.
        let _ = thread::Builder::new()
            .name("bench-connection".into())
            .spawn(move || match tls {
                None => serve_connection(&connection, stream),
                Some(tls) => {
                    if let Ok(conn) = ServerConnection::new(tls) {
                        serve_connection(&connection, StreamOwned::new(conn, stream));
                    }
                }
            });
    }
}

fn serve_connection(shared: &Shared, stream: impl Read + Write) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Ends when the client closes or sends something this server does not speak.
    while let Ok(Some(target)) = read_request(&mut reader, &mut line) {
        let arrived = Instant::now();
        let reply = answer(shared, &target, arrived);
        // Requests come one at a time: nothing is buffered behind this one.
        if write_response(shared, reader.get_mut(), &reply).is_err() {
            return;
        }
    }
}

/// Reads one request head and returns its target; `None` when the client closed the
/// connection between requests. Request bodies are not expected (GET only).
fn read_request(reader: &mut impl BufRead, line: &mut String) -> io::Result<Option<String>> {
    if !read_line(reader, line)? {
        return Ok(None);
    }
    let target = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| invalid("malformed request line"))?
        .to_owned();
    for _ in 0..MAX_HEADERS {
        if !read_line(reader, line)? {
            return Err(invalid("connection closed in headers"));
        }
        if line.trim_end().is_empty() {
            return Ok(Some(target));
        }
    }
    Err(invalid("too many headers"))
}

/// Reads one line into `line`; false at the end of the stream.
fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<bool> {
    line.clear();
    let read = reader.by_ref().take(MAX_LINE).read_line(line)?;
    Ok(read > 0)
}

/// Waits as the path asks, then gives the answer.
fn answer(shared: &Shared, target: &str, arrived: Instant) -> Reply {
    let parts: Vec<&str> = target.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["lat", ms, "users", id] => {
            let (Ok(ms), Ok(id)) = (ms.parse::<u64>(), id.parse::<u64>()) else {
                return Reply::new(404, Vec::new());
            };
            // The latency is measured from arrival, not from when this thread woke.
            sleep_until(arrived + Duration::from_millis(ms));
            Reply::new(200, body(id))
        }
        ["cancel", "users", id] => {
            let Ok(id) = id.parse::<u64>() else {
                return Reply::new(404, Vec::new());
            };
            if id == 0 {
                sleep_until(arrived + FAIL_AFTER);
                Reply::new(500, b"failed on purpose".to_vec())
            } else {
                let released = lock(&shared.release).1.clone();
                // Ends early when the bench drops the sender: a disconnect, not a value.
                let _ = released.recv_timeout(HANG_LIMIT);
                Reply::new(200, body(id))
            }
        }
        ["quota", headers, run, "users", id] => {
            let Ok(id) = id.parse::<u64>() else {
                return Reply::new(404, Vec::new());
            };
            if !["none", "ietf", "x"].contains(headers) {
                return Reply::new(404, Vec::new());
            }
            let reply = {
                let mut buckets = lock(&shared.buckets);
                // Read under the lock, so the bucket sees arrivals in the order it judges them.
                let now = Instant::now();
                let bucket = buckets
                    .entry((*run).to_owned())
                    .or_insert_with(|| Bucket::full(now));
                let mut reply = if bucket.admit(now) {
                    Reply::new(200, body(id))
                } else {
                    let mut reply = Reply::new(429, Vec::new());
                    reply
                        .headers
                        .push(("retry-after", bucket.token_in().to_string()));
                    reply
                };
                quota_headers(&mut reply, headers, bucket);
                reply
            };
            if reply.status == 200 {
                sleep_until(arrived + QUOTA_LATENCY);
            }
            reply
        }
        _ => Reply::new(404, Vec::new()),
    }
}

/// The rate-limit headers of style `style`, as `bucket` stands after judging.
fn quota_headers(reply: &mut Reply, style: &str, bucket: &Bucket) {
    let (left, full_in) = (bucket.left(), bucket.full_in());
    match style {
        "ietf" => {
            let policy = format!("\"default\";q={};w=1", QUOTA_RATE as u64);
            reply.headers.push(("ratelimit-policy", policy));
            let state = format!("\"default\";r={left};t={full_in}");
            reply.headers.push(("ratelimit", state));
        }
        "x" => {
            let limit = (QUOTA_BURST as u64).to_string();
            reply.headers.push(("x-ratelimit-limit", limit));
            reply
                .headers
                .push(("x-ratelimit-remaining", left.to_string()));
            reply
                .headers
                .push(("x-ratelimit-reset", full_in.to_string()));
        }
        _ => {}
    }
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

/// A body of exactly [`BODY_BYTES`] bytes that names the ID.
fn body(id: u64) -> Vec<u8> {
    format!("{id:0width$}", width = BODY_BYTES).into_bytes()
}

fn write_response(shared: &Shared, writer: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let status = reply.status;
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    // Sized for head and body: usually one allocation per response.
    let mut head = String::with_capacity(64 + reply.body.len());
    // Writing to a String cannot fail.
    let _ = write!(head, "HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in &reply.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "content-length: {}\r\n\r\n", reply.body.len());
    let mut response = head.into_bytes();
    response.extend_from_slice(&reply.body);
    if status == 500 {
        // Stamped before the write, so the figure includes the write itself.
        *lock(&shared.fail_written) = Some(Instant::now());
    }
    // One write, so the response leaves in one segment (one record over TLS).
    writer.write_all(&response).and_then(|()| writer.flush())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
