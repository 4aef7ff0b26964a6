//! What the server allows now: the pause a `Retry-After` asked for, the rate its
//! headers state or its 429s reveal, and an estimate of what its bucket holds.
//!
//! The configured limiter stays the ceiling; this only ever holds requests back. Time
//! is a parameter of every method, so the logic is tested on made-up instants.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::lock::lock;
use crate::quota_headers::ServerQuota;

/// Where the rate a client keeps to came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RateSource {
    /// The configured rate limit (or none): the server has not asked for less.
    #[default]
    Configured,
    /// The server's rate-limit headers state or show a lower rate.
    ServerHeaders,
    /// The server answered 429, and the client slowed down to what it accepted.
    Adapted,
}

/// Settings fixed when the client is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The configured rate, per second; `None` without a rate limit.
    pub(crate) configured: Option<f64>,
    /// The configured burst: slow start never goes past it.
    pub(crate) burst: f64,
    /// Whether bare 429s lower the rate.
    pub(crate) adaptive: bool,
    /// Whether the limiter is shared by other processes: its clients' accepted
    /// counts are not this process's, so a decrease halves instead of measuring.
    pub(crate) shared: bool,
}

/// How a response answered, as far as the quota goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The server let the request through (whatever the status).
    Accepted,
    /// 429, or 503 with `Retry-After`: over the quota.
    Throttled { retry_after: Option<Duration> },
}

/// One request as sent: its place in the order of sends, for telling a wave of 429s
/// and stale headers apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    seq: u64,
    at: Instant,
}

/// A change of the rate the client keeps to, to log and to share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateChange {
    /// Requests per second before, `None` for no limit.
    pub(crate) from: Option<f64>,
    /// Requests per second after, `None` for no limit.
    pub(crate) to: Option<f64>,
    pub(crate) source: RateSource,
    pub(crate) reason: &'static str,
}

/// What one response changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Effect {
    /// A pause every worker keeps, starting now.
    pub(crate) pause: Option<Duration>,
    pub(crate) rate: Option<RateChange>,
}

/// A view of the throttle for [`Stats`](crate::Stats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) rate: Option<f64>,
    pub(crate) source: RateSource,
    pub(crate) paused: bool,
}

/// Without a known rate or reset, how long a held request waits before it may probe.
const PROBE_AFTER: Duration = Duration::from_secs(1);
/// The longest any single wait is, so that nothing waits forever on a bad header.
const LONGEST_WAIT: Duration = Duration::from_secs(366 * 24 * 60 * 60);
/// Before any measure, the shortest span a first burst is spread over.
const FIRST_SPAN: Duration = Duration::from_millis(250);
/// The slowest rate adaptation goes down to: one request a minute.
const SLOWEST: f64 = 1.0 / 60.0;
/// A run of successes this long (at the current rate) raises the rate by one step.
const RAISE_AFTER: Duration = Duration::from_secs(5);
/// The additive step, as a share of the rate the last decrease set.
const RAISE_STEP: f64 = 0.02;
/// Samples kept for estimating a refill rate from `remaining`.
const SAMPLES: usize = 64;
/// The shortest and longest spans a refill estimate is made over.
const SHORTEST_SPAN: Duration = Duration::from_millis(250);
const LONGEST_SPAN: Duration = Duration::from_secs(30);

/// Shared by every worker of a client.
#[derive(Debug)]
pub(crate) struct Throttle {
    settings: Settings,
    /// False until the server first says anything about its quota: until then the
    /// hot path reads this flag and counts the send, and takes no lock.
    engaged: AtomicBool,
    /// Requests sent so far; a request's number orders it among the others.
    sends: AtomicU64,
    /// Throttled answers so far.
    throttled: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pause_until: Option<Instant>,
    /// The refill rate the server's headers state (IETF policy) or show.
    header_rate: Option<f64>,
    /// The rate learned from 429s, below the others.
    adapted_rate: Option<f64>,
    /// What the server's bucket holds, by our conservative reckoning.
    bank: Option<Bank>,
    /// The largest bucket the server has shown: `remaining + 1` after a request,
    /// at most its stated limit.
    header_cap: Option<f64>,
    /// The number of the freshest request whose `remaining` was applied.
    applied: Option<u64>,
    /// When the server said its quota is restored, and to how much.
    reset: Option<(Instant, f64)>,
    /// Answers with `remaining`, in the order their requests were sent.
    samples: VecDeque<Sample>,
    /// The numbers of recent requests the server refused.
    refused: VecDeque<u64>,
    /// Recent estimates of the refill rate from `remaining`, with their times.
    estimates: VecDeque<(Instant, f64)>,
    /// Accepted answers so far.
    accepted: u64,
    adaptation: Adaptation,
    /// The rate last reported as a change.
    reported: Option<(Option<f64>, RateSource)>,
}

#[derive(Debug, Clone, Copy)]
struct Bank {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The request's number and when it was sent: about when the server counted it.
    seq: u64,
    at: Instant,
    remaining: f64,
    /// `remaining` was one below the bucket's size: it may have been full before.
    full: bool,
}

#[derive(Debug, Default)]
struct Adaptation {
    /// Requests numbered below this were sent before the last decrease: their 429s
    /// are the same wave, one signal.
    wave_end: u64,
    /// The last signal: when, when sending could resume, and the rate then.
    last_signal: Option<Signal>,
    /// What the server let through of the requests sent before its first 429:
    /// its burst, as far as we can tell.
    first_burst: f64,
    /// The end of the first wave, while it is the last.
    first_wave_end: Option<u64>,
    /// Slow start: the most the bucket estimate may hold after a 429.
    window: Option<f64>,
    successes: u64,
    /// The additive step of the rate, set by the last decrease.
    step: f64,
    first_send: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Signal {
    at: Instant,
    resume: Instant,
}

impl Sent {
    /// When the request was let go.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }
}

impl Throttle {
    pub(crate) fn new(settings: Settings) -> Self {
        Throttle {
            settings,
            engaged: AtomicBool::new(false),
            sends: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// How long from `now` until the next request may go, if it must wait.
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        if !self.engaged.load(Ordering::Acquire) {
            return None;
        }
        let state = lock(&self.state);
        let ready = state.ready_at(now, &self.settings);
        (ready > now).then(|| (ready - now).min(LONGEST_WAIT))
    }

    /// Whether the server has said anything about its quota yet.
    pub(crate) fn engaged(&self) -> bool {
        self.engaged.load(Ordering::Acquire)
    }

    /// Lets a request go now if the server allows it, taking its share of the
    /// bucket estimate; otherwise says how long to wait first.
    pub(crate) fn try_send(&self, now: Instant) -> Result<Sent, Duration> {
        if !self.engaged() {
            let seq = self.sends.fetch_add(1, Ordering::Relaxed);
            if seq == 0 {
                lock(&self.state).adaptation.first_send = Some(now);
            }
            return Ok(Sent { seq, at: now });
        }
        let mut state = lock(&self.state);
        let ready = state.ready_at(now, &self.settings);
        if ready > now {
            return Err((ready - now).min(LONGEST_WAIT));
        }
        // Under the lock, so that a send is never numbered behind one that went later.
        let seq = self.sends.fetch_add(1, Ordering::Relaxed);
        let estimate = state.estimate(now, &self.settings);
        if let Some(bank) = &mut state.bank {
            *bank = Bank {
                tokens: estimate - 1.0,
                at: now,
            };
        }
        if let Some((_, restored)) = &mut state.reset {
            *restored -= 1.0;
        }
        state.adaptation.first_send.get_or_insert(now);
        Ok(Sent { seq, at: now })
    }

    /// Takes in what the answer to `sent` said, at `now`.
    pub(crate) fn observe(
        &self,
        sent: Sent,
        now: Instant,
        answer: Answer,
        quota: Option<&ServerQuota>,
    ) -> Effect {
        if quota.is_none() && answer == Answer::Accepted && !self.engaged.load(Ordering::Acquire) {
            return Effect::default();
        }
        let mut state = lock(&self.state);
        let before = state.effective(&self.settings);
        let mut effect = Effect::default();
        let sent_after = self
            .sends
            .load(Ordering::Relaxed)
            .saturating_sub(sent.seq + 1);
        if answer == Answer::Accepted {
            state.accepted += 1;
            let adaptation = &mut state.adaptation;
            if sent.seq < adaptation.wave_end
                && adaptation.first_wave_end == Some(adaptation.wave_end)
            {
                // Sent before the first 429 and let through: the server's burst.
                adaptation.first_burst += 1.0;
            }
        }
        let refused = matches!(answer, Answer::Throttled { .. });
        if refused {
            if state.refused.len() == SAMPLES {
                state.refused.pop_front();
            }
            state.refused.push_back(sent.seq);
        }
        if let Some(quota) = quota {
            // Requests sent after this one and refused took nothing.
            let refused_after = state.refused.iter().filter(|&&r| r > sent.seq).count() as u64;
            let pending = sent_after.saturating_sub(refused_after);
            state.read_headers(sent, pending, now, quota, &self.settings);
        }
        match answer {
            Answer::Throttled { retry_after } => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                if let Some(pause) = retry_after {
                    let until = now + pause.min(LONGEST_WAIT);
                    if state.pause_until.is_none_or(|p| p < until) {
                        state.pause_until = Some(until);
                        effect.pause = Some(pause);
                    }
                }
                // Headers, once seen, replace the guess: their estimate of the
                // bucket is already empty, and a rate they state or show stands.
                let headers = quota.is_some() || state.header_cap.is_some();
                if self.settings.adaptive && !headers && sent.seq >= state.adaptation.wave_end {
                    let sends = self.sends.load(Ordering::Relaxed);
                    state.decrease(sent, now, before.0, sends, &self.settings);
                }
                // Its bucket is empty now, less what we sent since. With no rate to
                // refill it at and no headers, only the pause holds requests back.
                if state.bank.is_some() || state.server_rate().is_some() {
                    state.bank = Some(Bank {
                        tokens: -(sent_after as f64),
                        at: now,
                    });
                }
            }
            // Successes of requests sent before the last decrease prove nothing
            // about the rate since.
            Answer::Accepted if sent.seq >= state.adaptation.wave_end => {
                if self.settings.adaptive {
                    state.succeeded(&self.settings);
                }
            }
            Answer::Accepted => {}
        }
        self.engaged.store(true, Ordering::Release);
        let after = state.effective(&self.settings);
        // Estimates from headers move a little with every answer: report a change
        // of source, or of more than 5 %.
        let (reported, reported_source) = state.reported.unwrap_or(before);
        let moved = match (reported, after.0) {
            (Some(a), Some(b)) => (a - b).abs() > 0.05 * a,
            (a, b) => a.is_some() != b.is_some(),
        };
        if reported_source != after.1 || moved {
            state.reported = Some(after);
            effect.rate = Some(RateChange {
                from: reported,
                to: after.0,
                source: after.1,
                reason: match (answer, after.1) {
                    (Answer::Throttled { .. }, _) => "the server answered 429",
                    (_, RateSource::ServerHeaders) => "the server's rate-limit headers",
                    (_, RateSource::Adapted) => "a run of successes",
                    (_, RateSource::Configured) => "back to the configured rate",
                },
            });
        }
        effect
    }

    /// The rate kept to now, where it came from, and whether a pause holds.
    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        if !self.engaged.load(Ordering::Acquire) {
            return Snapshot {
                rate: self.settings.configured,
                source: RateSource::Configured,
                paused: false,
            };
        }
        let state = lock(&self.state);
        let (rate, source) = state.effective(&self.settings);
        Snapshot {
            rate,
            source,
            paused: state.pause_until.is_some_and(|p| p > now),
        }
    }

    /// Whether bare 429s lower the rate.
    pub(crate) fn adaptive(&self) -> bool {
        self.settings.adaptive
    }

    /// Throttled answers so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

impl State {
    /// The rate the server's bucket refills at, as far as we know.
    fn server_rate(&self) -> Option<f64> {
        match (self.header_rate, self.adapted_rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rate kept to: the lowest of the configured, stated and learned rates.
    fn effective(&self, settings: &Settings) -> (Option<f64>, RateSource) {
        let mut best = (settings.configured, RateSource::Configured);
        for (rate, source) in [
            (self.header_rate, RateSource::ServerHeaders),
            (self.adapted_rate, RateSource::Adapted),
        ] {
            if let Some(rate) = rate {
                if best.0.is_none_or(|b| rate < b) {
                    best = (Some(rate), source);
                }
            }
        }
        best
    }

    /// The most the bucket estimate holds: what the server has shown of its size,
    /// or while there is no such sign, the slow-start window; never past the burst.
    fn cap(&self, settings: &Settings) -> f64 {
        let cap = match (self.header_cap, self.adaptation.window) {
            (Some(shown), _) => shown,
            (None, Some(window)) => window,
            (None, None) => f64::INFINITY,
        };
        cap.min(settings.burst).max(1.0)
    }

    /// What the server's bucket holds at `at` (not before the last update).
    fn estimate(&self, at: Instant, settings: &Settings) -> f64 {
        let cap = self.cap(settings);
        let Some(bank) = self.bank else {
            return cap;
        };
        let mut tokens = bank.tokens;
        if let (Some((reset_at, restored)), None) = (self.reset, self.server_rate()) {
            if at >= reset_at && bank.at < reset_at {
                tokens = tokens.max(restored);
            }
        }
        match self.server_rate() {
            Some(rate) => tokens += rate * at.saturating_duration_since(bank.at).as_secs_f64(),
            // Nothing tells when the bucket refills: one probe now and then.
            None if at >= bank.at + PROBE_AFTER => tokens = tokens.max(1.0),
            None => {}
        }
        tokens.min(cap)
    }

    /// The first moment from `now` at which a request may go.
    fn ready_at(&self, now: Instant, settings: &Settings) -> Instant {
        let from = self.pause_until.filter(|p| *p > now).unwrap_or(now);
        if self.bank.is_none() {
            return from;
        }
        let estimate = self.estimate(from, settings);
        // A hair under one token is rounding, not a missing token.
        if estimate >= 1.0 - 1e-9 {
            return from;
        }
        let probe =
            (self.bank.map_or(from, |b| b.at) + PROBE_AFTER).saturating_duration_since(from);
        let wait = match (self.server_rate(), self.reset) {
            (Some(rate), _) => secs((1.0 - estimate) / rate),
            (None, Some((reset_at, _))) if reset_at > from => {
                (reset_at - from).min(probe.max(reset_at - from))
            }
            _ => probe,
        };
        from + wait.min(LONGEST_WAIT)
    }

    fn read_headers(
        &mut self,
        sent: Sent,
        sent_after: u64,
        now: Instant,
        quota: &ServerQuota,
        settings: &Settings,
    ) {
        if let Some(rate) = quota.policy_rate.filter(|r| r.is_finite() && *r > 0.0) {
            self.header_rate = Some(rate);
        }
        let limit = quota.limit.map(|l| l as f64);
        if let Some(remaining) = quota.remaining {
            let remaining = remaining as f64;
            let shown = match limit {
                Some(limit) => (remaining + 1.0).min(limit.max(1.0)),
                None => remaining + 1.0,
            };
            self.header_cap = Some(self.header_cap.map_or(shown, |c| c.max(shown)));
            // Requests sent after this one may not be counted in `remaining` yet.
            let tokens = remaining - sent_after as f64;
            let fresh = self.applied.is_none_or(|a| sent.seq > a);
            let current = self.estimate(now, settings);
            let tokens = if fresh { tokens } else { tokens.min(current) };
            self.bank = Some(Bank { tokens, at: now });
            if fresh {
                self.applied = Some(sent.seq);
            }
            if quota.policy_rate.is_none() {
                self.sample(sent, remaining, shown);
            }
        }
        if let Some(reset) = quota.reset {
            // What is restored then, less what was sent since this request: those
            // may not have been counted yet.
            let restored = limit.or(self.header_cap).unwrap_or(1.0) - sent_after as f64;
            self.reset = Some((now + reset.min(LONGEST_WAIT), restored));
        }
    }

    /// Estimates the refill rate from how `remaining` moved, for headers that state
    /// no window: over the longest recent span in which the bucket was never full,
    /// what came back (the rise of `remaining` plus what was taken) per second.
    ///
    /// Answers come back out of order (a refusal at once, an acceptance after the
    /// server's work), so samples are ordered and timed by their requests' sends, and
    /// what was taken between two of them is the requests sent between them less
    /// those refused.
    fn sample(&mut self, sent: Sent, remaining: f64, shown: f64) {
        let cap = self.header_cap.unwrap_or(shown);
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        let at = self.samples.partition_point(|s| s.seq < sent.seq);
        self.samples.insert(
            at,
            Sample {
                seq: sent.seq,
                at: sent.at,
                remaining,
                full: remaining + 1.0 >= cap,
            },
        );
        if at + 1 != self.samples.len() {
            // Not the newest: it adds nothing to the latest estimate.
            return;
        }
        let newest = self.samples[self.samples.len() - 1];
        let mut oldest = None;
        for sample in self.samples.iter().rev().skip(1) {
            if newest.at.saturating_duration_since(sample.at) > LONGEST_SPAN {
                break;
            }
            oldest = Some(*sample);
            if sample.full {
                break;
            }
        }
        let Some(oldest) = oldest else { return };
        let span = newest.at.saturating_duration_since(oldest.at);
        if span < SHORTEST_SPAN {
            return;
        }
        let sent_between = newest.seq - oldest.seq;
        let refused = self
            .refused
            .iter()
            .filter(|&&r| r > oldest.seq && r <= newest.seq)
            .count() as u64;
        let taken = sent_between.saturating_sub(refused) as f64;
        let refilled = newest.remaining - oldest.remaining + taken;
        if refilled <= 0.0 {
            return;
        }
        // Each estimate is at most the true rate (the bucket may have been full
        // unseen), so the highest recent one is the best.
        if self.estimates.len() == SAMPLES {
            self.estimates.pop_front();
        }
        self.estimates
            .push_back((newest.at, refilled / span.as_secs_f64()));
        let recent = newest.at.checked_sub(LONGEST_SPAN);
        self.header_rate = self
            .estimates
            .iter()
            .filter(|(at, _)| recent.is_none_or(|r| *at >= r))
            .map(|(_, rate)| *rate)
            .reduce(f64::max);
    }

    /// One signal that the rate is too high: lower it to what the server accepted
    /// between the last signal and this one, or before the first, by what got
    /// through per second so far (at most halving). Without a rate to lower and
    /// nothing measured, only the pause and slow start apply.
    fn decrease(
        &mut self,
        throttled: Sent,
        now: Instant,
        current: Option<f64>,
        sends: u64,
        settings: &Settings,
    ) {
        let adaptation = &mut self.adaptation;
        let resume = self.pause_until.filter(|p| *p > now).unwrap_or(now);
        // Everything sent since the last wave and before this request got through,
        // or the 429 would have come sooner: that is what the server accepted,
        // answered or not yet.
        let accepted = throttled.seq.saturating_sub(adaptation.wave_end) as f64;
        let measured = match adaptation.last_signal {
            // Other processes' requests are not in our count.
            _ if settings.shared => None,
            Some(signal) => {
                let span = throttled
                    .at
                    .saturating_duration_since(signal.resume)
                    .as_secs_f64();
                // What the server banked while we paused: at most its burst.
                let paused = signal
                    .resume
                    .saturating_duration_since(signal.at)
                    .as_secs_f64();
                let banked = adaptation
                    .first_burst
                    .min(current.unwrap_or(f64::INFINITY) * paused);
                // Less than a token was left when it refused: count half of one.
                let refilled = accepted - banked + 0.5;
                (span >= 0.1 && refilled >= 1.0).then(|| refilled / span)
            }
            None => {
                // A first burst is not a rate: spread it over a quarter second at least.
                let since = adaptation
                    .first_send
                    .map_or(Duration::ZERO, |f| {
                        throttled.at.saturating_duration_since(f)
                    })
                    .max(FIRST_SPAN);
                (accepted >= 2.0).then(|| accepted / since.as_secs_f64())
            }
        };
        let first = adaptation.last_signal.is_none();
        if first {
            adaptation.first_wave_end = Some(sends);
            adaptation.first_burst = self.accepted as f64;
        }
        let lowered = match (current, measured) {
            (Some(current), Some(measured)) if first => {
                Some(measured.clamp(current * 0.5, current * 0.95))
            }
            (Some(current), Some(measured)) => {
                Some(measured.min(current * 0.95).max(current * 0.1))
            }
            (Some(current), None) => Some(current * 0.5),
            (None, measured) => measured,
        };
        if let Some(lowered) = lowered {
            let lowered = lowered.max(SLOWEST);
            self.adapted_rate = Some(lowered);
            adaptation.step = lowered * RAISE_STEP;
        }
        adaptation.wave_end = sends;
        adaptation.last_signal = Some(Signal { at: now, resume });
        adaptation.window = Some(1.0);
        adaptation.successes = 0;
    }

    /// One success: widen the slow-start window, and after a long enough run, raise
    /// the rate by one step toward the ceiling.
    fn succeeded(&mut self, settings: &Settings) {
        let adaptation = &mut self.adaptation;
        if let Some(window) = &mut adaptation.window {
            *window = (*window + 1.0).min(settings.burst);
        }
        let Some(rate) = self.adapted_rate else {
            return;
        };
        adaptation.successes += 1;
        let run = (rate * RAISE_AFTER.as_secs_f64()).max(10.0);
        if (adaptation.successes as f64) < run {
            return;
        }
        adaptation.successes = 0;
        let raised = rate + adaptation.step.max(SLOWEST);
        let ceiling = match (settings.configured, self.header_rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.adapted_rate = match ceiling {
            Some(ceiling) if raised >= ceiling => None,
            _ => Some(raised),
        };
    }
}

/// Seconds as a `Duration`, never panicking on odd floats.
fn secs(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).unwrap_or(LONGEST_WAIT)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
