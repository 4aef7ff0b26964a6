//! Keys that are not numbers: each reaches the server percent-encoded as one path
//! segment, and lands in `--out-dir` under a safe, distinct name that reads back as
//! the key; `--jsonl` lines and failure records carry it as `"key"`.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::{
    TestServer, echo_server, fanout, file_name_of, key_body, key_echo_server, percent_decode,
};
use predicates::prelude::*;
use serde_json::{Value, json};

/// Every key that could change a URL's structure or a file's place, and one that
/// only looks like a range.
const HOSTILE: [&str; 12] = [
    "../admin",
    "a/b",
    "?x=1",
    "#f",
    "a b",
    "caf\u{e9}",
    ".",
    "..",
    "%41",
    ".fanout-x.part",
    "2024-01-01",
    "\u{1F600}",
];

/// The keys the server was asked for, decoded from each request's path, after
/// checking that each path is `/users/` and one segment.
fn keys_seen(server: &TestServer) -> BTreeSet<String> {
    server
        .arrivals()
        .iter()
        .map(|arrival| {
            let segment = arrival.path.strip_prefix("/users/").expect("under /users/");
            assert!(
                !segment.contains(['/', '?', '#', ' ']) && segment.is_ascii(),
                "{:?} is not one encoded segment",
                arrival.path
            );
            assert!(segment != "." && segment != "..", "{:?}", arrival.path);
            percent_decode(segment)
        })
        .collect()
}

fn users(server: &TestServer) -> String {
    server.template()
}

#[test]
fn logins_from_stdin_are_fetched_as_keys() {
    let server = key_echo_server();
    let bytes = key_body("alice").len() + key_body("bob").len();
    fanout()
        .args(["fetch", &users(&server), "--ids-file", "-"])
        .write_stdin("alice\nbob\n")
        .assert()
        .success()
        .stdout(format!("{{\"ok\":true,\"count\":2,\"bytes\":{bytes}}}\n"));
    let paths: BTreeSet<String> = server.arrivals().into_iter().map(|a| a.path).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["/users/alice".into(), "/users/bob".into()])
    );
}

#[test]
fn hostile_keys_stay_one_path_segment_and_get_safe_distinct_file_names() {
    let server = key_echo_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies");
    let file = dir.path().join("keys.txt");
    // `#f` would be a comment in a file: it comes through --ids.
    let in_file: Vec<&str> = HOSTILE.iter().copied().filter(|k| *k != "#f").collect();
    fs::write(&file, in_file.join("\n")).unwrap();
    fanout()
        .args(["fetch", &users(&server), "--ids", "#f,7", "--ids-file"])
        .arg(&file)
        .arg("--out-dir")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":13,"));

    let mut expected: BTreeSet<String> = HOSTILE.iter().map(|k| k.to_string()).collect();
    expected.insert("7".into());
    assert_eq!(keys_seen(&server), expected);

    let names: BTreeSet<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), expected.len(), "names collide: {names:?}");
    for key in &expected {
        let name = file_name_of(key);
        assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
        assert_eq!(percent_decode(&name), *key);
        let body = fs::read_to_string(out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(body, key_body(key), "{key:?}");
    }
    assert!(
        names.contains("7"),
        "a numeric ID keeps its plain name: {names:?}"
    );
    assert!(
        names.contains("%2E.%2Fadmin") && names.contains("caf%C3%A9"),
        "{names:?}"
    );
    // Nothing escaped the directory.
    let beside: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(beside.len(), 2, "{beside:?}");
}

#[test]
fn a_resumed_out_dir_run_reads_keys_back_from_file_names() {
    let server = key_echo_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies");
    let keys = "../admin,a b,caf\u{e9},3";
    for _ in 0..2 {
        fanout()
            .args([
                "fetch",
                &users(&server),
                "--ids",
                keys,
                "--resume",
                "--out-dir",
            ])
            .arg(&out)
            .assert()
            .success();
    }
    assert_eq!(server.request_count(), 4, "the second run skips every key");
}

#[test]
fn jsonl_lines_carry_the_key_and_a_numeric_id_as_a_number() {
    let server = key_echo_server();
    let out = fanout()
        .args([
            "fetch",
            &users(&server),
            "--ids",
            "alice,1-2,007",
            "--jsonl",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    lines.sort_by_key(|line| line["key"].as_str().unwrap().to_string());
    let summary: Vec<(Value, Value, Value)> = lines
        .iter()
        .map(|l| (l["key"].clone(), l["id"].clone(), l["body"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (json!("007"), Value::Null, json!("user-007")),
            (json!("1"), json!(1), json!("user-1")),
            (json!("2"), json!(2), json!("user-2")),
            (json!("alice"), Value::Null, json!("user-alice")),
        ]
    );
    assert!(
        lines.iter().all(|l| l.get("id") != Some(&Value::Null)),
        "no \"id\":null"
    );
}

#[test]
fn mixed_keys_go_as_text_and_numeric_ones_keep_their_urls() {
    let server = key_echo_server();
    fanout()
        .args(["fetch", &users(&server), "--ids", "1-3,x-3,1-b,3"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":5,"));
    let paths: BTreeSet<String> = server.arrivals().into_iter().map(|a| a.path).collect();
    let expected = [
        "/users/1",
        "/users/2",
        "/users/3",
        "/users/x-3",
        "/users/1-b",
    ];
    assert_eq!(paths, expected.iter().map(|p| p.to_string()).collect());
}

#[test]
fn a_failed_text_key_is_named_in_the_summary_and_the_failures_file() {
    let server = TestServer::start(|id| match id {
        Some(id) => common::Reply::ok(common::body_of(id)),
        None => common::Reply::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failed.jsonl");
    fanout()
        .args([
            "fetch",
            &users(&server),
            "--ids",
            "1,a b",
            "--keep-going",
            "--failures",
        ])
        .arg(&failures)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "\"first_failure\":{\"key\":\"a b\",\"kind\":\"http_status\",\"status\":404,",
        ));
    assert_eq!(
        fs::read_to_string(&failures).unwrap(),
        "{\"key\":\"a b\",\"kind\":\"http_status\",\"status\":404,\
         \"error\":\"key \\\"a b\\\": http status 404\"}\n"
    );
    fanout()
        .args(["fetch", &users(&server), "--ids", "a b"])
        .assert()
        .code(1)
        .stdout("{\"ok\":false,\"user_id\":null,\"key\":\"a b\",\"error\":\"key \\\"a b\\\": http status 404\"}\n");
}

#[test]
fn an_empty_key_is_a_usage_error_and_blank_lines_are_skipped() {
    let server = echo_server();
    for list in ["", "a,", ",a", "a, ,b"] {
        fanout()
            .args(["fetch", &users(&server), "--ids", list])
            .assert()
            .code(2)
            .stdout("")
            .stderr(
                predicate::str::contains("empty item")
                    .and(predicate::str::contains(format!("{list:?}"))),
            );
    }
    fanout()
        .args(["fetch", &users(&server), "--ids-file", "-"])
        .write_stdin("\n1\n   \n\t\n2\n\n")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("{\"ok\":true,\"count\":2,"));
    assert_eq!(server.request_count(), 2);
}
