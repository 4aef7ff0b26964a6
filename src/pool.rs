//! The fixed pool of worker threads and the job channel that feeds them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use crate::call::Call;
use crate::error::{ErrorKind, FetchError};
use crate::fetch::Engine;

/// One ID of one call.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) call: Arc<Call>,
}

/// `size` threads, started once and joined on drop. Each runs one job at a time, so
/// `size` is the cap on requests in flight across every call of the client.
#[derive(Debug)]
pub(crate) struct Pool {
    /// `None` only while dropping: disconnecting it tells idle workers to exit.
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    engine: Arc<Engine>,
}

impl Pool {
    pub(crate) fn start(engine: Arc<Engine>, size: usize) -> std::io::Result<Self> {
        // Small on purpose: jobs wait in the callers' own iterators, not here, so a
        // cancelled call leaves at most this many queued jobs behind.
        let (sender, receiver) = crossbeam_channel::bounded(size);
        let mut pool = Pool {
            jobs: Some(sender),
            workers: Vec::with_capacity(size),
            engine,
        };
        for index in 0..size {
            let receiver = receiver.clone();
            let engine = Arc::clone(&pool.engine);
            // On error, dropping `pool` joins the workers already started.
            let handle = thread::Builder::new()
                .name(format!("fanout-worker-{index}"))
                .spawn(move || work(&engine, &receiver))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    pub(crate) fn jobs(&self) -> &Sender<Job> {
        self.jobs.as_ref().expect("jobs sender lives until drop")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Idle workers see the disconnection; busy ones have their socket shut down
        // under them, so no join waits for a slow server.
        drop(self.jobs.take());
        self.engine.http.shutdown();
        for worker in self.workers.drain(..) {
            // A worker only ends by returning: its panics are caught per job.
            let _ = worker.join();
        }
    }
}

fn work(engine: &Engine, jobs: &Receiver<Job>) {
    while let Ok(Job { id, call }) = jobs.recv() {
        // A panic is a bug in this library (or in a log backend); it fails this ID
        // and leaves the worker, and so the pool, whole.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            engine.fetch_one(id, &call.signals, &call.sockets)
        }))
        .unwrap_or_else(|_| {
            Err(FetchError::new(ErrorKind::Internal)
                .with_user_id(id)
                .with_detail("worker panicked"))
        });
        call.deliver(id, outcome);
    }
}
