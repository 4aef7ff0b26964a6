//! `RecordingServer`: keeps each request's head and the address it came from, for
//! tests of what reaches the server: headers sent, a proxy in between.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::server::{Answer, Handler, Request, Server, lock};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The address of the connection's other end.
    pub peer: SocketAddr,
    /// The request line and headers, up to the blank line.
    pub head: String,
    /// The first bytes of a connection that did not start with a request (such as
    /// a TLS handshake), in place of a head.
    pub not_http: Option<Vec<u8>>,
}

impl Seen {
    /// The value of header `name` (any case), if the request had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A keep-alive HTTP/1.1 server on 127.0.0.1 answering each request with the bytes
/// `respond(head)` makes (a whole response: status line, headers and body).
#[derive(Debug)]
pub struct RecordingServer {
    server: Server,
    authority: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Records, then answers as told.
struct Recorder<F> {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: F,
}

impl<F: Fn(&str) -> Vec<u8> + Send + Sync + 'static> Handler for Recorder<F> {
    fn answer(&self, request: &Request<'_>) -> Answer {
        lock(&self.seen).push(Seen {
            peer: request.peer,
            head: request.head.clone(),
            not_http: None,
        });
        Answer::Raw((self.respond)(&request.head))
    }

    fn not_http(&self, peer: SocketAddr, start: &[u8]) {
        lock(&self.seen).push(Seen {
            peer,
            head: String::new(),
            not_http: Some(start.to_vec()),
        });
    }
}

impl RecordingServer {
    /// Starts a server answering each request with `respond(head)`.
    ///
    /// # Panics
    /// If the server cannot start.
    pub fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let recorder = Recorder {
            seen: Arc::clone(&seen),
            respond,
        };
        let server = Server::builder()
            .start(recorder)
            .expect("start the recording server");
        let authority = server.addr().to_string();
        RecordingServer {
            server,
            authority,
            seen,
        }
    }

    /// `http://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        self.server.template()
    }

    /// `127.0.0.1:PORT`
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

/// A 200 response with `headers` and `body`, its length given.
pub fn response(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
