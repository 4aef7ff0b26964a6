//! `fanout fetch` end to end: the binary against a local server.

mod common;

use std::fs;
use std::io::{BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, TestServer, body_of, echo_server, fanout};
use predicates::prelude::*;

/// A template nothing listens on, for runs that must stop before any request.
const NOWHERE: &str = "http://127.0.0.1:9/users/{id}";

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn success_prints_one_summary_line() {
    let server = echo_server();
    let ids = [1, 2, 3, 4, 5, 9, 10];
    let bytes: usize = ids.iter().map(|&id| body_of(id).len()).sum();
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-5,9",
            "--ids",
            "10,3",
        ])
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":7,\"bytes\":{bytes}}}\n"));
    assert_eq!(server.request_count(), 7, "duplicates are fetched once");
}

#[test]
fn failure_names_the_failing_id_and_exits_1() {
    let server = TestServer::start(|id| match id {
        Some(3) => Reply::status(404),
        Some(id) => Reply::ok(body_of(id)),
        None => Reply::status(400),
    });
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-6"])
        .assert()
        .code(1)
        .stdout(
            "{\"ok\":false,\"user_id\":3,\"key\":\"3\",\"error\":\"user 3: http status 404\"}\n",
        );
}

#[test]
fn usage_errors_exit_2_with_nothing_on_stdout() {
    let cases: &[&[&str]] = &[
        // No ID source.
        &["fetch", NOWHERE],
        // Malformed key lists: empty items, a range that runs backwards.
        &["fetch", NOWHERE, "--ids", ""],
        &["fetch", NOWHERE, "--ids", "5-1"],
        &["fetch", NOWHERE, "--ids", "1,,2"],
        // A header without a colon, and one the library refuses.
        &["fetch", NOWHERE, "--ids", "1", "-H", "Authorization"],
        &["fetch", NOWHERE, "--ids", "1", "-H", "Bad Name: x"],
        // Configurations `build` refuses.
        &["fetch", "http://127.0.0.1:9/users", "--ids", "1"],
        &["fetch", NOWHERE, "--ids", "1", "--burst", "0"],
        &["fetch", NOWHERE, "--ids", "1", "--max-in-flight", "0"],
        &["fetch", NOWHERE, "--ids", "1", "--timeout-ms", "0"],
        // Flags.
        &["fetch", NOWHERE, "--ids", "1", "--no-such-flag"],
        &["fetch", NOWHERE, "--ids", "1", "--jsonl", "--out-dir", "x"],
        &["fetch", NOWHERE, "--ids-file", "/nonexistent/ids.txt"],
    ];
    for args in cases {
        fanout()
            .args(*args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::is_empty().not());
    }
}

#[test]
fn an_ids_file_that_is_not_text_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ids.txt");
    fs::write(&file, b"# users\n1\n\n2\nseven\xff\n").unwrap();
    fanout()
        .args(["fetch", NOWHERE, "--ids-file"])
        .arg(&file)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("line 5"));
}

#[test]
fn ids_file_and_stdin() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ids.txt");
    fs::write(&file, "# users\n1\n\n2 # second\n").unwrap();
    let bytes = body_of(1).len() + body_of(2).len();
    fanout()
        .args(["fetch", &server.template(), "--ids-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":2,\"bytes\":{bytes}}}\n"));

    let bytes = body_of(7).len() + body_of(8).len() + body_of(1).len();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1", "--ids-file", "-"])
        .write_stdin("7\n8\n")
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":3,\"bytes\":{bytes}}}\n"));
}

#[test]
fn out_dir_holds_one_file_per_id_and_nothing_else() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies");
    let ids: Vec<u64> = (1..=12).collect();
    let bytes: usize = ids.iter().map(|&id| body_of(id).len()).sum();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-12", "--out-dir"])
        .arg(&out)
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":12,\"bytes\":{bytes}}}\n"));

    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort_by_key(|name| name.parse::<u64>().unwrap_or(u64::MAX));
    let expected: Vec<String> = ids.iter().map(u64::to_string).collect();
    assert_eq!(names, expected, "no temporary file is left");
    for id in ids {
        assert_eq!(
            fs::read_to_string(out.join(id.to_string())).unwrap(),
            body_of(id)
        );
    }
}

#[test]
fn jsonl_prints_one_parseable_line_per_id() {
    let server = TestServer::start(|id| match id {
        Some(4) => Reply::ok(vec![0xff, 0xfe, 0x00]),
        Some(id) => Reply::ok(body_of(id)),
        None => Reply::status(400),
    });
    let output = fanout()
        .args(["fetch", &server.template(), "--ids", "1-6", "--jsonl"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = stdout_of(&output);
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let id = value["id"].as_u64().expect("an id");
        if id == 4 {
            assert_eq!(value["body_base64"], "//4A");
            assert_eq!(value["bytes"], 3);
        } else {
            assert_eq!(value["body"], body_of(id).as_str());
            assert_eq!(value["bytes"], body_of(id).len());
        }
        seen.push(id);
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn jsonl_stops_at_the_first_failure() {
    let server = TestServer::start(|id| match id {
        Some(1) => Reply::status(500),
        Some(id) => Reply::ok(body_of(id)),
        None => Reply::status(400),
    });
    // One worker and IDs sent in order: 1 fails before 2 is requested.
    let output = fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-50",
            "--jsonl",
            "--max-in-flight",
            "1",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = stdout_of(&output);
    let last = stdout.lines().last().expect("an error line");
    let value: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(value["id"], 1);
    assert_eq!(value["error"], "user 1: http status 500");
    assert!(server.request_count() < 50, "the rest were never requested");
}

#[test]
fn rate_is_respected_end_to_end() {
    let server = echo_server();
    let started = Instant::now();
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-30",
            "--rate",
            "20",
            "--burst",
            "10",
        ])
        .assert()
        .success();
    let elapsed = started.elapsed();
    // 10 at once, then 20 more at 20/s: at least 1 s. One-sided: a slow machine
    // only makes it longer.
    assert!(
        elapsed >= Duration::from_millis(950),
        "30 IDs at 20/s, burst 10, took only {elapsed:?}"
    );
    assert_eq!(server.request_count(), 30);
}

#[test]
fn timeline_writes_an_svg() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("timeline.svg");
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-15", "--timeline"])
        .arg(&svg)
        .assert()
        .success();
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "not an SVG: {text:.200}");
    assert!(text.contains("Requests in flight"));
}

#[test]
fn deadline_ends_the_run_with_no_user_id() {
    let server = TestServer::start(|_| Reply::Hang);
    let started = Instant::now();
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-3",
            "--deadline-ms",
            "300",
        ])
        .assert()
        .code(1)
        .stdout("{\"ok\":false,\"user_id\":null,\"error\":\"deadline exceeded\"}\n");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_refused_connection_says_why_in_the_error_line_and_the_log() {
    // Bound, then closed: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let template = format!("http://127.0.0.1:{port}/users/{{id}}");
    let cause = format!("connect 127.0.0.1:{port}: connection refused");
    fanout()
        .args(["fetch", &template, "--ids", "1", "--max-attempts", "2"])
        .assert()
        .code(1)
        .stdout(format!(
            "{{\"ok\":false,\"user_id\":1,\"key\":\"1\",\"error\":\"user 1: {cause} (after 2 attempts)\"}}\n"
        ))
        .stderr(predicate::str::contains(format!("failed: {cause}")));
}

#[test]
fn verbose_shows_the_library_logs() {
    let server = echo_server();
    fanout()
        .args(["fetch", &server.template(), "--ids", "42", "-v"])
        .assert()
        .success()
        .stderr(predicate::str::contains("user_id=42"));
    fanout()
        .args(["fetch", &server.template(), "--ids", "42"])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn ctrl_c_stops_cleanly_with_130() {
    let server = TestServer::start(|_| Reply::Hang);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(["fetch", &server.template(), "--ids", "1-5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A request in flight means the handler is installed and the run is under way.
    assert!(
        server.next_arrival(Duration::from_secs(20)).is_some(),
        "no request arrived"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Reading stdout to its end waits for the process to exit, or for the 30 s
    // timeout of the hanging server to release it: either way, bounded.
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        stdout,
        "{\"ok\":false,\"user_id\":null,\"error\":\"cancelled\"}\n"
    );
}

#[test]
fn closed_stdout_is_not_a_panic() {
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let server = TestServer::start(move |id| {
        Reply::After(released.clone(), body_of(id.unwrap_or(0)).into())
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-20",
            "--rate",
            "0",
            "--jsonl",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(server.next_arrival(Duration::from_secs(20)).is_some());
    // Close the reading end before any answer, so the first line meets a closed pipe.
    drop(child.stdout.take());
    drop(release);
    let mut stderr = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn help_documents_the_contract() {
    fanout()
        .args(["fetch", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("fail-fast")
                .and(predicate::str::contains("--jsonl"))
                .and(predicate::str::contains("130")),
        );
}
