//! The baselines of the overhead figure: `WORKERS` threads sharing one `ureq` agent,
//! no limiter, no retries, claiming IDs from one counter, and the same result as
//! `fetch_all` in the end (every body, by ID).
//!
//! Two ways to run those threads: spawned afresh for each call ([`fetch_all_spawning`]),
//! the shortest program, and started once and reused ([`Pool`]), as `fanout`'s own
//! workers are. On a shared 2-CPU machine the two differ by far more than either
//! differs from `fanout`; see BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::{BenchResult, WORKERS};

/// What one thread fetched.
type Part = BenchResult<Vec<(u64, Vec<u8>)>>;

/// The agent of both baselines: fanout's pool settings, statuses handed back; over
/// https it trusts `ca_pem` alone.
pub fn agent(ca_pem: Option<&str>) -> BenchResult<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(WORKERS)
        .max_idle_connections_per_host(WORKERS);
    if let Some(pem) = ca_pem {
        let ca = Certificate::from_pem(pem.as_bytes())?;
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[ca]))
                .build(),
        );
    }
    Ok(ureq::Agent::new_with_config(config.build()))
}

/// IDs `0..n` from `base` (`http://HOST:PORT` or `https://...`) with `WORKERS` threads
/// spawned for this call alone.
pub fn fetch_all_spawning(
    agent: &ureq::Agent,
    base: &str,
    n: u64,
) -> BenchResult<HashMap<u64, Vec<u8>>> {
    let next = AtomicU64::new(0);
    let parts = thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| scope.spawn(|| fetch_some(agent, base, &next, n)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect::<Vec<_>>()
    });
    collect(parts, n)
}

/// `WORKERS` threads started once, each call handing them a shared counter.
pub struct Pool {
    calls: Sender<(Arc<AtomicU64>, u64)>,
    parts: Receiver<Part>,
}

impl Pool {
    pub fn start(agent: &ureq::Agent, base: &str) -> Self {
        let (calls, calls_rx) = crossbeam_channel::unbounded::<(Arc<AtomicU64>, u64)>();
        let (parts_tx, parts) = crossbeam_channel::unbounded();
        for _ in 0..WORKERS {
            let (calls_rx, parts_tx, agent) = (calls_rx.clone(), parts_tx.clone(), agent.clone());
            let base = base.to_owned();
            // Ends when the pool is dropped and `calls` disconnects.
            thread::spawn(move || {
                while let Ok((next, n)) = calls_rx.recv() {
                    let _ = parts_tx.send(fetch_some(&agent, &base, &next, n));
                }
            });
        }
        Pool { calls, parts }
    }

    /// IDs `0..n` on the pool's threads.
    pub fn fetch_all(&self, n: u64) -> BenchResult<HashMap<u64, Vec<u8>>> {
        let next = Arc::new(AtomicU64::new(0));
        for _ in 0..WORKERS {
            self.calls.send((Arc::clone(&next), n))?;
        }
        let parts = (0..WORKERS)
            .map(|_| self.parts.recv().unwrap_or_else(|e| Err(e.into())))
            .collect();
        collect(parts, n)
    }
}

/// One thread's share: IDs claimed from `next` until it passes `n`.
fn fetch_some(agent: &ureq::Agent, base: &str, next: &AtomicU64, n: u64) -> Part {
    let mut bodies = Vec::new();
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        if id >= n {
            return Ok(bodies);
        }
        let url = format!("{base}/lat/0/users/{id}");
        let mut response = agent.get(&url).call()?;
        if response.status() != 200 {
            return Err(format!("status {}", response.status()).into());
        }
        bodies.push((id, response.body_mut().read_to_vec()?));
    }
}

/// The threads' parts in one map, as `fetch_all` returns one result.
fn collect(parts: Vec<Part>, n: u64) -> BenchResult<HashMap<u64, Vec<u8>>> {
    let mut all = HashMap::with_capacity(n as usize);
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}
