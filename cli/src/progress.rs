//! The progress bar on stderr: IDs done out of the total, requests per second,
//! requests in flight, IDs skipped as saved by an earlier run, ETA. Drawn only when
//! stderr is a terminal.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fanout::{RateSource, Stats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::logging;

/// The request rate shown is over this recent window, not the whole run.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A progress bar fed with the client's stats.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    /// The stats when the run started: the client's counters include earlier calls.
    base: Stats,
    /// (when, requests sent) over the last `RATE_WINDOW`.
    recent: VecDeque<(Instant, u64)>,
    /// The IDs of the run, skipped ones included.
    total: u64,
    /// IDs skipped so far (`--resume`), counted as the input is read.
    skipped: Option<Arc<AtomicU64>>,
}

impl Progress {
    /// A bar for `total` IDs, or `None` when stderr is not a terminal.
    pub fn start(total: u64, base: Stats) -> Option<Progress> {
        Self::start_counting(|| total, base)
    }

    /// A bar for `total()` IDs, or `None` when stderr is not a terminal (and
    /// `total`, which may take a while for a shard of many IDs, is not called).
    pub fn start_counting(total: impl FnOnce() -> u64, base: Stats) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let total = total();
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} IDs  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style);
        logging::attach_bar(&bar);
        Some(Progress {
            bar,
            base,
            recent: VecDeque::new(),
            total,
            skipped: None,
        })
    }

    /// Shows the IDs skipped apart, as `skipped` counts them: they leave the total,
    /// so that the ETA is of the IDs left to fetch.
    pub fn count_skipped(&mut self, skipped: Arc<AtomicU64>) {
        self.skipped = Some(skipped);
    }

    /// Shows the state in `stats`, sampled at `now`.
    pub fn update(&mut self, now: Instant, stats: &Stats) {
        let run = stats.since(&self.base);
        let done = run.succeeded + run.failed;
        let sent = run.requests_sent;
        self.recent.push_back((now, sent));
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        let per_second = match self.recent.front() {
            Some((at, then)) if now > *at => {
                (sent - then) as f64 / now.duration_since(*at).as_secs_f64()
            }
            _ => 0.0,
        };
        let skipped = self.skipped.as_ref().map(|s| s.load(Ordering::Relaxed));
        if let Some(skipped) = skipped {
            self.bar.set_length(self.total.saturating_sub(skipped));
        }
        self.bar.set_position(done);
        self.bar.set_message(format!(
            "{per_second:.1} req/s  {} in flight{}{}",
            run.in_flight,
            skipped
                .map(|s| format!("  {s} skipped"))
                .unwrap_or_default(),
            throttled(&run)
        ));
    }
}

impl Drop for Progress {
    /// Leaves the bar's last state on screen and stops drawing it.
    fn drop(&mut self) {
        logging::detach_bar();
        self.bar.abandon();
    }
}

/// What the bar says when the server holds the run back: its pause, or the rate the
/// client slowed to and why, and how many answers of the run were throttled.
fn throttled(stats: &Stats) -> String {
    let refused = stats.throttled;
    let rate = match (stats.rate_source, stats.effective_rate) {
        (RateSource::Configured, _) | (_, None) => None,
        (source, Some(rate)) => Some(format!(
            "{:.2}/s ({})",
            rate.as_per_second(),
            match source {
                RateSource::ServerHeaders => "server headers",
                _ => "adapted to 429s",
            }
        )),
    };
    match (stats.paused, rate) {
        (true, _) => format!("  THROTTLED: paused by the server ({refused} refused)"),
        (false, Some(rate)) => format!("  THROTTLED: {rate}, {refused} refused"),
        (false, None) if refused > 0 => format!("  {refused} refused"),
        (false, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_says_when_and_how_the_server_throttles() {
        assert_eq!(throttled(&Stats::default()), "");
        // Two answers were throttled before the run began.
        let mut base = Stats::default();
        base.throttled = 2;
        let mut stats = base;
        stats.throttled = 5;
        stats.rate_source = RateSource::Adapted;
        stats.effective_rate = Some(fanout::Rate::per_second(12).unwrap());
        assert_eq!(
            throttled(&stats.since(&base)),
            "  THROTTLED: 12.00/s (adapted to 429s), 3 refused"
        );
        stats.paused = true;
        assert!(throttled(&stats.since(&base)).contains("paused by the server"));
    }
}
