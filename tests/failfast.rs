//! The first ID that fails for good ends the call at once.

use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient};
use testserver::{Reply, TestServer};

#[test]
fn first_failure_returns_at_once_and_stops_new_requests() {
    // ID 5 fails; every other ID hangs (for 30 s, or until the server goes).
    let server = TestServer::start(|id| match id {
        Some(5) => Reply::status(500),
        _ => Reply::Hang,
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(8)
        .build()
        .unwrap();

    let started = Instant::now();
    let err = client.fetch_all((1..=100).collect::<Vec<_>>()).unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(err.user_id(), Some(5));
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.attempts(), 1, "500 is not retried");
    // The hang lasts 30 s and the attempt timeout is 10 s.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    // No request starts after the failure: the client's count stands still. (The
    // server's own count may still grow a little, as it reads requests that were sent
    // before the failure.)
    let sent = client.stats().requests_sent;
    assert!(sent <= 8, "{sent} requests for 8 workers");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        client.stats().requests_sent,
        sent,
        "requests started after the failure"
    );
    assert!(server.request_count() <= 8);
}

#[test]
fn failure_after_retries_reports_the_attempts() {
    let server = TestServer::start(|id| match id {
        Some(3) => Reply::status(503),
        _ => Reply::ok("fine"),
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_attempts(4)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();

    let err = client.fetch_all([1, 2, 3]).unwrap_err();

    assert_eq!(err.user_id(), Some(3));
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.attempts(), 4);
    assert_eq!(
        err.to_string(),
        "user 3: http status 503 (after 4 attempts)"
    );
    let for_3 = server.arrivals().iter().filter(|a| a.id == Some(3)).count();
    assert_eq!(for_3, 4);
}

#[test]
fn client_still_works_after_a_failed_call() {
    let server = TestServer::start(|id| match id {
        Some(0) => Reply::status(404),
        id => Reply::ok(format!("{}", id.unwrap())),
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .build()
        .unwrap();
    let err = client.fetch_all([0, 1, 2]).unwrap_err();
    assert_eq!(err.status(), Some(404));

    let bodies = client.fetch_all([1, 2, 3]).unwrap();
    assert_eq!(&bodies[2], b"2");
    assert_eq!(client.stats().failed, 1);
}
