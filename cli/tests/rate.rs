//! `--rate AMOUNT[/WINDOW]` end to end: the forms it takes, and a run told four times the server's quota.

mod common;

use std::time::{Duration, Instant};

use common::{QuotaConfig, QuotaServer, echo_server, fanout, serial};
use predicates::prelude::*;

#[test]
fn every_documented_form_is_accepted_and_means_its_window() {
    let _serial = serial();
    let server = echo_server();
    // With a burst of 1, the second of two IDs waits one interval: the window was
    // read, not just the amount. One-sided: a slow machine only adds to it.
    let forms = [
        ("10", Duration::from_millis(100)),
        ("0.5", Duration::from_secs(2)),
        ("100/min", Duration::from_millis(600)),
        ("5000/h", Duration::from_millis(720)),
        ("900/15min", Duration::from_secs(1)),
        ("86400/d", Duration::from_secs(1)),
        ("0", Duration::ZERO),
    ];
    for (rate, interval) in forms {
        let started = Instant::now();
        fanout()
            .args(["fetch", &server.template(), "--ids", "1-2"])
            .args(["--rate", rate, "--burst", "1"])
            .assert()
            .success()
            .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":2,"));
        let elapsed = started.elapsed();
        assert!(elapsed >= interval, "--rate {rate}: {elapsed:?}");
    }
}

#[test]
fn a_run_keeps_to_the_bucket_in_every_window() {
    let _serial = serial();
    let server = echo_server();
    let started = Instant::now();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-20"])
        .args(["--rate", "10", "--burst", "5", "--max-in-flight", "2"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":20,"));
    let elapsed = started.elapsed();

    let times = common::arrival_times(&server);
    assert_eq!(times.len(), 20);
    // Each connection's first request meets a server thread just started, and on a
    // loaded machine is seen late, bunched with the requests after it: a new process
    // cannot warm up. The requests on the connections kept alive are seen as sent.
    let kept_alive = &times[2..];
    let excess = common::worst_window_excess(kept_alive, 10.0, 5.0);
    let offsets: Vec<u128> = times
        .iter()
        .map(|t| t.duration_since(times[0]).as_millis())
        .collect();
    assert!(
        excess <= 0.0,
        "a window held {excess} requests too many; arrivals (ms): {offsets:?}"
    );
    // 5 at once, then 15 more at 10/s.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "too fast: {elapsed:?}"
    );
}

#[test]
fn rate_zero_means_no_limit() {
    let _serial = serial();
    let server = echo_server();
    let started = Instant::now();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-40"])
        .args(["--rate", "0", "--burst", "1"])
        .assert()
        .success();
    // Any rate of 4 a second or less would take longer.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(server.request_count(), 40);
}

#[test]
fn malformed_rates_are_usage_errors_naming_the_accepted_forms() {
    for rate in ["0/h", "5/0s", "abc"] {
        fanout()
            .args(["fetch", "http://127.0.0.1:9/users/{id}", "--ids", "1"])
            .args(["--rate", rate])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("accepted: AMOUNT[/WINDOW]"));
    }
}

#[test]
fn a_run_told_four_times_the_quota_gets_few_429s() {
    let _serial = serial();
    let server = QuotaServer::start(QuotaConfig {
        latency: Duration::from_millis(50),
        ..QuotaConfig::new(10.0, 5.0)
    });
    let started = Instant::now();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-150"])
        .args(["--rate", "40", "--burst", "40"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":150,"));
    let (requests, rejected) = (server.request_count(), server.rejected());
    eprintln!(
        "fanout fetch, 150 IDs at --rate 40 against 10/s burst 5: {:.3} s, {requests} \
         requests, {rejected} answered 429",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(server.accepted(), 150);
    assert!(
        rejected as f64 <= 0.05 * requests as f64,
        "{rejected} of {requests} answered 429"
    );
}
