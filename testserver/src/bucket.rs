//! `Bucket`: a token bucket judged on arrivals, as an API gateway judges them, and the
//! rate-limit headers that tell a client where it stands.

use std::time::{Duration, Instant};

/// Tokens as of `last`, refilled at `per_second` up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_second: f64,
    burst: f64,
    tolerance: Duration,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket full at `now` of `burst` tokens, refilled at `per_second`, that accepts
    /// a request up to `tolerance` early (the difference is owed).
    pub fn full(per_second: f64, burst: f64, tolerance: Duration, now: Instant) -> Self {
        Bucket {
            per_second,
            burst,
            tolerance,
            tokens: burst,
            last: now,
        }
    }

    /// Refills up to `now`, then takes a token for a request arriving `now`, if one is
    /// there (within the tolerance).
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens + self.tolerance.as_secs_f64() * self.per_second >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left; none while a tolerated early request is owed.
    pub fn left(&self) -> u64 {
        self.tokens.max(0.0).floor() as u64
    }

    /// Whole seconds, rounded up, until the bucket is full.
    pub fn full_in(&self) -> u64 {
        ((self.burst - self.tokens) / self.per_second).ceil() as u64
    }

    /// Whole seconds, rounded up, until one token is free: at least 1, since a
    /// `Retry-After: 0` would invite the client straight back.
    pub fn token_in(&self) -> u64 {
        (((1.0 - self.tokens) / self.per_second).ceil() as u64).max(1)
    }

    /// The rate-limit headers of `style`, as the bucket stands.
    pub fn headers(&self, style: QuotaHeaders) -> Vec<(String, String)> {
        let (left, full_in) = (self.left(), self.full_in());
        match style {
            QuotaHeaders::None => Vec::new(),
            QuotaHeaders::Ietf => {
                let quota = (self.per_second.floor() as u64).max(1);
                vec![
                    (
                        "RateLimit-Policy".into(),
                        format!("\"default\";q={quota};w=1"),
                    ),
                    (
                        "RateLimit".into(),
                        format!("\"default\";r={left};t={full_in}"),
                    ),
                ]
            }
            QuotaHeaders::XRateLimit => vec![
                (
                    "X-RateLimit-Limit".into(),
                    (self.burst.floor() as u64).to_string(),
                ),
                ("X-RateLimit-Remaining".into(), left.to_string()),
                ("X-RateLimit-Reset".into(), full_in.to_string()),
            ],
        }
    }
}

/// The rate-limit headers sent on every answer, 200 and 429 alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaHeaders {
    /// None: a client learns of the limit from its 429s only.
    None,
    /// `RateLimit-Policy: "default";q=RATE;w=1` and `RateLimit: "default";r=LEFT;t=FULL_IN`
    /// (the IETF draft's structured fields).
    Ietf,
    /// `X-RateLimit-Limit: BURST`, `X-RateLimit-Remaining: LEFT`, `X-RateLimit-Reset: FULL_IN`
    /// (delta seconds).
    XRateLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_the_rate_within_the_tolerance() {
        let start = Instant::now();
        let mut bucket = Bucket::full(10.0, 3.0, Duration::from_millis(5), start);
        for _ in 0..3 {
            assert!(bucket.admit(start));
        }
        assert!(!bucket.admit(start));
        // 94 ms refills 0.94 of a token; with the 5 ms tolerance that is not enough.
        assert!(!bucket.admit(start + Duration::from_millis(94)));
        assert!(bucket.admit(start + Duration::from_millis(96)));
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let start = Instant::now();
        let mut bucket = Bucket::full(10.0, 2.0, Duration::ZERO, start);
        assert!(bucket.admit(start));
        assert!(bucket.admit(start));
        let later = start + Duration::from_secs(60);
        assert!(bucket.admit(later));
        assert!(bucket.admit(later));
        assert!(!bucket.admit(later));
    }

    #[test]
    fn headers_say_what_is_left_and_when_it_is_full() {
        let start = Instant::now();
        let mut bucket = Bucket::full(10.0, 5.0, Duration::ZERO, start);
        assert!(bucket.admit(start));
        assert_eq!(
            bucket.headers(QuotaHeaders::XRateLimit),
            [
                ("X-RateLimit-Limit".to_string(), "5".to_string()),
                ("X-RateLimit-Remaining".to_string(), "4".to_string()),
                ("X-RateLimit-Reset".to_string(), "1".to_string()),
            ]
        );
        assert!(bucket.headers(QuotaHeaders::None).is_empty());
    }
}
