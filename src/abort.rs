//! Interrupting one call's requests in flight on the agent every call shares.
//!
//! ureq can shut a socket down from another thread (`ShutdownHandle`), but its
//! `Agent::shutdown` reaches every request of every call. To stop only the requests of
//! one call, each worker marks which call its current attempt belongs to (a
//! thread-local set by [`enter`]); the agent's connector wraps every transport so that,
//! once connected and whenever a request starts on it, the transport's shutdown handle
//! is registered with that call ([`CallSockets`]). Aborting the call shuts down exactly
//! those sockets, and the workers blocked on them are free at once, in a TLS handshake
//! as in a request. The wrapping itself is in `transport.rs`.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ureq::unversioned::transport::ShutdownHandle;

use crate::lock::lock;

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
    /// A connection of the agent that no call has used yet.
    pub(crate) fn new(shutdown: Weak<dyn ShutdownHandle>) -> Self {
        Socket {
            shutdown,
            owner: Mutex::new(0),
        }
    }

    fn shutdown_if_owned_by(&self, call: u64) {
        let owner = lock(&self.owner);
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
        *lock(&socket.owner) = self.id;
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

/// Ties `socket` to the current attempt's call: called once it is connected, and as
/// each request starts on it (a pooled socket changes hands between calls).
pub(crate) fn attempt_uses(socket: &Arc<Socket>) {
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

    #[test]
    fn abort_shuts_down_sockets_in_use_only() {
        let call = Arc::new(CallSockets::default());
        let in_use = Arc::new(Counting::default());
        let released = Arc::new(Counting::default());

        {
            let _attempt = enter(&call);
            attempt_uses(&tracked(&released));
        }
        let _attempt = enter(&call);
        attempt_uses(&tracked(&in_use));
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
        attempt_uses(&tracked(&late));
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn requests_outside_an_attempt_are_not_tracked() {
        let socket = Arc::new(Counting::default());
        attempt_uses(&tracked(&socket));
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
        attempt_uses(&socket);
        let handover = std::thread::spawn({
            let second = Arc::clone(&second);
            let socket = Arc::clone(&socket);
            move || {
                let _attempt = enter(&second);
                attempt_uses(&socket);
            }
        });
        handover.join().unwrap();
        first.abort();
        drop(first_attempt);

        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
    }
}
