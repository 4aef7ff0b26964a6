//! Against a downstream that enforces its limits strictly, the client never breaks
//! them, and still uses them fully.
//!
//! `FANOUT_STRICT_IDS` sets the number of IDs (default 120: 10 s at 10/s).

use std::time::{Duration, Instant};

use fanout::FanOutClient;
use testserver::{QuotaConfig, QuotaServer};

const RATE: f64 = 10.0;
const BURST: f64 = 20.0;
const CAP: usize = 8;
const LATENCY: Duration = Duration::from_millis(50);
/// What the downstream forgives: arrival jitter of a few milliseconds.
const TOLERANCE: Duration = Duration::from_millis(5);

#[test]
fn strict_downstream_sees_no_violation() {
    let ids: u64 = std::env::var("FANOUT_STRICT_IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    // The downstream's own token bucket, full at start.
    let server = QuotaServer::start(QuotaConfig {
        latency: LATENCY,
        tolerance: TOLERANCE,
        ..QuotaConfig::new(RATE, BURST)
    });
    let client = FanOutClient::builder(server.template())
        .rate_limit(RATE as u64, BURST as u64)
        .max_in_flight(CAP)
        .build()
        .unwrap();

    // Cold: no warm-up. Tokens are taken once a connection is ready, so requests on
    // new connections reach the server no later, against their tokens, than requests
    // on kept-alive ones.
    let started = Instant::now();
    let bodies = client.fetch_all((0..ids).collect::<Vec<_>>()).unwrap();
    let elapsed = started.elapsed();

    let ideal = Duration::from_secs_f64((ids as f64 - BURST) / RATE) + LATENCY;
    let ratio = elapsed.as_secs_f64() / ideal.as_secs_f64();
    eprintln!("{ids} ids in {elapsed:?}, ideal {ideal:?}, ratio {ratio:.4}");

    assert_eq!(bodies.len(), ids as usize);
    assert!(client.stats().peak_in_flight <= CAP as u64);
    assert_eq!(
        server.rejected(),
        0,
        "rate violations:\n{}",
        server.arrival_table()
    );
    assert!(
        server.server().peak_in_flight() <= CAP,
        "concurrency violation"
    );
    assert_eq!(
        server.request_count(),
        ids as usize,
        "no retries were needed"
    );
    // Never faster than the limits allow; the efficiency goal itself is measured by
    // the benchmark, so this only catches a gross slowdown.
    assert!(ratio >= 0.99, "faster than the limit: {ratio}");
    assert!(ratio < 1.10, "much slower than the limit: {ratio}");
}
