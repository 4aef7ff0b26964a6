//! `Reply`: the canned answers of the tests' server, and [`Server::start`], which
//! answers each request by the number in its path.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::http1::Response;
use crate::server::{Answer, Request, Server};

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer `status` with `headers` and `body` after `delay`.
    Respond {
        /// The status code.
        status: u16,
        /// Headers beyond `content-length`.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
        /// How long after the request came.
        delay: Duration,
    },
    /// Never answer (until the server is dropped, or 30 s pass).
    Hang,
    /// Answer 200 with this body once `release` disconnects (or the server stops).
    After(Receiver<()>, Vec<u8>),
}

impl Reply {
    /// 200 with `body`, at once.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply::delayed(body, Duration::ZERO)
    }

    /// `status` with no body, at once.
    pub fn status(status: u16) -> Self {
        Reply::ok(Vec::new()).with_status(status)
    }

    /// 200 with `body`, `delay` after the request came.
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

    /// What the server does with this reply to `request`, once any wait is over.
    pub(crate) fn answer(self, request: &Request<'_>) -> Answer {
        match self {
            Reply::Respond {
                status,
                headers,
                body,
                delay,
            } => {
                if !delay.is_zero() && !request.wait_until(Instant::now() + delay) {
                    return Answer::Close;
                }
                Answer::Respond(Response {
                    status,
                    headers,
                    body,
                })
            }
            Reply::Hang => {
                let _ = request.stopped().recv_timeout(HANG_LIMIT);
                Answer::Close
            }
            Reply::After(release, body) => {
                crossbeam_channel::select! {
                    recv(release) -> _ => Answer::Respond(Response::new(200, body)),
                    recv(request.stopped()) -> _ => Answer::Close,
                }
            }
        }
    }
}

/// The longest a `Reply::Hang` hangs.
const HANG_LIMIT: Duration = Duration::from_secs(30);

impl Server {
    /// Starts a server answering each request with `handler(id)`, where `id` is the
    /// number in the last path segment; it records every arrival.
    ///
    /// # Panics
    /// If the server cannot start (no port, no thread): a test cannot go on without it.
    pub fn start(handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static) -> Self {
        Server::builder()
            .record_arrivals()
            .start(move |request: &Request<'_>| handler(request.id()).answer(request))
            .expect("start the test server")
    }
}
