//! The shared token bucket, and the cancellable wait for a token.
//!
//! Workers wait for tokens in line ([`Line`]), so IDs go out in the order they were
//! claimed, as with Go's `rate.Limiter.Wait`, where each waiter reserves the next
//! free token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::{Signals, Stop};
use crate::error::ConfigError;
use crate::limiter::{Limiter, LimiterError, TokenBucket, TryTake};
use crate::quota_headers::ServerQuota;
use crate::rate::Rate;
use crate::throttle::{Answer, Sent, Settings, Snapshot, Throttle};
use crate::turns::Line;

/// Requests per second and burst, no limit at all, or a limiter of the caller's.
///
/// Note the two meanings of zero: in `ratelimit` a rate of 0 means unlimited, in Go's
/// `x/time/rate` it means nothing is allowed. Here neither: a rate of 0 is refused by
/// the builder, and "no limit" is spelled [`RateLimitConfig::Unlimited`].
#[derive(Debug, Clone)]
pub(crate) enum RateLimitConfig {
    /// `rate` is `None` when the user asked for 0 a second, refused by `build`.
    Limited {
        rate: Option<Rate>,
        burst: u64,
    },
    Unlimited,
    Custom(Arc<dyn Limiter>),
}

/// Why no token was taken.
#[derive(Debug)]
pub(crate) enum NoToken {
    Stopped(Stop),
    Failed(LimiterError),
}

impl From<Stop> for NoToken {
    fn from(stop: Stop) -> Self {
        NoToken::Stopped(stop)
    }
}

/// The limiter every worker of a client shares, what the server allows, and the line
/// its workers wait in.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// `None` when unlimited, so the hot path takes no lock at all.
    limiter: Option<Arc<dyn Limiter>>,
    throttle: Throttle,
    line: Line,
}

impl RateLimit {
    /// The limit `config` asks for, listening to the server (adapting to 429s when
    /// `adaptive`); an error for a rate or burst of 0. `workers` bounds slow start when
    /// no burst is configured.
    pub(crate) fn new(
        config: &RateLimitConfig,
        adaptive: bool,
        workers: usize,
    ) -> Result<Self, ConfigError> {
        let limiter: Option<Arc<dyn Limiter>> = match config {
            RateLimitConfig::Unlimited => None,
            RateLimitConfig::Limited { rate, burst } => {
                let rate = rate.ok_or(ConfigError::ZeroRate)?;
                // A burst of 0 is the only bucket `TokenBucket::new` refuses.
                let bucket = TokenBucket::new(rate, *burst).map_err(|_| ConfigError::ZeroBurst)?;
                Some(Arc::new(bucket))
            }
            RateLimitConfig::Custom(limiter) => Some(Arc::clone(limiter)),
        };
        let burst = match config {
            RateLimitConfig::Limited { burst, .. } => *burst as f64,
            _ => workers as f64,
        };
        let settings = Settings {
            configured: limiter
                .as_ref()
                .and_then(|l| l.rate())
                .map(|r| r.as_per_second()),
            burst,
            adaptive,
            shared: limiter.as_ref().is_some_and(|l| l.is_shared()),
        };
        Ok(Self::with_limiter(limiter, settings))
    }

    pub(crate) fn with_limiter(limiter: Option<Arc<dyn Limiter>>, settings: Settings) -> Self {
        RateLimit {
            limiter,
            throttle: Throttle::new(settings),
            line: Line::default(),
        }
    }

    /// Blocks until a request may go: a token is taken and the server's pause and
    /// quota allow it. Fails when the call stops, when the wait would pass the
    /// caller's deadline, or when the limiter fails. Returns how long it waited, and
    /// the request's place among the client's sends.
    ///
    /// Takers are served first come, first served: only the head of the line asks the
    /// limiter and the throttle.
    pub(crate) fn take(&self, signals: &Signals) -> Result<(Duration, Sent), NoToken> {
        if self.limiter.is_none() && !self.throttle.engaged() {
            if let Ok(sent) = self.throttle.try_send(Instant::now()) {
                return Ok((Duration::ZERO, sent));
            }
        }
        let started = Instant::now();
        let _turn = self.line.join(signals)?;
        let mut token = self.limiter.is_none();
        loop {
            // The server's word first: a token taken and then held would be wasted.
            if let Some(wait) = self.throttle.wait(Instant::now()) {
                signals.wait(wait)?;
                continue;
            }
            if let (false, Some(limiter)) = (token, &self.limiter) {
                match limiter.try_take().map_err(NoToken::Failed)? {
                    TryTake::Taken => token = true,
                    TryTake::WaitFor(wait) => {
                        signals.wait(wait)?;
                        continue;
                    }
                }
            }
            // A pause may have come in since: then the token waits with the request.
            match self.throttle.try_send(Instant::now()) {
                Ok(sent) => return Ok((started.elapsed(), sent)),
                Err(wait) => signals.wait(wait)?,
            }
        }
    }

    /// Takes in what the server answered to `sent`: pauses, rates, its bucket.
    pub(crate) fn observe(&self, sent: Sent, answer: Answer, quota: Option<&ServerQuota>) {
        if quota.is_none() && answer == Answer::Accepted && !self.throttle.engaged() {
            return;
        }
        let effect = self.throttle.observe(sent, Instant::now(), answer, quota);
        if let Some(pause) = effect.pause {
            log::warn!(
                pause_ms = pause.as_millis() as u64;
                "the server asked for a pause: no request for {:.3} s", pause.as_secs_f64()
            );
            if let Some(limiter) = &self.limiter {
                if let Err(e) = limiter.pause(pause) {
                    log::warn!("the pause could not be shared: {e}");
                }
            }
        }
        if let Some(change) = effect.rate {
            let show =
                |rate: Option<f64>| rate.map_or("no limit".to_owned(), |r| format!("{r:.3}/s"));
            log::info!(
                from = change.from.unwrap_or(0.0), to = change.to.unwrap_or(0.0),
                source:? = change.source;
                "rate {} -> {}: {}", show(change.from), show(change.to), change.reason
            );
            if let Some(limiter) = self.limiter.as_ref().filter(|l| l.is_shared()) {
                let rate = change.to.and_then(Rate::from_per_second);
                if let Err(e) = limiter.adapt(rate) {
                    log::warn!("the adapted rate could not be shared: {e}");
                }
            }
        }
    }

    /// Whether bare 429s slow the client down.
    pub(crate) fn adaptive(&self) -> bool {
        self.throttle.adaptive()
    }

    /// What the throttle shows of itself.
    pub(crate) fn snapshot(&self) -> (Snapshot, u64) {
        (
            self.throttle.snapshot(Instant::now()),
            self.throttle.throttled(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::CancelToken;
    use crate::limiter::Clock;
    use std::sync::atomic::{AtomicU64, Ordering};

    impl RateLimit {
        /// One question to the limiter, outside the line.
        fn try_take(&self) -> Result<(), Duration> {
            match self.limiter.as_ref().map(|l| l.try_take().unwrap()) {
                None | Some(TryTake::Taken) => Ok(()),
                Some(TryTake::WaitFor(wait)) => Err(wait),
            }
        }
    }

    /// A clock that moves only when told to.
    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicU64>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn elapsed(&self) -> Duration {
            Duration::from_nanos(self.0.load(Ordering::SeqCst))
        }
    }

    fn limited(per_second: u64, burst: u64) -> (RateLimit, ManualClock) {
        let clock = ManualClock::default();
        let rate = Rate::per_second(per_second).unwrap();
        let bucket = TokenBucket::with_clock(rate, burst, clock.clone()).unwrap();
        let settings = Settings {
            configured: Some(per_second as f64),
            burst: burst as f64,
            adaptive: true,
            shared: false,
        };
        (
            RateLimit::with_limiter(Some(Arc::new(bucket)), settings),
            clock,
        )
    }

    #[test]
    fn burst_is_available_at_once_then_rate_applies() {
        let (limit, clock) = limited(10, 20);
        for _ in 0..20 {
            assert_eq!(limit.try_take(), Ok(()));
        }
        let wait = limit.try_take().unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));

        clock.advance(Duration::from_millis(99));
        assert!(limit.try_take().is_err(), "a token 1 ms early");
        clock.advance(Duration::from_millis(1));
        assert_eq!(limit.try_take(), Ok(()));
        assert!(limit.try_take().is_err());
    }

    #[test]
    fn idle_time_refills_no_more_than_burst() {
        let (limit, clock) = limited(10, 20);
        for _ in 0..20 {
            limit.try_take().unwrap();
        }
        clock.advance(Duration::from_secs(3600));
        let mut taken = 0;
        while limit.try_take().is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 20);
    }

    #[test]
    fn unlimited_never_waits() {
        let limit = RateLimit::new(&RateLimitConfig::Unlimited, true, 8).unwrap();
        for _ in 0..10_000 {
            assert_eq!(limit.try_take(), Ok(()));
        }
    }

    #[test]
    fn take_stops_when_cancelled() {
        let (limit, _clock) = limited(1, 1);
        limit.try_take().unwrap();
        let signals = Signals::new(CancelToken::new());
        signals.caller.cancel();
        assert!(matches!(
            limit.take(&signals),
            Err(NoToken::Stopped(Stop::Cancelled))
        ));
    }

    #[test]
    fn takers_get_tokens_in_the_order_they_came() {
        let (limit, clock) = limited(1000, 1);
        let limit = Arc::new(limit);
        limit.try_take().unwrap();
        let (order_tx, order) = crossbeam_channel::unbounded();
        let mut takers = Vec::new();
        for i in 0..6 {
            let (taker_limit, order_tx) = (limit.clone(), order_tx.clone());
            takers.push(std::thread::spawn(move || {
                taker_limit.take(&Signals::new(CancelToken::new())).unwrap();
                order_tx.send(i).unwrap();
            }));
            // The first taker waits on the bucket; the rest wait in line behind it.
            let give_up = Instant::now() + Duration::from_secs(30);
            while limit.line.len() != i + 1 {
                assert!(Instant::now() < give_up, "taker {i} never got in line");
                std::thread::yield_now();
            }
        }
        let mut served = Vec::new();
        for _ in 0..6 {
            // One more token: the head of the line takes it within its 1 ms poll.
            clock.advance(Duration::from_millis(1));
            served.push(order.recv_timeout(Duration::from_secs(30)).unwrap());
        }
        for taker in takers {
            taker.join().unwrap();
        }
        assert_eq!(served, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn take_refuses_a_wait_past_the_deadline() {
        let (limit, _clock) = limited(1, 1);
        limit.try_take().unwrap();
        // The next token is a second away; the deadline is sooner.
        let signals = Signals::new(CancelToken::with_timeout(Duration::from_millis(500)));
        assert!(matches!(
            limit.take(&signals),
            Err(NoToken::Stopped(Stop::DeadlineExceeded))
        ));
    }

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            /// A greedy taker on a fake clock takes exactly what an ideal token bucket
            /// (full at start, `burst` deep, `rate` per second) allows: never more,
            /// and never a whole token less.
            #[test]
            fn greedy_taker_matches_an_exact_bucket(
                rate in 1u64..=1000,
                burst in 1u64..=50,
                steps in vec(0u64..20_000_000, 1..100),
            ) {
                let (limit, clock) = limited(rate, burst);
                let mut exact = burst as f64;
                for step_ns in steps {
                    clock.advance(Duration::from_nanos(step_ns));
                    exact = (exact + rate as f64 * step_ns as f64 / 1e9).min(burst as f64);
                    let mut taken = 0u64;
                    while limit.try_take().is_ok() {
                        taken += 1;
                        prop_assert!(taken <= burst, "more than a burst at one instant");
                    }
                    prop_assert!(taken as f64 <= exact + 1e-6, "took {taken}, bucket held {exact}");
                    prop_assert!(taken as f64 >= exact.floor() - 1.0, "took {taken}, bucket held {exact}");
                    exact -= taken as f64;
                }
            }

            /// The wait `try_take` asks for is enough: after it, a token is there.
            #[test]
            fn the_advised_wait_is_enough(
                rate in 1u64..=10_000,
                burst in 1u64..=50,
                drained_after_ns in 0u64..1_000_000_000,
            ) {
                let (limit, clock) = limited(rate, burst);
                clock.advance(Duration::from_nanos(drained_after_ns));
                while limit.try_take().is_ok() {}
                let wait = limit.try_take().unwrap_err();
                prop_assert!(wait <= Duration::from_secs(1) / rate as u32 + Duration::from_micros(1));
                clock.advance(wait + Duration::from_micros(1));
                prop_assert_eq!(limit.try_take(), Ok(()));
            }
        }
    }
}
