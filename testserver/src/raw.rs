//! `raw_server`: the listener and threads of [`Server`], with each connection handed
//! whole to the test, for answers no well-behaved server gives: resets, garbage,
//! trickles, lies about length.

use std::io::BufReader;
use std::net::TcpStream;
use std::sync::Arc;

use crate::http1;
use crate::server::{Answer, Request, Serve, Server, Shared};

/// A server that hands each accepted connection to `serve` on a thread of its own.
/// Returns the base URL `http://127.0.0.1:PORT`. The server runs until the test
/// process ends.
///
/// # Panics
/// If the server cannot start.
pub fn raw_server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let serve: Arc<Serve> = Arc::new(move |_: &Shared, stream: TcpStream| serve(stream));
    // One thread waits: nothing here is timed, and the server is never stopped.
    let server = Server::builder()
        .ready_threads(1)
        .start_serving(Box::new(|_: &Request<'_>| Answer::Close), serve)
        .expect("start the raw server");
    let base = format!("http://{}", server.addr());
    // The URL is all the test keeps, so the server is never dropped.
    std::mem::forget(server);
    base
}

/// Reads one request's head (up to and with the blank line) from `stream`.
pub fn read_request_head(stream: &TcpStream) -> Option<String> {
    let head = http1::read_request(&mut BufReader::new(stream)).ok()??;
    Some(head.text)
}
