//! Thread counts: fixed while a call runs.
//!
//! The count is process-wide, so this test has a test binary to itself: a second test
//! would add its own thread to the count at a moment of the harness's choosing.
//! `thread_leak.rs` is the other half.

use std::time::Duration;

use fanout::FanOutClient;
use testserver::{Reply, TestServer};

#[test]
fn threads_stay_at_pool_size_during_a_large_call() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(4)
        // A timeout that makes ureq's own resolver spawn a thread per request.
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Warm up: from now on the server has one thread per kept-alive connection.
    client.fetch_all((0..8).collect::<Vec<_>>()).unwrap();
    let before = testserver::thread_count();

    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let watcher = std::thread::spawn(move || {
        let mut most = 0;
        loop {
            most = most.max(testserver::thread_count());
            match stop_rx.recv_timeout(Duration::from_millis(1)) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return most,
            }
        }
    });
    let bodies = client.fetch_all((0..3000).collect::<Vec<_>>()).unwrap();
    drop(stop_tx);
    let most = watcher.join().unwrap();

    assert_eq!(bodies.len(), 3000);
    // +1 for the watcher itself: no thread per request, per lookup or per call.
    assert!(most <= before + 1, "threads grew from {before} to {most}");
    assert_eq!(testserver::library_thread_count(), 4);
}
