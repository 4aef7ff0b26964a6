//! `fetch_all`: one answer for the whole call, its bodies or its first failure.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::bodies::{Bodies, BodiesBuilder};
use crate::call::{AbortOnDrop, Call, Ids, Outcome, Sink};
use crate::cancel::CancelToken;
use crate::error::{ErrorKind, FetchError};
use crate::pool::Ticket;

/// Runs a `fetch_all` call on the pool behind `tickets`, with `workers` workers.
pub(crate) fn fetch_all(
    tickets: &Sender<Ticket>,
    workers: usize,
    cancel: &CancelToken,
    ids: &[u64],
) -> Result<Bodies, FetchError> {
    let ids = distinct(ids);
    if ids.is_empty() {
        return Ok(Bodies::default());
    }
    let (collector, answered) = Collector::new(ids.len());
    let servers = workers.min(ids.len());
    let call = Arc::new(Call::new(
        cancel,
        Ids::listed(ids),
        Sink::Collect(collector),
    ));
    // Stops the workers whichever way this function returns.
    let call = AbortOnDrop(call);
    for _ in 0..servers {
        // The pool lives as long as the client this call borrows.
        tickets
            .send(Some(Arc::clone(&call.0)))
            .expect("worker pool outlives its calls");
    }

    let deadline = cancel.deadline_receiver();
    let collector = call.0.collector().expect("fetch_all calls collect");
    loop {
        crossbeam_channel::select! {
            recv(answered) -> _ => {}
            recv(cancel.receiver()) -> _ => {}
            recv(deadline) -> _ => {}
        }
        if let Err(stop) = cancel.check() {
            return Err(stop.into_error());
        }
        if let Some(answer) = collector.answer() {
            return answer;
        }
    }
}

/// `ids` without repeats, in their first order.
fn distinct(ids: &[u64]) -> Box<[u64]> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

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
    /// IDs not handed in yet.
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
    /// A collector for `ids` distinct IDs, and the channel its answer is signalled on.
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

    /// Records how `id` ended: its body goes into `batch`, a failure straight to the
    /// caller.
    pub(crate) fn deliver(&self, id: u64, outcome: Outcome, body: &[u8], batch: &mut Batch) {
        let error = match outcome {
            Ok(()) => {
                batch.push(id, body);
                if batch.len() >= BATCH_BODIES || batch.total_bytes() >= BATCH_BYTES {
                    self.hand_in(batch);
                }
                return;
            }
            // Stopped by the caller (who knows) or by another ID's failure (which is
            // recorded already, or on its way).
            Err(e) if e.kind() == ErrorKind::Cancelled => return,
            // The caller's deadline ends the whole call, as a cancel does: the worker
            // that found out first does not make it that ID's failure.
            Err(e) if e.kind() == ErrorKind::DeadlineExceeded => {
                FetchError::new(ErrorKind::DeadlineExceeded).with_source(e)
            }
            Err(e) => e,
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

    /// The call's answer, once it has one: the first failure, or every body.
    pub(crate) fn answer(&self) -> Option<Result<Bodies, FetchError>> {
        let mut state = self.lock();
        if let Some(error) = state.error.take() {
            return Some(Err(error));
        }
        (state.remaining == 0).then(|| Ok(std::mem::take(&mut state.bodies).build()))
    }

    fn lock(&self) -> MutexGuard<'_, Collected> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
