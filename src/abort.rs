//! Interrupting one call's requests in flight on the agent every call shares.
//!
//! ureq can shut a socket down from another thread (`ShutdownHandle`), but its
//! `Agent::shutdown` reaches every request of every call. To stop only the requests of
//! one call, each worker marks which call its current attempt belongs to (a
//! thread-local set by [`enter`]); the agent's connector wraps every transport so that,
//! when a request starts on it, the transport's shutdown handle is registered with that
//! call ([`CallSockets`]). Aborting the call shuts down exactly those sockets, and the
//! workers blocked on them are free at once.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, ShutdownHandle,
    Transport, time,
};

use crate::phase::{self, Phase};

/// The sockets the requests of one call are using right now.
pub(crate) struct CallSockets {
    /// Tells this call apart in [`Socket::owner`].
    id: u64,
    inner: Mutex<Sockets>,
}

#[derive(Default)]
struct Sockets {
    /// Once set, any socket registered is shut down at once.
    aborted: bool,
    next_key: u64,
    live: Vec<(u64, Arc<Socket>)>,
}

/// One connection of the agent, as the calls see it.
pub(crate) struct Socket {
    shutdown: Weak<dyn ShutdownHandle>,
    /// The call whose request last started on this socket (0: none). A call shuts the
    /// socket down only while it still owns it: a connection back in the pool may be
    /// carrying another call's request before the first call's worker has let go.
    owner: Mutex<u64>,
}

impl Socket {
    fn shutdown_if_owned_by(&self, call: u64) {
        let owner = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock, so no other call can take the socket in between.
        if *owner == call {
            if let Some(socket) = self.shutdown.upgrade() {
                socket.shutdown();
            }
        }
    }
}

impl Default for CallSockets {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        CallSockets {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::default(),
        }
    }
}

impl CallSockets {
    /// Shuts down every socket in use by this call, now and from now on.
    pub(crate) fn abort(&self) {
        let live = {
            let mut sockets = lock(&self.inner);
            sockets.aborted = true;
            std::mem::take(&mut sockets.live)
        };
        // Outside the lock: shutdown is a syscall, and workers register under it.
        for (_, socket) in live {
            socket.shutdown_if_owned_by(self.id);
        }
    }

    fn register(&self, socket: &Arc<Socket>) -> Option<u64> {
        *socket.owner.lock().unwrap_or_else(|p| p.into_inner()) = self.id;
        let mut sockets = lock(&self.inner);
        if sockets.aborted {
            drop(sockets);
            socket.shutdown_if_owned_by(self.id);
            return None;
        }
        let key = sockets.next_key;
        sockets.next_key += 1;
        sockets.live.push((key, Arc::clone(socket)));
        Some(key)
    }

    fn deregister(&self, key: u64) {
        lock(&self.inner).live.retain(|(k, _)| *k != key);
    }
}

impl fmt::Debug for CallSockets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sockets = lock(&self.inner);
        f.debug_struct("CallSockets")
            .field("aborted", &sockets.aborted)
            .field("live", &sockets.live.len())
            .finish()
    }
}

/// The state stays consistent whatever panicked while holding the lock.
fn lock(mutex: &Mutex<Sockets>) -> std::sync::MutexGuard<'_, Sockets> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The attempt the current worker thread is running.
struct Attempt {
    sockets: Arc<CallSockets>,
    /// (key in `sockets`, the socket) for each socket this attempt used.
    registered: Vec<(u64, Arc<Socket>)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Attempt>> = const { RefCell::new(None) };
}

/// Ties the requests this thread makes to `sockets` until the guard is dropped.
pub(crate) fn enter(sockets: &Arc<CallSockets>) -> AttemptGuard {
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Attempt {
            sockets: Arc::clone(sockets),
            registered: Vec::new(),
        });
    });
    AttemptGuard(())
}

/// Ends the tie made by [`enter`]: the call lets go of the sockets it used.
pub(crate) struct AttemptGuard(());

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if let Some(attempt) = CURRENT.with(|current| current.borrow_mut().take()) {
            for (key, _) in attempt.registered {
                attempt.sockets.deregister(key);
            }
        }
    }
}

/// Called as a request starts on `socket`.
fn request_starts_on(socket: &Arc<Socket>) {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(attempt) = current.as_mut() else {
            return;
        };
        if attempt
            .registered
            .iter()
            .any(|(_, known)| Arc::ptr_eq(known, socket))
        {
            return;
        }
        if let Some(key) = attempt.sockets.register(socket) {
            attempt.registered.push((key, Arc::clone(socket)));
        }
    });
}

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
        // Keep a copy of the socket's shutdown handle as it is registered with the
        // agent (straight after the TCP connect, before any TLS).
        let captured: Arc<Mutex<Option<Weak<dyn ShutdownHandle>>>> = Arc::default();
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
            register_shutdown: Arc::new(move |socket: Weak<dyn ShutdownHandle>| {
                // Connected: what fails from here on is the TLS handshake.
                if tls_next {
                    phase::reached(Phase::Tls);
                }
                let mut slot = capture.lock().unwrap_or_else(|p| p.into_inner());
                *slot = Some(socket.clone());
                register_with_agent(socket)
            }),
        };
        let inner = self.inner.connect(&details, None)?;
        let socket = captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|shutdown| {
                Arc::new(Socket {
                    shutdown,
                    owner: Mutex::new(0),
                })
            });
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
        // Every request, on a new or a pooled connection, starts by sending.
        if let Some(socket) = &self.socket {
            request_starts_on(socket);
        }
        phase::reached(Phase::Send);
        phase::note(self.inner.transmit_output(amount, coarse(timeout)))
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        phase::reached(Phase::Head);
        phase::note(self.inner.maybe_await_input(coarse(timeout)))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        phase::reached(Phase::Head);
        phase::note(self.inner.await_input(coarse(timeout)))
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
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
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl ShutdownHandle for Counting {
        fn shutdown(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn tracked(socket: &Arc<Counting>) -> Arc<Socket> {
        let shutdown: Arc<dyn ShutdownHandle> = socket.clone();
        Arc::new(Socket {
            shutdown: Arc::downgrade(&shutdown),
            owner: Mutex::new(0),
        })
    }

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
        use std::time::Duration;
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

    #[test]
    fn abort_shuts_down_sockets_in_use_only() {
        let call = Arc::new(CallSockets::default());
        let in_use = Arc::new(Counting::default());
        let released = Arc::new(Counting::default());

        {
            let _attempt = enter(&call);
            request_starts_on(&tracked(&released));
        }
        let _attempt = enter(&call);
        request_starts_on(&tracked(&in_use));
        call.abort();

        assert_eq!(in_use.0.load(Ordering::SeqCst), 1);
        assert_eq!(released.0.load(Ordering::SeqCst), 0, "back in the pool");
    }

    #[test]
    fn a_socket_registered_after_the_abort_is_shut_down_at_once() {
        let call = Arc::new(CallSockets::default());
        call.abort();
        let late = Arc::new(Counting::default());
        let _attempt = enter(&call);
        request_starts_on(&tracked(&late));
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn requests_outside_an_attempt_are_not_tracked() {
        let socket = Arc::new(Counting::default());
        request_starts_on(&tracked(&socket));
        assert_eq!(socket.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_socket_another_call_took_over_is_left_alone() {
        let first = Arc::new(CallSockets::default());
        let second = Arc::new(CallSockets::default());
        let counting = Arc::new(Counting::default());
        let socket = tracked(&counting);

        // The first call's request ended and its connection went back to the pool,
        // but its worker has not let go yet when the second call's request starts.
        let first_attempt = enter(&first);
        request_starts_on(&socket);
        let handover = std::thread::spawn({
            let second = Arc::clone(&second);
            let socket = Arc::clone(&socket);
            move || {
                let _attempt = enter(&second);
                request_starts_on(&socket);
            }
        });
        handover.join().unwrap();
        first.abort();
        drop(first_attempt);

        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
    }
}
