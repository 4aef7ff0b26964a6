//! `fetch_iter`: keys fed from the caller's thread, results handed back in completion
//! order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::call::{AbortOnDrop, Call, Claim, Ids, Sink, Streamed};
use crate::cancel::{CancelToken, Failure};
use crate::error::FetchError;
use crate::key::{Key, KeyKind};
use crate::pool::Pool;

/// What a [`FetchIter`] yields for input `I`: the key, of the input's
/// [`Kind`](Key::Kind), and its body.
type Item<I> = Result<(<<I as Iterator>::Item as Key>::Kind, Vec<u8>), FetchError>;

/// The results of [`FanOutClient::fetch_iter`](crate::FanOutClient::fetch_iter), in the
/// order they complete.
///
/// Each item is `Ok((key, body))`, with the key as a `u64` for IDs or a `String` for
/// text keys, or `Err` for a key that failed for good (its [`FetchError::user_id`] or
/// [`FetchError::key`] says which). A key failing does not stop the others. If the
/// caller's [`CancelToken`] is cancelled or its deadline passes, the iterator yields one
/// last `Err` with no key and ends.
///
/// Keys are taken from the input only as the pool has room for them, so an input of
/// millions of keys is never held in memory at once (apart from the set that skips
/// duplicates: 8 to 16 bytes per distinct ID, or a copy of each distinct text key and
/// about 40 bytes).
///
/// Dropping the iterator before the end abandons the call: its remaining IDs are never
/// requested and workers waiting on its behalf are released at once.
pub struct FetchIter<'a, I> {
    ids: I,
    seen: Seen,
    ids_exhausted: bool,
    /// IDs handed to the call whose results have not been read.
    outstanding: usize,
    /// Most IDs outstanding at once: enough to keep every worker busy with one more
    /// waiting, few enough that a cancel leaves little behind.
    window: usize,
    pool: &'a Pool,
    /// The call's queue of keys.
    feed: Sender<Claim>,
    results: Receiver<Streamed>,
    /// Fires at the caller's deadline; never fires without one.
    deadline: Receiver<Instant>,
    call: AbortOnDrop,
    finished: bool,
}

/// The keys a stream has taken, to skip repeats.
enum Seen {
    Ids(HashSet<u64>),
    Text(HashSet<Box<str>>),
}

impl<'a, I> FetchIter<'a, I>
where
    I: Iterator,
    I::Item: Key,
{
    pub(crate) fn new(pool: &'a Pool, cancel: &CancelToken, ids: I) -> Self {
        let (results_tx, results) = crossbeam_channel::unbounded();
        let (feed, fed) = crossbeam_channel::unbounded();
        let deadline = cancel.deadline_receiver();
        // Sized for the input, up to a point: a stream of millions may be cut short.
        let room = ids.size_hint().0.min(1 << 16);
        let seen = if <<I::Item as Key>::Kind as KeyKind>::TEXT {
            Seen::Text(HashSet::with_capacity(room))
        } else {
            Seen::Ids(HashSet::with_capacity(room))
        };
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

    /// Hands keys to the call until the window is full or the input ends.
    fn feed(&mut self) {
        while !self.ids_exhausted && self.outstanding < self.window {
            let Some(key) = self.ids.next() else {
                self.ids_exhausted = true;
                return;
            };
            let claim = match &mut self.seen {
                Seen::Ids(seen) => {
                    let id = key.id();
                    if !seen.insert(id) {
                        continue;
                    }
                    Claim::Id(id)
                }
                Seen::Text(seen) => {
                    let text = key.into_text().into_boxed_str();
                    if seen.contains(&text) {
                        continue;
                    }
                    seen.insert(text.clone());
                    Claim::Text(text)
                }
            };
            // The call, which holds the other end, lives as long as this iterator.
            let _ = self.feed.send(claim);
            self.pool.submit(&self.call.0, 1);
            self.outstanding += 1;
        }
    }
}

impl<I> Iterator for FetchIter<'_, I>
where
    I: Iterator,
    I::Item: Key,
{
    type Item = Item<I>;

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
                    let (claim, result) = result.expect("call keeps its results channel open");
                    if let Some(item) = self.receive(claim, result) {
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
}

impl<I> FetchIter<'_, I>
where
    I: Iterator,
    I::Item: Key,
{
    /// Counts a result in, and returns it unless it only says the key was stopped.
    fn receive(&mut self, claim: Claim, result: Result<Vec<u8>, FetchError>) -> Option<Item<I>> {
        self.outstanding -= 1;
        match result {
            Ok(body) => {
                let key = match claim {
                    Claim::Id(id) => KeyKind::from_parts(id, String::new()),
                    Claim::Text(text) => KeyKind::from_parts(0, text.into_string()),
                    // Positions are claimed by `fetch_all` calls only.
                    Claim::At(at) => KeyKind::from_parts(at as u64, String::new()),
                };
                Some(Ok((key, body)))
            }
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
