//! `fanout demo` end to end: small runs against its own strict server.

mod common;

use common::{fanout, serial};
use predicates::prelude::*;

#[test]
fn small_demo_sees_no_violation() {
    let _serial = serial();
    fanout()
        .args(["demo", "--ids", "30", "--latency-ms", "20"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("result            ok: 30 IDs fetched")
                .and(predicate::str::contains(
                    "violations        0 seen by the server",
                ))
                .and(predicate::str::contains("ideal             1.020 s"))
                .and(predicate::str::contains("PASS")),
        );
}

#[test]
fn fail_id_stops_the_run_early() {
    let _serial = serial();
    fanout()
        .args([
            "demo",
            "--ids",
            "40",
            "--latency-ms",
            "20",
            "--fail-id",
            "25",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("failed fast: user 25: http status 500")
                .and(predicate::str::contains("stopped after"))
                .and(predicate::str::is_match(r"never requested   [1-9]\d* of 40 IDs").unwrap())
                .and(predicate::str::contains(
                    "violations        0 seen by the server",
                )),
        );
}

#[test]
fn a_stricter_server_reports_violations_and_exits_1() {
    let _serial = serial();
    // The client bursts 20 at once into a server that takes 5: the server notices.
    fanout()
        .args([
            "demo",
            "--ids",
            "30",
            "--latency-ms",
            "5",
            "--server-burst",
            "5",
        ])
        .assert()
        .code(1)
        .stdout(
            predicate::str::is_match(r"violations        [1-9]\d* seen by the server").unwrap(),
        );
}

#[test]
fn demo_usage_errors_exit_2() {
    for args in [
        ["demo", "--ids", "0"].as_slice(),
        &["demo", "--ids", "10", "--fail-id", "11"],
        &["demo", "--max-in-flight", "0"],
        &["demo", "--burst", "0"],
    ] {
        fanout().args(args).assert().code(2).stdout("");
    }
}

#[test]
fn demo_timeline_writes_an_svg() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("demo.svg");
    fanout()
        .args(["demo", "--ids", "10", "--latency-ms", "5", "--timeline"])
        .arg(&svg)
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"));
    assert!(text.contains("token-bucket bound"));
}
