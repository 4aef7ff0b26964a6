//! Watches a run from a second thread: reads `client.stats()` every 10 ms for the
//! progress bar and the timeline, until the run ends.

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use fanout::FanOutClient;

use crate::progress::Progress;
use crate::timeline::Timeline;

/// How often the counters are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Runs `work` on this thread while a sampler thread feeds `progress` and
/// `timeline` from `client`'s stats; returns `work`'s result and the timeline.
///
/// The sampler ends when `work` returns (its stop channel disconnects), after one
/// last sample of the final state.
pub fn observe<T>(
    client: &FanOutClient,
    mut progress: Option<Progress>,
    mut timeline: Option<Timeline>,
    work: impl FnOnce() -> T,
) -> (T, Option<Timeline>) {
    if progress.is_none() && timeline.is_none() {
        return (work(), None);
    }
    thread::scope(|scope| {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let started = Instant::now();
        let sampler = thread::Builder::new()
            .name("fanout-cli-sampler".into())
            .spawn_scoped(scope, move || {
                let ticks = crossbeam_channel::tick(SAMPLE_EVERY);
                let mut sample = || {
                    let now = Instant::now();
                    let stats = client.stats();
                    if let Some(progress) = &mut progress {
                        progress.update(now, &stats);
                    }
                    if let Some(timeline) = &mut timeline {
                        timeline.record(now.duration_since(started), &stats);
                    }
                };
                sample();
                loop {
                    crossbeam_channel::select! {
                        recv(stopped) -> _ => break,
                        recv(ticks) -> _ => sample(),
                    }
                }
                sample();
                drop(progress);
                timeline
            });
        let result = work();
        drop(stop);
        let timeline = match sampler {
            Ok(handle) => handle.join().ok().flatten(),
            Err(err) => {
                let _ = writeln!(io::stderr(), "warning: no progress or timeline: {err}");
                None
            }
        };
        (result, timeline)
    })
}
