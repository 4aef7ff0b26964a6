//! One call on the client: the state its caller shares with the workers serving it.
//!
//! A worker given a call by the pool (see `pool.rs`) takes the call's IDs one after
//! another for as long as it has any, and hands each outcome to the call's sink. So a
//! `fetch_all` of a million IDs crosses between threads twice in all (jobs out, one
//! wake-up back), not twice per ID.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::abort::CallSockets;
use crate::cancel::{CancelToken, Signals};
use crate::collect::{Batch, Collector};
use crate::error::FetchError;

/// How one fetch ended. The body, on success, is in the worker's buffer.
pub(crate) type Outcome = Result<(), FetchError>;

/// A result as a stream hands it to its caller.
pub(crate) type Streamed = (u64, Result<Vec<u8>, FetchError>);

/// The state one call shares with the workers running its IDs.
pub(crate) struct Call {
    pub(crate) signals: Signals,
    /// The sockets its requests are using, shut down when the call is abandoned.
    pub(crate) sockets: Arc<CallSockets>,
    ids: Ids,
    sink: Sink,
}

/// Where a call's IDs come from.
pub(crate) enum Ids {
    /// Every ID known up front (`fetch_all`): workers claim them in order.
    Listed { ids: Box<[u64]>, next: AtomicUsize },
    /// Handed over one at a time by the caller's thread (`fetch_iter`), each followed
    /// by a job for a worker, so that no ID waits without a worker on its way.
    Fed(Receiver<u64>),
}

impl Ids {
    pub(crate) fn listed(ids: Box<[u64]>) -> Self {
        Ids::Listed {
            ids,
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

    /// The next ID to fetch, or `None` when there is none or the call has stopped.
    pub(crate) fn next_id(&self) -> Option<u64> {
        if self.signals.check().is_err() {
            return None;
        }
        match &self.ids {
            Ids::Listed { ids, next } => ids.get(next.fetch_add(1, Ordering::Relaxed)).copied(),
            Ids::Fed(ids) => ids.try_recv().ok(),
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
    /// Called by the worker when an ID ends, however it ends. `body` holds the body on
    /// success; it may be taken, or left for the worker to reuse.
    pub(crate) fn deliver(&mut self, id: u64, outcome: Outcome, body: &mut Vec<u8>) {
        match &mut self.sink {
            ServingSink::Collect { collector, batch } => {
                let failed = outcome.as_ref().is_err_and(|e| !e.is_cancellation());
                if failed {
                    // Fail fast: the other workers stop taking this call's IDs and
                    // tokens now, before the caller even wakes.
                    self.call.signals.abort.cancel();
                }
                collector.deliver(id, outcome, body, batch);
                if failed {
                    // After the caller is told: each shutdown wakes a worker, and on a
                    // busy machine those could keep the caller waiting.
                    self.call.sockets.abort();
                }
            }
            ServingSink::Stream(results) => {
                let result = outcome.map(|()| std::mem::take(body));
                // The caller may be gone already (it dropped the iterator).
                let _ = results.send((id, result));
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
