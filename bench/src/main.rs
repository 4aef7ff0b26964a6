//! Measures `fanout` against its goals on a local downstream and prints one table:
//! rate and concurrency efficiency, obedience to a server's quota, per-request
//! overhead beside a plain `ureq` loop (over HTTP and over HTTPS), cancellation
//! latency, and the thread count during a large call.
//!
//! Run with `cargo run --release -p fanout-bench`. The downstream runs in a child
//! process (this binary re-executed with the hidden `serve` argument), so the CPU time
//! this process reports is the client's alone. The cancellation figure needs the
//! server's clock, so it uses a server inside this process instead.

mod plain;
mod server;

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Bodies, FanOutClient, Rate};

use crate::server::Server;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Requests in each overhead round.
const OVERHEAD_IDS: u64 = 100_000;
/// Requests in each round of the overhead figure over HTTPS.
const HTTPS_IDS: u64 = 50_000;
/// Rounds of each side in the overhead figure, interleaved.
const OVERHEAD_ROUNDS: usize = 3;
/// Workers on both sides of the overhead figure.
const WORKERS: usize = 8;
/// Measured runs of the cancellation figure.
const CANCEL_RUNS: usize = 100;
/// Cancellation runs before those, to set up connections and warm caches.
const CANCEL_WARMUP: usize = 5;
/// IDs in each cancellation run, all in flight at once: ID 0 fails, the others hang.
const CANCEL_IDS: u64 = 8;
/// IDs in the call of the memory figure.
const MEMORY_IDS: u64 = 1_000_000;
/// IDs in the call watched by the thread-count figure.
const THREAD_IDS: u64 = 20_000;
/// IDs in each run of the throttle figure.
const THROTTLE_IDS: u64 = 150;
/// The rate the throttle figure's client is told: four times the server's.
const THROTTLE_TOLD: u64 = 40;

/// The figures, by the name that selects one on the command line.
const FIGURES: [&str; 8] = [
    "rate",
    "concurrency",
    "throttle",
    "overhead",
    "https",
    "threads",
    "cancel",
    "memory",
];

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(),
        Some("solo") => {
            let ids = match args.get(2) {
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("solo: {n:?} is not a count of IDs"))?,
                None => OVERHEAD_IDS,
            };
            let https = args.get(3).is_some_and(|a| a == "https");
            return solo(args.get(1).map(String::as_str), ids, https);
        }
        Some("memory-child") => {
            let text = args.get(2).is_some_and(|a| a == "text");
            return memory_child(args.get(1).map(String::as_str), text);
        }
        _ => {}
    }
    if let Some(unknown) = args.iter().find(|a| !FIGURES.contains(&a.as_str())) {
        return Err(format!(
            "unknown figure {unknown:?}; figures: {}",
            FIGURES.join(", ")
        )
        .into());
    }
    let wanted = |figure: &str| args.is_empty() || args.iter().any(|a| a == figure);

    print_machine();
    let downstream = Downstream::spawn()?;
    let addr = downstream.addr;
    let mut table = Table::default();
    let mut notes = Vec::new();

    if wanted("rate") {
        eprintln!("rate efficiency (about 10 s)...");
        rate_efficiency(addr, &mut table)?;
    }
    if wanted("concurrency") {
        eprintln!("concurrency efficiency (about 6 s)...");
        concurrency_efficiency(addr, &mut table)?;
    }
    if wanted("throttle") {
        eprintln!("throttle (about 30 s)...");
        notes.extend(throttle(addr, &mut table)?);
    }
    if wanted("overhead") {
        eprintln!("overhead ({OVERHEAD_ROUNDS} rounds of {OVERHEAD_IDS} per side)...");
        let target = Target::plain(addr);
        notes.extend(overhead(&target, OVERHEAD_IDS, "", &mut table)?);
    }
    if wanted("https") {
        eprintln!("overhead over HTTPS ({OVERHEAD_ROUNDS} rounds of {HTTPS_IDS} per side)...");
        let target = downstream.tls_target();
        notes.extend(overhead(&target, HTTPS_IDS, "over HTTPS ", &mut table)?);
    }
    if wanted("threads") {
        eprintln!("threads...");
        threads(addr, &mut table)?;
    }
    drop(downstream);
    if wanted("cancel") {
        eprintln!("cancellation ({CANCEL_RUNS} runs)...");
        cancellation(&mut table, &mut notes)?;
    }
    if wanted("memory") {
        eprintln!("memory ({MEMORY_IDS} IDs, then text keys, in child processes; about 40 s)...");
        memory(&mut table)?;
    }

    table.print();
    println!();
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

/// The hidden `solo` mode, for profilers: one side of the overhead figure alone,
/// `fanout`, `spawning` or `pool`, five rounds of `n` IDs, against a downstream in a
/// child process, over HTTPS with `https`.
fn solo(side: Option<&str>, n: u64, https: bool) -> BenchResult<()> {
    let downstream = Downstream::spawn()?;
    let target = if https {
        downstream.tls_target()
    } else {
        Target::plain(downstream.addr)
    };
    let base = target.base.as_str();
    let rounds = 5;
    let all = ids(0..n);
    let agent = plain::agent(target.ca_pem.as_deref())?;
    match side {
        Some("fanout") => {
            let client = overhead_client(&target)?;
            for _ in 0..rounds {
                let (sample, got) = measure(|| Ok(client.fetch_all(&all)?))?;
                check_all(&got, all.len())?;
                print_sample("fanout", &sample, n);
            }
        }
        Some("spawning") => {
            for _ in 0..rounds {
                let (sample, got) = measure(|| plain::fetch_all_spawning(&agent, base, n))?;
                check_plain(&got, all.len())?;
                print_sample("plain, spawned per call", &sample, n);
            }
        }
        Some("pool") => {
            let pool = plain::Pool::start(&agent, base);
            for _ in 0..rounds {
                let (sample, got) = measure(|| pool.fetch_all(n))?;
                check_plain(&got, all.len())?;
                print_sample("plain, started once", &sample, n);
            }
        }
        _ => return Err("usage: fanout-bench solo fanout|spawning|pool [IDS] [https]".into()),
    }
    Ok(())
}

fn print_sample(side: &str, sample: &Sample, n: u64) {
    println!(
        "{side}: {:.0} req/s, {:.2} us CPU and {:.2} context switches per request",
        sample.per_second(n),
        sample.cpu_micros_per_request(n),
        sample.switches_per_request(n)
    );
}

/// The hidden `serve` mode: runs the downstream, plain and over TLS, until the parent
/// closes our stdin. Prints both addresses, then the PEM of the CA to trust.
fn serve() -> BenchResult<()> {
    let server = Server::start()?;
    let tls_server = Server::start_tls()?;
    let ca_pem = tls_server.ca_pem().ok_or("the TLS server has no CA")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.addr())?;
    writeln!(stdout, "{}", tls_server.addr())?;
    write!(stdout, "{ca_pem}")?;
    stdout.flush()?;
    // Returns at EOF: the parent finished, or died.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// The downstream in its child process; dropping it ends the child.
struct Downstream {
    child: Child,
    addr: SocketAddr,
    /// The same downstream over TLS.
    tls_addr: SocketAddr,
    /// The CA that signed its certificate.
    ca_pem: String,
}

impl Downstream {
    fn spawn() -> BenchResult<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut next = || lines.next().ok_or("the downstream ended early");
        let addr = next()??.trim().parse()?;
        let tls_addr = next()??.trim().parse()?;
        let mut ca_pem = String::new();
        while !ca_pem.contains("-----END CERTIFICATE-----") {
            ca_pem.push_str(&next()??);
            ca_pem.push('\n');
        }
        Ok(Downstream {
            child,
            addr,
            tls_addr,
            ca_pem,
        })
    }
}

impl Downstream {
    /// The downstream over TLS, with the CA to trust.
    fn tls_target(&self) -> Target {
        Target {
            base: format!("https://{}", self.tls_addr),
            ca_pem: Some(self.ca_pem.clone()),
        }
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn print_machine() {
    let cpus = thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let date = Command::new("date")
        .arg("-u")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("fanout-bench  {date}");
    println!("machine: {cpus} CPUs, {model}");
    println!();
}

/// Rows of `figure | measured | goal | ratio/verdict`.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn row(&mut self, figure: &str, measured: String, goal: &str, verdict: String) {
        self.rows
            .push([figure.to_owned(), measured, goal.to_owned(), verdict]);
    }

    fn print(&self) {
        let header = ["figure", "measured", "goal", "ratio/verdict"].map(String::from);
        let mut widths = [0; 4];
        for row in std::iter::once(&header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 4]| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", rule.join("-|-"));
        for row in &self.rows {
            line(row);
        }
    }
}

fn verdict(ratio: f64, pass: bool) -> String {
    format!("{ratio:.4} {}", if pass { "pass" } else { "FAIL" })
}

fn ids(range: std::ops::Range<u64>) -> Vec<u64> {
    range.collect()
}

fn check_all(got: &Bodies, expected: usize) -> BenchResult<()> {
    check_counts(got.len(), got.total_bytes(), expected)
}

fn check_plain(got: &HashMap<u64, Vec<u8>>, expected: usize) -> BenchResult<()> {
    check_counts(got.len(), got.values().map(Vec::len).sum(), expected)
}

fn check_counts(bodies: usize, bytes: usize, expected: usize) -> BenchResult<()> {
    if bodies != expected || bytes != expected * server::BODY_BYTES {
        return Err(format!("expected {expected} bodies, got {bodies} ({bytes} bytes)").into());
    }
    Ok(())
}

/// Figure 1: the rate limit is used to the full, no slower than the bucket allows.
fn rate_efficiency(addr: SocketAddr, table: &mut Table) -> BenchResult<()> {
    let client = FanOutClient::builder(format!("http://{addr}/lat/50/users/{{id}}"))
        .rate_limit(10, 20)
        .build()?;
    // Connections set up here, then a full bucket again, so only the limit is timed.
    client.fetch_all(ids(1_000..1_008))?;
    thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let got = client.fetch_all(ids(0..100))?;
    let wall = start.elapsed().as_secs_f64();
    check_all(&got, 100)?;
    // The burst goes at once, the other 80 at 10/s; the last then takes its latency.
    let ideal = (100.0 - 20.0) / 10.0 + 0.05;
    let ratio = wall / ideal;
    table.row(
        "rate efficiency: 100 IDs, 10/s burst 20, 50 ms",
        format!("{wall:.4} s (ideal {ideal:.2} s)"),
        "wall/ideal <= 1.001",
        verdict(ratio, ratio <= 1.001),
    );
    Ok(())
}

/// Figure 2: every slot is kept busy.
fn concurrency_efficiency(addr: SocketAddr, table: &mut Table) -> BenchResult<()> {
    let client = FanOutClient::builder(format!("http://{addr}/lat/100/users/{{id}}"))
        .no_rate_limit()
        .max_in_flight(8)
        .build()?;
    client.fetch_all(ids(1_000..1_008))?;
    let start = Instant::now();
    let got = client.fetch_all(ids(0..400))?;
    let wall = start.elapsed().as_secs_f64();
    check_all(&got, 400)?;
    let ideal = 400.0 / 8.0 * 0.1;
    let ratio = wall / ideal;
    table.row(
        "concurrency efficiency: 400 IDs, 8 in flight, 100 ms",
        format!("{wall:.4} s (ideal {ideal:.1} s)"),
        "wall/ideal <= 1.01",
        verdict(ratio, ratio <= 1.01),
    );
    Ok(())
}

/// One run of the throttle figure.
struct ThrottleRun {
    label: &'static str,
    /// The server's rate-limit headers: `none`, `ietf` or `x`.
    headers: &'static str,
    adaptive: bool,
    /// Most 429 share and wall/ideal; `None` for the reference run.
    goals: Option<(f64, f64)>,
}

/// What one throttle run measured.
struct ThrottleResult {
    wall: f64,
    stats: fanout::Stats,
}

/// Figure: a client told four times the server's quota keeps to the quota once the
/// server says so, by 429s alone or by rate-limit headers.
///
/// The runs go side by side, each with its own client and server bucket: the server
/// paces them, at 10 requests a second each, so they do not contend for the CPUs, and
/// the figure takes as long as its slowest run rather than the sum.
fn throttle(addr: SocketAddr, table: &mut Table) -> BenchResult<Vec<String>> {
    let runs = [
        ThrottleRun {
            label: "no headers",
            headers: "none",
            adaptive: true,
            goals: Some((0.05, 1.15)),
        },
        ThrottleRun {
            label: "IETF RateLimit headers",
            headers: "ietf",
            adaptive: true,
            goals: Some((0.03, 1.05)),
        },
        ThrottleRun {
            label: "X-RateLimit headers",
            headers: "x",
            adaptive: true,
            goals: Some((0.03, 1.05)),
        },
        ThrottleRun {
            label: "no headers, adaptive_rate(false)",
            headers: "none",
            adaptive: false,
            goals: None,
        },
    ];
    let results: Vec<BenchResult<ThrottleResult>> = thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| scope.spawn(move || throttle_run(addr, i, run)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("run panicked".into())))
            .collect()
    });
    // The burst goes at once, the rest at the server's rate; the last then takes its
    // latency.
    let ideal = (THROTTLE_IDS as f64 - server::QUOTA_BURST) / server::QUOTA_RATE
        + server::QUOTA_LATENCY.as_secs_f64();
    let mut notes = vec![format!(
        "throttle runs (server {}/s burst {}, client told {THROTTLE_TOLD}/s burst \
         {THROTTLE_TOLD}): requests sent, answered 429, rate kept at the end and its source:",
        server::QUOTA_RATE,
        server::QUOTA_BURST
    )];
    for (run, result) in runs.iter().zip(results) {
        let ThrottleResult { wall, stats } = result.map_err(|e| format!("{}: {e}", run.label))?;
        let share = stats.throttled as f64 / stats.requests_sent as f64;
        let ratio = wall / ideal;
        let figure = format!("throttle, told 4x quota, {}", run.label);
        let shares = format!(
            "{:.1} % ({} of {})",
            share * 100.0,
            stats.throttled,
            stats.requests_sent
        );
        let timed = format!("{wall:.2} s (ideal {ideal:.2} s)");
        match run.goals {
            Some((most_share, most_ratio)) => {
                table.row(
                    &format!("{figure}: 429 share"),
                    shares,
                    &format!("<= {:.0} %", most_share * 100.0),
                    verdict(share, share <= most_share),
                );
                table.row(
                    &format!("{figure}: wall"),
                    timed,
                    &format!("wall/ideal <= {most_ratio:.2}"),
                    verdict(ratio, ratio <= most_ratio),
                );
            }
            None => table.row(
                &figure,
                format!("429 share {shares}; {timed}, {ratio:.4} x ideal"),
                "-",
                "-".into(),
            ),
        }
        notes.push(format!(
            "  {}: {} sent, {} answered 429, {} ({:?})",
            run.label,
            stats.requests_sent,
            stats.throttled,
            stats.effective_rate.map_or_else(
                || "no limit".into(),
                |r| format!("{:.2}/s", r.as_per_second())
            ),
            stats.rate_source
        ));
    }
    Ok(notes)
}

/// One run of the throttle figure, on a fresh client and a fresh server bucket.
fn throttle_run(addr: SocketAddr, index: usize, run: &ThrottleRun) -> BenchResult<ThrottleResult> {
    // A run name of its own, so each run meets a full bucket of its own.
    let template = format!(
        "http://{addr}/quota/{}/run{index}/users/{{id}}",
        run.headers
    );
    let client = FanOutClient::builder(template)
        .rate(Rate::per_second(THROTTLE_TOLD)?, THROTTLE_TOLD)
        .max_in_flight(8)
        .adaptive_rate(run.adaptive)
        .build()?;
    let start = Instant::now();
    let got = client.fetch_all(ids(0..THROTTLE_IDS))?;
    let wall = start.elapsed().as_secs_f64();
    check_all(&got, THROTTLE_IDS as usize)?;
    Ok(ThrottleResult {
        wall,
        stats: client.stats(),
    })
}

/// This process's resource usage so far, all threads.
fn usage() -> libc::rusage {
    // SAFETY: `getrusage` only writes the struct it is given, which is plain data
    // and valid when zeroed.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// CPU time and context switches of this process so far.
fn cpu_and_switches() -> (Duration, u64) {
    let usage = usage();
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let cpu = Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime));
    (cpu, (usage.ru_nvcsw + usage.ru_nivcsw) as u64)
}

/// One overhead round: wall time, and this process's CPU time and context switches.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    switches: u64,
}

impl Sample {
    fn per_second(&self, requests: u64) -> f64 {
        requests as f64 / self.wall.as_secs_f64()
    }

    fn cpu_micros_per_request(&self, requests: u64) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / requests as f64
    }

    fn switches_per_request(&self, requests: u64) -> f64 {
        self.switches as f64 / requests as f64
    }
}

fn measure<T>(work: impl FnOnce() -> BenchResult<T>) -> BenchResult<(Sample, T)> {
    let (wall_start, (cpu_start, switches_start)) = (Instant::now(), cpu_and_switches());
    let out = work()?;
    let (cpu_end, switches_end) = cpu_and_switches();
    let sample = Sample {
        wall: wall_start.elapsed(),
        cpu: cpu_end - cpu_start,
        switches: switches_end - switches_start,
    };
    Ok((sample, out))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Where an overhead figure fetches from: the downstream, plain or over TLS.
struct Target {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    base: String,
    /// The CA to trust over https.
    ca_pem: Option<String>,
}

impl Target {
    fn plain(addr: SocketAddr) -> Self {
        Target {
            base: format!("http://{addr}"),
            ca_pem: None,
        }
    }
}

/// The client of the overhead figures: no rate limit, `WORKERS` in flight.
fn overhead_client(target: &Target) -> BenchResult<FanOutClient> {
    let mut builder = FanOutClient::builder(format!("{}/lat/0/users/{{id}}", target.base))
        .no_rate_limit()
        .max_in_flight(WORKERS);
    if let Some(pem) = &target.ca_pem {
        builder = builder.tls_root_certs_pem(pem);
    }
    Ok(builder.build()?)
}

/// Figure 3 (and its HTTPS twin): requests per second and CPU per request, beside
/// plain `ureq` loops, over `n` IDs a round from `target`; `over` names the transport
/// in the rows.
fn overhead(target: &Target, n: u64, over: &str, table: &mut Table) -> BenchResult<Vec<String>> {
    let client = overhead_client(target)?;
    let base = target.base.as_str();
    let agent = plain::agent(target.ca_pem.as_deref())?;
    let pool_agent = plain::agent(target.ca_pem.as_deref())?;
    let pool = plain::Pool::start(&pool_agent, base);
    let all = ids(0..n);

    // Connections, allocator and caches warmed on every side before anything is timed.
    check_all(&client.fetch_all(&all[..5_000])?, 5_000)?;
    check_plain(&plain::fetch_all_spawning(&agent, base, 5_000)?, 5_000)?;
    check_plain(&pool.fetch_all(5_000)?, 5_000)?;

    let (mut fanout_runs, mut spawning_runs, mut pool_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..OVERHEAD_ROUNDS {
        let (sample, got) = measure(|| Ok(client.fetch_all(&all)?))?;
        check_all(&got, all.len())?;
        drop(got); // Freed outside the timing, as on the plain sides.
        fanout_runs.push(sample);
        let (sample, got) = measure(|| plain::fetch_all_spawning(&agent, base, n))?;
        check_plain(&got, all.len())?;
        drop(got);
        spawning_runs.push(sample);
        let (sample, got) = measure(|| pool.fetch_all(n))?;
        check_plain(&got, all.len())?;
        drop(got);
        pool_runs.push(sample);
    }

    let rate = |runs: &[Sample]| median(runs.iter().map(|s| s.per_second(n)).collect());
    let cpu = |runs: &[Sample]| median(runs.iter().map(|s| s.cpu_micros_per_request(n)).collect());
    let fanout = (rate(&fanout_runs), cpu(&fanout_runs));
    table.row(
        &format!(
            "throughput, fanout {over}({}k IDs, 0 ms, 64 B, 8 in flight)",
            n / 1000
        ),
        format!("{:.0} req/s", fanout.0),
        "-",
        "-".into(),
    );
    table.row(
        format!("client CPU per request, fanout {over}").trim_end(),
        format!("{:.2} us", fanout.1),
        "-",
        "-".into(),
    );
    let baselines = [
        ("plain loop, 8 threads spawned per call", &spawning_runs),
        ("plain loop, 8 threads started once", &pool_runs),
    ];
    for (name, runs) in baselines {
        let (plain_rate, plain_cpu) = (rate(runs), cpu(runs));
        let (rate_ratio, cpu_ratio) = (fanout.0 / plain_rate, fanout.1 / plain_cpu);
        table.row(
            &format!("throughput {over}vs {name}"),
            format!("{plain_rate:.0} req/s"),
            ">= 0.97 x plain",
            verdict(rate_ratio, rate_ratio >= 0.97),
        );
        table.row(
            &format!("CPU per request {over}vs {name}"),
            format!("{plain_cpu:.2} us"),
            "<= 1.05 x plain",
            verdict(cpu_ratio, cpu_ratio <= 1.05),
        );
    }
    let describe = |runs: &[Sample]| {
        runs.iter()
            .map(|s| {
                format!(
                    "{:.0} req/s {:.2} us {:.2} sw",
                    s.per_second(n),
                    s.cpu_micros_per_request(n),
                    s.switches_per_request(n)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(vec![
        format!(
            "overhead rounds{}, in order: req/s, CPU per request, context switches per \
             request (medians in the table; the server runs in a child process, so its CPU \
             is not counted, but it shares the machine's CPUs):",
            over.strip_suffix(' ')
                .map_or(String::new(), |o| format!(" {o}"))
        ),
        format!("  fanout:                {}", describe(&fanout_runs)),
        format!("  plain, spawned per call: {}", describe(&spawning_runs)),
        format!("  plain, started once:     {}", describe(&pool_runs)),
    ])
}

/// Threads of this process right now.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

/// Figure 5: a call adds no threads of its own, however many IDs it has.
fn threads(addr: SocketAddr, table: &mut Table) -> BenchResult<()> {
    for pool in [8, 32] {
        let stop = AtomicBool::new(false);
        let peak = AtomicU64::new(0);
        let (baseline, built) = thread::scope(|scope| -> BenchResult<(usize, usize)> {
            scope.spawn(|| {
                // Bounded: at most a minute of sampling, should the call never end.
                for _ in 0..30_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    peak.fetch_max(thread_count() as u64, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(2));
                }
            });
            // The sampler is running, so it is part of the baseline.
            thread::sleep(Duration::from_millis(20));
            let baseline = thread_count();
            let client = FanOutClient::builder(format!("http://{addr}/lat/0/users/{{id}}"))
                .no_rate_limit()
                .max_in_flight(pool)
                .build()?;
            let built = thread_count();
            peak.store(0, Ordering::Relaxed);
            let result = client.fetch_all(ids(0..THREAD_IDS));
            stop.store(true, Ordering::Relaxed);
            check_all(&result?, THREAD_IDS as usize)?;
            Ok((baseline, built))
        })?;
        let peak = peak.load(Ordering::Relaxed) as usize;
        let extra = peak.saturating_sub(baseline);
        table.row(
            &format!("threads added during a {THREAD_IDS}-ID call, pool {pool}"),
            format!("{extra} (pool built: +{})", built.saturating_sub(baseline)),
            &format!("= pool {pool} + const (<= {})", pool + 2),
            format!(
                "+{} over pool {}",
                extra.saturating_sub(pool),
                if extra <= pool + 2 { "pass" } else { "FAIL" }
            ),
        );
    }
    Ok(())
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Figure 4: a failure ends the call at once, and its hung requests are let go.
///
/// Beside it, run for run, the floor: the same wake-ups with no library in between,
/// so machine noise can be told from `fanout`'s own cost.
fn cancellation(table: &mut Table, notes: &mut Vec<String>) -> BenchResult<()> {
    let server = Server::start()?;
    let client = FanOutClient::builder(format!("http://{}/cancel/users/{{id}}", server.addr()))
        .no_rate_limit()
        .max_in_flight(CANCEL_IDS as usize)
        .build()?;
    let agent = plain::agent(None)?;
    let (mut to_return, mut to_drain, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..CANCEL_WARMUP + CANCEL_RUNS {
        let result = client.fetch_all(ids(0..CANCEL_IDS));
        let returned = Instant::now();
        // Polled rather than spun, to leave the CPUs to the workers being freed.
        let drain_limit = returned + Duration::from_secs(1);
        while client.stats().in_flight > 0 && Instant::now() < drain_limit {
            thread::sleep(Duration::from_micros(50));
        }
        let drained = Instant::now();
        let written = server.take_fail_written().ok_or("no 500 was written")?;
        server.release_hung();
        // Lets the released server threads and the last run's sockets wind down, so
        // each run starts from the same quiet state.
        thread::sleep(Duration::from_millis(10));
        match result {
            Err(e) if e.status() == Some(500) && e.user_id() == Some(0) => {}
            other => {
                return Err(format!("run {run}: expected the 500 of ID 0, got {other:?}").into());
            }
        }
        if client.stats().in_flight > 0 {
            return Err(format!("run {run}: requests still in flight after 1 s").into());
        }
        // Right after the fanout run, so both see the machine in the same state.
        let floor_sample =
            cancel_floor(&server, &agent).map_err(|e| format!("run {run}, floor: {e}"))?;
        thread::sleep(Duration::from_millis(10));
        if run >= CANCEL_WARMUP {
            to_return.push(returned.saturating_duration_since(written));
            to_drain.push(drained - returned);
            floor.push(floor_sample);
        }
    }
    to_return.sort();
    to_drain.sort();
    floor.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = percentile(&to_return, 99.0);
    table.row(
        "cancel: 500 written -> fetch_all returns (100 runs)",
        format!(
            "p50 {:.3} ms, p99 {:.3} ms",
            ms(percentile(&to_return, 50.0)),
            ms(p99)
        ),
        "p99 <= 1 ms",
        verdict(ms(p99), p99 <= Duration::from_millis(1)),
    );
    let floor_p99 = percentile(&floor, 99.0);
    table.row(
        "cancel floor: 500 written -> plain thread woken",
        format!(
            "p50 {:.3} ms, p99 {:.3} ms",
            ms(percentile(&floor, 50.0)),
            ms(floor_p99)
        ),
        "-",
        "-".into(),
    );
    // Informative only: the two p99s come from different runs, so the difference is
    // itself noisy and can be negative.
    table.row(
        "cancel: fanout p99 - floor p99",
        format!("{:+.3} ms", ms(p99) - ms(floor_p99)),
        "-",
        "-".into(),
    );
    let worst = to_drain[to_drain.len() - 1];
    let slowest = |sorted: &[Duration]| {
        sorted[sorted.len() - 5..]
            .iter()
            .map(|d| format!("{:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    notes.push(format!(
        "cancel, 5 slowest of {CANCEL_RUNS} (ms): to return {}; to drain {}; floor {}",
        slowest(&to_return),
        slowest(&to_drain),
        slowest(&floor)
    ));
    table.row(
        "cancel: fetch_all returns -> stats().in_flight == 0",
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(percentile(&to_drain, 50.0)),
            ms(percentile(&to_drain, 99.0)),
            ms(worst)
        ),
        "<= 10 ms",
        verdict(ms(worst) / 10.0, worst <= Duration::from_millis(10)),
    );
    Ok(())
}

/// One run of the cancellation floor: the least any client could do on the same path.
/// One plain thread per ID on a shared agent, the caller blocked on a channel until
/// the thread that got the 500 wakes it. Returns the time from the server starting to
/// write that 500 to the caller running again. No socket is shut down: nothing but
/// the 500 wakes the caller, so there is nothing to cancel.
fn cancel_floor(server: &Server, agent: &ureq::Agent) -> BenchResult<Duration> {
    let addr = server.addr();
    let (woken_tx, woken_rx) = crossbeam_channel::bounded::<u16>(1);
    thread::scope(|scope| {
        let threads: Vec<_> = (0..CANCEL_IDS)
            .map(|id| {
                // Only ID 0's thread holds a sender, so should it fail before sending,
                // the channel disconnects and the caller does not wait for ever.
                let woken_tx = (id == 0).then(|| woken_tx.clone());
                scope.spawn(move || -> BenchResult<u16> {
                    let url = format!("http://{addr}/cancel/users/{id}");
                    let mut response = agent.get(&url).call()?;
                    let status = response.status().as_u16();
                    if let Some(woken_tx) = woken_tx {
                        // Before the body: the least work between the answer and the wake.
                        let _ = woken_tx.send(status);
                    }
                    // Read to the end, so the connection goes back to the agent.
                    response.body_mut().read_to_vec()?;
                    Ok(status)
                })
            })
            .collect();
        drop(woken_tx);
        let woken = woken_rx.recv();
        let woken_at = Instant::now();
        let written = server.take_fail_written();
        // Released until every thread has its answer: a request that reached the
        // server after a release would wait for the next one.
        let release_limit = Instant::now() + Duration::from_secs(1);
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < release_limit {
            server.release_hung();
            thread::sleep(Duration::from_micros(50));
        }
        let all_answered = threads.iter().all(|t| t.is_finished());
        let statuses: Vec<BenchResult<u16>> = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect();
        for (id, status) in statuses.into_iter().enumerate() {
            let status = status.map_err(|e| format!("ID {id}: {e}"))?;
            let expected = if id == 0 { 500 } else { 200 };
            if status != expected {
                return Err(format!("ID {id}: expected status {expected}, got {status}").into());
            }
        }
        if !all_answered {
            return Err("plain threads still hung 1 s after release".into());
        }
        woken.map_err(|_| "ID 0's thread ended without waking the caller")?;
        let written = written.ok_or("no 500 was written")?;
        Ok(woken_at.saturating_duration_since(written))
    })
}

/// Figure 5, memory: the peak resident size of a process that fetches `MEMORY_IDS`
/// IDs with `fetch_all` and keeps the result, measured in a child process of its own so
/// that nothing else this bench did is counted; then the same with as many text keys
/// (see [`text_key`]) through `fetch_all_keys`, the caller's list of keys included.
fn memory(table: &mut Table) -> BenchResult<()> {
    // A downstream of its own: the others are gone by now.
    let downstream = Downstream::spawn()?;
    let addr = downstream.addr.to_string();
    let bodies = MEMORY_IDS * server::BODY_BYTES as u64;
    let goal = 2 * bodies + 16 * 1024 * 1024;

    let (peak, _) = memory_child_peaks(&addr, "ids")?;
    let ratio = peak as f64 / goal as f64;
    table.row(
        "peak RSS, fetch_all of 1,000,000 IDs, 64 B bodies",
        format!("{:.1} MiB (bodies {:.1} MiB)", mib(peak), mib(bodies)),
        &format!("<= 2 x bodies + 16 MiB = {:.1} MiB", mib(goal)),
        verdict(ratio, ratio <= 1.0),
    );

    let (peak, list) = memory_child_peaks(&addr, "text")?;
    let text: u64 = (0..MEMORY_IDS).map(|n| text_key(n).len() as u64).sum();
    // The caller's own list of keys is theirs; the library may take the IDs' goal plus
    // twice the keys' text (its copy, and what indexes it).
    let goal = list + goal + 2 * text;
    let ratio = peak as f64 / goal as f64;
    table.row(
        "peak RSS, fetch_all_keys of 1,000,000 text keys of 12-36 B, 64 B bodies",
        format!(
            "{:.1} MiB (the caller's Vec<String> {:.1} MiB, text {:.1} MiB)",
            mib(peak),
            mib(list),
            mib(text)
        ),
        &format!(
            "<= caller's list + the IDs' goal + 2 x text = {:.1} MiB",
            mib(goal)
        ),
        verdict(ratio, ratio <= 1.0),
    );
    Ok(())
}

/// Runs `memory-child ADDR KIND` and returns the peak resident size it reports, and
/// what its list of keys took (0 for IDs).
fn memory_child_peaks(addr: &str, kind: &str) -> BenchResult<(u64, u64)> {
    let output = Command::new(std::env::current_exe()?)
        .args(["memory-child", addr, kind])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("memory child ({kind}) failed: {}", output.status).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let mut numbers = stdout.split_whitespace().map(str::parse::<u64>);
    let peak = numbers.next().ok_or("memory child printed nothing")??;
    let list = numbers.next().transpose()?.unwrap_or(0);
    Ok((peak, list))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Text key `n` of the memory figure: `n` zero-padded to 12 to 36 bytes (the
/// downstream reads the number back), like a padded SKU.
fn text_key(n: u64) -> String {
    format!("{n:0width$}", width = 12 + (n % 25) as usize)
}

/// The hidden `memory-child ADDR [text]` mode: fetches `MEMORY_IDS` IDs, or as many
/// text keys, and prints this process's peak resident size in bytes.
fn memory_child(addr: Option<&str>, text: bool) -> BenchResult<()> {
    let addr: SocketAddr = addr
        .ok_or("usage: fanout-bench memory-child ADDR [text]")?
        .parse()?;
    let client = overhead_client(&Target::plain(addr))?;
    if text {
        let before = resident("VmRSS:")?;
        let keys: Vec<String> = (0..MEMORY_IDS).map(text_key).collect();
        let list = resident("VmRSS:")?.saturating_sub(before);
        let bodies = client.fetch_all_keys(&keys)?;
        check_counts(bodies.len(), bodies.total_bytes(), keys.len())?;
        println!("{} {list}", peak_rss()?);
        return Ok(());
    }
    let all = ids(0..MEMORY_IDS);
    let bodies = client.fetch_all(&all)?;
    check_all(&bodies, all.len())?;
    println!("{}", peak_rss()?);
    drop(bodies);
    Ok(())
}

/// This process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss() -> BenchResult<u64> {
    resident("VmHWM:")
}

/// A size from `/proc/self/status` (`VmHWM:` or `VmRSS:`), in bytes.
fn resident(field: &str) -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?
        .trim()
        .parse::<u64>()?;
    Ok(kib * 1024)
}
