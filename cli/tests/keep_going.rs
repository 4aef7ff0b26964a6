//! `--keep-going` tries every ID and counts the failures exactly; `--failures` lists
//! exactly the IDs that failed, ready to retry.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use common::{Reply, TestServer, body_of, echo_server, fanout};
use serde_json::{Value, json};

const IDS: u64 = 2_000;

/// 1 % of the IDs answer 404, another 1 % answer 500 (neither is retried).
fn status_of(id: u64) -> Option<u16> {
    match id % 100 {
        7 => Some(404),
        42 => Some(500),
        _ => None,
    }
}

fn flaky_server() -> TestServer {
    TestServer::start(|id| match id {
        Some(id) => match status_of(id) {
            Some(status) => Reply::status(status),
            None => Reply::ok(body_of(id)),
        },
        None => Reply::status(400),
    })
}

fn failing_ids() -> BTreeSet<u64> {
    (1..=IDS).filter(|&id| status_of(id).is_some()).collect()
}

/// The arguments of a fast run over 1..=IDS: no rate limit, no retries.
fn fast_run(server: &TestServer) -> Vec<String> {
    [
        "fetch",
        &server.template(),
        "--ids",
        &format!("1-{IDS}"),
        "--rate",
        "0",
        "--max-attempts",
        "1",
        "--keep-going",
    ]
    .map(String::from)
    .to_vec()
}

fn json_lines(text: &[u8]) -> Vec<Value> {
    std::str::from_utf8(text)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn ids_of(lines: &[Value]) -> BTreeSet<u64> {
    lines.iter().map(|l| l["id"].as_u64().unwrap()).collect()
}

#[test]
fn every_id_is_tried_and_the_failures_are_counted_exactly() {
    let server = flaky_server();
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failed.jsonl");
    let output = fanout()
        .args(fast_run(&server))
        .arg("--failures")
        .arg(&failures)
        .assert()
        .code(1)
        .get_output()
        .clone();

    let failing = failing_ids();
    let fetched: Vec<u64> = (1..=IDS).filter(|id| !failing.contains(id)).collect();
    let bytes: usize = fetched.iter().map(|&id| body_of(id).len()).sum();
    let summary = json_lines(&output.stdout);
    assert_eq!(summary.len(), 1, "one summary line");
    let summary = &summary[0];
    assert_eq!(summary["ok"], json!(false));
    assert_eq!(summary["count"], json!(fetched.len()));
    assert_eq!(summary["bytes"], json!(bytes));
    assert_eq!(summary["failed"], json!(40));
    assert_eq!(summary["failures_by_kind"], json!({"http_status": 40}));
    let first = &summary["first_failure"];
    let first_id = first["id"].as_u64().unwrap();
    assert!(failing.contains(&first_id), "{first}");
    assert_eq!(first["kind"], json!("http_status"));
    assert_eq!(first["status"], json!(status_of(first_id).unwrap()));
    assert_eq!(server.request_count(), IDS as usize, "every ID tried once");

    let listed = json_lines(&fs::read(&failures).unwrap());
    assert_eq!(listed.len(), failing.len(), "each failure listed once");
    assert_eq!(ids_of(&listed), failing);
    for line in &listed {
        let id = line["id"].as_u64().unwrap();
        let status = status_of(id).unwrap();
        assert_eq!(line["kind"], json!("http_status"), "{line}");
        assert_eq!(line["status"], json!(status), "{line}");
        assert_eq!(
            line["error"],
            json!(format!("user {id}: http status {status}"))
        );
    }
}

#[test]
fn jsonl_gives_each_failed_id_an_error_line() {
    let server = flaky_server();
    let output = fanout()
        .args(fast_run(&server))
        .arg("--jsonl")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let lines = json_lines(&output.stdout);
    assert_eq!(lines.len(), IDS as usize, "one line per ID, no summary");
    let (failed, fetched): (Vec<_>, Vec<_>) =
        lines.into_iter().partition(|l| l.get("error").is_some());
    assert_eq!(ids_of(&failed), failing_ids());
    assert!(failed.iter().all(|l| l["kind"] == json!("http_status")));
    assert_eq!(ids_of(&fetched).len() + failing_ids().len(), IDS as usize);
    for line in &fetched {
        let id = line["id"].as_u64().unwrap();
        assert_eq!(line["body"], json!(body_of(id)));
    }
}

#[test]
fn out_dir_holds_every_fetched_id_and_the_summary_counts_the_rest() {
    let server = flaky_server();
    let dir = tempfile::tempdir().unwrap();
    let output = fanout()
        .args(fast_run(&server))
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let summary = &json_lines(&output.stdout)[0];
    assert_eq!(summary["count"], json!(IDS - 40));
    assert_eq!(summary["failed"], json!(40));
    let names: BTreeSet<u64> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    let expected: BTreeSet<u64> = (1..=IDS).filter(|id| status_of(*id).is_none()).collect();
    assert_eq!(names, expected);
}

#[test]
fn with_no_failure_the_line_and_exit_status_are_those_of_success() {
    let server = echo_server();
    let bytes: usize = (1..=3).map(|id| body_of(id).len()).sum();
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failed.jsonl");
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3", "--keep-going"])
        .arg("--failures")
        .arg(&failures)
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":3,\"bytes\":{bytes}}}\n"));
    assert_eq!(fs::read(&failures).unwrap(), b"", "created, and empty");
}

#[test]
fn the_failures_file_feeds_a_retry() {
    let server = flaky_server();
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failed.jsonl");
    fanout()
        .args(fast_run(&server))
        .arg("--failures")
        .arg(&failures)
        .assert()
        .code(1);
    // What `jq -r .id failed.jsonl > retry.txt` makes.
    let retry: String = json_lines(&fs::read(&failures).unwrap())
        .iter()
        .map(|l| format!("{}\n", l["id"]))
        .collect();
    let retry_file = dir.path().join("retry.txt");
    fs::write(&retry_file, retry).unwrap();
    server.forget_arrivals();
    let output = fanout()
        .args(["fetch", &server.template(), "--rate", "0", "--keep-going"])
        .arg("--ids-file")
        .arg(&retry_file)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let summary = &json_lines(&output.stdout)[0];
    assert_eq!(
        (summary["count"].clone(), summary["failed"].clone()),
        (json!(0), json!(40))
    );
    assert_eq!(
        server.request_count(),
        40,
        "only the failed IDs asked again"
    );
}

#[test]
fn fail_fast_stays_the_default_and_lists_its_one_failure() {
    let server = TestServer::start(|id| match id {
        Some(3) => Reply::status(404),
        Some(id) => Reply::ok(body_of(id)),
        None => Reply::status(400),
    });
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failed.jsonl");
    fanout()
        .args(["fetch", &server.template(), "--ids", "3"])
        .arg("--failures")
        .arg(&failures)
        .assert()
        .code(1)
        .stdout(
            "{\"ok\":false,\"user_id\":3,\"key\":\"3\",\"error\":\"user 3: http status 404\"}\n",
        );
    assert_eq!(
        fs::read_to_string(&failures).unwrap(),
        "{\"id\":3,\"key\":\"3\",\"kind\":\"http_status\",\"status\":404,\"error\":\"user 3: http status 404\"}\n"
    );
}

#[test]
fn a_deadline_still_ends_a_run_that_keeps_going() {
    let server = TestServer::start(|id| match id {
        Some(1) => Reply::status(404),
        _ => Reply::Hang,
    });
    let started = Instant::now();
    let output = fanout()
        .args(["fetch", &server.template(), "--ids", "1-3", "--keep-going"])
        .args(["--max-in-flight", "1", "--deadline-ms", "1000"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(started.elapsed() < Duration::from_secs(20));
    let summary = &json_lines(&output.stdout)[0];
    assert_eq!(summary["ok"], json!(false));
    assert_eq!(summary["user_id"], json!(null));
    assert_eq!(summary["error"], json!("deadline exceeded"));
    assert_eq!(summary["count"], json!(0));
    assert_eq!(summary["failed"], json!(1), "{summary}");
    assert_eq!(summary["first_failure"]["id"], json!(1));
}

#[test]
fn a_failures_file_that_cannot_be_created_is_a_usage_error_before_any_request() {
    let server = echo_server();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3", "--keep-going"])
        .args(["--failures", "/nonexistent/dir/failed.jsonl"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains("--failures"));
    assert_eq!(server.request_count(), 0);
}
