//! The caller's cancel and deadline wake every wait at once.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::{CancelToken, ErrorKind, FanOutClient, Rate};
use testserver::{Reply, TestServer};

/// What the API promises: a cancel wakes the caller at once. The wake-up itself takes
/// microseconds; on a loaded 2-core machine most take a few milliseconds.
const WAKE_PROMISE: Duration = Duration::from_millis(50);

/// Generous for a loaded 2-core machine, for the one wake-up in several that waited
/// for a CPU.
const WAKE_MARGIN: Duration = Duration::from_millis(250);

fn slow_bucket_client(server: &TestServer) -> FanOutClient {
    // One token now, the next a second later: the call spends its time waiting.
    FanOutClient::builder(server.template())
        .rate_limit(1, 1)
        .build()
        .unwrap()
}

/// How long after `cancel()` the call returned, in each of `rounds` calls of one ID
/// each. `waiting(round)` returns once that round's call is waiting.
fn cancel_lags(client: &Arc<FanOutClient>, rounds: u64, waiting: impl Fn(u64)) -> Vec<Duration> {
    let mut lags = Vec::new();
    for round in 1..=rounds {
        let cancel = CancelToken::new();
        let (returned_tx, returned) = crossbeam_channel::bounded(1);
        // Not scoped: a call that never returns fails the test instead of hanging it.
        thread::spawn({
            let (client, cancel) = (Arc::clone(client), cancel.clone());
            move || {
                let result = client.fetch_all_with(&cancel, [round]);
                let _ = returned_tx.send((Instant::now(), result));
            }
        });
        waiting(round);
        let cancelled = Instant::now();
        cancel.cancel();
        let (at, result) = returned
            .recv_timeout(Duration::from_secs(5))
            .expect("the call returned after cancel");
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
        lags.push(at.saturating_duration_since(cancelled));
    }
    lags.sort();
    eprintln!("cancel to return, {rounds} calls, sorted: {lags:?}");
    lags
}

/// `lags` (sorted) meet the promise: their median within [`WAKE_PROMISE`], and none
/// beyond [`WAKE_MARGIN`].
fn assert_woken_at_once(lags: &[Duration]) {
    let median = lags[lags.len() / 2];
    assert!(median < WAKE_PROMISE, "median {median:?} of {lags:?}");
    let worst = lags[lags.len() - 1];
    assert!(worst < WAKE_MARGIN, "worst {worst:?} of {lags:?}");
}

#[test]
fn cancel_from_another_thread_wakes_a_caller_waiting_for_tokens() {
    let server = TestServer::start(|_| Reply::ok("x"));
    // One token, and the next 100 s later: every call below waits for it.
    let client = Arc::new(
        FanOutClient::builder(server.template())
            .rate(Rate::new(1, Duration::from_secs(100)).unwrap(), 1)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    client.fetch_all([0]).unwrap();

    let lags = cancel_lags(&client, 7, |round| {
        // The attempt has started (on the connection kept from ID 0), and waits
        // for its token. With one worker, that shows the round before let it go.
        assert!(testserver::eventually(Duration::from_secs(5), || client
            .stats()
            .requests_sent
            == 1 + round));
        thread::sleep(Duration::from_millis(20));
    });

    assert_woken_at_once(&lags);
    assert_eq!(server.request_count(), 1);
    assert_eq!(client.stats().in_flight, 0);
}

#[test]
fn cancel_from_another_thread_wakes_a_caller_whose_request_hangs() {
    let server = TestServer::start(|_| Reply::Hang);
    let client = Arc::new(
        FanOutClient::builder(server.template())
            .no_rate_limit()
            .max_in_flight(1)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    );

    // One worker: each round's request reaching the server shows that the round
    // before freed it, its socket shut down under it.
    let lags = cancel_lags(&client, 7, |round| {
        assert_eq!(
            server.next_arrival(Duration::from_secs(5)),
            Some(Some(round)),
            "the request reached the server"
        );
        // Let it block on the answer.
        thread::sleep(Duration::from_millis(20));
    });

    assert_woken_at_once(&lags);
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
fn a_token_wait_past_the_deadline_fails_at_once() {
    let server = TestServer::start(|_| Reply::ok("x"));
    // One token, and the next 100 s later: far past each call's deadline below.
    let client = FanOutClient::builder(server.template())
        .rate(Rate::new(1, Duration::from_secs(100)).unwrap(), 1)
        .max_in_flight(1)
        .build()
        .unwrap();
    client.fetch_all([0]).unwrap();

    let mut took = Vec::new();
    for id in 1..=7 {
        let deadline = CancelToken::with_timeout(Duration::from_secs(3));
        let started = Instant::now();
        let err = client.fetch_all_with(&deadline, [id]).unwrap_err();
        took.push(started.elapsed());
        assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
        assert_eq!(err.user_id(), None, "the deadline ends the call");
    }
    took.sort();
    eprintln!("refused token waits, sorted: {took:?}");

    // At once, not at the deadline 3 s away.
    assert_woken_at_once(&took);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn an_attempts_timeout_is_cut_to_the_deadline() {
    // ID 2 is answered 2 s late, the attempt may take 10 s, the deadline is sooner.
    let server = TestServer::start(|id| match id {
        Some(2) => Reply::delayed("late", Duration::from_secs(2)),
        _ => Reply::ok("x"),
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(2)
        .timeout(Duration::from_secs(10))
        .max_attempts(1)
        .build()
        .unwrap();
    let deadline_in = Duration::from_millis(500);
    let started = Instant::now();
    let deadline = CancelToken::with_timeout(deadline_in);

    let mut results = client.fetch_iter_with(&deadline, [1, 2]);
    let (id, _) = results.next().expect("a result").expect("ID 1 answers");
    assert_eq!(id, 1);
    assert!(
        testserver::eventually(Duration::from_secs(5), || server.request_count() == 2),
        "ID 2's request reached the server"
    );
    // The caller is not waiting on the call now, so nothing of its own ends ID 2's
    // request at the deadline: only the request's timeout, cut to the deadline, can.
    assert!(testserver::eventually(Duration::from_secs(5), || client
        .stats()
        .in_flight
        == 0));
    let ended = started.elapsed();
    eprintln!("ID 2's request ended {ended:?} after the call began, deadline {deadline_in:?}");

    assert!(ended >= deadline_in, "before the deadline: {ended:?}");
    assert!(ended < deadline_in + WAKE_MARGIN, "took {ended:?}");
    let err = results.next().expect("one last item").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(err.user_id(), None);
    assert!(results.next().is_none());
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

#[test]
fn cancel_ends_a_tls_handshake_that_hangs() {
    // The server takes the connection, reads the client's hello and never answers it:
    // the worker waits in the handshake, before any request is written.
    let (hello_tx, hello) = crossbeam_channel::unbounded();
    let (closed_tx, closed) = crossbeam_channel::unbounded();
    let base = testserver::raw_server(move |mut stream| {
        let mut first = [0u8; 1];
        if std::io::Read::read_exact(&mut stream, &mut first).is_ok() {
            let _ = hello_tx.send(());
        }
        // Read until the client lets go, answering nothing.
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
        let _ = closed_tx.send(Instant::now());
    });
    let client = FanOutClient::builder(format!(
        "{}/users/{{id}}",
        base.replace("http://", "https://")
    ))
    .no_rate_limit()
    .max_in_flight(1)
    .timeout(Duration::from_secs(20))
    .max_attempts(1)
    .tls_env_roots(false)
    .build()
    .unwrap();

    let cancel = CancelToken::new();
    let cancelled = thread::scope(|scope| {
        let call = scope.spawn(|| client.fetch_all_with(&cancel, [1]));
        hello
            .recv_timeout(Duration::from_secs(5))
            .expect("the worker sent its hello");
        cancel.cancel();
        let cancelled = Instant::now();
        let err = call.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        cancelled
    });

    // The worker's socket is shut down by the cancel, not left to the 20 s timeout
    // or to the client's drop: the client is still alive here.
    let closed = closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the connection was closed");
    let lag = closed.saturating_duration_since(cancelled);
    assert!(lag < WAKE_MARGIN * 4, "closed {lag:?} after the cancel");
    drop(client);
}
