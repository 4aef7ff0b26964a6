//! When to retry and how long to wait first: pure functions, no clock, no I/O.

use std::time::Duration;

/// The retry settings of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts per ID in all, the first one included.
    pub(crate) max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles for each later one.
    pub(crate) base_backoff: Duration,
    /// The backoff ceiling never grows past this.
    pub(crate) max_backoff: Duration,
    /// The longest `Retry-After` we wait for; a server asking for more gets no retry.
    pub(crate) max_retry_after: Duration,
    /// The longest one ID may go on being throttled (429s the client answers by
    /// pausing or slowing down) before it fails.
    pub(crate) max_throttled: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            max_throttled: Duration::from_secs(10 * 60),
        }
    }
}

/// Statuses that say "try again later" rather than "this request is wrong".
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl RetryPolicy {
    /// How long to wait before the attempt after `attempt` (counted from 1), or `None`
    /// to give up.
    ///
    /// `jitter` is a uniform random number in `[0, 1)`: the wait is full jitter,
    /// `jitter * min(max_backoff, base_backoff * 2^(attempt-1))`, unless the server
    /// sent `Retry-After`, which is obeyed exactly up to `max_retry_after`.
    pub(crate) fn backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            return (asked <= self.max_retry_after).then_some(asked);
        }
        let doublings = attempt.saturating_sub(1).min(31);
        let ceiling = self
            .base_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        Some(ceiling.mul_f64(jitter.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 301, 400, 401, 403, 404, 500, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let policy = RetryPolicy::default();
        assert!(policy.backoff(1, None, 0.5).is_some());
        assert!(policy.backoff(2, None, 0.5).is_some());
        assert_eq!(policy.backoff(3, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_obeyed_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let asked = Duration::from_secs(2);
        assert_eq!(policy.backoff(1, Some(asked), 0.0), Some(asked));
        assert_eq!(policy.backoff(1, Some(Duration::from_secs(31)), 0.0), None);
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let policy = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        let ms = |attempt| policy.backoff(attempt, None, 1.0).unwrap().as_millis();
        assert_eq!(ms(1), 100);
        assert_eq!(ms(2), 200);
        assert_eq!(ms(3), 400);
        assert_eq!(ms(50), 5000);
    }

    proptest! {
        #[test]
        fn backoff_stays_within_full_jitter_bounds(attempt in 1u32..64, jitter in 0.0f64..1.0) {
            let policy = RetryPolicy { max_attempts: 64, ..RetryPolicy::default() };
            let wait = policy.backoff(attempt, None, jitter).unwrap();
            prop_assert!(wait <= policy.max_backoff);
            let ceiling = policy.base_backoff.saturating_mul(1 << (attempt - 1).min(31)).min(policy.max_backoff);
            prop_assert!(wait <= ceiling);
        }
    }
}
