//! Arrival windows held against a token bucket: how a test checks a client's pacing
//! from the arrival times a server saw.

use std::time::{Duration, Instant};

use crate::server::Server;

/// Arrival jitter allowed on top of a token bucket's bound: loopback plus scheduling.
pub const ARRIVAL_JITTER: Duration = Duration::from_millis(15);

/// How many more of `times` (sorted) fall inside some window than a bucket of `burst`
/// tokens refilled at `rate` per second allows there (`burst + rate * window`, with
/// [`ARRIVAL_JITTER`] added to the window): at most 0 for a client that keeps to it.
pub fn worst_window_excess(times: &[Instant], rate: f64, burst: f64) -> f64 {
    let mut worst = f64::MIN;
    for i in 0..times.len() {
        for j in i..times.len() {
            let window = times[j].duration_since(times[i]) + ARRIVAL_JITTER;
            let allowed = burst + rate * window.as_secs_f64();
            let seen = (j - i + 1) as f64;
            worst = worst.max(seen - allowed);
        }
    }
    worst
}

/// When `server`'s requests arrived, in order.
pub fn arrival_times(server: &Server) -> Vec<Instant> {
    let mut times: Vec<Instant> = server.arrivals().iter().map(|a| a.at).collect();
    times.sort();
    times
}
