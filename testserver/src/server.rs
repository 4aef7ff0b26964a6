//! `Server`: the core every server here is built on. A listener on 127.0.0.1, threads
//! ready before connections come, one thread per connection, one request-head parser,
//! one handler per request; it counts requests in flight, can record arrivals and close
//! connections after a number of answers, and stops when dropped.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use socket2::SockRef;

use crate::http1::{self, Response};

/// One request, as the handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// When the request's head had been read: before the handler ran.
    pub arrived: Instant,
    /// The request target, such as `/users/7`.
    pub target: String,
    /// The request line and headers as they came, up to and with the blank line.
    pub head: String,
    /// The address of the connection's other end.
    pub peer: SocketAddr,
    /// Whether the client keeps the connection open after the answer.
    pub keep_alive: bool,
    stop: &'a Receiver<()>,
}

impl Request<'_> {
    /// The number in the last segment of the path, if it is one.
    pub fn id(&self) -> Option<u64> {
        id_of(&self.target)
    }

    /// Waits until `deadline`, or less if the server stops first; true if it waited
    /// to the end. A server may sleep: it plays a slow API.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        left.is_zero() || self.stop.recv_timeout(left).is_err_and(|e| e.is_timeout())
    }

    /// Disconnects when the server stops: a handler that waits on something else
    /// selects on this too.
    pub fn stopped(&self) -> &Receiver<()> {
        self.stop
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Writes this response.
    Respond(Response),
    /// Writes these bytes as they are: a whole response of the handler's own making.
    Raw(Vec<u8>),
    /// Closes the connection without an answer.
    Close,
}

/// Answers requests; one handler serves every connection of a server, from as many
/// threads at once. A closure `Fn(&Request) -> Answer` is one.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`; it may wait first (see [`Request::wait_until`]).
    fn answer(&self, request: &Request<'_>) -> Answer;

    /// Told of a connection that does not start like an HTTP request (such as a TLS
    /// handshake), with the bytes it sent first; the connection is then closed.
    fn not_http(&self, _peer: SocketAddr, _start: &[u8]) {}
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>) -> Answer + Send + Sync + 'static,
{
    fn answer(&self, request: &Request<'_>) -> Answer {
        self(request)
    }
}

/// One request as the server saw it (kept when the server records arrivals).
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its head had been read.
    pub at: Instant,
    /// The request target.
    pub path: String,
    /// The number in the last path segment.
    pub id: Option<u64>,
}

/// How connections are served: plain HTTP here, TLS first in `tls`, anything at all
/// for `raw_server`.
pub(crate) type Serve = dyn Fn(&Shared, TcpStream) + Send + Sync;

/// What the accept loop and the connection threads share.
pub(crate) struct Shared {
    handler: Box<dyn Handler>,
    /// Whether `arrivals` and `arrival_tx` are kept: tests want them, a long-running
    /// server does not.
    record: bool,
    arrivals: Mutex<Vec<Arrival>>,
    /// Told of each request's ID as it arrives, for tests that wait for one.
    arrival_tx: Sender<Option<u64>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// Responses after which a connection is closed (`connection: close`); 0 for never.
    close_after: AtomicUsize,
    /// Connections accepted so far; also the key of the next one in `open`.
    connections: AtomicUsize,
    /// A handle on every open connection, to shut them down when the server stops.
    open: Mutex<HashMap<usize, TcpStream>>,
    stopping: AtomicBool,
    /// Disconnected when the server stops, cutting every wait short.
    stop_rx: Receiver<()>,
}

/// How a server is set up before it starts; from [`Server::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    name: &'static str,
    record: bool,
    ready_threads: usize,
}

impl Builder {
    /// The name of every thread of the server (15 bytes at most are shown by the
    /// system), so that thread counts can leave them out. Default: `test-server`.
    pub fn thread_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Keeps every arrival, for [`Server::arrivals`] and [`Server::next_arrival`].
    pub fn record_arrivals(mut self) -> Self {
        self.record = true;
        self
    }

    /// How many threads wait for connections from the start (at least one).
    pub(crate) fn ready_threads(mut self, threads: usize) -> Self {
        self.ready_threads = threads;
        self
    }

    /// Starts the server; `handler` answers every request.
    pub fn start(self, handler: impl Handler) -> io::Result<Server> {
        self.start_serving(Box::new(handler), Arc::new(serve_plain))
    }

    /// Starts the server with its connections handed to `serve`.
    pub(crate) fn start_serving(
        self,
        handler: Box<dyn Handler>,
        serve: Arc<Serve>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let (arrival_tx, arrival_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            handler,
            record: self.record,
            arrivals: Mutex::new(Vec::new()),
            arrival_tx,
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            close_after: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            stop_rx,
        });
        let acceptors = Arc::new(Acceptors {
            listener,
            idle: AtomicUsize::new(0),
            name: self.name,
            shared: Arc::clone(&shared),
            serve,
        });
        // Threads wait in `accept` before connections come, so that a new connection
        // is read by the thread that takes it, as soon as a kept-alive one would be:
        // a thread started per connection, or one more hand-over between threads,
        // delays the first requests against the later ones on a busy machine and
        // skews the arrival times that are measured.
        for _ in 0..self.ready_threads.max(1) {
            acceptors.spawn()?;
        }
        Ok(Server {
            addr,
            shared,
            acceptors,
            _stop_tx: stop_tx,
            arrival_rx,
        })
    }
}

/// The listener, and the threads that wait on it: each takes a connection, serves it
/// to its end, and waits again.
struct Acceptors {
    listener: TcpListener,
    /// Threads waiting in `accept`, or about to.
    idle: AtomicUsize,
    name: &'static str,
    shared: Arc<Shared>,
    serve: Arc<Serve>,
}

impl Acceptors {
    /// Starts one more waiting thread.
    fn spawn(self: &Arc<Self>) -> io::Result<()> {
        self.idle.fetch_add(1, Ordering::SeqCst);
        let acceptors = Arc::clone(self);
        let started = thread::Builder::new()
            .name(self.name.into())
            .spawn(move || acceptors.run());
        if started.is_err() {
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
        started.map(drop)
    }

    fn run(self: Arc<Self>) {
        loop {
            let accepted = self.listener.accept();
            // The server stopped: `Drop` shut the listener down, which wakes every
            // thread waiting here.
            if self.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            // A failed accept (the client gave up first) leaves the listener usable.
            let Ok((stream, _)) = accepted else { continue };
            // Busy now: the last waiting thread starts another before it serves, so
            // that a connection is always awaited. Without a thread the connection is
            // served all the same; the next waits in the listener's backlog.
            if self.idle.fetch_sub(1, Ordering::SeqCst) == 1 {
                let _ = self.spawn();
            }
            let key = self.shared.connections.fetch_add(1, Ordering::SeqCst);
            if let Ok(handle) = stream.try_clone() {
                lock(&self.shared.open).insert(key, handle);
            }
            (self.serve)(&self.shared, stream);
            lock(&self.shared.open).remove(&key);
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A running server on 127.0.0.1; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptors: Arc<Acceptors>,
    /// Dropped with the server, which disconnects `Shared::stop_rx`.
    _stop_tx: Sender<()>,
    arrival_rx: Receiver<Option<u64>>,
}

impl Server {
    /// A server with threads named `test-server` that records no arrivals.
    pub fn builder() -> Builder {
        Builder {
            name: SERVER_THREAD,
            record: false,
            ready_threads: READY_THREADS,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        format!("http://{}/users/{{id}}", self.addr)
    }

    /// The requests seen so far, if the server records them (else none).
    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.shared.arrivals).clone()
    }

    /// How many requests were recorded.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.arrivals).len()
    }

    /// The most requests in flight at once: read but not yet answered.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the requests seen so far and the peak in flight.
    pub fn forget_arrivals(&self) {
        lock(&self.shared.arrivals).clear();
        self.shared.peak_in_flight.store(0, Ordering::SeqCst);
    }

    /// How many connections the server accepted.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// From now on, closes each connection after `responses` answers on it, as servers
    /// behind load balancers do; the last answer says `connection: close`.
    pub fn close_after(&self, responses: usize) {
        self.shared.close_after.store(responses, Ordering::SeqCst);
    }

    /// Waits up to `limit` for the next recorded request; returns its ID, if one came.
    pub fn next_arrival(&self, limit: Duration) -> Option<Option<u64>> {
        self.arrival_rx.recv_timeout(limit).ok()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Closes the port at once and wakes every thread waiting in `accept` (Linux
        // ends a listener's waits on shutdown); each sees `stopping` and ends.
        let _ = SockRef::from(&self.acceptors.listener).shutdown(Shutdown::Both);
        // Threads blocked on idle keep-alive connections read EOF and end.
        for (_, connection) in lock(&self.shared.open).drain() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// How many threads wait for connections from the start: more than any test keeps
/// open at once.
const READY_THREADS: usize = 16;

/// The default name of every server thread, so that thread counts can leave them out.
pub const SERVER_THREAD: &str = "test-server";

fn serve_plain(shared: &Shared, stream: TcpStream) {
    // Answers leave at once, not when Nagle's algorithm allows.
    let _ = stream.set_nodelay(true);
    let Ok(peer) = stream.peer_addr() else { return };
    serve_http(shared, stream, peer);
}

/// Answers the requests of one connection, plain or TLS, until it closes, sends
/// something malformed, or the server stops.
pub(crate) fn serve_http(shared: &Shared, stream: impl Read + Write, peer: SocketAddr) {
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    loop {
        // Every request starts with a method in capitals.
        match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(start) if !start[0].is_ascii_uppercase() => {
                shared.handler.not_http(peer, start);
                return;
            }
            Ok(_) => {}
        }
        let Ok(Some(head)) = http1::read_request(&mut reader) else {
            return;
        };
        let arrived = Instant::now();
        let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared
            .peak_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        if shared.record {
            let id = id_of(&head.target);
            lock(&shared.arrivals).push(Arrival {
                at: arrived,
                path: head.target.clone(),
                id,
            });
            let _ = shared.arrival_tx.send(id);
        }
        let request = Request {
            arrived,
            target: head.target,
            head: head.text,
            peer,
            keep_alive: head.keep_alive,
            stop: &shared.stop_rx,
        };
        let answer = shared.handler.answer(&request);
        answered += 1;
        let close_after = shared.close_after.load(Ordering::SeqCst);
        let closing = !request.keep_alive || (close_after > 0 && answered >= close_after);
        // Leave in-flight before the answer is on the wire, so a client that sends its
        // next request at once never sees a stale count here.
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let writer = reader.get_mut();
        let written = match answer {
            Answer::Respond(response) => http1::write_response(writer, &response, closing),
            Answer::Raw(bytes) => writer.write_all(&bytes).and_then(|()| writer.flush()),
            Answer::Close => return,
        };
        if written.is_err() || closing {
            return;
        }
    }
}

/// The number in the last segment of `target`'s path.
fn id_of(target: &str) -> Option<u64> {
    target.rsplit('/').next().and_then(|s| s.parse().ok())
}

/// Locks `mutex`; what it guards stays meaningful even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
