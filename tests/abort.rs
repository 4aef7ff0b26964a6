//! A call that ends takes its requests in flight with it, so the workers carrying them
//! are free for other calls at once instead of waiting out a hanging server.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::{CancelToken, ErrorKind, FanOutClient};
use testserver::{Reply, TestServer};

/// IDs below 100 hang, except 1 which fails after 300 ms (by when the others are
/// surely in flight); 100 and up answer at once.
fn server() -> TestServer {
    TestServer::start(|id| match id {
        Some(1) => Reply::delayed(Vec::new(), Duration::from_millis(300)).with_status(500),
        Some(id) if id < 100 => Reply::Hang,
        _ => Reply::ok("ok"),
    })
}

fn client(server: &TestServer) -> FanOutClient {
    FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(4)
        // Without the abort, each hanging request would hold its worker this long.
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[test]
fn a_failed_call_frees_its_workers_at_once() {
    let server = server();
    let client = client(&server);
    // The hanging IDs go first so that all 4 workers are stuck when 1 fails.
    let err = client.fetch_all([2, 3, 4, 1]).unwrap_err();
    assert_eq!(err.user_id(), Some(1));
    assert_eq!(server.request_count(), 4);
    let freed = || client.stats().in_flight == 0;
    assert!(
        testserver::eventually(Duration::from_secs(2), freed),
        "{:?}",
        client.stats()
    );

    let started = Instant::now();
    let bodies = client.fetch_all([100, 101, 102, 103]).unwrap();
    let took = started.elapsed();

    assert_eq!(bodies.len(), 4);
    assert!(took < Duration::from_secs(2), "next call waited {took:?}");
}

#[test]
fn a_cancelled_call_frees_its_workers_at_once() {
    let server = Arc::new(server());
    let client = client(&server);
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        let server = Arc::clone(&server);
        thread::spawn(move || {
            // Cancel once all 4 workers are blocked on the server.
            let all_sent = || server.request_count() == 4;
            assert!(testserver::eventually(Duration::from_secs(5), all_sent));
            cancel.cancel();
        })
    };
    let err = client.fetch_all_with(&cancel, [2, 3, 4, 5]).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Cancelled);

    let started = Instant::now();
    let bodies = client.fetch_all([100, 101, 102, 103]).unwrap();
    let took = started.elapsed();

    assert_eq!(bodies.len(), 4);
    assert!(took < Duration::from_secs(2), "next call waited {took:?}");
    assert_eq!(client.stats().in_flight, 0);
}
