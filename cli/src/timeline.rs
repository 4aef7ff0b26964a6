//! The timeline of a run, drawn as SVG: requests started against the token bucket's
//! bound, and requests in flight against the cap.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use fanout::Stats;
use plotters::prelude::*;

use crate::UsageError;

/// One look at the client's counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    /// Requests started since the run began, retries included.
    started: u64,
    in_flight: u64,
}

/// The client's limits, to draw the samples against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests per second and burst; `None` when unlimited.
    pub rate: Option<(fanout::Rate, u64)>,
    /// The cap on requests in flight.
    pub max_in_flight: usize,
}

/// Samples of one run.
#[derive(Debug)]
pub struct Timeline {
    limits: Limits,
    /// The counters when the run began: the client's include earlier calls.
    base: Stats,
    samples: Vec<Sample>,
    /// Keep one sample in this many; doubles each time `samples` fills up.
    stride: u32,
    /// Samples not kept since the last one that was.
    skipped: u32,
    /// The newest sample, kept or not, so the drawing always ends at the end.
    latest: Option<Sample>,
}

/// The most samples kept (a sample every 10 ms is 100 a second): longer runs are
/// thinned evenly, so memory and the SVG stay small however long the run.
const MAX_SAMPLES: usize = 10_000;

const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 380;
const LINE: u32 = 2;

impl Timeline {
    /// An empty timeline for a run that starts with the client's counters at `base`.
    pub fn new(limits: Limits, base: Stats) -> Self {
        Timeline {
            limits,
            base,
            samples: Vec::new(),
            stride: 1,
            skipped: 0,
            latest: None,
        }
    }

    /// Creates (or empties) the output file at once, so that a path that cannot be
    /// written is a usage error before the run rather than a failure after it.
    pub fn check_writable(path: &Path) -> Result<(), UsageError> {
        File::create(path)
            .map(drop)
            .map_err(|e| UsageError::new(format!("cannot write {}: {e}", path.display())))
    }

    /// Records `stats` as seen `at` after the run began.
    pub fn record(&mut self, at: Duration, stats: &Stats) {
        let sample = Sample {
            at,
            started: stats.since(&self.base).requests_sent,
            in_flight: stats.in_flight,
        };
        self.latest = Some(sample);
        self.skipped += 1;
        if self.skipped < self.stride {
            return;
        }
        self.skipped = 0;
        self.samples.push(sample);
        if self.samples.len() >= MAX_SAMPLES {
            let mut index = 0;
            self.samples.retain(|_| {
                index += 1;
                index % 2 == 1
            });
            self.stride *= 2;
        }
    }

    /// The samples to draw, in time order, ending with the newest.
    fn points(&self) -> impl Iterator<Item = &Sample> {
        let newest_kept = self.samples.last().map(|s| s.at);
        let latest = self
            .latest
            .iter()
            .filter(move |l| Some(l.at) != newest_kept);
        self.samples.iter().chain(latest)
    }

    /// Draws the two panels into an SVG file at `path`.
    pub fn write_svg(&self, path: &Path) -> Result<(), String> {
        self.draw(path)
            .map_err(|e| format!("cannot draw {}: {e}", path.display()))
    }

    fn draw(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (WIDTH, 2 * PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(PANEL_HEIGHT);
        // Never an empty axis, even for a run that ended at once.
        let end = self
            .points()
            .last()
            .map_or(0.0, |s| s.at.as_secs_f64())
            .max(0.01);

        let started: Vec<(f64, f64)> = self
            .points()
            .map(|s| (s.at.as_secs_f64(), s.started as f64))
            .collect();
        let bound = self.limits.rate.map(|(rate, burst)| Line {
            points: [0.0, end]
                .map(|t| (t, burst as f64 + rate.as_per_second() * t))
                .to_vec(),
            label: format!("token-bucket bound: {burst} + {rate} × t"),
        });
        panel(
            &upper,
            "Requests started",
            "requests started (cumulative)",
            Line {
                points: started,
                label: "requests started, retries included".to_owned(),
            },
            bound,
            SeriesLabelPosition::UpperLeft,
        )?;

        let in_flight: Vec<(f64, f64)> = self
            .points()
            .map(|s| (s.at.as_secs_f64(), s.in_flight as f64))
            .collect();
        let cap = self.limits.max_in_flight as f64;
        panel(
            &lower,
            "Requests in flight",
            "requests in flight",
            Line {
                points: in_flight,
                label: "in flight".to_owned(),
            },
            Some(Line {
                points: vec![(0.0, cap), (end, cap)],
                label: format!("cap: {}", self.limits.max_in_flight),
            }),
            SeriesLabelPosition::LowerRight,
        )?;
        root.present()?;
        Ok(())
    }
}

/// A labelled line of one panel.
struct Line {
    points: Vec<(f64, f64)>,
    label: String,
}

/// Draws `measured` against `limit` (in red, under it) on one panel.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    measured: Line,
    limit: Option<Line>,
    legend: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let end = measured
        .points
        .iter()
        .chain(limit.iter().flat_map(|l| &l.points))
        .map(|p| p.0)
        .fold(0.01, f64::max);
    let top = measured
        .points
        .iter()
        .chain(limit.iter().flat_map(|l| &l.points))
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.1;

    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    // The limit first, so that the measured line stays visible where they meet.
    for (line, color) in limit
        .into_iter()
        .map(|l| (l, RED))
        .chain([(measured, BLUE)])
    {
        chart
            .draw_series(LineSeries::new(line.points, color.stroke_width(LINE)))?
            .label(line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(LINE))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_is_thinned_and_still_ends_at_its_end() {
        let limits = Limits {
            rate: Some((fanout::Rate::per_second(10).unwrap(), 20)),
            max_in_flight: 8,
        };
        let mut timeline = Timeline::new(limits, Stats::default());
        let mut stats = Stats::default();
        for tick in 1..=100_001u64 {
            stats.requests_sent = tick;
            timeline.record(Duration::from_millis(10 * tick), &stats);
        }

        assert!(timeline.samples.len() < MAX_SAMPLES);
        assert!(timeline.samples.len() > MAX_SAMPLES / 4);
        let last = timeline.points().last().unwrap();
        assert_eq!(last.started, 100_001);
        let times: Vec<Duration> = timeline.points().map(|s| s.at).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "in time order");
    }
}
