//! Dropping a client interrupts its requests in flight instead of waiting them out.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Reply, TestServer};
use fanout::{CancelToken, ErrorKind, FanOutClient};

#[test]
fn drop_does_not_wait_for_hanging_requests() {
    let server = TestServer::start(|_| Reply::Hang);
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(4)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // The call returns on cancel; its 4 requests stay blocked on the server.
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            // Give the workers time to send their requests.
            thread::sleep(Duration::from_millis(200));
            cancel.cancel();
        })
    };
    let err = client.fetch_all_with(&cancel, [1, 2, 3, 4]).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(common::eventually(Duration::from_secs(5), || server
        .request_count()
        == 4));

    let started = Instant::now();
    drop(client);
    let took = started.elapsed();

    assert!(took < Duration::from_secs(5), "drop took {took:?}");
    assert!(
        common::library_threads_gone(),
        "{:?}",
        common::thread_names()
    );
}
