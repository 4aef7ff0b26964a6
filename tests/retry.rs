//! Which failures are retried, how often, and how Retry-After is obeyed.

use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient};

fn client(server: &mockito::Server) -> FanOutClient {
    FanOutClient::builder(format!("{}/users/{{id}}", server.url()))
        .no_rate_limit()
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap()
}

#[test]
fn transient_statuses_are_retried_until_success() {
    for status in [429, 502, 503, 504] {
        let mut server = mockito::Server::new();
        // mockito answers with the first mock that still expects hits.
        let failing = server
            .mock("GET", "/users/7")
            .with_status(status)
            .expect(2)
            .create();
        let ok = server
            .mock("GET", "/users/7")
            .with_body("widgets")
            .expect(1)
            .create();

        let bodies = client(&server).fetch_all([7]).unwrap();

        assert_eq!(&bodies[7], b"widgets", "status {status}");
        failing.assert();
        ok.assert();
    }
}

#[test]
fn other_statuses_fail_at_once() {
    for status in [400, 401, 403, 404, 500, 501] {
        let mut server = mockito::Server::new();
        let mock = server
            .mock("GET", "/users/7")
            .with_status(status)
            .expect(1)
            .create();

        let err = client(&server).fetch_all([7]).unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Status);
        assert_eq!(err.status(), Some(status as u16));
        assert_eq!(err.attempts(), 1);
        mock.assert();
    }
}

#[test]
fn max_attempts_one_means_no_retry() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("GET", "/users/1")
        .with_status(503)
        .expect(1)
        .create();
    let client = FanOutClient::builder(format!("{}/users/{{id}}", server.url()))
        .max_attempts(1)
        .build()
        .unwrap();

    let err = client.fetch_all([1]).unwrap_err();

    assert_eq!(err.status(), Some(503));
    assert_eq!(err.attempts(), 1);
    mock.assert();
}

#[test]
fn retry_after_is_waited_for() {
    let mut server = mockito::Server::new();
    let limited = server
        .mock("GET", "/users/1")
        .with_status(429)
        .with_header("retry-after", "1")
        .expect(1)
        .create();
    let ok = server.mock("GET", "/users/1").with_body("ok").create();

    let started = Instant::now();
    let bodies = client(&server).fetch_all([1]).unwrap();
    let elapsed = started.elapsed();

    assert_eq!(&bodies[1], b"ok");
    // Backoff alone would be at most 10 ms here.
    assert!(
        elapsed >= Duration::from_millis(950),
        "retried after {elapsed:?}"
    );
    limited.assert();
    ok.assert();
}

#[test]
fn retry_after_beyond_the_cap_fails_at_once() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("GET", "/users/1")
        .with_status(503)
        .with_header("retry-after", "120")
        .expect(1)
        .create();
    let client = FanOutClient::builder(format!("{}/users/{{id}}", server.url()))
        .max_retry_after(Duration::from_secs(5))
        .build()
        .unwrap();

    let started = Instant::now();
    let err = client.fetch_all([1]).unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.attempts(), 1);
    mock.assert();
}

#[test]
fn connection_refused_is_retried_then_reported() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = FanOutClient::builder(format!("http://127.0.0.1:{port}/users/{{id}}"))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();

    let err = client.fetch_all([9]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.user_id(), Some(9));
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.status(), None);
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(client.stats().retries, 2);
}
