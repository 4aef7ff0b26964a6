//! The fixed pool of worker threads and the job channel that feeds them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use crate::call::Call;
use crate::collect::Batch;
use crate::engine::Engine;
use crate::error::{ErrorKind, FetchError};

/// A worker's permission to serve a call, or (`None`) the order to exit.
///
/// A worker holding a ticket takes the call's IDs until it has none left, or until
/// another call's ticket is waiting: then it puts its own back in the queue, so that
/// calls sharing the pool take turns one ID at a time.
pub(crate) type Ticket = Option<Arc<Call>>;

/// The most a worker keeps of its body buffer between IDs.
const KEPT_BUFFER_BYTES: usize = 1 << 20;

/// `size` threads, started once and joined on drop. Each runs one job at a time, so
/// `size` is the cap on requests in flight across every call of the client.
#[derive(Debug)]
pub(crate) struct Pool {
    tickets: Sender<Ticket>,
    workers: Vec<JoinHandle<()>>,
    engine: Arc<Engine>,
}

impl Pool {
    pub(crate) fn start(engine: Arc<Engine>, size: usize) -> std::io::Result<Self> {
        // Unbounded, but never long: a call puts in at most one ticket per worker, or
        // (`fetch_iter`) one per ID in its window.
        let (tickets, receiver) = crossbeam_channel::unbounded();
        let mut pool = Pool {
            tickets,
            workers: Vec::with_capacity(size),
            engine,
        };
        for index in 0..size {
            let receiver = receiver.clone();
            let requeue = pool.tickets.clone();
            let engine = Arc::clone(&pool.engine);
            // On error, dropping `pool` joins the workers already started.
            let handle = thread::Builder::new()
                .name(format!("fanout-worker-{index}"))
                .spawn(move || work(&engine, &receiver, &requeue))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    pub(crate) fn tickets(&self) -> &Sender<Ticket> {
        &self.tickets
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // One exit order per worker, each taken by a different worker since a worker
        // takes nothing after its own. Busy workers have their socket shut down under
        // them, so no join waits for a slow server.
        for _ in 0..self.workers.len() {
            let _ = self.tickets.send(None);
        }
        self.engine.http.shutdown();
        for worker in self.workers.drain(..) {
            // A worker only ends by returning: its panics are caught per job.
            let _ = worker.join();
        }
    }
}

fn work(engine: &Engine, tickets: &Receiver<Ticket>, requeue: &Sender<Ticket>) {
    let mut body = Vec::new();
    let mut batch = Batch::default();
    while let Ok(Some(call)) = tickets.recv() {
        while let Some(id) = call.next_id() {
            // A panic is a bug in this library (or in a log backend); it fails this ID
            // and leaves the worker, and so the pool, whole.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                engine.fetch_one(id, &call.signals, &call.sockets, &mut body)
            }))
            .unwrap_or_else(|_| {
                Err(FetchError::new(ErrorKind::Internal)
                    .with_user_id(id)
                    .with_detail("worker panicked"))
            });
            call.deliver(id, outcome, &mut body, &mut batch);
            if body.capacity() > KEPT_BUFFER_BYTES {
                body = Vec::new();
            }
            if !tickets.is_empty() {
                // Another call is waiting for a worker: take turns.
                let _ = requeue.send(Some(Arc::clone(&call)));
                break;
            }
        }
        call.hand_in(&mut batch);
    }
}
