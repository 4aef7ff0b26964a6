//! A server that records each request's head and the address it came from, for tests
//! of what reaches the server: headers sent, a proxy in between.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

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
pub struct RecordingServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingServer {
    pub fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = Arc::clone(&seen);
        let base = super::raw_server(move |stream| serve(stream, &record, &respond));
        RecordingServer { base, seen }
    }

    /// `http://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        format!("{}/users/{{id}}", self.base)
    }

    /// `127.0.0.1:PORT`
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, respond: &dyn Fn(&str) -> Vec<u8>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Ok(first) = reader.fill_buf() else { return };
        if first.is_empty() {
            return;
        }
        if !first[0].is_ascii_uppercase() {
            // Not HTTP: keep what came and hang up.
            seen.lock().unwrap().push(Seen {
                peer,
                head: String::new(),
                not_http: Some(first.to_vec()),
            });
            return;
        }
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => head.push_str(&line),
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        seen.lock().unwrap().push(Seen {
            peer,
            head: head.clone(),
            not_http: None,
        });
        if writer.write_all(&respond(&head)).is_err() {
            return;
        }
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
