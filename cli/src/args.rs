//! The command line: subcommands, flags and their help.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use fanout::Rate;

use crate::ids::KeyList;
use crate::shard::ShardArg;
use crate::timeline;
use crate::tls::TlsArgs;

/// Fetch many IDs from one HTTP API as fast as its limits allow, and never faster.
#[derive(Debug, Parser)]
#[command(name = "fanout", version, propagate_version = true)]
pub struct Cli {
    /// Show the library's logs (each attempt's user_id, status and latency) on
    /// stderr. RUST_LOG, when set, chooses the filter instead.
    #[arg(short, long, global = true, action = ArgAction::SetTrue)]
    pub verbose: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch every ID from a URL template such as http://host/users/{id}/widgets.
    #[command(after_help = SEE_LONG_HELP, after_long_help = FETCH_AFTER_HELP)]
    // Boxed: its flags outweigh the demo's several times over.
    Fetch(Box<FetchArgs>),
    /// Run a strict local API and fetch from it, to see its limits kept.
    #[command(after_help = SEE_LONG_HELP, after_long_help = DEMO_AFTER_HELP)]
    Demo(DemoArgs),
}

const SEE_LONG_HELP: &str = "See --help for the output and the exit status.";

const FETCH_AFTER_HELP: &str = "\
Output:
  default     stdout is one JSON line: {\"ok\":true,\"count\":N,\"bytes\":B} on success,
              {\"ok\":false,\"user_id\":ID,\"error\":\"...\"} on failure (user_id is null
              when the whole run ended: deadline, Ctrl-C, or a --redis that cannot
              be reached at the start). With --redis-fallback-processes both
              lines add \"redis_fallback_requests\":K, the requests sent on this
              process's share while Redis was unreachable.
  --out-dir   each body is written to DIR/ID (through a temporary file in DIR and a
              rename, so no file under its final name is ever half-written; a
              second Ctrl-C may leave a .fanout-*.part file); stdout still gets
              the one summary line.
  --jsonl     one line per ID as it completes: {\"id\":..,\"bytes\":..,\"body\":\"..\"},
              or \"body_base64\" when the body is not UTF-8. No summary line.
  --jsonl-file FILE
              the same lines appended to FILE (failed IDs get none); stdout gets
              the summary line.
  A body under --out-dir or in --jsonl-file counts as done once it is synced to
  disk, with its directory.

--resume skips the IDs saved by an earlier run into the same --out-dir or
--jsonl-file, after removing .fanout-*.part files and a torn last line that a killed
run left. The summary line then adds \"skipped\":S after count, and the progress bar
shows them apart. A run killed at any moment (even SIGKILL) and resumed loses
nothing, and fetches again only the IDs whose results were not yet saved. One
process at a time per --out-dir or --jsonl-file.

By default failure is fail-fast in every mode: the first ID that fails for good (after
its retries) stops the run, the IDs not yet sent are never requested, and the error is
reported (in --jsonl mode as {\"id\":ID,\"error\":\"...\"}, the last line).

--keep-going tries every ID. An ID that fails for good is reported and the run goes
on; if any failed, the summary line is
  {\"ok\":false,\"count\":N,\"bytes\":B,\"failed\":F,\"failures_by_kind\":{\"http_status\":F1,..},
   \"first_failure\":{\"id\":ID,\"kind\":..,\"status\":..,\"error\":\"..\"}}
with exit 1, where count is the IDs fetched and failed the IDs that failed for good
(count + failed = the IDs of the run); with none failed it is the usual ok:true line.
Kinds: http_status, transport, timeout, too_large, internal. In --jsonl mode each
failed ID is a line {\"id\":ID,\"kind\":..,\"status\":..,\"error\":\"..\"} (status only
for http_status) and there is no summary line. Ctrl-C, --deadline-ms, a result that
cannot be written, and a --redis that cannot be reached (kind limiter) still end the
run; the summary then adds \"user_id\" and \"error\" as the fail-fast line has them.

--failures FILE lists each ID that failed for good, one such JSON object a line, as
the failures come. Retry them with: jq -r .id FILE > retry.txt; fanout fetch ...
--ids-file retry.txt.

--shard INDEX/COUNT fetches only the IDs whose key hashes to INDEX: the key is the
ID's decimal form, hashed with FNV-1a 64 then MurmurHash3's fmix64, modulo COUNT.
Every process, on any machine and any version, splits the same input the same way.
--shard auto/COUNT takes INDEX from $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
The progress bar and the summary count this shard's IDs only.

Exit status: 0 success, 1 a failed run, 2 a usage error (nothing on stdout),
130 interrupted by Ctrl-C (a second Ctrl-C exits at once).

A progress bar is drawn on stderr when it is a terminal.";

const DEMO_AFTER_HELP: &str = "\
The local API listens on 127.0.0.1 (an ephemeral port) and answers 429 to any request
that breaks its token bucket (5 ms tolerance) and 503 to any beyond its concurrency
cap, counting each as a violation. The demo starts cold, fetches IDs 1..=N and
reports the wall time against the ideal (N - burst) / rate + latency, and the
violations the server saw.

Exit status: 0 when the run succeeded with no violation (with --fail-id: when it
failed on exactly that ID, with no violation), 1 otherwise, 2 on a usage error, 130
on Ctrl-C.";

/// The client's limits, shared by both subcommands.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests per window, retries included: AMOUNT[/WINDOW] such as 10, 0.5,
    /// 100/min, 5000/h, 900/15min or 86400/d (a bare amount is per second; 0: no
    /// rate limit).
    #[arg(long, value_name = "AMOUNT[/WINDOW]", default_value = "10", value_parser = parse_rate)]
    pub rate: RateArg,

    /// Requests that may go out at once after a pause (the bucket starts full).
    #[arg(long, value_name = "N", default_value_t = fanout::DEFAULT_BURST)]
    pub burst: u64,

    /// Most requests in flight at once (also the number of worker threads).
    #[arg(long, value_name = "N", default_value_t = fanout::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,

    /// Draw requests started and requests in flight over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub timeline: Option<PathBuf>,
}

impl LimitArgs {
    /// The rate and burst, or `None` for `--rate 0` (no limit).
    pub fn rate_limit(&self) -> Option<(Rate, u64)> {
        self.rate.0.map(|rate| (rate, self.burst))
    }

    /// The limits a timeline is drawn against.
    pub fn timeline_limits(&self) -> timeline::Limits {
        timeline::Limits {
            rate: self.rate_limit(),
            max_in_flight: self.max_in_flight,
        }
    }
}

/// A `--rate`: a [`Rate`], or `None` for `0`, no limit.
#[derive(Debug, Clone, Copy)]
pub struct RateArg(pub Option<Rate>);

fn parse_rate(s: &str) -> Result<RateArg, String> {
    if s.trim() == "0" {
        return Ok(RateArg(None));
    }
    s.parse::<Rate>()
        .map(|r| RateArg(Some(r)))
        .map_err(|e| e.to_string())
}

/// `fanout fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The URL of one resource, with {id} where the user ID goes.
    #[arg(value_name = "URL_TEMPLATE")]
    pub template: String,

    /// Keys to fetch, comma-separated: numeric IDs, inclusive ranges of them, and
    /// text keys (1-100,205,alice). `a-b` is a range only when both ends are
    /// numbers. May be given more than once. Duplicates are fetched once.
    #[arg(long, value_name = "LIST", value_parser = KeyList::parse_spec)]
    pub ids: Vec<KeyList>,

    /// A file with one key per line, trimmed (blank lines and # comments ignored);
    /// - reads stdin.
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,

    /// The client's limits.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Timeout of one attempt, from connecting to the last byte, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,

    /// Attempts per ID, the first included (1: no retries). Retried: 429, 502,
    /// 503, 504, connection errors and timeouts. A 429 (or 503 with Retry-After)
    /// that the client answers by pausing or slowing down does not count.
    #[arg(long, value_name = "N", default_value_t = fanout::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,

    /// Keep the configured rate even when the server answers 429 without rate-limit
    /// headers (its Retry-After pauses and headers are still obeyed).
    #[arg(long)]
    pub no_adaptive_rate: bool,

    /// Fail an ID that the server goes on throttling (429) for longer than this,
    /// in milliseconds. Throttled tries do not count against --max-attempts.
    #[arg(long, value_name = "MS", default_value_t = 600_000)]
    pub max_throttled_ms: u64,

    /// Stop the whole run after this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,

    /// A header for every request, as 'Name: value'. May be repeated.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Send every request through this proxy (http://, https://, socks5h://...,
    /// with user:password@ if it asks); '' for none, whatever the environment says.
    /// By default, as curl: https_proxy or HTTPS_PROXY for an https URL, http_proxy
    /// for an http one, else all_proxy or ALL_PROXY; hosts in no_proxy or NO_PROXY
    /// are reached directly.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Send no Accept-Encoding: ask for bodies as they are, not gzip or brotli
    /// compressed. A compressed body is always decoded, and the 16 MiB limit on a
    /// body applies to its decoded size.
    #[arg(long)]
    pub no_compression: bool,

    /// Write each body to DIR/ID instead of only counting it.
    #[arg(long, value_name = "DIR", conflicts_with = "jsonl")]
    pub out_dir: Option<PathBuf>,

    /// Print one JSON line per ID as results arrive.
    #[arg(long, conflicts_with = "jsonl_file")]
    pub jsonl: bool,

    /// Append the --jsonl lines to FILE instead (each flushed to disk before the ID
    /// counts as done); stdout gets the summary line.
    #[arg(long, value_name = "FILE", conflicts_with = "out_dir")]
    pub jsonl_file: Option<PathBuf>,

    /// Skip the IDs an earlier run already saved: those with a file in --out-dir, or a
    /// line in --jsonl-file. Temporary files and a torn last line that a killed run
    /// left behind are removed first.
    #[arg(long)]
    pub resume: bool,

    /// Try every ID: report each that fails for good and go on, then exit 1 if any
    /// failed (see --help for the summary line). Without it, the first failure
    /// stops the run.
    #[arg(long)]
    pub keep_going: bool,

    /// Write each ID that fails for good to FILE as a JSON line
    /// {"id":..,"kind":..,"status":..,"error":".."}, to retry them later
    /// (jq -r .id FILE gives an --ids-file).
    #[arg(long, value_name = "FILE")]
    pub failures: Option<PathBuf>,

    /// Fetch only one part of the IDs: those whose decimal form hashes to INDEX of
    /// COUNT parts, a split every process computes alike. auto/COUNT takes INDEX from
    /// $JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "INDEX/COUNT", value_parser = ShardArg::parse)]
    pub shard: Option<ShardArg>,

    /// Share the rate limit with every process that uses the same --limit-key on
    /// this Redis server (redis://HOST:PORT/): --rate and --burst are then the quota
    /// of all of them together. Without --redis-fallback-processes, the run fails
    /// (exit 1) if Redis cannot be reached, before any request if it is at the start.
    #[arg(long, value_name = "URL", requires = "limit_key")]
    pub redis: Option<String>,

    /// The Redis key that holds the shared quota.
    #[arg(long, value_name = "KEY", requires = "redis")]
    pub limit_key: Option<String>,

    /// While Redis cannot be reached, at the start or later, go on with a local bucket
    /// holding 1/N of the quota, N being the number of processes sharing it, instead
    /// of failing. Redis is asked again every second; each switch is a warning.
    #[arg(long, value_name = "N", requires = "redis", value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_fallback_processes: Option<u64>,

    /// TLS settings (boxed: they are rarely given, and large).
    #[command(flatten)]
    pub tls: Box<TlsArgs>,
}

/// `fanout demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many IDs to fetch (1..=N).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub ids: u64,

    /// The client's limits, which are also the server's unless overridden below.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// The server's latency per request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub latency_ms: u64,

    /// The server's rate, if not --rate, as AMOUNT[/WINDOW] (0: the server
    /// enforces no rate).
    #[arg(long, value_name = "AMOUNT[/WINDOW]", value_parser = parse_rate)]
    pub server_rate: Option<RateArg>,

    /// The server's burst, if not --burst.
    #[arg(long, value_name = "N")]
    pub server_burst: Option<u64>,

    /// The server's concurrency cap, if not --max-in-flight.
    #[arg(long, value_name = "N")]
    pub server_max_in_flight: Option<usize>,

    /// Make this ID answer 500, to see the run stop at the first failure.
    #[arg(long, value_name = "ID")]
    pub fail_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The arguments of the Kubernetes example's `fanout` container: the `- ITEM`
    /// lines after `args:`, unquoted. An unquoted item holding ": " would be a YAML
    /// mapping, not a string: refused.
    fn manifest_args(manifest: &str) -> Vec<String> {
        let mut lines = manifest.lines().map(str::trim);
        lines
            .by_ref()
            .find(|line| *line == "args:")
            .expect("an args: list");
        lines
            .filter(|line| !line.starts_with('#'))
            .map_while(|line| line.strip_prefix("- "))
            .map(|item| match item.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"').expect("a closing quote").into(),
                None => {
                    assert!(!item.contains(": "), "{item:?} would be a YAML mapping");
                    item.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn the_kubernetes_example_is_a_valid_command_line() {
        let manifest = include_str!("../../examples/k8s/fanout-job.yaml");
        let args = manifest_args(manifest);
        let cli = Cli::try_parse_from(std::iter::once("fanout".to_string()).chain(args))
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Fetch(fetch) = cli.command else {
            panic!("not fetch");
        };
        assert!(fetch.resume && fetch.out_dir.is_some() && fetch.redis.is_some());
        // One pod per shard.
        let shard = fetch.shard.expect("--shard").resolve(Some("0")).unwrap();
        for field in ["completions", "parallelism"] {
            let line = format!("{field}: {}", shard.count());
            assert!(manifest.lines().any(|l| l.trim() == line), "no {line:?}");
        }
    }

    #[test]
    fn out_dir_and_jsonl_conflict() {
        let parsed =
            Cli::try_parse_from(["fanout", "fetch", "http://h/{id}", "--ids", "1", "--jsonl"]);
        assert!(parsed.is_ok());
        let parsed = Cli::try_parse_from([
            "fanout",
            "fetch",
            "http://h/{id}",
            "--ids",
            "1",
            "--jsonl",
            "--out-dir",
            "x",
        ]);
        assert!(parsed.is_err());
    }
}
