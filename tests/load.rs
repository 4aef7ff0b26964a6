//! Many callers and many cancellations on one client: the shared limits hold, each
//! caller gets exactly its own results, and nothing leaks or sticks.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{CancelToken, FanOutClient};
use testserver::{Reply, TestServer};

/// The tests take turns: one counts the process's library threads, and both measure
/// time.
static SERIAL: Mutex<()> = Mutex::new(());

const RATE: u64 = 400;
const BURST: u64 = 40;
const CAP: usize = 8;

#[test]
fn sixty_four_callers_share_one_cap_and_one_rate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server =
        TestServer::start(|id| Reply::delayed(id.unwrap().to_string(), Duration::from_millis(2)));
    let client = Arc::new(
        FanOutClient::builder(server.template())
            .rate_limit(RATE, BURST)
            .max_in_flight(CAP)
            .build()
            .unwrap(),
    );
    common::warm_up(&client, &server, CAP as u64, RATE, BURST);

    let started = Instant::now();
    let callers: Vec<_> = (0..64u64)
        .map(|caller| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                let ids: Vec<u64> = (caller * 1000..caller * 1000 + 10).collect();
                let bodies = client.fetch_all(&ids).unwrap();
                assert_eq!(bodies.len(), ids.len());
                for id in ids {
                    assert_eq!(&bodies[id], id.to_string().as_bytes(), "caller {caller}");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    let elapsed = started.elapsed();

    assert_eq!(server.request_count(), 640);
    assert!(
        server.peak_in_flight() <= CAP,
        "peak {}",
        server.peak_in_flight()
    );
    // 40 at once, then 600 more at 400/s: 1.5 s at the least.
    assert!(
        elapsed >= Duration::from_millis(1450),
        "too fast: {elapsed:?}"
    );
    let mut times: Vec<Instant> = server.arrivals().iter().map(|a| a.at).collect();
    times.sort();
    let jitter = Duration::from_millis(15);
    for (i, first) in times.iter().enumerate() {
        for (j, last) in times.iter().enumerate().skip(i) {
            let window = last.duration_since(*first) + jitter;
            let allowed = BURST as f64 + RATE as f64 * window.as_secs_f64();
            assert!(
                (j - i + 1) as f64 <= allowed,
                "{} arrivals in {window:?}",
                j - i + 1
            );
        }
    }
}

#[test]
fn a_thousand_calls_cancelled_at_random_moments_leave_the_client_whole() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = TestServer::start(|id| {
        // Answers take 0 to 3 ms, so cancels land before, during and after requests.
        Reply::delayed("x", Duration::from_micros(id.unwrap_or(0) % 4 * 1000))
    });
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(4)
        .build()
        .unwrap();
    let (to_cancel, cancels) = crossbeam_channel::unbounded::<(CancelToken, Duration)>();
    let canceller = thread::spawn(move || {
        for (token, after) in cancels {
            let _ = crossbeam_channel::after(after).recv();
            token.cancel();
        }
    });

    let mut cancelled = 0;
    for call in 0..1000u64 {
        let moment = Duration::from_micros(fastrand::u64(0..4000));
        // Half the calls are cancelled from another thread, half by their deadline.
        let token = if call % 2 == 0 {
            let token = CancelToken::new();
            to_cancel.send((token.clone(), moment)).unwrap();
            token
        } else {
            CancelToken::with_timeout(moment)
        };
        let ids: Vec<u64> = (call * 10..call * 10 + 6).collect();
        match client.fetch_all_with(&token, &ids) {
            Ok(bodies) => assert_eq!(bodies.len(), 6),
            Err(e) => {
                assert!(e.is_cancellation(), "{e}");
                cancelled += 1;
            }
        }
        // The canceller may still hold this token; wait for it before the next call
        // so that cancels land where they were aimed.
        if call % 2 == 0 {
            let cancelled_by_now = || token.is_cancelled();
            assert!(testserver::eventually(
                Duration::from_secs(5),
                cancelled_by_now
            ));
        }
    }
    drop(to_cancel);
    canceller.join().unwrap();

    assert!(
        cancelled > 100,
        "only {cancelled} of 1000 calls were cut short"
    );
    assert!(testserver::eventually(Duration::from_secs(2), || client
        .stats()
        .in_flight
        == 0));
    assert_eq!(testserver::library_thread_count(), 4);
    let bodies = client.fetch_all((0..100).collect::<Vec<_>>()).unwrap();
    assert_eq!(bodies.len(), 100);
}
