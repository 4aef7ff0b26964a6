//! The moment a request goes: its rate token is taken at the wire, once the connection
//! is ready (TCP connected, TLS done), and the attempt's timeout runs from there.
//!
//! A token taken before connecting would let a request on a new connection reach the
//! server later than its token, while one on a warm connection arrives at once: the
//! server would see the first wave bunched. So the worker marks its attempt (a
//! thread-local set by [`enter`]), and the transport asks [`before_write`] before the
//! first byte of each request: that is where the worker waits in line for its token.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::Signals;
use crate::rate_limit::{NoToken, RateLimit};
use crate::stats::Counters;
use crate::throttle::Sent;

/// What the current attempt needs at the wire, and what happened there.
struct Wire {
    limit: Arc<RateLimit>,
    counters: Arc<Counters>,
    signals: Signals,
    timeout: Duration,
    state: State,
}

/// How far the attempt got.
enum State {
    /// Nothing written yet.
    Ready,
    /// The token was taken and the request counted as in flight.
    Sent(Went),
    /// No token: the attempt ends with this.
    Refused(Option<NoToken>),
}

/// A request that went: when, after how long a wait, and until when it may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Went {
    pub(crate) waited: Duration,
    pub(crate) sent: Sent,
    /// The token's time plus the attempt's timeout, or the caller's deadline if sooner.
    pub(crate) deadline: Instant,
    /// The caller's deadline is the sooner of the two.
    pub(crate) deadline_bound: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Wire>> = const { RefCell::new(None) };
}

/// Marks this thread's next request as an attempt of the call behind `signals`, until
/// the guard is dropped.
pub(crate) fn enter(
    limit: &Arc<RateLimit>,
    counters: &Arc<Counters>,
    signals: &Signals,
    timeout: Duration,
) -> WireGuard {
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Wire {
            limit: Arc::clone(limit),
            counters: Arc::clone(counters),
            signals: signals.clone(),
            timeout,
            state: State::Ready,
        });
    });
    WireGuard(())
}

/// Ends the attempt marked by [`enter`]; a request that went stops counting as in
/// flight.
pub(crate) struct WireGuard(());

/// How the attempt fared at the wire.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No request was written: connecting failed, or the call stopped before.
    NotSent,
    Sent(Went),
    /// The token could not be taken.
    Refused(NoToken),
}

impl WireGuard {
    /// How the attempt fared, once the request has returned. The refusal, if any, is
    /// handed over once.
    pub(crate) fn outcome(&self) -> Outcome {
        CURRENT.with(
            |current| match current.borrow_mut().as_mut().map(|w| &mut w.state) {
                Some(State::Sent(went)) => Outcome::Sent(*went),
                Some(State::Refused(refused)) => {
                    refused.take().map_or(Outcome::NotSent, Outcome::Refused)
                }
                Some(State::Ready) | None => Outcome::NotSent,
            },
        )
    }
}

impl Drop for WireGuard {
    fn drop(&mut self) {
        if let Some(wire) = CURRENT.with(|current| current.borrow_mut().take()) {
            if let State::Sent(_) = wire.state {
                wire.counters.request_finished();
            }
        }
    }
}

impl fmt::Debug for WireGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireGuard")
    }
}

/// Why the transport did not write: the token was refused (the reason is kept for the
/// worker, see [`WireGuard::outcome`]).
#[derive(Debug)]
pub(crate) struct NoTokenAtTheWire;

impl fmt::Display for NoTokenAtTheWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no rate-limit token for the request")
    }
}

impl std::error::Error for NoTokenAtTheWire {}

/// Called by the transport before it writes. On the attempt's first write, waits in
/// line for the token (cancellably); then returns the attempt's deadline and whether
/// it is the caller's. Outside an attempt, `Ok(None)`.
pub(crate) fn before_write() -> Result<Option<(Instant, bool)>, NoTokenAtTheWire> {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(wire) = current.as_mut() else {
            return Ok(None);
        };
        match &wire.state {
            State::Sent(went) => return Ok(Some((went.deadline, went.deadline_bound))),
            State::Refused(_) => return Err(NoTokenAtTheWire),
            State::Ready => {}
        }
        match wire.limit.take(&wire.signals) {
            Ok((waited, sent)) => {
                wire.counters.request_in_flight();
                let own = sent.at() + wire.timeout;
                let (deadline, deadline_bound) = match wire.signals.deadline() {
                    Some(caller) if caller < own => (caller, true),
                    _ => (own, false),
                };
                wire.state = State::Sent(Went {
                    waited,
                    sent,
                    deadline,
                    deadline_bound,
                });
                Ok(Some((deadline, deadline_bound)))
            }
            Err(refused) => {
                wire.state = State::Refused(Some(refused));
                Err(NoTokenAtTheWire)
            }
        }
    })
}

/// The deadline of the request in flight on this thread, if one went.
pub(crate) fn deadline() -> Option<(Instant, bool)> {
    CURRENT.with(
        |current| match current.borrow().as_ref().map(|w| &w.state) {
            Some(State::Sent(went)) => Some((went.deadline, went.deadline_bound)),
            _ => None,
        },
    )
}
