//! Thread counts: fixed while a call runs, back to the start after many aborted calls
//! and a dropped client.
//!
//! The count is process-wide, so these tests take turns (`SERIAL`) and live in their
//! own test binary.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Reply, TestServer};
use fanout::{CancelToken, ErrorKind, FanOutClient};

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn threads_stay_at_pool_size_during_a_large_call() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(4)
        // A timeout that makes ureq's own resolver spawn a thread per request.
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Warm up: from now on the server has one thread per kept-alive connection.
    client.fetch_all(&(0..8).collect::<Vec<_>>()).unwrap();
    let before = common::thread_count();

    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let watcher = std::thread::spawn(move || {
        let mut most = 0;
        loop {
            most = most.max(common::thread_count());
            match stop_rx.recv_timeout(Duration::from_millis(1)) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return most,
            }
        }
    });
    let bodies = client.fetch_all(&(0..3000).collect::<Vec<_>>()).unwrap();
    drop(stop_tx);
    let most = watcher.join().unwrap();

    assert_eq!(bodies.len(), 3000);
    // +1 for the watcher itself: no thread per request, per lookup or per call.
    assert!(most <= before + 1, "threads grew from {before} to {most}");
    assert_eq!(common::library_thread_count(), 4);
}

#[test]
fn no_thread_leak_after_many_failed_and_cancelled_calls() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // ID 0 fails at once; every other ID hangs until the server goes.
    let server = TestServer::start(|id| match id {
        Some(0) => Reply::status(500),
        _ => Reply::Hang,
    });
    let (before, names_before) = (common::thread_count(), common::thread_names());
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
                let err = client.fetch_all(&[0, 1000 + round]).unwrap_err();
                assert!(
                    matches!(err.kind(), ErrorKind::Status | ErrorKind::Timeout),
                    "{err}"
                );
            } else {
                let cancel = CancelToken::new();
                cancel.cancel();
                let err = client.fetch_all_with(&cancel, &[round]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Cancelled);
            }
        }
        assert_eq!(common::library_thread_count(), 4);
        // Dropping interrupts the hanging requests and joins the workers.
    }
    assert_eq!(common::library_thread_count(), 0);
    // The server's own connection threads end once the client's sockets close.
    let back = common::eventually(Duration::from_secs(10), || common::thread_count() <= before);
    assert!(
        back,
        "threads: {} before {:?}, {} after {:?}",
        before,
        names_before,
        common::thread_count(),
        common::thread_names()
    );
}
