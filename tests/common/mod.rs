//! A warm-up for the timing tests that measure the client's pacing. The test servers
//! are the `testserver` crate's.

use std::thread;
use std::time::Duration;

use testserver::TestServer;

/// Opens `connections` kept-alive connections from `client` to `server`, then waits
/// until a bucket of `burst` tokens at `per_second` has refilled, and forgets the
/// warm-up's arrivals.
///
/// Timing tests start warm: on a cold start the first requests wait for connection
/// setup, so they reach the server late and compress the first window, which measures
/// the machine, not the client's pacing.
pub fn warm_up(
    client: &fanout::FanOutClient,
    server: &TestServer,
    connections: u64,
    per_second: u64,
    burst: u64,
) {
    let ids: Vec<u64> = (u64::MAX - connections..u64::MAX).collect();
    client.fetch_all(&ids).expect("warm-up");
    let refill = Duration::from_secs_f64(connections.min(burst) as f64 / per_second as f64);
    thread::sleep(refill + Duration::from_millis(300));
    server.forget_arrivals();
}
