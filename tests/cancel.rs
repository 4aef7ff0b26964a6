//! The caller's cancel and deadline wake every wait at once.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Reply, TestServer};
use fanout::{CancelToken, ErrorKind, FanOutClient};

/// Generous for a loaded 2-core machine; the wake-up itself takes microseconds.
const WAKE_MARGIN: Duration = Duration::from_millis(250);

fn slow_bucket_client(server: &TestServer) -> FanOutClient {
    // One token now, the next a second later: the call spends its time waiting.
    FanOutClient::builder(server.template())
        .rate_limit(1, 1)
        .build()
        .unwrap()
}

#[test]
fn cancel_from_another_thread_wakes_a_caller_waiting_for_tokens() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = slow_bucket_client(&server);
    let cancel = CancelToken::new();

    let canceller = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            cancel.cancel();
            Instant::now()
        })
    };
    let err = client
        .fetch_all_with(&cancel, (1..=10).collect::<Vec<_>>())
        .unwrap_err();
    let returned = Instant::now();
    let cancelled = canceller.join().unwrap();

    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.user_id(), None);
    let lag = returned.saturating_duration_since(cancelled);
    assert!(lag < WAKE_MARGIN, "returned {lag:?} after cancel");
    // The workers were woken too: they sent nothing after the first token.
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.request_count(), 1);
}

#[test]
fn deadline_ends_a_call_waiting_for_tokens() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = slow_bucket_client(&server);
    let cancel = CancelToken::with_timeout(Duration::from_millis(300));

    let started = Instant::now();
    let err = client
        .fetch_all_with(&cancel, (1..=10).collect::<Vec<_>>())
        .unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(
        err.user_id(),
        None,
        "the deadline ends the call, not one ID"
    );
    // A token a second away cannot come before a 300 ms deadline: no need to wait.
    assert!(
        elapsed < Duration::from_millis(300) + WAKE_MARGIN,
        "took {elapsed:?}"
    );
}

#[test]
fn deadline_ends_a_call_whose_requests_hang() {
    let server = TestServer::start(|_| Reply::Hang);
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .build()
        .unwrap();
    let cancel = CancelToken::with_timeout(Duration::from_millis(200));

    let started = Instant::now();
    let err = client.fetch_all_with(&cancel, [1, 2, 3]).unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert!(elapsed >= Duration::from_millis(190), "early: {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(200) + WAKE_MARGIN,
        "took {elapsed:?}"
    );
}

#[test]
fn an_already_cancelled_token_sends_nothing() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template()).build().unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();

    let err = client.fetch_all_with(&cancel, [1, 2, 3]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Cancelled);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_stream_ends_with_one_deadline_error() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = slow_bucket_client(&server);
    let cancel = CancelToken::with_timeout(Duration::from_millis(300));

    let items: Vec<_> = client.fetch_iter_with(&cancel, 1..=10).collect();

    // At most the one ID the bucket had a token for, then one error for the whole
    // call, as soon as a worker knows its next token comes too late.
    let (last, before) = items.split_last().expect("a last item");
    assert!(
        before.len() <= 1 && before.iter().all(Result::is_ok),
        "{items:?}"
    );
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(err.user_id(), None);
}

#[test]
fn a_deadline_during_a_retry_wait_keeps_what_was_being_retried() {
    // A 502 is retried after exactly its Retry-After: the deadline ends the wait.
    let server = TestServer::start(|_| Reply::status(502).with_header("retry-after", 5));
    let client = FanOutClient::builder(server.template()).build().unwrap();
    let deadline = CancelToken::with_timeout(Duration::from_millis(300));

    let err = client.fetch_all_with(&deadline, [7]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    let for_7 = std::error::Error::source(&err).expect("the ID that ran out of time");
    assert_eq!(
        for_7.to_string(),
        "user 7: deadline exceeded (last attempt: http status 502)"
    );
}
