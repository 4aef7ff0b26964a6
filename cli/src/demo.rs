//! `fanout demo`: fetch from a strict local API and report how closely the run kept
//! to its limits, and how fast it was next to the ideal.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use fanout::{CancelToken, ErrorKind, FanOutClient, FetchError, Stats};

use fanout::Rate;

use crate::args::DemoArgs;
use crate::demo_server::{DemoServer, Seen, ServerConfig, TOLERANCE};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::sampler;
use crate::timeline::Timeline;
use crate::{Outcome, UsageError};

/// Most IDs a demo fetches: they are held in memory, and at the default rate this
/// is already more than a day.
const MAX_IDS: u64 = 1_000_000;
/// Most requests in flight in the demo, on either side: each is a thread.
const MAX_IN_FLIGHT: usize = 256;

/// The checked settings of one demo.
#[derive(Debug, Clone, Copy)]
struct Plan {
    ids: u64,
    client_rate: Option<(Rate, u64)>,
    client_cap: usize,
    server: ServerConfig,
}

/// Runs `fanout demo`.
pub fn run(args: &DemoArgs) -> Result<Outcome, UsageError> {
    let plan = plan(args)?;
    if let Some(path) = &args.limits.timeline {
        Timeline::check_writable(path)?;
    }
    let server = match DemoServer::start(plan.server) {
        Ok(server) => server,
        Err(message) => {
            let _ = writeln!(io::stderr(), "error: {message}");
            return Ok(Outcome::Failure);
        }
    };
    let client = build_client(&plan, &server.template())?;
    let interrupt = Interrupt::install(CancelToken::new());

    print(&introduce(&plan, &server));

    let base = client.stats();
    let ids: Vec<u64> = (1..=plan.ids).collect();
    let progress = Progress::start(plan.ids, base);
    let timeline = args
        .limits
        .timeline
        .as_ref()
        .map(|_| Timeline::new(args.limits.timeline_limits(), base));
    let ((result, elapsed), timeline) = sampler::observe(&client, progress, timeline, || {
        let started = Instant::now();
        let result = client.fetch_all_with(&interrupt.token, &ids);
        (result, started.elapsed())
    });
    let stats = client.stats();
    let seen = server.seen();

    if let Err(err) = &result {
        if err.kind() == ErrorKind::Cancelled && interrupt.fired() {
            let _ = writeln!(io::stderr(), "interrupted");
            return Ok(Outcome::Interrupted);
        }
    }
    let run = Run {
        plan: &plan,
        result: result.as_ref().map(|bodies| bodies.len()),
        elapsed,
        client: stats.since(&base),
        seen: &seen,
    };
    let (report, mut passed) = run.report();
    print(&report);
    if let (Some(path), Some(timeline)) = (&args.limits.timeline, timeline) {
        match timeline.write_svg(path) {
            Ok(()) => print(&format!("timeline          {}\n", path.display())),
            Err(message) => {
                let _ = writeln!(io::stderr(), "error: {message}");
                passed = false;
            }
        }
    }
    print(match (passed, plan.server.fail_id) {
        (true, None) => "PASS: every ID fetched, no limit broken\n",
        (true, Some(_)) => "PASS: stopped at the first failure, no limit broken\n",
        (false, _) => "FAIL\n",
    });
    Ok(if passed {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

fn plan(args: &DemoArgs) -> Result<Plan, UsageError> {
    let limits = &args.limits;
    if !(1..=MAX_IDS).contains(&args.ids) {
        return Err(UsageError::new(format!(
            "--ids must be between 1 and {MAX_IDS}"
        )));
    }
    if let Some(id) = args.fail_id {
        if !(1..=args.ids).contains(&id) {
            return Err(UsageError::new(format!(
                "--fail-id must be one of the IDs fetched, 1 to {}",
                args.ids
            )));
        }
    }
    let server_cap = args.server_max_in_flight.unwrap_or(limits.max_in_flight);
    for (flag, cap) in [
        ("--max-in-flight", limits.max_in_flight),
        ("--server-max-in-flight", server_cap),
    ] {
        if !(1..=MAX_IN_FLIGHT).contains(&cap) {
            return Err(UsageError::new(format!(
                "{flag} must be between 1 and {MAX_IN_FLIGHT} in the demo"
            )));
        }
    }
    let server_rate = args
        .server_rate
        .unwrap_or(limits.rate)
        .0
        .map(|rate| (rate, args.server_burst.unwrap_or(limits.burst)));
    if limits.rate_limit().is_some_and(|(_, burst)| burst == 0) {
        return Err(UsageError::new("--burst must be at least 1"));
    }
    if server_rate.is_some_and(|(_, burst)| burst == 0) {
        return Err(UsageError::new("--server-burst must be at least 1"));
    }
    Ok(Plan {
        ids: args.ids,
        client_rate: limits.rate_limit(),
        client_cap: limits.max_in_flight,
        server: ServerConfig {
            rate: server_rate,
            max_in_flight: server_cap,
            latency: Duration::from_millis(args.latency_ms),
            fail_id: args.fail_id,
        },
    })
}

fn build_client(plan: &Plan, template: &str) -> Result<FanOutClient, UsageError> {
    // The demo measures the configured limits against the server's: a client that
    // slowed down on the server's 429s would hide a stricter server's verdict.
    let builder = FanOutClient::builder(template)
        .max_in_flight(plan.client_cap)
        .adaptive_rate(false)
        // The server is on this machine: a proxy from the environment could not reach it.
        .proxy(None);
    let builder = match plan.client_rate {
        Some((rate, burst)) => builder.rate(rate, burst),
        None => builder.no_rate_limit(),
    };
    builder.build().map_err(|e| UsageError::build(&e, None))
}

fn introduce(plan: &Plan, server: &DemoServer) -> String {
    let server_rate = match plan.server.rate {
        Some((rate, burst)) => format!(
            "{rate}, burst {burst} ({} ms tolerance)",
            TOLERANCE.as_millis()
        ),
        None => "no rate limit".to_owned(),
    };
    format!(
        "fanout demo: {} IDs from a strict local API\n\
         api               {}\n\
         server limits     {server_rate}, {} in flight, {} ms latency\n\
         client limits     {}, {} in flight\n",
        plan.ids,
        server.template(),
        plan.server.max_in_flight,
        plan.server.latency.as_millis(),
        describe_rate(plan.client_rate),
        plan.client_cap,
    )
}

fn describe_rate(rate: Option<(Rate, u64)>) -> String {
    match rate {
        Some((rate, burst)) => format!("{rate}, burst {burst}"),
        None => "no rate limit".to_owned(),
    }
}

/// The measured run, for the report.
struct Run<'a> {
    plan: &'a Plan,
    /// The number of bodies, or the error.
    result: Result<usize, &'a FetchError>,
    elapsed: Duration,
    client: Stats,
    seen: &'a Seen,
}

impl Run<'_> {
    /// The report's text, and whether the demo showed what it should: no
    /// violation, and success or else the failure asked for.
    fn report(&self) -> (String, bool) {
        let mut out = String::new();
        let fail_id = self.plan.server.fail_id;
        let mut passed = self.seen.violations() == 0;
        match (&self.result, fail_id) {
            (Ok(count), _) => {
                let _ = writeln!(out, "result            ok: {count} IDs fetched");
                self.timing(&mut out);
                passed &= fail_id.is_none();
            }
            (Err(err), Some(expected)) if err.user_id() == Some(expected) => {
                self.fail_fast(&mut out, err);
            }
            (Err(err), _) => {
                let _ = writeln!(out, "result            failed: {err}");
                let _ = writeln!(out, "stopped after     {:.3} s", self.elapsed.as_secs_f64());
                passed = false;
            }
        }
        let _ = writeln!(
            out,
            "requests sent     {} by the client, {} seen by the server",
            self.client.requests_sent, self.seen.requests
        );
        let _ = writeln!(
            out,
            "most in flight    {} seen by the server (cap {})",
            self.seen.peak_in_flight, self.plan.server.max_in_flight
        );
        let _ = writeln!(
            out,
            "violations        {} seen by the server ({} over the rate, {} over the cap)",
            self.seen.violations(),
            self.seen.rate_violations,
            self.seen.concurrency_violations
        );
        let _ = writeln!(out, "retries           {}", self.client.retries);
        (out, passed)
    }

    /// Wall time next to the fastest the limits allow.
    fn timing(&self, out: &mut String) {
        let (ideal, formula) = ideal(self.plan);
        let wall = self.elapsed.as_secs_f64();
        let _ = writeln!(out, "wall time         {wall:.3} s");
        let _ = writeln!(
            out,
            "ideal             {:.3} s = {formula}",
            ideal.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "ratio             {:.3}",
            wall / ideal.as_secs_f64().max(f64::EPSILON)
        );
    }

    /// How soon the run stopped on the failing ID, and what it never requested.
    fn fail_fast(&self, out: &mut String, err: &FetchError) {
        let requested = (1..=self.plan.ids)
            .filter(|id| self.seen.ids.contains(id))
            .count() as u64;
        let _ = writeln!(out, "result            failed fast: {err}");
        let _ = writeln!(
            out,
            "stopped after     {:.3} s (from start to return)",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "never requested   {} of {} IDs",
            self.plan.ids - requested,
            self.plan.ids
        );
    }
}

/// The fastest the client's limits allow: the burst at once, then the rate, plus one
/// latency for the last answer; or, when the cap binds harder, one latency per wave
/// of `max_in_flight` requests.
fn ideal(plan: &Plan) -> (Duration, String) {
    let n = plan.ids;
    let latency = plan.server.latency.as_secs_f64();
    let by_cap = n.div_ceil(plan.client_cap as u64) as f64 * latency;
    let by_cap_formula = format!("ceil({n} / {}) × {latency:.3}", plan.client_cap);
    let Some((rate, burst)) = plan.client_rate else {
        return (Duration::from_secs_f64(by_cap), by_cap_formula);
    };
    let by_rate = n.saturating_sub(burst) as f64 / rate.as_per_second() + latency;
    if by_rate >= by_cap {
        let formula = format!("({n} - {burst}) / {} + {latency:.3}", rate.as_per_second());
        (Duration::from_secs_f64(by_rate), formula)
    } else {
        (Duration::from_secs_f64(by_cap), by_cap_formula)
    }
}

/// Prints to stdout; a reader that went away is no reason to fail the demo.
fn print(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(ids: u64, rate: Option<(Rate, u64)>, cap: usize, latency_ms: u64) -> Plan {
        Plan {
            ids,
            client_rate: rate,
            client_cap: cap,
            server: ServerConfig {
                rate,
                max_in_flight: cap,
                latency: Duration::from_millis(latency_ms),
                fail_id: None,
            },
        }
    }

    #[test]
    fn ideal_by_rate() {
        let (by_rate, formula) =
            ideal(&plan(100, Some((Rate::per_second(10).unwrap(), 20)), 8, 50));
        assert_eq!(by_rate, Duration::from_millis(8050));
        assert_eq!(formula, "(100 - 20) / 10 + 0.050");
    }

    #[test]
    fn ideal_by_cap_when_unlimited_or_slow() {
        let (unlimited, _) = ideal(&plan(100, None, 8, 50));
        assert_eq!(unlimited, Duration::from_millis(650));
        // 10 IDs within the burst, but only 2 at a time.
        let (capped, formula) = ideal(&plan(10, Some((Rate::per_second(10).unwrap(), 20)), 2, 100));
        assert_eq!(capped, Duration::from_millis(500));
        assert_eq!(formula, "ceil(10 / 2) × 0.100");
    }
}
