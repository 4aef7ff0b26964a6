//! Helpers shared by the command-line tests: the binary, and a small HTTP/1.1 server
//! on 127.0.0.1 with keep-alive and one thread per connection.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// The `fanout` binary, bounded in time so that no test can hang.
pub fn fanout() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_fanout"));
    command
        .timeout(Duration::from_secs(30))
        .env_remove("RUST_LOG");
    command
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer `status` with `body`.
    Respond { status: u16, body: Vec<u8> },
    /// Answer only once `release` disconnects (or the server stops).
    After(Receiver<()>, Vec<u8>),
    /// Never answer (until the server is dropped, or 30 s pass).
    Hang,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply::Respond {
            status: 200,
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            body: Vec::new(),
        }
    }
}

type Handler = dyn Fn(Option<u64>) -> Reply + Send + Sync;

struct State {
    handler: Box<Handler>,
    requests: AtomicUsize,
    ids: Mutex<Vec<u64>>,
    stopping: AtomicBool,
    /// Disconnected when the server is dropped, releasing waiting handlers.
    stop_rx: Receiver<()>,
    /// Told of each request as it arrives, for tests that wait for one.
    arrivals: Sender<Option<u64>>,
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    arrivals: Receiver<Option<u64>>,
    _stop_tx: Sender<()>,
}

impl TestServer {
    /// Starts a server answering each request with `handler(id)`, where `id` is the
    /// number in the last path segment.
    pub fn start(handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let (arrivals_tx, arrivals) = crossbeam_channel::unbounded();
        let state = Arc::new(State {
            handler: Box::new(handler),
            requests: AtomicUsize::new(0),
            ids: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stop_rx,
            arrivals: arrivals_tx,
        });
        let accept_state = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                thread::spawn(move || serve_connection(&state, stream));
            }
        });
        TestServer {
            addr,
            state,
            arrivals,
            _stop_tx: stop_tx,
        }
    }

    /// A server answering `user-ID` for every ID.
    pub fn echo() -> Self {
        Self::start(|id| Reply::ok(body_of(id.unwrap_or(0))))
    }

    /// `http://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        format!("http://{}/users/{{id}}", self.addr)
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for the next request; returns its ID, if one came.
    pub fn next_arrival(&self, limit: Duration) -> Option<Option<u64>> {
        self.arrivals.recv_timeout(limit).ok()
    }
}

/// The body the echo server answers for `id`.
pub fn body_of(id: u64) -> String {
    format!("user-{id}")
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
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
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
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let id = path.rsplit('/').next().and_then(|s| s.parse().ok());
        state.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(id) = id {
            state.ids.lock().unwrap().push(id);
        }
        let _ = state.arrivals.send(id);

        let (status, body) = match (state.handler)(id) {
            Reply::Respond { status, body } => (status, body),
            Reply::After(release, body) => {
                crossbeam_channel::select! {
                    recv(release) -> _ => {}
                    recv(state.stop_rx) -> _ => return,
                }
                (200, body)
            }
            Reply::Hang => {
                let _ = state.stop_rx.recv_timeout(Duration::from_secs(30));
                return;
            }
        };
        let mut answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}
