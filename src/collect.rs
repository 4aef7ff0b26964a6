//! The collector of a `fetch_all` call: one answer for the whole call, its bodies or
//! its first failure.

use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::bodies::BodiesBuilder;
use crate::cancel::Failure;
use crate::error::FetchError;

/// Gathers the bodies of a `fetch_all` call, and wakes its caller once: when every ID
/// is in, or on the first failure.
///
/// A worker keeps the bodies it fetches in a [`Batch`] of its own and hands them in
/// when it has [`BATCH_BODIES`] of them, or a chunk's worth, or leaves the call: so
/// the workers do not meet on a lock once per ID, and hold little that is not handed
/// in.
pub(crate) struct Collector {
    state: Mutex<Collected>,
    /// Holds one message once the call has an answer.
    done: Sender<()>,
}

struct Collected {
    bodies: BodiesBuilder,
    /// Keys not handed in yet.
    remaining: usize,
    /// The first failure that ends the call.
    error: Option<FetchError>,
}

/// The bodies one worker fetched for a call and has not handed in yet.
pub(crate) type Batch = BodiesBuilder;

/// The most bodies a worker keeps before handing them in.
const BATCH_BODIES: usize = 1024;
/// The most bytes of bodies a worker keeps before handing them in.
const BATCH_BYTES: usize = 1 << 20;

impl Collector {
    /// A collector for `ids` distinct keys, and the channel its answer is signalled
    /// on.
    pub(crate) fn new(ids: usize) -> (Self, Receiver<()>) {
        let (done, answered) = crossbeam_channel::bounded(1);
        let collector = Collector {
            state: Mutex::new(Collected {
                bodies: BodiesBuilder::with_capacity(ids),
                remaining: ids,
                error: None,
            }),
            done,
        };
        (collector, answered)
    }

    /// Records how the key in `slot` (its ID, or its position in the call's text keys)
    /// ended: its body goes into `batch`, a failure straight to the caller.
    pub(crate) fn deliver(
        &self,
        slot: u64,
        outcome: Result<(), FetchError>,
        body: &[u8],
        batch: &mut Batch,
    ) {
        let error = match outcome {
            Ok(()) => {
                batch.push(slot, body);
                if batch.len() >= BATCH_BODIES || batch.total_bytes() >= BATCH_BYTES {
                    self.hand_in(batch);
                }
                return;
            }
            Err(e) => match Failure::of(e) {
                Failure::Stopped => return,
                Failure::Call(e) | Failure::Id(e) => e,
            },
        };
        self.lock().error.get_or_insert(error);
        self.signal();
    }

    /// Takes in the bodies a worker fetched, leaving its batch empty.
    pub(crate) fn hand_in(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.remaining -= batch.len();
        state.bodies.take_from(batch);
        let complete = state.remaining == 0;
        drop(state);
        if complete {
            self.signal();
        }
    }

    fn signal(&self) {
        // Full already if an answer was signalled before.
        let _ = self.done.try_send(());
    }

    /// The call's answer, once it has one: the first failure, or every body (still to
    /// be sorted by key).
    pub(crate) fn answer(&self) -> Option<Result<BodiesBuilder, FetchError>> {
        let mut state = self.lock();
        if let Some(error) = state.error.take() {
            return Some(Err(error));
        }
        (state.remaining == 0).then(|| Ok(std::mem::take(&mut state.bodies)))
    }

    fn lock(&self) -> MutexGuard<'_, Collected> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
