//! Dropping a client interrupts its requests in flight instead of waiting them out.

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{CancelToken, ErrorKind, FanOutClient};
use testserver::{Reply, TestServer};

/// Far above what a drop takes on a loaded machine, far below the attempt timeout that
/// a drop would otherwise wait out.
const DROP_BOUND: Duration = Duration::from_secs(5);

/// The tests count the library's threads, which are process-wide: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn drop_does_not_wait_for_hanging_requests() {
    let _serial = serial();
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
    assert!(testserver::eventually(Duration::from_secs(5), || server
        .request_count()
        == 4));

    let started = Instant::now();
    drop(client);
    let took = started.elapsed();

    assert!(took < DROP_BOUND, "drop took {took:?}");
    assert!(
        testserver::library_threads_gone(),
        "{:?}",
        testserver::thread_names()
    );
}

#[test]
fn drop_interrupts_a_request_of_a_call_never_ended() {
    let _serial = serial();
    // ID 1 answers, ID 2 hangs. The stream that asked for them is read once on another
    // thread, then forgotten rather than dropped: its call is never aborted, and ID 2's
    // request is still waiting on the server when the client goes.
    let server = TestServer::start(|id| match id {
        Some(1) => Reply::ok("1"),
        _ => Reply::Hang,
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(2)
        .timeout(Duration::from_secs(20))
        .max_attempts(1)
        .build()
        .unwrap();

    thread::scope(|scope| {
        scope.spawn(|| {
            let mut results = client.fetch_iter([1, 2]);
            let (id, _) = results.next().expect("one result").expect("ID 1 answers");
            assert_eq!(id, 1);
            std::mem::forget(results);
        });
    });
    assert!(testserver::eventually(Duration::from_secs(5), || server
        .request_count()
        == 2));
    assert_eq!(client.stats().in_flight, 1, "ID 2 is waiting on the server");

    let started = Instant::now();
    drop(client);
    let took = started.elapsed();

    assert!(took < DROP_BOUND, "drop took {took:?}");
    assert!(
        testserver::library_threads_gone(),
        "{:?}",
        testserver::thread_names()
    );
}
