//! One call on the client: the state its caller shares with the workers serving it.
//!
//! A worker given a call by the pool (see `pool.rs`) claims the call's keys one after
//! another for as long as it has any, and hands each outcome to the call's sink. So a
//! `fetch_all` of a million IDs crosses between threads twice in all (jobs out, one
//! wake-up back), not twice per ID. Keys of either kind take the same path: a worker
//! claims a position in the call's list, or a key fed to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::abort::CallSockets;
use crate::cancel::{CancelToken, Signals};
use crate::collect::{Batch, Collector};
use crate::error::FetchError;
use crate::key::{KeyRef, TextKeys};

/// How one fetch ended. The body, on success, is in the worker's buffer.
pub(crate) type Outcome = Result<(), FetchError>;

/// A result as a stream hands it to its caller, with the key it was fed.
pub(crate) type Streamed = (Claim, Result<Vec<u8>, FetchError>);

/// The state one call shares with the workers running its IDs.
pub(crate) struct Call {
    pub(crate) signals: Signals,
    /// The sockets its requests are using, shut down when the call is abandoned.
    pub(crate) sockets: Arc<CallSockets>,
    ids: Ids,
    sink: Sink,
}

/// Where a call's keys come from.
pub(crate) enum Ids {
    /// Every key known up front (`fetch_all`): workers claim their positions in order.
    Listed { keys: Listed, next: AtomicUsize },
    /// Handed over one at a time by the caller's thread (`fetch_iter`), each followed
    /// by a job for a worker, so that no key waits without a worker on its way.
    Fed(Receiver<Claim>),
}

/// The distinct keys of a `fetch_all` call, of one kind.
pub(crate) enum Listed {
    Ids(Box<[u64]>),
    Text(Arc<TextKeys>),
}

impl Listed {
    pub(crate) fn len(&self) -> usize {
        match self {
            Listed::Ids(ids) => ids.len(),
            Listed::Text(keys) => keys.len(),
        }
    }
}

/// A key a worker has claimed.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A `u64` ID, listed or fed.
    Id(u64),
    /// The text key at this position of the call's [`Listed::Text`].
    At(usize),
    /// A text key fed to the call.
    Text(Box<str>),
}

impl Claim {
    /// Where a collected body is filed: by ID, or by the text key's position.
    fn slot(&self) -> u64 {
        match *self {
            Claim::Id(id) => id,
            Claim::At(at) => at as u64,
            // Fed keys are streamed, never collected.
            Claim::Text(_) => u64::MAX,
        }
    }
}

impl Ids {
    pub(crate) fn listed(keys: Listed) -> Self {
        Ids::Listed {
            keys,
            next: AtomicUsize::new(0),
        }
    }
}

/// Where a call's outcomes go.
pub(crate) enum Sink {
    /// Into one result, which the caller waits for (`fetch_all`) and shares.
    Collect(Arc<Collector>),
    /// To the caller's thread one by one, in completion order (`fetch_iter`).
    Stream(Sender<Streamed>),
}

impl Call {
    pub(crate) fn new(cancel: &CancelToken, ids: Ids, sink: Sink) -> Self {
        Call {
            signals: Signals::new(cancel.clone()),
            sockets: Arc::default(),
            ids,
            sink,
        }
    }

    /// The next key to fetch, or `None` when there is none or the call has stopped.
    pub(crate) fn next_key(&self) -> Option<Claim> {
        if self.signals.check().is_err() {
            return None;
        }
        match &self.ids {
            Ids::Listed { keys, next } => {
                let at = next.fetch_add(1, Ordering::Relaxed);
                match keys {
                    Listed::Ids(ids) => ids.get(at).copied().map(Claim::Id),
                    Listed::Text(keys) => (at < keys.len()).then_some(Claim::At(at)),
                }
            }
            Ids::Fed(keys) => keys.try_recv().ok(),
        }
    }

    /// The key `claim` stands for.
    pub(crate) fn key<'a>(&'a self, claim: &'a Claim) -> KeyRef<'a> {
        match (claim, &self.ids) {
            (Claim::Id(id), _) => KeyRef::Id(*id),
            (Claim::Text(text), _) => KeyRef::Text(text),
            (
                Claim::At(at),
                Ids::Listed {
                    keys: Listed::Text(keys),
                    ..
                },
            ) => KeyRef::Text(keys.get(*at)),
            // Positions are claimed from listed text keys only.
            (Claim::At(_), _) => KeyRef::Text(""),
        }
    }

    /// Stops the call: no more of its IDs are taken, its waits end, and its requests in
    /// flight are interrupted at the socket.
    pub(crate) fn abort(&self) {
        self.signals.abort.cancel();
        self.sockets.abort();
    }

    /// A worker's time serving this call, from taking its job until it moves on.
    pub(crate) fn serving(&self) -> Serving<'_> {
        let sink = match &self.sink {
            Sink::Collect(collector) => ServingSink::Collect {
                collector,
                batch: Batch::default(),
            },
            Sink::Stream(results) => ServingSink::Stream(results),
        };
        Serving { call: self, sink }
    }
}

/// One worker serving a call, from taking its job until it moves on. It keeps what the
/// call's sink lets a worker keep between IDs, and hands it in when dropped.
pub(crate) struct Serving<'a> {
    call: &'a Call,
    sink: ServingSink<'a>,
}

enum ServingSink<'a> {
    /// The bodies this worker fetched and has not handed in yet.
    Collect {
        collector: &'a Collector,
        batch: Batch,
    },
    Stream(&'a Sender<Streamed>),
}

impl Serving<'_> {
    /// Called by the worker when a key ends, however it ends. `body` holds the body on
    /// success; it may be taken, or left for the worker to reuse.
    #[inline]
    pub(crate) fn deliver(&mut self, claim: Claim, outcome: Outcome, body: &mut Vec<u8>) {
        match &mut self.sink {
            ServingSink::Collect { collector, batch } => {
                let failed = outcome.as_ref().is_err_and(|e| !e.is_cancellation());
                if failed {
                    // Fail fast: the other workers stop taking this call's IDs and
                    // tokens now, before the caller even wakes.
                    self.call.signals.abort.cancel();
                }
                collector.deliver(claim.slot(), outcome, body, batch);
                if failed {
                    // After the caller is told: each shutdown wakes a worker, and on a
                    // busy machine those could keep the caller waiting.
                    self.call.sockets.abort();
                }
            }
            ServingSink::Stream(results) => {
                let result = outcome.map(|()| std::mem::take(body));
                // The caller may be gone already (it dropped the iterator).
                let _ = results.send((claim, result));
            }
        }
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        if let ServingSink::Collect { collector, batch } = &mut self.sink {
            collector.hand_in(batch);
        }
    }
}

/// Aborts the call when the caller's side of it ends, however it ends.
pub(crate) struct AbortOnDrop(pub(crate) Arc<Call>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
