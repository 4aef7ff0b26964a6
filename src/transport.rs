//! The agent's connector and transports: each transport tells the current attempt
//! which socket it runs on, and socket timeouts are rounded so that they stay put.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, ShutdownHandle,
    Transport, time,
};

use crate::abort::{Socket, attempt_uses};
use crate::lock::lock;
use crate::phase::{self, Phase};
use crate::wire;

/// ureq's default connector, with each transport it makes wrapped in a
/// [`TrackedTransport`]. Both mark each step of the request for its error message
/// (see [`phase`]).
#[derive(Debug, Default)]
pub(crate) struct TrackingConnector {
    inner: DefaultConnector,
}

impl Connector<()> for TrackingConnector {
    type Out = TrackedTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // The socket as it is registered with the agent, straight after the TCP
        // connect: the attempt takes it at once, so that aborting the call also ends
        // a TLS handshake (or a proxy's answer) that hangs.
        let captured: Arc<Mutex<Option<Arc<Socket>>>> = Arc::default();
        let register_with_agent = Arc::clone(&details.register_shutdown);
        let capture = Arc::clone(&captured);
        let tls_next = details.needs_tls();
        phase::reached(Phase::Connect);
        let details = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: Arc::clone(&details.current_time),
            run_connector: Arc::clone(&details.run_connector),
            register_shutdown: Arc::new(move |shutdown: Weak<dyn ShutdownHandle>| {
                // Connected: what fails from here on is the TLS handshake.
                if tls_next {
                    phase::reached(Phase::Tls);
                }
                let socket = Arc::new(Socket::new(shutdown.clone()));
                attempt_uses(&socket);
                *lock(&capture) = Some(socket);
                register_with_agent(shutdown)
            }),
        };
        let inner = self.inner.connect(&details, None)?;
        let socket = lock(&captured).take();
        Ok(inner.map(|inner| TrackedTransport { inner, socket }))
    }
}

/// A transport that tells the current attempt which socket it runs on.
pub(crate) struct TrackedTransport {
    inner: Box<dyn Transport>,
    socket: Option<Arc<Socket>>,
}

impl Transport for TrackedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Every request, on a new or a pooled connection, starts by sending: the
        // connection is ready, so this is where the request takes its token.
        let deadline = wire::before_write()
            .map_err(|refused| ureq::Error::Io(std::io::Error::other(refused)))?;
        if let Some(socket) = &self.socket {
            attempt_uses(socket);
        }
        phase::reached(Phase::Send);
        phase::note(
            bounded(timeout, deadline)
                .and_then(|timeout| self.inner.transmit_output(amount, timeout)),
        )
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        phase::reached(Phase::Head);
        phase::note(
            bounded(timeout, wire::deadline())
                .and_then(|timeout| self.inner.maybe_await_input(timeout)),
        )
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        phase::reached(Phase::Head);
        phase::note(
            bounded(timeout, wire::deadline()).and_then(|timeout| self.inner.await_input(timeout)),
        )
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `timeout`, cut to the attempt's `deadline` (with whether it is the caller's), and
/// rounded (see [`coarse`]) unless the caller's deadline is what bounds it: that one is
/// kept exactly.
fn bounded(
    timeout: NextTimeout,
    deadline: Option<(Instant, bool)>,
) -> Result<NextTimeout, ureq::Error> {
    let Some((deadline, callers)) = deadline else {
        return Ok(coarse(timeout));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ureq::Error::Timeout(ureq::Timeout::PerCall));
    }
    let after = match timeout.after {
        time::Duration::Exact(exact) if exact <= left => {
            return Ok(coarse(timeout));
        }
        _ => left,
    };
    let cut = NextTimeout {
        after: time::Duration::Exact(after),
        reason: ureq::Timeout::PerCall,
        ..timeout
    };
    Ok(if callers { cut } else { coarse(cut) })
}

/// `timeout` rounded up to 6 significant bits of whole milliseconds: 10 s becomes
/// 10.24 s, at most 1/32 longer.
///
/// The TCP transport changes a socket's timeout (a system call) whenever the timeout it
/// is given changes, and with a per-attempt deadline that is every read and write of
/// every request: two system calls per request on a fast API, about 5 % of the CPU
/// time. Rounded, the value stays the same from one request to the next.
fn coarse(timeout: NextTimeout) -> NextTimeout {
    let time::Duration::Exact(exact) = timeout.after else {
        return timeout;
    };
    if exact.is_zero() {
        // Already timed out: the transport reports it.
        return timeout;
    }
    let millis = u64::try_from(exact.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    let dropped_bits = (u64::BITS - millis.leading_zeros()).saturating_sub(6);
    let step = 1u64 << dropped_bits;
    let rounded = millis.div_ceil(step).saturating_mul(step);
    NextTimeout {
        after: time::Duration::Exact(std::time::Duration::from_millis(rounded)),
        ..timeout
    }
}

impl fmt::Debug for TrackedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedTransport")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn coarse_millis(exact: std::time::Duration) -> u128 {
        let timeout = NextTimeout {
            after: time::Duration::Exact(exact),
            reason: ureq::Timeout::PerCall,
            per_read: None,
            per_write: None,
        };
        let time::Duration::Exact(rounded) = coarse(timeout).after else {
            panic!("stays exact");
        };
        rounded.as_millis()
    }

    #[test]
    fn socket_timeouts_round_up_to_a_value_shared_by_nearby_ones() {
        // Two requests a few microseconds apart give the socket the same timeout.
        assert_eq!(coarse_millis(Duration::from_micros(9_999_990)), 10_240);
        assert_eq!(coarse_millis(Duration::from_micros(9_999_700)), 10_240);
        // Never shorter, and at most 1/32 longer.
        for ms in [1, 2, 63, 64, 65, 100, 1_000, 12_345, 86_400_000] {
            let rounded = coarse_millis(Duration::from_millis(ms)) as u64;
            assert!(
                rounded >= ms && rounded <= ms + ms / 32,
                "{ms} ms -> {rounded} ms"
            );
        }
        assert_eq!(coarse_millis(Duration::from_nanos(1)), 1);
        assert_eq!(
            coarse_millis(Duration::ZERO),
            0,
            "a timeout that has passed stays so"
        );
    }
}
