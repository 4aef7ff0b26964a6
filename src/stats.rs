//! Counters shared by the workers, and the snapshot a caller reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rate::Rate;
use crate::throttle::RateSource;

/// A snapshot of a client's counters since it was built, across all its calls.
///
/// Read it with [`FanOutClient::stats`](crate::FanOutClient::stats) at any time, from
/// any thread, for example to drive a progress display. Counters are read one by one,
/// so a snapshot taken while requests run may be off by a request between fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// HTTP requests started, retries and followed redirects included.
    pub requests_sent: u64,
    /// HTTP requests started and not yet finished.
    pub in_flight: u64,
    /// The most requests in flight at one moment.
    pub peak_in_flight: u64,
    /// Requests that were retries of an earlier failed attempt.
    pub retries: u64,
    /// IDs fetched successfully.
    pub succeeded: u64,
    /// IDs that failed for good (cancellations not counted).
    pub failed: u64,
    /// Time workers spent waiting for rate-limit tokens, summed over workers.
    pub token_wait: Duration,
    /// Answers that said the client was over the server's quota: 429s, and 503s
    /// with `Retry-After`.
    pub throttled: u64,
    /// The rate the client keeps to now: the lowest of the configured rate, the rate
    /// the server's headers state or show, and the rate learned from its 429s.
    /// `None` without any rate limit.
    pub effective_rate: Option<Rate>,
    /// Where [`effective_rate`](Self::effective_rate) came from.
    pub rate_source: RateSource,
    /// True while the server's `Retry-After` holds every request back.
    pub paused: bool,
}

impl Stats {
    /// What happened between `base` and this snapshot, both of the same client: for a
    /// run that began when `base` was taken, since the client's counters include its
    /// earlier calls.
    ///
    /// The counts (`requests_sent`, `retries`, `succeeded`, `failed`, `throttled`,
    /// `token_wait`) are this snapshot's less `base`'s, never below zero. The rest
    /// describes a moment, not a span, and is this snapshot's: `in_flight`,
    /// `effective_rate`, `rate_source`, `paused`, and `peak_in_flight`, the peak since
    /// the client was built, which cannot be told apart by run.
    ///
    /// ```
    /// use fanout::Stats;
    ///
    /// let mut base = Stats::default();
    /// base.requests_sent = 40;
    /// base.succeeded = 38;
    /// let mut now = base;
    /// now.requests_sent = 100;
    /// now.succeeded = 95;
    /// now.in_flight = 3;
    ///
    /// let run = now.since(&base);
    /// assert_eq!((run.requests_sent, run.succeeded), (60, 57));
    /// assert_eq!(run.in_flight, 3); // as it is now
    /// ```
    ///
    /// With a client, `base` is its [`stats`](crate::FanOutClient::stats) before the
    /// run:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
    /// let base = client.stats();
    /// let bodies = client.fetch_all(&[1, 2, 3])?;
    /// let run = client.stats().since(&base);
    /// println!("{} requests for {} bodies", run.requests_sent, bodies.len());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn since(&self, base: &Stats) -> Stats {
        Stats {
            requests_sent: self.requests_sent.saturating_sub(base.requests_sent),
            retries: self.retries.saturating_sub(base.retries),
            succeeded: self.succeeded.saturating_sub(base.succeeded),
            failed: self.failed.saturating_sub(base.failed),
            throttled: self.throttled.saturating_sub(base.throttled),
            token_wait: self.token_wait.saturating_sub(base.token_wait),
            ..*self
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests_sent: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    retries: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    token_wait_nanos: AtomicU64,
}

impl Counters {
    /// An attempt starts (connecting, if need be, then sending).
    pub(crate) fn request_started(&self, is_retry: bool) {
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        if is_retry {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request took its token and goes on the wire.
    pub(crate) fn request_in_flight(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn waited_for_token(&self, waited: Duration) {
        if !waited.is_zero() {
            let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.token_wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    pub(crate) fn id_succeeded(&self) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn id_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            peak_in_flight: self.peak_in_flight.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            token_wait: Duration::from_nanos(self.token_wait_nanos.load(Ordering::Relaxed)),
            ..Stats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(n: u64) -> Stats {
        Stats {
            requests_sent: 10 * n,
            in_flight: n,
            peak_in_flight: 2 * n,
            retries: 3 * n,
            succeeded: 5 * n,
            failed: n,
            token_wait: Duration::from_millis(100 * n),
            throttled: 4 * n,
            effective_rate: Rate::per_second(n).ok(),
            rate_source: RateSource::Configured,
            paused: n % 2 == 1,
        }
    }

    #[test]
    fn since_subtracts_the_counts_and_keeps_the_moment() {
        let run = snapshot(7).since(&snapshot(3));
        let expected = Stats {
            requests_sent: 40,
            retries: 12,
            succeeded: 20,
            failed: 4,
            token_wait: Duration::from_millis(400),
            throttled: 16,
            ..snapshot(7)
        };
        assert_eq!(run, expected);
        assert_eq!(snapshot(7).since(&Stats::default()), snapshot(7));
    }

    #[test]
    fn since_a_later_base_is_zero_not_an_overflow() {
        let run = snapshot(3).since(&snapshot(7));
        assert_eq!(
            (run.requests_sent, run.failed, run.token_wait, run.throttled),
            (0, 0, Duration::ZERO, 0)
        );
    }
}
