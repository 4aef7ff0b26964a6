//! Thread counts: back to the start after many aborted calls and a dropped client.
//!
//! The count is process-wide, so this test has a test binary to itself: a second test
//! would add its own thread to the count at a moment of the harness's choosing.

use std::time::Duration;

use fanout::{CancelToken, ErrorKind, FanOutClient};
use testserver::{Reply, TestServer};

#[test]
fn no_thread_leak_after_many_failed_and_cancelled_calls() {
    // ID 0 fails at once; every other ID hangs until the server goes.
    let server = TestServer::start(|id| match id {
        Some(0) => Reply::status(500),
        _ => Reply::Hang,
    });
    let (before, names_before) = (testserver::thread_count(), testserver::thread_names());
    {
        let client = FanOutClient::builder(server.template())
            .no_rate_limit()
            .max_in_flight(4)
            .timeout(Duration::from_millis(300))
            .max_attempts(1)
            .build()
            .unwrap();
        for round in 0..200u64 {
            if round % 2 == 0 {
                let err = client.fetch_all([0, 1000 + round]).unwrap_err();
                assert!(
                    matches!(err.kind(), ErrorKind::Status | ErrorKind::Timeout),
                    "{err}"
                );
            } else {
                let cancel = CancelToken::new();
                cancel.cancel();
                let err = client.fetch_all_with(&cancel, [round]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Cancelled);
            }
        }
        assert_eq!(testserver::library_thread_count(), 4);
        // Dropping interrupts the hanging requests and joins the workers.
    }
    assert!(
        testserver::library_threads_gone(),
        "{:?}",
        testserver::thread_names()
    );
    // The server's own connection threads end once the client's sockets close.
    let back = testserver::eventually(Duration::from_secs(10), || {
        testserver::thread_count() <= before
    });
    assert!(
        back,
        "threads: {} before {:?}, {} after {:?}",
        before,
        names_before,
        testserver::thread_count(),
        testserver::thread_names()
    );
}
