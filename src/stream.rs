//! `fetch_iter`: IDs fed from the caller's thread, results handed back in completion
//! order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::call::{AbortOnDrop, Call, Ids, Sink, Streamed};
use crate::cancel::{CancelToken, Failure};
use crate::error::FetchError;
use crate::pool::Pool;

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
/// Dropping the iterator before the end abandons the call: its remaining IDs are never
/// requested and workers waiting on its behalf are released at once.
pub struct FetchIter<'a, I> {
    ids: I,
    seen: HashSet<u64>,
    ids_exhausted: bool,
    /// IDs handed to the call whose results have not been read.
    outstanding: usize,
    /// Most IDs outstanding at once: enough to keep every worker busy with one more
    /// waiting, few enough that a cancel leaves little behind.
    window: usize,
    pool: &'a Pool,
    /// The call's queue of IDs.
    feed: Sender<u64>,
    results: Receiver<Streamed>,
    /// Fires at the caller's deadline; never fires without one.
    deadline: Receiver<Instant>,
    call: AbortOnDrop,
    finished: bool,
}

impl<'a, I: Iterator<Item = u64>> FetchIter<'a, I> {
    pub(crate) fn new(pool: &'a Pool, cancel: &CancelToken, ids: I) -> Self {
        let (results_tx, results) = crossbeam_channel::unbounded();
        let (feed, fed) = crossbeam_channel::unbounded();
        let deadline = cancel.deadline_receiver();
        // Sized for the input, up to a point: a stream of millions may be cut short.
        let seen = HashSet::with_capacity(ids.size_hint().0.min(1 << 16));
        let call = Call::new(cancel, Ids::Fed(fed), Sink::Stream(results_tx));
        FetchIter {
            ids,
            seen,
            ids_exhausted: false,
            outstanding: 0,
            window: pool.size().saturating_mul(2),
            pool,
            feed,
            results,
            deadline,
            call: AbortOnDrop(Arc::new(call)),
            finished: false,
        }
    }

    /// Hands IDs to the call until the window is full or the input ends.
    fn feed(&mut self) {
        while !self.ids_exhausted && self.outstanding < self.window {
            let Some(id) = self.ids.by_ref().find(|id| self.seen.insert(*id)) else {
                self.ids_exhausted = true;
                return;
            };
            // The call, which holds the other end, lives as long as this iterator.
            let _ = self.feed.send(id);
            self.pool.submit(&self.call.0, 1);
            self.outstanding += 1;
        }
    }
}

impl<I: Iterator<Item = u64>> Iterator for FetchIter<'_, I> {
    type Item = Result<(u64, Vec<u8>), FetchError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            self.feed();
            if self.ids_exhausted && self.outstanding == 0 {
                self.finish();
                return None;
            }
            let cancel = &self.call.0.signals.caller;
            if let Err(stop) = cancel.check() {
                self.finish();
                return Some(Err(stop.into_error()));
            }
            crossbeam_channel::select! {
                recv(self.results) -> result => {
                    // The call holds a sender, so the channel cannot disconnect.
                    let (id, result) = result.expect("call keeps its results channel open");
                    if let Some(item) = self.receive(id, result) {
                        return Some(item);
                    }
                }
                recv(cancel.receiver()) -> _ => {}
                recv(self.deadline) -> _ => {}
            }
        }
    }
}

impl<I> FetchIter<'_, I> {
    fn finish(&mut self) {
        self.finished = true;
        self.call.0.abort();
    }

    /// Counts a result in, and returns it unless it only says the ID was stopped.
    fn receive(
        &mut self,
        id: u64,
        result: Result<Vec<u8>, FetchError>,
    ) -> Option<Result<(u64, Vec<u8>), FetchError>> {
        self.outstanding -= 1;
        match result {
            Ok(body) => Some(Ok((id, body))),
            Err(e) => match Failure::of(e) {
                // Stopped by the caller's cancel, which `next` reports once for the
                // call.
                Failure::Stopped => None,
                Failure::Call(e) => {
                    self.finish();
                    Some(Err(e))
                }
                Failure::Id(e) => Some(Err(e)),
            },
        }
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
