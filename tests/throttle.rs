//! Told more than the server allows, a client keeps to what it allows: few 429s, every pause kept.

use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient, Rate, RateSource, Stats};
use testserver::{QuotaConfig, QuotaHeaders, QuotaServer, Reply, RetryAfterForm, TestServer};

/// Every test here measures time on a small machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The latency of the quota servers' accepted answers.
const LATENCY: Duration = Duration::from_millis(50);

/// A server enforcing `rate` per second with bursts of `burst`, answering after `LATENCY`.
fn quota_server(rate: f64, burst: f64, headers: QuotaHeaders) -> QuotaServer {
    QuotaServer::start(QuotaConfig {
        latency: LATENCY,
        headers,
        ..QuotaConfig::new(rate, burst)
    })
}

/// A client told 40 per second with bursts of 40: four times what the servers here allow.
fn told_40(server: &QuotaServer) -> FanOutClient {
    FanOutClient::builder(server.template())
        .rate(Rate::per_second(40).unwrap(), 40)
        .build()
        .unwrap()
}

/// What one run against a quota server showed.
struct Run {
    wall: Duration,
    requests: usize,
    rejected: usize,
    stats: Stats,
}

impl Run {
    fn rejected_share(&self) -> f64 {
        self.rejected as f64 / self.requests as f64
    }

    /// Prints the figures against `ideal`, and returns the wall time's ratio to it.
    fn report(&self, name: &str, ideal: Duration) -> f64 {
        let ratio = self.wall.as_secs_f64() / ideal.as_secs_f64();
        eprintln!(
            "{name}: wall {:.3} s, ideal {:.3} s, ratio {ratio:.3}; {} requests, {} answered 429 \
             ({:.1} %); throttled {}, effective rate {:?} ({:?})",
            self.wall.as_secs_f64(),
            ideal.as_secs_f64(),
            self.requests,
            self.rejected,
            100.0 * self.rejected_share(),
            self.stats.throttled,
            self.stats.effective_rate,
            self.stats.rate_source,
        );
        ratio
    }
}

/// Fetches IDs 1..=n and checks every body.
fn fetch(server: &QuotaServer, client: &FanOutClient, n: u64) -> Run {
    let ids: Vec<u64> = (1..=n).collect();
    let started = Instant::now();
    let bodies = client.fetch_all(&ids).expect("every ID fetched");
    let wall = started.elapsed();
    assert_eq!(bodies.len(), n as usize);
    for id in ids {
        assert_eq!(bodies[id], format!("user-{id}").into_bytes(), "id {id}");
    }
    Run {
        wall,
        requests: server.request_count(),
        rejected: server.rejected(),
        stats: client.stats(),
    }
}

/// `(n - burst) / rate`: the last of `n` requests cannot be accepted sooner.
fn ideal(n: u64, rate: f64, burst: f64) -> Duration {
    Duration::from_secs_f64((n as f64 - burst) / rate)
}

/// Requests that may have been sent before the client read the 429: at most one each
/// for the other workers, arriving within moments of it. `gap_after_first_429` would
/// count them, and without a rate limit there nearly always is one, microseconds later.
const ON_THEIR_WAY: Duration = Duration::from_millis(100);

/// How long the server heard nothing after its first 429, not counting the requests
/// already on their way when it was answered (see `ON_THEIR_WAY`); and how many of
/// those there were.
fn silence_after_first_429(server: &QuotaServer, ids: impl Fn(u64) -> bool) -> (Duration, usize) {
    let arrivals = server.arrivals();
    let first = arrivals
        .iter()
        .position(|a| !a.accepted)
        .expect("a 429 was answered");
    let refused_at = arrivals[first].at;
    let after = &arrivals[first + 1..];
    let on_their_way = after
        .iter()
        .take_while(|a| a.at <= refused_at + ON_THEIR_WAY)
        .count();
    let next = after[on_their_way..]
        .iter()
        .find(|a| a.id.is_some_and(&ids))
        .expect("a request after the pause");
    (next.at - refused_at, on_their_way)
}

#[test]
fn a_client_told_four_times_the_quota_learns_it_from_429s_alone() {
    let _serial = serial();
    let server = quota_server(10.0, 5.0, QuotaHeaders::None);
    let client = told_40(&server);

    let run = fetch(&server, &client, 150);

    let ideal = ideal(150, 10.0, 5.0);
    let ratio = run.report("no headers, 150 IDs at 10/s burst 5", ideal);
    assert!(
        run.rejected_share() <= 0.05,
        "{} of {} answered 429",
        run.rejected,
        run.requests
    );
    // The goal, 1.15, is the bench's (`throttle`), where it is measured run after
    // run; here the bound only catches a client that fails to learn the rate, with
    // room for a loaded machine (1.085-1.09 typical, 1.24 seen under load).
    assert!(ratio <= 1.4, "wall {:?}, ideal {ideal:?}", run.wall);
}

#[test]
fn ietf_headers_set_the_pace_with_hardly_a_429() {
    let _serial = serial();
    paced_by_headers(QuotaHeaders::Ietf);
}

#[test]
fn x_rate_limit_headers_set_the_pace_with_hardly_a_429() {
    let _serial = serial();
    paced_by_headers(QuotaHeaders::XRateLimit);
}

fn paced_by_headers(headers: QuotaHeaders) {
    let server = quota_server(10.0, 5.0, headers);
    let client = told_40(&server);

    let run = fetch(&server, &client, 150);

    let ideal = ideal(150, 10.0, 5.0);
    let ratio = run.report(&format!("{headers:?}, 150 IDs at 10/s burst 5"), ideal);
    assert!(
        run.rejected_share() <= 0.06, // the goal, 3 %, is the bench's; 2 % typical
        "{} of {} answered 429",
        run.rejected,
        run.requests
    );
    // The first wave costs 4 %: 3 of 8 are refused with the server's shortest
    // Retry-After, 1 s, in which its bucket of 5 refills in half. The goal (1.05) is
    // the bench's (`throttle`); here the bound leaves room for a loaded machine and,
    // for X-RateLimit, the time it takes to learn a rate the headers do not state
    // (1.04-1.05 IETF, 1.08-1.11 X-RateLimit typical).
    assert!(ratio <= 1.3, "wall {:?}, ideal {ideal:?}", run.wall);
}

#[test]
fn a_quota_that_halving_never_lands_on_is_learned_too() {
    let _serial = serial();
    // 40, 20, 10: halving from the configured rate never gives 12.
    let server = quota_server(12.0, 5.0, QuotaHeaders::None);
    let client = told_40(&server);

    let run = fetch(&server, &client, 600);

    let ideal = ideal(600, 12.0, 5.0);
    let ratio = run.report("no headers, 600 IDs at 12/s burst 5", ideal);
    assert!(
        run.rejected_share() <= 0.05,
        "{} of {} answered 429",
        run.rejected,
        run.requests
    );
    // The goal is 1.2 (1.06 typical); room for a loaded machine.
    assert!(ratio <= 1.4, "wall {:?}, ideal {ideal:?}", run.wall);
}

/// The pause a `Retry-After` in `form` asks of a client without a rate limit, 8 in
/// flight, when the 20th of 60 IDs is refused once.
fn pause_is_kept(form: RetryAfterForm) -> Duration {
    let server = QuotaServer::one_retry_after_as(20, 2, Duration::from_millis(20), form);
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(8)
        .build()
        .unwrap();

    let started = Instant::now();
    let bodies = client
        .fetch_all((1..=60).collect::<Vec<_>>())
        .expect("every ID fetched");
    let wall = started.elapsed();

    assert_eq!(bodies.len(), 60);
    assert_eq!(&bodies[20], b"user-20");
    assert_eq!((server.accepted(), server.rejected()), (60, 1));
    let (silence, on_their_way) = silence_after_first_429(&server, |_| true);
    eprintln!(
        "Retry-After as {form:?}: silence {:.3} s after the 429 ({on_their_way} on their way), \
         gap to the very next arrival {:?}, wall {:.3} s",
        silence.as_secs_f64(),
        server.gap_after_first_429(),
        wall.as_secs_f64()
    );
    assert!(
        on_their_way <= 7,
        "{on_their_way} requests for 7 other workers"
    );
    silence
}

#[test]
fn retry_after_in_seconds_pauses_every_worker() {
    let _serial = serial();
    let silence = pause_is_kept(RetryAfterForm::Seconds);
    // No margin: the 429 is stamped before it is answered and the next request after
    // it arrives, on the clock the client's pause runs on, so the server can only see
    // a longer gap than the client kept.
    assert!(silence >= Duration::from_secs(2), "{silence:?}");
}

#[test]
fn retry_after_as_an_http_date_pauses_every_worker() {
    let _serial = serial();
    let silence = pause_is_kept(RetryAfterForm::HttpDate);
    // The date is the server's clock plus 2 s, rounded up: 2 to 3 s after the 429.
    // The client's own clock is read later than the server's, and its pause starts
    // later by the same amount, so the full 2 s holds.
    assert!(silence >= Duration::from_secs(2), "{silence:?}");
}

#[test]
fn the_pause_holds_across_calls_sharing_one_client() {
    let _serial = serial();
    // Call A fetches 1..=40 and its ID 25 is refused; call B fetches 101..=140.
    let server = QuotaServer::one_retry_after(25, 2, Duration::from_millis(20));
    let client = Arc::new(
        FanOutClient::builder(server.template())
            .no_rate_limit()
            .max_in_flight(8)
            .build()
            .unwrap(),
    );
    let start = Arc::new(Barrier::new(2));
    let calls: Vec<_> = [1..=40, 101..=140]
        .into_iter()
        .map(|ids| {
            let (client, start) = (Arc::clone(&client), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                client.fetch_all(ids.collect::<Vec<u64>>()).map(|b| b.len())
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.join().unwrap().expect("every ID fetched"), 40);
    }

    let is_b = |id: u64| id > 100;
    let refused_at = server.arrivals().iter().find(|a| !a.accepted).unwrap().at;
    let b_before = server
        .arrivals()
        .iter()
        .filter(|a| a.at < refused_at && a.id.is_some_and(is_b))
        .count();
    let (silence, on_their_way) = silence_after_first_429(&server, is_b);
    eprintln!(
        "two calls: call B sent {b_before} before the 429, then nothing for {:.3} s \
         ({on_their_way} requests on their way)",
        silence.as_secs_f64()
    );
    assert!(
        b_before > 0,
        "call B had not started: the test proves nothing"
    );
    assert!(
        on_their_way <= 7,
        "{on_their_way} requests for 7 other workers"
    );
    assert!(silence >= Duration::from_secs(2), "{silence:?}");
}

#[test]
fn thirty_a_minute_with_a_burst_of_two_keeps_to_the_ideal_with_no_429() {
    let _serial = serial();
    // A client exactly at the server's rate is early by however much later the burst
    // reached the server than the requests after it; 5 ms of tolerance, as the demo's
    // server has, keeps that jitter from counting. It starts cold: tokens are taken
    // once a connection is ready.
    let server = QuotaServer::start(QuotaConfig {
        latency: LATENCY,
        tolerance: Duration::from_millis(5),
        ..QuotaConfig::new(0.5, 2.0)
    });
    let client = FanOutClient::builder(server.template())
        .rate("30/min".parse().unwrap(), 2)
        .build()
        .unwrap();

    let run = fetch(&server, &client, 9);

    // The 9th is sent 14 s in and answered after the latency.
    let ideal = ideal(9, 0.5, 2.0) + LATENCY;
    let ratio = run.report("30/min burst 2, 9 IDs", ideal);
    assert_eq!(run.rejected, 0);
    assert!(
        (0.99..=1.01).contains(&ratio),
        "wall {:?}, ideal {ideal:?}",
        run.wall
    );
}

#[test]
fn a_retry_after_past_max_retry_after_fails_the_call_at_once() {
    let _serial = serial();
    // 60 s, against the default cap of 30 s.
    let server = QuotaServer::one_retry_after(3, 60, Duration::ZERO);
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .build()
        .unwrap();

    let started = Instant::now();
    let err = client.fetch_all((1..=5).collect::<Vec<_>>()).unwrap_err();
    let elapsed = started.elapsed();

    eprintln!("Retry-After: 60 failed the call in {elapsed:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.user_id(), Some(3));
    assert_eq!(err.attempts(), 1);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn max_throttled_ends_a_call_the_server_always_refuses() {
    let _serial = serial();
    let server = TestServer::start(|_| Reply::status(429).with_header("Retry-After", 1));
    let client = FanOutClient::builder(server.template())
        .max_throttled(Duration::from_millis(1500))
        .max_attempts(1)
        .build()
        .unwrap();

    let started = Instant::now();
    let err = client.fetch_all([1]).unwrap_err();
    let elapsed = started.elapsed();

    eprintln!(
        "always 429: failed after {elapsed:?} and {} requests: {err}",
        server.request_count()
    );
    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(err.status(), Some(429));
    // One attempt allowed, yet sent again after each pause: throttled tries do not
    // count, and the time throttled ended it.
    assert!(server.request_count() >= 2, "{}", server.request_count());
    assert_eq!(err.attempts(), 1);
    assert!(elapsed >= Duration::from_millis(1500), "took {elapsed:?}");
    // Refused at 0, 1 and 2 s: the third is past 1.5 s.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn without_adaptation_bare_429s_come_far_more_often() {
    let _serial = serial();
    let mut rejected = Vec::new();
    for adaptive in [true, false] {
        let server = quota_server(10.0, 5.0, QuotaHeaders::None);
        let client = FanOutClient::builder(server.template())
            .rate(Rate::per_second(40).unwrap(), 40)
            .adaptive_rate(adaptive)
            .build()
            .unwrap();
        let run = fetch(&server, &client, 40);
        run.report(
            &format!("adaptive {adaptive}, 40 IDs"),
            ideal(40, 10.0, 5.0),
        );
        rejected.push(run.rejected);
    }
    let (on, off) = (rejected[0], rejected[1]);
    assert!(
        off >= 2 * on && off >= on + 5,
        "429s: {on} adapting, {off} not"
    );
}

#[test]
fn malformed_rate_limit_headers_are_ignored() {
    let _serial = serial();
    let server = TestServer::start(|id| {
        Reply::ok(format!("user-{}", id.unwrap_or(0)))
            .with_header("X-RateLimit-Limit", "lots")
            .with_header("X-RateLimit-Remaining", "-1")
            .with_header("X-RateLimit-Reset", "99999999999999999999")
            .with_header("RateLimit-Policy", "q=")
            .with_header("RateLimit", "\"default\";r=;t=-3")
            .with_header("RateLimit-Limit", "0")
            .with_header("RateLimit-Remaining", "1.5")
            .with_header("RateLimit-Reset", "soon")
    });
    let client = FanOutClient::builder(server.template())
        .rate(Rate::per_second(20).unwrap(), 5)
        .build()
        .unwrap();

    let started = Instant::now();
    let bodies = client.fetch_all((1..=45).collect::<Vec<_>>()).unwrap();
    let wall = started.elapsed();

    let stats = client.stats();
    // 5 at once, then 40 at 20/s.
    let ideal = Duration::from_secs(2);
    eprintln!(
        "garbage headers: wall {:.3} s, ideal {:.3} s; throttled {}, effective rate {:?} ({:?})",
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        stats.throttled,
        stats.effective_rate,
        stats.rate_source
    );
    assert_eq!(bodies.len(), 45);
    assert_eq!(stats.rate_source, RateSource::Configured);
    assert_eq!(stats.effective_rate, Some(Rate::per_second(20).unwrap()));
    assert_eq!(stats.throttled, 0);
    assert!(wall >= ideal.mul_f64(0.95), "too fast: {wall:?}");
    assert!(wall <= ideal.mul_f64(1.15), "slowed down: {wall:?}");
}

#[test]
fn stats_show_a_throttled_run_and_where_its_rate_came_from() {
    let _serial = serial();
    for (headers, source) in [
        (QuotaHeaders::None, RateSource::Adapted),
        (QuotaHeaders::Ietf, RateSource::ServerHeaders),
    ] {
        let server = quota_server(10.0, 5.0, headers);
        let client = told_40(&server);
        let run = fetch(&server, &client, 30);
        run.report(&format!("stats, {headers:?}, 30 IDs"), ideal(30, 10.0, 5.0));
        let stats = run.stats;
        assert!(stats.throttled > 0, "{headers:?}: {stats:?}");
        assert_eq!(stats.throttled, run.rejected as u64, "{headers:?}");
        assert_eq!(stats.rate_source, source, "{headers:?}");
        let rate = stats.effective_rate.expect("a rate").as_per_second();
        assert!(rate < 40.0, "{headers:?}: {rate}/s");
        assert!(!stats.paused, "{headers:?}: the call ended inside a pause");
    }
}
