//! The quota server the throttling tests rely on: its bucket, its headers and its `Retry-After`.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testserver::{QuotaConfig, QuotaHeaders, QuotaServer, RetryAfterForm, http_date};
use ureq::Agent;
use ureq::http::Response;

/// A plain client that hands back 4xx answers instead of failing on them.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// One answer: its status, its headers (names lowercase) and its body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn retry_after(&self) -> u64 {
        let value = self.header("retry-after").expect("a Retry-After");
        value.parse().expect("Retry-After in seconds")
    }
}

fn get(agent: &Agent, server: &QuotaServer, id: u64) -> Answer {
    let url = server.template().replace("{id}", &id.to_string());
    let mut response: Response<ureq::Body> = agent.get(&url).call().expect("an answer");
    Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// `(status, Retry-After, RateLimit)` of each answer, for the Ietf style.
fn ietf(answer: &Answer) -> (u16, Option<&str>, Option<&str>) {
    (
        answer.status,
        answer.header("retry-after"),
        answer.header("ratelimit"),
    )
}

/// Whole seconds since 1970, rounded up.
fn seconds_up(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// Asserts that `value` is the HTTP date of a whole second from `earliest` (rounded
/// up) to `latest` (rounded up).
fn assert_http_date_between(value: &str, earliest: SystemTime, latest: SystemTime) {
    let candidates: Vec<String> = (seconds_up(earliest)..=seconds_up(latest))
        .map(|s| http_date(UNIX_EPOCH + Duration::from_secs(s)))
        .collect();
    assert!(
        candidates.iter().any(|c| c == value),
        "Retry-After {value:?}, expected one of {candidates:?}"
    );
}

#[test]
fn the_bucket_admits_its_burst_then_refuses_with_the_wait_rounded_up() {
    // 0.2/s: an empty bucket frees a token in 5 s less the few milliseconds spent
    // here, which is 5 rounded up and 4 rounded down.
    let server = QuotaServer::start(QuotaConfig::new(0.2, 3.0));
    let agent = agent();
    for id in 1..=3 {
        let answer = get(&agent, &server, id);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, format!("user-{id}"));
    }
    let refused = get(&agent, &server, 4);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.retry_after(), 5);

    assert_eq!((server.accepted(), server.rejected()), (3, 1));
    assert_eq!(server.request_count(), 4);
    let judged: Vec<(Option<u64>, bool)> = server
        .arrivals()
        .iter()
        .map(|a| (a.id, a.accepted))
        .collect();
    assert_eq!(
        judged,
        [
            (Some(1), true),
            (Some(2), true),
            (Some(3), true),
            (Some(4), false)
        ]
    );
}

#[test]
fn retry_after_is_at_least_one_second_when_a_token_is_moments_away() {
    let server = QuotaServer::start(QuotaConfig::new(50.0, 1.0));
    let agent = agent();
    assert_eq!(get(&agent, &server, 1).status, 200);
    let refused = get(&agent, &server, 2);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.retry_after(), 1);
}

#[test]
fn a_request_that_waits_out_retry_after_is_accepted() {
    let server = QuotaServer::start(QuotaConfig::new(2.0, 1.0));
    let agent = agent();
    assert_eq!(get(&agent, &server, 1).status, 200);
    let refused = get(&agent, &server, 2);
    assert_eq!(refused.status, 429);
    thread::sleep(Duration::from_secs(refused.retry_after()));
    assert_eq!(get(&agent, &server, 2).status, 200);
    assert_eq!((server.accepted(), server.rejected()), (2, 1));
}

#[test]
fn refusals_are_answered_at_once_and_acceptances_after_the_latency() {
    let latency = Duration::from_millis(400);
    let server = QuotaServer::start(QuotaConfig {
        latency,
        ..QuotaConfig::new(1.0, 1.0)
    });
    let agent = agent();
    let started = Instant::now();
    assert_eq!(get(&agent, &server, 1).status, 200);
    assert!(started.elapsed() >= latency);
    let started = Instant::now();
    assert_eq!(get(&agent, &server, 2).status, 429);
    assert!(started.elapsed() < latency, "{:?}", started.elapsed());
}

#[test]
fn a_request_within_the_tolerance_is_accepted_and_owed() {
    // 2/s with 600 ms of tolerance: 1.2 tokens of credit. The second request at once
    // spends it, leaving the bucket a token in debt, so the third is refused.
    let server = QuotaServer::start(QuotaConfig {
        tolerance: Duration::from_millis(600),
        headers: QuotaHeaders::XRateLimit,
        ..QuotaConfig::new(2.0, 1.0)
    });
    let agent = agent();
    assert_eq!(get(&agent, &server, 1).status, 200);
    let owed = get(&agent, &server, 2);
    assert_eq!(owed.status, 200);
    assert_eq!(owed.header("x-ratelimit-remaining"), Some("0"));
    let refused = get(&agent, &server, 3);
    assert_eq!(refused.status, 429);
    // Two tokens short at 2/s: the debt and the token itself.
    assert_eq!(refused.retry_after(), 1);
    assert_eq!(refused.header("x-ratelimit-reset"), Some("1"));
}

#[test]
fn ietf_headers_count_down_the_bucket_on_every_answer() {
    let server = QuotaServer::start(QuotaConfig {
        headers: QuotaHeaders::Ietf,
        ..QuotaConfig::new(2.0, 3.0)
    });
    let agent = agent();
    let answers: Vec<Answer> = (1..=4).map(|id| get(&agent, &server, id)).collect();
    for answer in &answers {
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some("\"default\";q=2;w=1")
        );
    }
    // Full in (3 - left) / 2 s, rounded up.
    let seen: Vec<_> = answers.iter().map(ietf).collect();
    assert_eq!(
        seen,
        [
            (200, None, Some("\"default\";r=2;t=1")),
            (200, None, Some("\"default\";r=1;t=1")),
            (200, None, Some("\"default\";r=0;t=2")),
            (429, Some("1"), Some("\"default\";r=0;t=2")),
        ]
    );
}

#[test]
fn the_ietf_policy_rounds_the_rate_down_to_at_least_one() {
    for (rate, quota) in [(0.5, "1"), (2.7, "2"), (10.0, "10")] {
        let server = QuotaServer::start(QuotaConfig {
            headers: QuotaHeaders::Ietf,
            ..QuotaConfig::new(rate, 5.0)
        });
        let answer = get(&agent(), &server, 1);
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(format!("\"default\";q={quota};w=1").as_str()),
            "rate {rate}"
        );
    }
}

#[test]
fn x_rate_limit_headers_count_down_the_bucket_on_every_answer() {
    let server = QuotaServer::start(QuotaConfig {
        headers: QuotaHeaders::XRateLimit,
        ..QuotaConfig::new(2.0, 3.0)
    });
    let agent = agent();
    let seen: Vec<_> = (1..=4)
        .map(|id| {
            let answer = get(&agent, &server, id);
            let header = |name| answer.header(name).map(str::to_string);
            (
                answer.status,
                header("x-ratelimit-limit"),
                header("x-ratelimit-remaining"),
                header("x-ratelimit-reset"),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        seen,
        [
            (200, some("3"), some("2"), some("1")),
            (200, some("3"), some("1"), some("1")),
            (200, some("3"), some("0"), some("2")),
            (429, some("3"), some("0"), some("2")),
        ]
    );
}

#[test]
fn no_rate_limit_headers_are_sent_unless_asked_for() {
    let server = QuotaServer::start(QuotaConfig::new(1.0, 1.0));
    let agent = agent();
    let answers = [get(&agent, &server, 1), get(&agent, &server, 2)];
    assert_eq!(answers[1].status, 429);
    for answer in &answers {
        let names: Vec<&str> = answer.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.iter().any(|n| n.contains("ratelimit")), "{names:?}");
    }
}

#[test]
fn retry_after_can_be_an_http_date_rounded_up_to_the_second() {
    let server = QuotaServer::start(QuotaConfig {
        retry_after: RetryAfterForm::HttpDate,
        ..QuotaConfig::new(0.5, 1.0)
    });
    let agent = agent();
    assert_eq!(get(&agent, &server, 1).status, 200);
    // The bucket is empty: a token in 2 s less the time since the first request.
    let before = SystemTime::now();
    let refused = get(&agent, &server, 2);
    let after = SystemTime::now();
    assert_eq!(refused.status, 429);
    let wait = Duration::from_secs(2);
    assert_http_date_between(
        refused.header("retry-after").unwrap(),
        before + wait,
        after + wait,
    );
}

#[test]
fn http_dates_are_imf_fixdates() {
    let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(at(1_709_208_000), "Thu, 29 Feb 2024 12:00:00 GMT");
    assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
}

#[test]
fn one_retry_after_refuses_only_the_first_request_for_its_id() {
    let server = QuotaServer::one_retry_after(7, 2, Duration::ZERO);
    let agent = agent();
    assert_eq!(get(&agent, &server, 6).status, 200);
    let refused = get(&agent, &server, 7);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.retry_after(), 2);
    assert_eq!(server.gap_after_first_429(), None);

    thread::sleep(Duration::from_millis(200));
    for id in [7, 8, 7] {
        let answer = get(&agent, &server, id);
        assert_eq!(answer.status, 200, "id {id}");
        assert_eq!(answer.body, format!("user-{id}"));
    }
    assert_eq!((server.accepted(), server.rejected()), (4, 1));
    let gap = server.gap_after_first_429().unwrap();
    assert!(gap >= Duration::from_millis(200), "{gap:?}");
}

#[test]
fn one_retry_after_can_name_an_http_date() {
    let server = QuotaServer::one_retry_after_as(3, 2, Duration::ZERO, RetryAfterForm::HttpDate);
    let before = SystemTime::now();
    let refused = get(&agent(), &server, 3);
    let after = SystemTime::now();
    assert_eq!(refused.status, 429);
    let wait = Duration::from_secs(2);
    assert_http_date_between(
        refused.header("retry-after").unwrap(),
        before + wait,
        after + wait,
    );
}

#[test]
fn the_longest_silence_is_measured_from_a_429_to_the_next_arrival() {
    let server = QuotaServer::start(QuotaConfig::new(2.0, 1.0));
    let agent = agent();
    assert_eq!(get(&agent, &server, 1).status, 200);
    assert_eq!(server.longest_silence_after_first_429(), None);
    assert_eq!(get(&agent, &server, 2).status, 429);
    thread::sleep(Duration::from_millis(200));
    // 0.4 tokens by now: refused again.
    assert_eq!(get(&agent, &server, 3).status, 429);
    thread::sleep(Duration::from_millis(600));
    assert_eq!(get(&agent, &server, 4).status, 200);
    // A gap that starts at a 200 does not count.
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(&agent, &server, 5).status, 200);

    let longest = server.longest_silence_after_first_429().unwrap();
    assert!(
        (Duration::from_millis(600)..Duration::from_millis(1100)).contains(&longest),
        "{longest:?}"
    );
    let first = server.gap_after_first_429().unwrap();
    assert!(
        (Duration::from_millis(200)..Duration::from_millis(500)).contains(&first),
        "{first:?}"
    );
}
