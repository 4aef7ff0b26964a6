//! `fanout fetch --redis`: several processes under one quota, against a server that
//! enforces it, and what happens when Redis stops.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{QuotaConfig, QuotaServer, RedisServer, Reply, TestServer, serial};

const RATE: u64 = 10;
const BURST: u64 = 20;
/// How early a request may come and still count as within the quota. The server
/// sees arrivals, not the moments tokens were granted: a request on a connection still
/// being opened, or whose thread a loaded 2-CPU machine runs late, arrives after
/// requests granted later. Half a token's interval covers that, and is far too little
/// to hide processes that each keep their own bucket: four of them would send 60
/// requests over the quota in the first instant.
const TOLERANCE: Duration = Duration::from_millis(50);

/// A server that enforces `RATE` with bursts of `BURST` on arrivals, as a strict API
/// would, answering 429 to any request over it.
fn strict_server() -> QuotaServer {
    QuotaServer::start(QuotaConfig {
        tolerance: TOLERANCE,
        ..QuotaConfig::new(RATE as f64, BURST as f64)
    })
}

fn spawn_fetch(template: &str, ids: &str, redis: &str, extra: &[&str]) -> Child {
    spawn_fetch_at(template, ids, redis, (RATE, BURST), extra)
}

/// `fanout fetch` under the shared quota `limits` (rate per second, burst).
fn spawn_fetch_at(
    template: &str,
    ids: &str,
    redis: &str,
    limits: (u64, u64),
    extra: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(["fetch", template, "--ids", ids, "--max-attempts", "1"])
        .args([
            "--rate",
            &limits.0.to_string(),
            "--burst",
            &limits.1.to_string(),
        ])
        .args(["--redis", redis, "--limit-key", "test:quota"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fanout")
}

/// Waits for `child`, killing it if it runs past `limit`: no test hangs.
fn finish(mut child: Child, limit: Duration) -> Output {
    let give_up = Instant::now() + limit;
    while child.try_wait().expect("wait for fanout").is_none() {
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("fanout still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("fanout's output")
}

fn show(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn four_processes_share_one_quota_without_a_violation() {
    let _serial = serial();
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let strict = strict_server();
    let template = strict.template();
    let children: Vec<Child> = (0..4)
        .map(|n| {
            let ids = format!("{}-{}", n * 1000 + 1, n * 1000 + 30);
            spawn_fetch(&template, &ids, &redis.url(), &[])
        })
        .collect();
    for child in children {
        let output = finish(child, Duration::from_secs(60));
        assert!(output.status.success(), "{}", show(&output));
    }

    assert_eq!(strict.rejected(), 0, "requests over the shared quota");
    assert_eq!(strict.request_count(), 120);
    // After the burst, the four together go at the quota's rate: 100 more requests
    // in 10 s. Each on its own bucket, they would have gone four times as fast.
    let arrivals = strict.arrivals();
    let first = arrivals.iter().map(|a| a.at).min().unwrap();
    let last = arrivals.iter().map(|a| a.at).max().unwrap();
    let rate = (120 - BURST) as f64 / (last - first).as_secs_f64();
    assert!(
        (RATE as f64 * 0.95..=RATE as f64 * 1.05).contains(&rate),
        "combined rate {rate:.3}/s, quota {RATE}/s"
    );
}

#[test]
fn four_processes_told_four_times_the_quota_learn_it_together() {
    let _serial = serial();
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The server allows 10/s (bursts of 20); the shared quota says 40/s, burst 40.
    let strict = strict_server();
    let template = strict.template();
    let started = Instant::now();
    let children: Vec<Child> = (0..4)
        .map(|n| {
            let ids = format!("{}-{}", n * 1000 + 1, n * 1000 + 150);
            spawn_fetch_at(&template, &ids, &redis.url(), (40, 40), &[])
        })
        .collect();
    for child in children {
        // Throttled tries do not use up --max-attempts 1: every process finishes.
        let output = finish(child, Duration::from_secs(240));
        assert!(output.status.success(), "{}", show(&output));
    }
    let (refused, sent) = (strict.rejected(), strict.request_count());
    let share = refused as f64 / sent as f64;
    eprintln!(
        "4 x 150 IDs in {:.1} s: {refused} of {sent} answered 429 ({:.1} %)",
        started.elapsed().as_secs_f64(),
        share * 100.0
    );
    assert_eq!(strict.accepted(), 600);
    assert!(share <= 0.05, "{refused} of {sent} requests answered 429");
}

/// Starts one fetch of 60 IDs (6 s at the quota's rate), stops Redis once 25 requests
/// have arrived, and returns how the fetch ended.
fn stop_redis_mid_run(extra: &[&str]) -> Option<(Output, usize)> {
    let _serial = serial();
    let mut redis = RedisServer::start()?;
    let server = TestServer::start(|id| Reply::ok(format!("user-{}", id.unwrap_or(0))));
    let child = spawn_fetch(&server.template(), "1-60", &redis.url(), extra);
    for _ in 0..25 {
        server
            .next_arrival(Duration::from_secs(20))
            .expect("requests arrive while redis is up");
    }
    redis.stop();
    let output = finish(child, Duration::from_secs(30));
    Some((output, server.request_count()))
}

#[test]
fn redis_stopped_mid_run_fails_the_run_with_a_clear_error() {
    let Some((output, requested)) = stop_redis_mid_run(&[]) else {
        return;
    };
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\"ok\":false") && stdout.contains("redis at"),
        "{}",
        show(&output)
    );
    assert!(requested < 60, "every ID was requested without Redis");
}

#[test]
fn with_the_fallback_a_run_goes_on_when_redis_stops() {
    let Some((output, requested)) = stop_redis_mid_run(&["--redis-fallback-processes", "1"]) else {
        return;
    };
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(requested, 60);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unreachable"), "{}", show(&output));
    // The first 25 took their tokens on Redis.
    let local = only_line(&output)["redis_fallback_requests"].as_u64();
    assert!(
        local.is_some_and(|n| (1..=35).contains(&n)),
        "{}",
        show(&output)
    );
}

/// A Redis URL with a password, on a port of 127.0.0.1 where nothing listens.
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("redis://:{PASSWORD}@127.0.0.1:{port}/")
}

const PASSWORD: &str = "hunter2";

/// The one line on stdout, parsed; fails if there is not exactly one.
fn only_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", show(output));
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", show(output)))
}

fn assert_password_masked(output: &Output) {
    assert!(!show(output).contains(PASSWORD), "{}", show(output));
}

/// Checks the run's arrivals against `burst + rate × window` for every window,
/// with `JITTER` for loopback and scheduling, as `tests/rate.rs` does.
fn assert_within_bucket(times: &[Instant], rate: f64, burst: f64) {
    const JITTER: Duration = Duration::from_millis(15);
    for i in 0..times.len() {
        for j in i..times.len() {
            let window = times[j].duration_since(times[i]) + JITTER;
            let allowed = burst + rate * window.as_secs_f64();
            let seen = (j - i + 1) as f64;
            assert!(
                seen <= allowed,
                "{seen} requests in {window:?}, the bucket allows {allowed:.2}"
            );
        }
    }
}

#[test]
fn an_unreachable_redis_stops_the_run_before_any_request() {
    let _serial = serial();
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    redis.stop();
    let server = TestServer::start(|_| Reply::ok("x"));
    let output = finish(
        spawn_fetch(&server.template(), "1-5", &url, &[]),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let line = only_line(&output);
    assert_eq!(line["ok"], false, "{}", show(&output));
    assert_eq!(
        line["user_id"],
        serde_json::Value::Null,
        "{}",
        show(&output)
    );
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!("shared rate limit: redis at {url}: ")),
        "{}",
        show(&output)
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn redis_on_a_closed_port_ends_in_one_json_line_in_every_mode() {
    let url = closed_port_url();
    let shown = url.replace(&format!(":{PASSWORD}@"), "***@");
    let out_dir = tempfile::tempdir().unwrap();
    let never_made = out_dir.path().join("bodies");
    let server = TestServer::start(|_| Reply::ok("x"));
    let modes: [(&[&str], &str); 3] = [
        (&[], "user_id"),
        (&["--out-dir", never_made.to_str().unwrap()], "user_id"),
        (&["--jsonl"], "id"),
    ];
    for (extra, id_field) in modes {
        let output = finish(
            spawn_fetch(&server.template(), "1-5", &url, extra),
            Duration::from_secs(30),
        );
        assert_eq!(output.status.code(), Some(1), "{}", show(&output));
        assert!(output.stderr.is_empty(), "{}", show(&output));
        let line = only_line(&output);
        assert_eq!(line[id_field], serde_json::Value::Null, "{}", show(&output));
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("shared rate limit: redis at {shown}: ")),
            "{}",
            show(&output)
        );
        assert_password_masked(&output);
    }
    assert!(
        !never_made.exists(),
        "--out-dir made for a run that never started"
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn with_the_fallback_a_run_starts_without_redis_at_its_share_of_the_rate() {
    let _serial = serial();
    let server = TestServer::start(|id| Reply::ok(format!("user-{}", id.unwrap_or(0))));
    // A quota of 20/s with bursts of 4, shared by 2 processes: this one's share is
    // 10/s with bursts of 2, so 22 IDs take 2 s.
    let output = finish(
        spawn_fetch_at(
            &server.template(),
            "1-22",
            &closed_port_url(),
            (20, 4),
            &["--redis-fallback-processes", "2"],
        ),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", show(&output));
    let line = only_line(&output);
    assert_eq!(line["ok"], true, "{}", show(&output));
    assert_eq!(line["count"], 22, "{}", show(&output));
    assert_eq!(line["redis_fallback_requests"], 22, "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unreachable") && stderr.contains("burst 2"),
        "{}",
        show(&output)
    );
    assert_password_masked(&output);

    let mut times: Vec<Instant> = server.arrivals().iter().map(|a| a.at).collect();
    times.sort();
    assert_eq!(times.len(), 22);
    assert_within_bucket(&times, 10.0, 2.0);
    // At the share and not slower: the whole quota would take 0.9 s, a stall longer.
    let span = times[21].duration_since(times[0]);
    eprintln!("22 requests on the local share of 10/s, burst 2: {span:?} from first to last");
    assert!(
        span < Duration::from_millis(3500),
        "22 requests took {span:?}"
    );
}

#[test]
fn with_the_fallback_a_run_started_without_redis_rejoins_it_when_it_comes_back() {
    let _serial = serial();
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    redis.stop();
    let server = TestServer::start(|_| Reply::ok("x"));
    // The local share is 5/s with bursts of 1: 40 IDs would take 8 s on it alone.
    let child = spawn_fetch_at(
        &server.template(),
        "1-40",
        &url,
        (10, 2),
        &["--redis-fallback-processes", "2"],
    );
    for _ in 0..5 {
        server
            .next_arrival(Duration::from_secs(20))
            .expect("requests arrive on the local share");
    }
    assert!(redis.restart(), "redis-server could not have its port back");
    let output = finish(child, Duration::from_secs(30));
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(server.request_count(), 40);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unreachable") && stderr.contains("answers again"),
        "{}",
        show(&output)
    );
    let local = only_line(&output)["redis_fallback_requests"].as_u64();
    assert!(
        local.is_some_and(|n| (5..40).contains(&n)),
        "{}",
        show(&output)
    );
}

#[test]
fn with_the_fallback_and_redis_up_no_request_goes_on_the_local_share() {
    let _serial = serial();
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start(|_| Reply::ok("x"));
    let output = finish(
        spawn_fetch(
            &server.template(),
            "1-5",
            &redis.url(),
            &["--redis-fallback-processes", "2"],
        ),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", show(&output));
    let line = only_line(&output);
    assert_eq!(line["redis_fallback_requests"], 0, "{}", show(&output));
    assert!(output.stderr.is_empty(), "{}", show(&output));
}
