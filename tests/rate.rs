//! The token bucket as the server sees it: burst at once, then the rate, never more.

mod common;

use std::time::{Duration, Instant};

use fanout::FanOutClient;
use testserver::{Reply, TestServer};

#[test]
fn burst_goes_out_at_once_then_the_rate_holds() {
    let server = TestServer::start(|id| Reply::ok(format!("{id:?}")));
    let client = FanOutClient::builder(server.template())
        .rate_limit(10, 20)
        .build()
        .unwrap();
    common::warm_up(&client, &server, 8, 10, 20);
    let ids: Vec<u64> = (1..=40).collect();

    let started = Instant::now();
    let bodies = client.fetch_all(&ids).unwrap();
    let elapsed = started.elapsed();

    assert_eq!(bodies.len(), 40);
    let times = testserver::arrival_times(&server);
    assert_eq!(times.len(), 40);

    // The first 20 need no waiting; on a loaded machine give them half a second.
    let burst_span = times[19].duration_since(times[0]);
    assert!(
        burst_span < Duration::from_millis(500),
        "burst took {burst_span:?}"
    );

    let excess = testserver::worst_window_excess(&times, 10.0, 20.0);
    assert!(excess <= 0.0, "a window held {excess} requests too many");

    // 20 more at 10/s take 2 s: never less, and not much more.
    assert!(
        elapsed >= Duration::from_millis(1950),
        "too fast: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(3500),
        "too slow: {elapsed:?}"
    );
}

#[test]
fn retries_take_tokens_too() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    // Every ID fails once with 503, then succeeds: 10 IDs make 20 requests (the
    // warm-up's IDs are answered the same way).
    let failed_once = Mutex::new(HashSet::new());
    let server = TestServer::start(move |id| {
        if failed_once.lock().unwrap().insert(id) {
            Reply::status(503)
        } else {
            Reply::ok("ok")
        }
    });
    let client = FanOutClient::builder(server.template())
        .rate_limit(20, 5)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    common::warm_up(&client, &server, 8, 20, 5);

    let started = Instant::now();
    client.fetch_all((1..=10).collect::<Vec<_>>()).unwrap();
    let elapsed = started.elapsed();

    assert_eq!(server.request_count(), 20);
    // 5 at once, then 15 more at 20/s: at least 0.75 s.
    assert!(
        elapsed >= Duration::from_millis(700),
        "too fast: {elapsed:?}"
    );
    let times = testserver::arrival_times(&server);
    let excess = testserver::worst_window_excess(&times, 20.0, 5.0);
    assert!(excess <= 0.0, "a window held {excess} requests too many");
}
