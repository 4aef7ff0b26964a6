//! One call on the client: feeding its IDs to the pool and handing back results in
//! completion order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::abort::CallSockets;
use crate::cancel::{CancelToken, Signals};
use crate::error::{ErrorKind, FetchError};
use crate::pool::Job;

/// What a worker hands back for one ID.
pub(crate) type Outcome = Result<Vec<u8>, FetchError>;

/// The state one call shares with the workers running its jobs.
pub(crate) struct Call {
    pub(crate) signals: Signals,
    /// The sockets its requests are using, shut down when the call is abandoned.
    pub(crate) sockets: Arc<CallSockets>,
    results: Sender<(u64, Outcome)>,
    /// Stop the whole call on the first ID that fails for good (`fetch_all`), rather
    /// than leave that to the reader of the results (`fetch_iter`).
    fail_fast: bool,
}

impl Call {
    /// Stops the call: its queued jobs are skipped, its waits end, and its requests in
    /// flight are interrupted at the socket.
    pub(crate) fn abort(&self) {
        self.signals.abort.cancel();
        self.sockets.abort();
    }

    /// Called by a worker when a job ends, however it ends.
    pub(crate) fn deliver(&self, id: u64, outcome: Outcome) {
        if self.fail_fast && outcome.as_ref().is_err_and(|e| !e.is_cancellation()) {
            // Before the result is sent: the other workers stop taking this call's
            // tokens and requests even before the caller wakes.
            self.abort();
        }
        // The caller may be gone already (it returned on an earlier error).
        let _ = self.results.send((id, outcome));
    }
}

/// The results of [`FanOutClient::fetch_iter`](crate::FanOutClient::fetch_iter), in the
/// order they complete.
///
/// Each item is `Ok((id, body))`, or `Err` for an ID that failed for good (its
/// [`FetchError::user_id`] says which). An ID failing does not stop the others. If the
/// caller's [`CancelToken`] is cancelled or its deadline passes, the iterator yields one
/// last `Err` with no user ID and ends.
///
/// IDs are taken from the input only as the pool has room for them, so an input of
/// millions of IDs is never held in memory at once (apart from the set that skips
/// duplicates: 8 to 16 bytes per distinct ID).
///
/// Dropping the iterator before the end abandons the call: its queued IDs are never
/// requested and workers waiting on its behalf are released at once.
pub struct FetchIter<'a, I> {
    ids: I,
    seen: HashSet<u64>,
    /// An ID taken from `ids` but not yet accepted by the job channel.
    pending: Option<u64>,
    ids_exhausted: bool,
    /// Jobs sent whose results have not been read.
    outstanding: usize,
    /// Most jobs outstanding at once: enough to keep every worker busy with one more
    /// queued, few enough that a cancel leaves little behind.
    window: usize,
    jobs: &'a Sender<Job>,
    results: Receiver<(u64, Outcome)>,
    /// Fires at the caller's deadline; never fires without one.
    deadline: Receiver<Instant>,
    call: Arc<Call>,
    finished: bool,
}

impl<'a, I: Iterator<Item = u64>> FetchIter<'a, I> {
    pub(crate) fn new(
        jobs: &'a Sender<Job>,
        pool_size: usize,
        cancel: &CancelToken,
        ids: I,
        fail_fast: bool,
    ) -> Self {
        let (results_tx, results) = crossbeam_channel::unbounded();
        let deadline = match cancel.deadline() {
            Some(at) => crossbeam_channel::at(at),
            None => crossbeam_channel::never(),
        };
        // Sized for the input, up to a point: a stream of millions may be cut short.
        let seen = HashSet::with_capacity(ids.size_hint().0.min(1 << 16));
        FetchIter {
            ids,
            seen,
            pending: None,
            ids_exhausted: false,
            outstanding: 0,
            window: pool_size.saturating_mul(2),
            jobs,
            results,
            deadline,
            call: Arc::new(Call {
                signals: Signals::new(cancel.clone()),
                sockets: Arc::default(),
                results: results_tx,
                fail_fast,
            }),
            finished: false,
        }
    }

    /// The next distinct ID from the input, if any.
    fn next_new_id(&mut self) -> Option<u64> {
        self.ids.by_ref().find(|id| self.seen.insert(*id))
    }
}

impl<I: Iterator<Item = u64>> Iterator for FetchIter<'_, I> {
    type Item = Result<(u64, Vec<u8>), FetchError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            if self.pending.is_none() && !self.ids_exhausted {
                self.pending = self.next_new_id();
                self.ids_exhausted = self.pending.is_none();
            }
            if self.pending.is_none() && self.outstanding == 0 {
                self.finish();
                return None;
            }
            if let Err(stop) = self.call.signals.caller.check() {
                self.finish();
                return Some(Err(stop.into_error()));
            }

            let cancelled = &self.call.signals.caller;
            let sendable = self.pending.filter(|_| self.outstanding < self.window);
            if let Some(id) = sendable {
                crossbeam_channel::select! {
                    send(self.jobs, Job { id, call: Arc::clone(&self.call) }) -> sent => {
                        // The pool lives as long as the client this iterator borrows.
                        sent.expect("worker pool outlives its calls");
                        self.pending = None;
                        self.outstanding += 1;
                    }
                    recv(self.results) -> result => if let Some(item) = self.receive(result) {
                        return Some(item);
                    },
                    recv(cancelled.receiver()) -> _ => {}
                    recv(self.deadline) -> _ => {}
                }
            } else {
                crossbeam_channel::select! {
                    recv(self.results) -> result => if let Some(item) = self.receive(result) {
                        return Some(item);
                    },
                    recv(cancelled.receiver()) -> _ => {}
                    recv(self.deadline) -> _ => {}
                }
            }
        }
    }
}

impl<I> FetchIter<'_, I> {
    fn finish(&mut self) {
        self.finished = true;
        self.call.abort();
    }

    /// Counts a result in, and returns it unless it only says the job was stopped.
    fn receive(
        &mut self,
        result: Result<(u64, Outcome), crossbeam_channel::RecvError>,
    ) -> Option<Result<(u64, Vec<u8>), FetchError>> {
        // `self.call` holds a sender, so the channel cannot disconnect.
        let (id, outcome) = result.expect("call keeps its results channel open");
        self.outstanding -= 1;
        match outcome {
            // A job stopped by the caller's cancel is reported once, for the whole
            // call, by `next`. One stopped by another ID's failure (fail-fast) must
            // not hide that failure, which is on its way.
            Err(e) if e.kind() == ErrorKind::Cancelled => None,
            // The caller's deadline ends the whole call, as a cancel does: the worker
            // that found out first (its wait could not end in time) does not make it
            // that ID's failure.
            Err(e) if e.kind() == ErrorKind::DeadlineExceeded => {
                self.finish();
                Some(Err(
                    FetchError::new(ErrorKind::DeadlineExceeded).with_source(e)
                ))
            }
            outcome => Some(outcome.map(|body| (id, body))),
        }
    }
}

impl<I> Drop for FetchIter<'_, I> {
    fn drop(&mut self) {
        self.call.abort();
    }
}

impl<I> fmt::Debug for FetchIter<'_, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchIter")
            .field("outstanding", &self.outstanding)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}
