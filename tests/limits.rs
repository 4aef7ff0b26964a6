//! Inputs and answers at the edges: empty input, duplicates, big bodies, headers,
//! several callers at once.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient};
use testserver::{Reply, TestServer};

#[test]
fn empty_input_returns_an_empty_map_without_a_request() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template()).build().unwrap();

    let bodies = client.fetch_all(Vec::<u64>::new()).unwrap();

    assert!(bodies.is_empty());
    assert_eq!(server.request_count(), 0);
}

#[test]
fn duplicate_ids_are_fetched_once() {
    let server = TestServer::start(|id| Reply::ok(format!("body {}", id.unwrap())));
    let client = FanOutClient::builder(server.template()).build().unwrap();

    let bodies = client.fetch_all([3, 1, 3, 2, 1, 3]).unwrap();

    assert_eq!(bodies.len(), 3);
    assert_eq!(&bodies[3], b"body 3");
    let mut requested: Vec<u64> = server.arrivals().iter().filter_map(|a| a.id).collect();
    requested.sort();
    assert_eq!(requested, [1, 2, 3]);
}

#[test]
// Borrowed on purpose: each form a caller may hold must compile.
#[allow(clippy::needless_borrows_for_generic_args)]
fn ids_come_in_any_collection_owned_or_borrowed() {
    let server = TestServer::start(|id| Reply::ok(format!("body {}", id.unwrap())));
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .build()
        .unwrap();
    let ids: Vec<u64> = vec![1, 2];
    let slice: &[u64] = &ids;

    assert_eq!(client.fetch_all(&[1, 2]).unwrap().len(), 2);
    assert_eq!(client.fetch_all(slice).unwrap().len(), 2);
    assert_eq!(client.fetch_all(&ids).unwrap().len(), 2);
    assert_eq!(client.fetch_all(ids.iter()).unwrap().len(), 2);
    assert_eq!(client.fetch_all(1..=2).unwrap().len(), 2);
    assert_eq!(client.fetch_all(ids).unwrap().len(), 2);
    assert!(client.fetch_all(&[]).unwrap().is_empty());
}

#[test]
fn body_over_the_limit_fails_that_id() {
    let server = TestServer::start(|id| match id {
        Some(2) => Reply::ok(vec![b'x'; 1001]),
        _ => Reply::ok(vec![b'x'; 1000]),
    });
    let client = FanOutClient::builder(server.template())
        .max_body_bytes(1000)
        .build()
        .unwrap();

    assert_eq!(client.fetch_all([1]).unwrap()[1].len(), 1000);
    let err = client.fetch_all([1, 2]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(err.user_id(), Some(2));
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.attempts(), 1, "a too-large body is not retried");
}

#[test]
fn chunked_body_over_the_limit_fails_without_reading_it_all() {
    let mut server = mockito::Server::new();
    // No Content-Length: the limit must be enforced while reading.
    server
        .mock("GET", "/users/1")
        .with_chunked_body(|w| {
            let chunk = [b'x'; 64 * 1024];
            for _ in 0..64 {
                w.write_all(&chunk)?;
            }
            Ok(())
        })
        .create();
    let client = FanOutClient::builder(format!("{}/users/{{id}}", server.url()))
        .max_body_bytes(100 * 1024)
        .build()
        .unwrap();

    let err = client.fetch_all([1]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(err.to_string().contains("102400"), "{err}");
}

#[test]
fn configured_headers_are_sent() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("GET", "/users/1")
        .match_header("authorization", "Bearer secret")
        .match_header("x-team", "widgets")
        .match_header("user-agent", mockito::Matcher::Regex("^fanout/".into()))
        .with_body("ok")
        .create();
    let client = FanOutClient::builder(format!("{}/users/{{id}}", server.url()))
        .header("Authorization", "Bearer secret")
        .header("X-Team", "widgets")
        .build()
        .unwrap();

    client.fetch_all([1]).unwrap();

    mock.assert();
}

#[test]
fn four_callers_share_the_limits_and_get_their_own_results() {
    let server = TestServer::start(|id| {
        Reply::delayed(format!("{}", id.unwrap()), Duration::from_millis(20))
    });
    let client = Arc::new(
        FanOutClient::builder(server.template())
            .rate_limit(40, 10)
            .max_in_flight(3)
            .build()
            .unwrap(),
    );
    common::warm_up(&client, &server, 3, 40, 10);

    let started = Instant::now();
    let callers: Vec<_> = (0..4u64)
        .map(|caller| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                let ids: Vec<u64> = (caller * 100..caller * 100 + 15).collect();
                (ids.clone(), client.fetch_all(&ids).unwrap())
            })
        })
        .collect();
    for caller in callers {
        let (ids, bodies): (Vec<u64>, fanout::Bodies) = caller.join().unwrap();
        assert_eq!(bodies.len(), ids.len());
        for id in ids {
            assert_eq!(&bodies[id], id.to_string().as_bytes());
        }
    }
    let elapsed = started.elapsed();

    assert_eq!(server.request_count(), 60);
    assert_eq!(server.peak_in_flight(), 3);
    // No window of the four callers' requests together holds more than the bucket
    // allows: 10 at once, then 40/s.
    let excess = testserver::worst_window_excess(&testserver::arrival_times(&server), 40.0, 10.0);
    assert!(excess <= 0.0, "a window held {excess} requests too many");
    // 10 at once, then 50 more at 40/s: 1.25 s at the least, across all callers.
    assert!(
        elapsed >= Duration::from_millis(1200),
        "too fast: {elapsed:?}"
    );
}

#[test]
fn streaming_yields_each_id_and_keeps_going_past_a_failure() {
    let server = TestServer::start(|id| match id {
        Some(4) => Reply::status(404),
        id => Reply::ok(format!("{}", id.unwrap())),
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .build()
        .unwrap();

    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for item in client.fetch_iter(1..=50) {
        match item {
            Ok((id, body)) => {
                assert_eq!(body, id.to_string().as_bytes());
                ok.push(id);
            }
            Err(e) => failed.push(e.user_id()),
        }
    }
    ok.sort();

    assert_eq!(failed, [Some(4)]);
    assert_eq!(ok.len(), 49);
    assert!(!ok.contains(&4));
}

#[test]
fn dropping_a_stream_early_stops_its_requests() {
    let server = TestServer::start(|id| {
        Reply::delayed(format!("{}", id.unwrap()), Duration::from_millis(10))
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(2)
        .build()
        .unwrap();

    let first: Vec<_> = client.fetch_iter(1..=1_000_000).take(3).collect();
    assert_eq!(first.len(), 3);

    // Only the window of queued jobs was ever requested, not a million, and nothing
    // more after the drop.
    let sent = client.stats().requests_sent;
    assert!(sent <= 10, "{sent} requests after dropping the stream");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(client.stats().requests_sent, sent);
    assert!(server.request_count() <= 10);
}

#[test]
fn a_wait_for_a_token_does_not_count_against_the_attempt_timeout() {
    // Tokens come a second apart; each attempt may take 300 ms. The token is taken at
    // the wire and the attempt's clock starts there, so waiting is not timing out.
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template())
        .rate_limit(1, 1)
        .timeout(Duration::from_millis(300))
        .max_attempts(1)
        .build()
        .unwrap();
    let started = Instant::now();
    let bodies = client.fetch_all([1, 2, 3]).expect("no attempt timed out");
    assert_eq!(bodies.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let stats = client.stats();
    assert!(stats.token_wait >= Duration::from_millis(1900), "{stats:?}");
    assert_eq!(stats.in_flight, 0);
}

#[test]
fn the_attempt_timeout_still_bounds_a_slow_answer_after_a_token_wait() {
    // The second request waits a second for its token, then the server never answers:
    // it times out 300 ms after it went, not 300 ms after the call began.
    let server = TestServer::start(|id| match id {
        Some(2) => Reply::Hang,
        _ => Reply::ok("x"),
    });
    let client = FanOutClient::builder(server.template())
        .rate_limit(1, 1)
        .timeout(Duration::from_millis(300))
        .max_attempts(1)
        .build()
        .unwrap();
    client.fetch_all([1]).unwrap();
    let started = Instant::now();
    let err = client.fetch_all([2]).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // About 1 s for the token, then 300 ms (rounded up by at most 1/32).
    assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
