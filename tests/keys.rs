//! Text keys reach the server as one path segment or query value each, whatever they
//! hold, and take the same path as IDs: deduplicated, failing fast, cancellable,
//! streamed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Bodies, CancelToken, ErrorKind, FanOutClient};
use testserver::{RecordingServer, response};

/// Keys that would change a URL's structure if they went in as they are.
const HOSTILE: [&str; 13] = [
    "alice", "../admin", "a/b", "?x=1", "#f", "a b", "josé", "日本", ".", "..", "%2F", "a+b&c=d",
    "~a.b_c-d",
];

/// Each hostile key, as it must appear in the path.
const ENCODED: [&str; 13] = [
    "alice",
    "..%2Fadmin",
    "a%2Fb",
    "%3Fx%3D1",
    "%23f",
    "a%20b",
    "jos%C3%A9",
    "%E6%97%A5%E6%9C%AC",
    "%2E",
    "%2E%2E",
    "%252F",
    "a%2Bb%26c%3Dd",
    "~a.b_c-d",
];

/// A server answering `/users/missing...` with 404, `/users/hang...` never (for 30 s),
/// and any other request with its own target as the body.
fn server() -> RecordingServer {
    RecordingServer::start(|head| {
        let target = target(head);
        if target.starts_with("/users/missing") {
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()
        } else {
            if target.starts_with("/users/hang") {
                thread::sleep(Duration::from_secs(30));
            }
            response(&[], target.as_bytes())
        }
    })
}

/// The request target of a request head: `/users/alice?x=1`.
fn target(head: &str) -> String {
    head.split(' ').nth(1).unwrap_or_default().to_owned()
}

fn targets_seen(server: &RecordingServer) -> BTreeSet<String> {
    server.seen().iter().map(|s| target(&s.head)).collect()
}

fn client(template: impl Into<String>) -> FanOutClient {
    FanOutClient::builder(template)
        .no_rate_limit()
        .max_in_flight(4)
        .build()
        .unwrap()
}

#[test]
fn hostile_keys_reach_the_server_as_one_segment_each() {
    let server = server();
    let client = client(server.template());

    let bodies = client.fetch_all_keys(HOSTILE).unwrap();

    let expected: BTreeSet<String> = ENCODED.iter().map(|e| format!("/users/{e}")).collect();
    assert_eq!(targets_seen(&server), expected);
    assert_eq!(bodies.len(), HOSTILE.len());
    for (key, encoded) in HOSTILE.iter().zip(ENCODED) {
        assert_eq!(
            bodies.get(key),
            Some(format!("/users/{encoded}").as_bytes()),
            "{key}"
        );
    }
}

#[test]
fn hostile_keys_reach_the_server_as_one_query_value_each() {
    let server = server();
    let client = client(server.template().replace("{id}", "q?key={id}&page=1"));

    let bodies = client.fetch_all_keys(HOSTILE).unwrap();

    // In the query, `.` and `..` need no encoding: they are not path segments.
    let expected: BTreeSet<String> = HOSTILE
        .iter()
        .zip(ENCODED)
        .map(|(key, encoded)| {
            let value = if matches!(*key, "." | "..") {
                key
            } else {
                encoded
            };
            format!("/users/q?key={value}&page=1")
        })
        .collect();
    assert_eq!(targets_seen(&server), expected);
    assert_eq!(bodies.len(), HOSTILE.len());
}

#[test]
fn an_empty_key_is_refused_before_any_request() {
    let server = server();
    let client = client(server.template());

    let err = client.fetch_all_keys(["alice", "", "bob"]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert_eq!(err.key(), Some(""));
    assert_eq!(err.user_id(), None);
    assert_eq!(err.to_string(), "key \"\": invalid key (empty)");
    assert!(server.seen().is_empty(), "a request was sent");
}

#[test]
fn duplicate_keys_are_fetched_once() {
    let server = server();
    let client = client(server.template());
    let keys: Vec<String> = ["b", "a", "b", "c", "a"].map(String::from).into();

    let bodies: Bodies<String> = client.fetch_all_keys(&keys).unwrap();

    assert_eq!(server.seen().len(), 3);
    assert_eq!(bodies.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    let owned: Vec<(String, Vec<u8>)> = bodies.clone().into_iter().collect();
    assert_eq!(owned[0], ("a".to_owned(), b"/users/a".to_vec()));
    assert_eq!(&bodies["c"], b"/users/c");
    assert_eq!(format!("{bodies:?}"), "Bodies { len: 3, total_bytes: 24 }");
}

#[test]
fn every_kind_of_string_is_a_key_and_results_compare_by_contents() {
    let server = server();
    let client = client(server.template());
    let shared: Vec<Arc<str>> = vec!["x".into(), "y".into()];

    let from_strs = client.fetch_all_keys(["y", "x"]).unwrap();
    let from_arcs = client.fetch_all_keys(shared).unwrap();
    let from_boxes = client
        .fetch_all_keys(vec![Box::<str>::from("x"), "y".into()])
        .unwrap();

    assert_eq!(from_strs, from_arcs);
    assert_eq!(from_strs, from_boxes);
    assert_ne!(from_strs, client.fetch_all_keys(["x"]).unwrap());
}

#[test]
fn u64_ids_through_fetch_all_keys_are_the_same_as_through_fetch_all() {
    let server = server();
    let client = client(server.template());

    let keyed: Bodies = client.fetch_all_keys([3u64, 1, 2, 3]).unwrap();

    assert_eq!(keyed, client.fetch_all([1, 2, 3]).unwrap());
    assert_eq!(keyed.ids().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn the_first_key_that_fails_ends_the_call_and_names_the_key() {
    let server = server();
    let client = client(server.template());
    let mut keys: Vec<String> = (0..50).map(|n| format!("hang-{n}")).collect();
    keys.insert(2, "missing-é".to_owned());

    let started = Instant::now();
    let err = client.fetch_all_keys(&keys).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(err.key(), Some("missing-é"));
    assert_eq!(err.user_id(), None);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.to_string(), "key \"missing-é\": http status 404");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn a_cancel_ends_a_call_of_text_keys_at_once() {
    let server = server();
    let client = client(server.template());
    let cancel = CancelToken::new();
    thread::spawn({
        let cancel = cancel.clone();
        move || {
            thread::sleep(Duration::from_millis(200));
            cancel.cancel();
        }
    });

    let started = Instant::now();
    let err = client
        .fetch_all_keys_with(&cancel, ["hang-a", "hang-b", "c"])
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.key(), None);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_stream_of_text_keys_yields_each_key_once_with_failures_named() {
    let server = server();
    let client = client(server.template());
    let keys = ["a/b", "missing-1", "", "c", "a/b", ".."].map(String::from);

    let mut ok = BTreeSet::new();
    let mut failed = Vec::new();
    for item in client.fetch_iter_keys(keys) {
        match item {
            Ok((key, body)) => {
                let expected = client_side_target(&key);
                assert_eq!(String::from_utf8(body).unwrap(), expected);
                ok.insert(key);
            }
            Err(e) => {
                failed.push((e.key().unwrap().to_owned(), e.kind()));
            }
        }
    }

    assert_eq!(ok, BTreeSet::from(["a/b".into(), "c".into(), "..".into()]));
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        failed,
        [
            (String::new(), ErrorKind::InvalidKey),
            ("missing-1".into(), ErrorKind::Status),
        ]
    );
    // The empty key made no request; the repeated one, one.
    assert_eq!(server.seen().len(), 4);
}

/// The target a key of `a_stream_of_text_keys...` is fetched at.
fn client_side_target(key: &str) -> String {
    match key {
        "a/b" => "/users/a%2Fb".into(),
        ".." => "/users/%2E%2E".into(),
        other => format!("/users/{other}"),
    }
}

#[test]
fn a_cancelled_stream_of_text_keys_ends_with_one_error_without_a_key() {
    let server = server();
    let client = client(server.template());
    let cancel = CancelToken::new();
    let keys = (0..1000).map(|n| format!("hang-{n}"));

    let mut items = client.fetch_iter_keys_with(&cancel, keys);
    thread::spawn({
        let cancel = cancel.clone();
        move || {
            thread::sleep(Duration::from_millis(200));
            cancel.cancel();
        }
    });
    let last = items.next().expect("an item").unwrap_err();

    assert_eq!(last.kind(), ErrorKind::Cancelled);
    assert_eq!(last.key(), None);
    assert!(items.next().is_none());
    // Only the window's worth of keys was ever taken from the input.
    assert!(server.seen().len() <= 8, "{} requests", server.seen().len());
}
