//! Which part of an HTTP exchange this thread's request is in, so that a failure can
//! say where it happened.
//!
//! ureq's errors do not say: a refused connection and a reset while reading the
//! body are both `Error::Io`, and a timeout names only the budget that ran out (ours
//! is per call, so always `Timeout::PerCall`). The agent's resolver, connector and
//! transport are ours, and ureq runs a request on the caller's thread, so they mark
//! each step as it starts in a thread-local that the request reads when it fails.

use std::cell::{Cell, RefCell};
use std::io;

use ureq::http::Uri;

/// A step of one request, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Before the host is looked up: checking the URL, adding headers.
    Start,
    /// Looking up the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake, on a connection that is open.
    Tls,
    /// Writing the request.
    Send,
    /// Reading the status line and headers.
    Head,
    /// Reading the body.
    Body,
}

thread_local! {
    static CURRENT: Cell<Phase> = const { Cell::new(Phase::Start) };
    /// Why the last lookup failed: the resolver turns it into `HostNotFound`, which
    /// does not say.
    static LOOKUP_ERROR: RefCell<Option<io::Error>> = const { RefCell::new(None) };
    /// The kind of the last I/O error the transport returned: ureq reads a reset
    /// during the body as the end of input, then reports only "peer disconnected".
    static IO_ERROR: Cell<Option<io::ErrorKind>> = const { Cell::new(None) };
}

/// Marks the start of a new request on this thread.
pub(crate) fn start() {
    CURRENT.with(|c| c.set(Phase::Start));
    LOOKUP_ERROR.with(|e| e.borrow_mut().take());
    IO_ERROR.with(|e| e.set(None));
}

/// Moves this thread's request on to `phase`, never back: the transport reads while
/// the body is read too, and that is still the body.
pub(crate) fn reached(phase: Phase) {
    CURRENT.with(|c| {
        if c.get() < phase {
            c.set(phase);
        }
    });
}

/// The step this thread's request is in, or failed in.
pub(crate) fn current() -> Phase {
    CURRENT.with(Cell::get)
}

/// Notes the kind of I/O error in a transport's `result`, if any, and hands it on.
pub(crate) fn note<T>(result: Result<T, ureq::Error>) -> Result<T, ureq::Error> {
    if let Err(ureq::Error::Io(e)) = &result {
        let kind = e.kind();
        IO_ERROR.with(|e| e.set(Some(kind)));
    }
    result
}

/// The kind of the last I/O error the transport returned in this request.
pub(crate) fn transport_error() -> Option<io::ErrorKind> {
    IO_ERROR.with(Cell::get)
}

/// Keeps why the lookup failed, for the message.
pub(crate) fn lookup_failed(error: io::Error) {
    LOOKUP_ERROR.with(|e| *e.borrow_mut() = Some(error));
}

/// Why the last lookup on this thread failed, if the resolver said.
pub(crate) fn take_lookup_error() -> Option<io::Error> {
    LOOKUP_ERROR.with(|e| e.borrow_mut().take())
}

impl Phase {
    /// This phase as the subject of a failure in a request to `url`:
    /// `connect 127.0.0.1:1` (the message goes on with `: why`).
    pub(crate) fn subject(self, url: &str) -> String {
        match self {
            Phase::Start => "preparing the request".to_owned(),
            Phase::Resolve => format!("resolve {}", host(url)),
            Phase::Connect => format!("connect {}", host_port(url)),
            Phase::Tls => "TLS".to_owned(),
            _ => self.activity(url),
        }
    }

    /// What a request to `url` was doing in this phase, to say where time ran out:
    /// `connecting to 127.0.0.1:1`.
    pub(crate) fn activity(self, url: &str) -> String {
        match self {
            Phase::Start => "preparing the request".to_owned(),
            Phase::Resolve => format!("resolving {}", host(url)),
            Phase::Connect => format!("connecting to {}", host_port(url)),
            Phase::Tls => format!("in the TLS handshake with {}", host_port(url)),
            Phase::Send => "sending the request".to_owned(),
            Phase::Head => "reading the response head".to_owned(),
            Phase::Body => "reading the body".to_owned(),
        }
    }
}

/// The host of a URL, and nothing else of it: no credentials, path or query.
fn host(url: &str) -> String {
    match url.parse::<Uri>().ok().as_ref().and_then(Uri::host) {
        Some(host) => host.to_owned(),
        None => "the host".to_owned(),
    }
}

/// `host:port` of a URL, the port filled in from the scheme when the URL has none.
fn host_port(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "the host".to_owned();
    };
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    });
    match (uri.host(), port) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "the host".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_never_goes_back() {
        start();
        reached(Phase::Send);
        reached(Phase::Head);
        reached(Phase::Send);
        assert_eq!(current(), Phase::Head);
        start();
        assert_eq!(current(), Phase::Start);
    }

    #[test]
    fn messages_name_the_host_and_port_but_nothing_else_of_the_url() {
        let url = "https://user:secret@api.test/v1/users/7?key=hunter2";
        assert_eq!(Phase::Connect.subject(url), "connect api.test:443");
        assert_eq!(Phase::Connect.activity(url), "connecting to api.test:443");
        assert_eq!(Phase::Resolve.subject(url), "resolve api.test");
        let v6 = "http://[::1]:8080/x?y=z";
        assert_eq!(Phase::Connect.subject(v6), "connect [::1]:8080");
        assert_eq!(
            Phase::Tls.activity(v6),
            "in the TLS handshake with [::1]:8080"
        );
    }
}
