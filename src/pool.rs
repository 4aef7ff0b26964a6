//! The fixed pool of worker threads and the job channel that feeds them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use crate::call::Call;
use crate::engine::Engine;
use crate::error::{ErrorKind, FetchError};

/// What a worker is told to do next.
///
/// A worker serving a call takes its IDs until it has none left, or until another job
/// is waiting: then it puts its own back in the queue, so that calls sharing the pool
/// take turns one ID at a time.
enum Job {
    Serve(Arc<Call>),
    Exit,
}

/// The most a worker keeps of its body buffer between IDs.
const KEPT_BUFFER_BYTES: usize = 1 << 20;

/// `size` threads, started once and joined on drop. Each runs one job at a time, so
/// `size` is the cap on requests in flight across every call of the client.
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Sender<Job>,
    workers: Vec<JoinHandle<()>>,
    engine: Arc<Engine>,
}

impl Pool {
    pub(crate) fn start(engine: Arc<Engine>, size: usize) -> std::io::Result<Self> {
        // Unbounded, but never long: a call puts in at most one job per worker, or
        // (`fetch_iter`) one per ID in its window.
        let (jobs, receiver) = crossbeam_channel::unbounded();
        let mut pool = Pool {
            jobs,
            workers: Vec::with_capacity(size),
            engine,
        };
        for index in 0..size {
            let receiver = receiver.clone();
            let requeue = pool.jobs.clone();
            let engine = Arc::clone(&pool.engine);
            // On error, dropping `pool` joins the workers already started.
            let handle = thread::Builder::new()
                .name(format!("fanout-worker-{index}"))
                .spawn(move || work(&engine, &receiver, &requeue))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// The number of workers: the most that can serve one call at once.
    pub(crate) fn size(&self) -> usize {
        self.workers.len()
    }

    /// Queues `workers` jobs serving `call`, each taken by the next worker free. Never
    /// blocks.
    pub(crate) fn submit(&self, call: &Arc<Call>, workers: usize) {
        for _ in 0..workers {
            // The workers hold the other end until the pool drops, and the pool
            // outlives every call (calls borrow the client that owns it).
            let _ = self.jobs.send(Job::Serve(Arc::clone(call)));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // One exit order per worker, each taken by a different worker since a worker
        // takes nothing after its own. Busy workers have their socket shut down under
        // them, so no join waits for a slow server.
        for _ in 0..self.workers.len() {
            let _ = self.jobs.send(Job::Exit);
        }
        self.engine.http.shutdown();
        for worker in self.workers.drain(..) {
            // A worker only ends by returning: its panics are caught per job.
            let _ = worker.join();
        }
    }
}

fn work(engine: &Engine, jobs: &Receiver<Job>, requeue: &Sender<Job>) {
    let mut body = Vec::new();
    while let Ok(Job::Serve(call)) = jobs.recv() {
        // Hands in what it kept when dropped, after the loop.
        let mut serving = call.serving();
        while let Some(claim) = call.next_key() {
            let key = call.key(&claim);
            // A panic is a bug in this library (or in a log backend); it fails this key
            // and leaves the worker, and so the pool, whole.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                engine.fetch_one(key, &call.signals, &call.sockets, &mut body)
            }))
            .unwrap_or_else(|_| {
                Err(FetchError::new(ErrorKind::Internal)
                    .with_key(key)
                    .with_detail("worker panicked"))
            });
            serving.deliver(claim, outcome, &mut body);
            if body.capacity() > KEPT_BUFFER_BYTES {
                body = Vec::new();
            }
            if !jobs.is_empty() {
                // Another call is waiting for a worker: take turns.
                let _ = requeue.send(Job::Serve(Arc::clone(&call)));
                break;
            }
        }
    }
}
