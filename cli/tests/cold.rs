//! Cold runs against a strict server: no warm-up, and still no request over the
//! server's limits, over HTTP and over HTTPS with slow handshakes and connections that
//! close every 10 answers.
//!
//! Tokens are taken when a request is about to be written to a ready connection, so
//! the requests of new connections reach the server no earlier, against their tokens,
//! than those of kept-alive ones. `FANOUT_COLD_RUNS` sets the runs per test (default 20).

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{QuotaConfig, QuotaServer, TlsServerConfig, fanout};

const RATE: &str = "10";
const BURST: &str = "20";
const CAP: &str = "8";
/// What the server forgives: arrival jitter of a few milliseconds.
const TOLERANCE: Duration = Duration::from_millis(5);
const LATENCY: Duration = Duration::from_millis(50);

/// The runs measure arrival times on a small machine: one at a time, or the TLS
/// handshakes of one test would delay the other's requests.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn runs() -> usize {
    std::env::var("FANOUT_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn strict() -> QuotaConfig {
    QuotaConfig {
        latency: LATENCY,
        tolerance: TOLERANCE,
        ..QuotaConfig::new(10.0, 20.0)
    }
}

/// One `fanout fetch` of `ids` IDs against `server`, a new process with no connection
/// open; asserts that the server refused nothing and never had more than the cap.
fn cold_run(server: &QuotaServer, ids: u64, run: usize) {
    let mut command = fanout();
    command
        .args(["fetch", &server.template(), "--ids", &format!("1-{ids}")])
        .args(["--rate", RATE, "--burst", BURST, "--max-in-flight", CAP]);
    let dir = tempfile::tempdir().unwrap();
    if let Some(ca) = server.ca_pem() {
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca).unwrap();
        command.arg("--cacert").arg(&path);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "run {run}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        server.rejected(),
        0,
        "run {run}: rate violations\n{}",
        server.arrival_table()
    );
    assert_eq!(
        server.request_count(),
        ids as usize,
        "run {run}: no retries"
    );
    assert!(
        server.server().peak_in_flight() <= 8,
        "run {run}: over the cap"
    );
}

#[test]
fn cold_runs_over_http_break_no_limit() {
    let _serial = serial();
    for run in 1..=runs() {
        let server = QuotaServer::start(strict());
        // The burst, then 2 s at the rate.
        cold_run(&server, 40, run);
    }
}

#[test]
fn cold_runs_over_https_with_slow_handshakes_and_closing_connections_break_no_limit() {
    let _serial = serial();
    for run in 1..=runs() {
        let server = QuotaServer::start_tls(
            strict(),
            TlsServerConfig {
                handshake_delay: Duration::from_millis(100),
                ..TlsServerConfig::default()
            },
        );
        server.server().close_after(10);
        // About 11 answers per worker: most connections close once and are opened again.
        cold_run(&server, 90, run);
        let connections = server.server().connection_count();
        assert!(connections >= 12, "run {run}: {connections} connections");
    }
}
