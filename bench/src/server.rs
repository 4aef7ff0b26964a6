//! The downstream the bench measures against: HTTP/1.1 keep-alive on 127.0.0.1, one
//! thread per connection so no request ever queues behind another.
//!
//! The request path chooses the behaviour, so one server serves every figure:
//!
//! - `/lat/MS/users/ID`: answers 200 with a 64-byte body, MS milliseconds after the
//!   request arrived;
//! - `/cancel/users/ID`: ID 0 answers 500 after [`FAIL_AFTER`]; any other ID hangs
//!   until [`Server::release_hung`] (or [`HANG_LIMIT`]), then answers 200.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// How long the failing ID of `/cancel/` takes, so the other IDs are in flight first.
pub const FAIL_AFTER: Duration = Duration::from_millis(20);
/// The longest a hung request waits, should the bench never release it.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);
/// Size of every 200 body.
pub const BODY_BYTES: usize = 64;
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
}

impl Server {
    /// Starts the server on 127.0.0.1, on a port the system chooses.
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            release: Mutex::new(crossbeam_channel::bounded(0)),
            fail_written: Mutex::new(None),
        });
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || accept(&accepting, &listener))?;
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

fn accept(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        // A failed accept (the client gave up first) leaves the listener usable.
        let Ok(stream) = stream else { continue };
        let connection = Arc::clone(shared);
        // Without a thread the connection is dropped: the client sees it closed.
        let _ = thread::Builder::new()
            .name("bench-connection".into())
            .spawn(move || serve_connection(&connection, stream));
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    // Responses leave at once, not when Nagle's algorithm allows.
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Ends when the client closes or sends something this server does not speak.
    while let Ok(Some(target)) = read_request(&mut reader, &mut line) {
        let arrived = Instant::now();
        let (status, body) = answer(shared, &target, arrived);
        if write_response(shared, &mut writer, status, &body).is_err() {
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

/// Waits as the path asks, then gives the status and body to answer with.
fn answer(shared: &Shared, target: &str, arrived: Instant) -> (u16, Vec<u8>) {
    let parts: Vec<&str> = target.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["lat", ms, "users", id] => {
            let (Ok(ms), Ok(id)) = (ms.parse::<u64>(), id.parse::<u64>()) else {
                return (404, Vec::new());
            };
            // The latency is measured from arrival, not from when this thread woke.
            sleep_until(arrived + Duration::from_millis(ms));
            (200, body(id))
        }
        ["cancel", "users", id] => {
            let Ok(id) = id.parse::<u64>() else {
                return (404, Vec::new());
            };
            if id == 0 {
                sleep_until(arrived + FAIL_AFTER);
                (500, b"failed on purpose".to_vec())
            } else {
                let released = lock(&shared.release).1.clone();
                // Ends early when the bench drops the sender: a disconnect, not a value.
                let _ = released.recv_timeout(HANG_LIMIT);
                (200, body(id))
            }
        }
        _ => (404, Vec::new()),
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

fn write_response(
    shared: &Shared,
    writer: &mut TcpStream,
    status: u16,
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    if status == 500 {
        // Stamped before the write, so the figure includes the write itself.
        *lock(&shared.fail_written) = Some(Instant::now());
    }
    // One write, so the response leaves in one segment.
    writer.write_all(&response)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
