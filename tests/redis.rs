//! The shared rate limit on a real redis-server: one quota per key across limiters,
//! a clear error when Redis is away, and the opt-in local fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient, Limiter, Rate, RedisGcra, TryTake};
use testserver::{RedisServer, Reply, TestServer};

fn per_s(n: u64) -> Rate {
    Rate::per_second(n).unwrap()
}

/// Takes tokens from `limiters` in turn until none gives one; returns how many did.
fn take_all_free(limiters: &[&RedisGcra]) -> usize {
    let mut taken = 0;
    for limiter in limiters.iter().cycle() {
        match limiter.try_take().expect("redis answers") {
            TryTake::Taken => taken += 1,
            TryTake::WaitFor(wait) => {
                assert!(wait <= Duration::from_millis(100), "waits {wait:?}");
                return taken;
            }
        }
    }
    unreachable!()
}

#[test]
fn limiters_on_one_key_share_one_quota() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 10/s: the next token is 100 ms away, far longer than this test's few requests.
    let a = RedisGcra::connect(&redis.url(), "quota", per_s(10), 5).unwrap();
    let b = RedisGcra::connect(&redis.url(), "quota", per_s(10), 5).unwrap();
    assert_eq!(take_all_free(&[&a, &b]), 5, "one burst between the two");

    let other = RedisGcra::connect(&redis.url(), "another quota", per_s(10), 5).unwrap();
    assert_eq!(
        take_all_free(&[&other]),
        5,
        "another key has a burst of its own"
    );
}

#[test]
fn the_shared_quota_keeps_its_rate_over_time() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = RedisGcra::connect(&redis.url(), "rate", per_s(20), 1).unwrap();
    let b = RedisGcra::connect(&redis.url(), "rate", per_s(20), 1).unwrap();
    let server = TestServer::start(|_| Reply::ok("x"));
    let clients: Vec<FanOutClient> = [a, b]
        .into_iter()
        .map(|limit| {
            FanOutClient::builder(server.template())
                .limiter(Arc::new(limit))
                .build()
                .unwrap()
        })
        .collect();

    let started = Instant::now();
    std::thread::scope(|scope| {
        for (n, client) in clients.iter().enumerate() {
            let ids: Vec<u64> = (0..15).map(|i| n as u64 * 100 + i).collect();
            scope.spawn(move || client.fetch_all(&ids).unwrap());
        }
    });
    // 30 requests at 20/s with a burst of 1: 29 intervals of 50 ms at least.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(29 * 50), "{elapsed:?}");
    assert_eq!(server.request_count(), 30);
}

#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let err = RedisGcra::connect(&url, "quota", per_s(10), 20).unwrap_err();
    assert!(
        err.to_string().contains(&format!("redis at {url}")),
        "{err}"
    );

    assert!(RedisGcra::connect("http://not-redis/", "quota", per_s(10), 20).is_err());
    assert!(RedisGcra::new(&url, "quota", per_s(10), 0).is_err());
}

#[test]
fn with_the_fallback_a_limiter_made_while_redis_is_away_takes_its_share() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    // Half of 2/s with bursts of 4: 1/s with bursts of 2, so a third token is a
    // second away, far longer than this test takes.
    let limit = RedisGcra::new(&url, "quota", per_s(2), 4)
        .unwrap()
        .with_local_fallback(2);
    assert_eq!(limit.try_take().unwrap(), TryTake::Taken);
    assert_eq!(limit.try_take().unwrap(), TryTake::Taken);
    assert!(matches!(limit.try_take().unwrap(), TryTake::WaitFor(_)));
    assert_eq!(limit.fallback_tokens(), 2);
}

/// Fetches 100 IDs at 50/s through Redis, stopping Redis after the fifth request;
/// returns the result and how long the call took after the stop.
fn stop_redis_mid_call(
    fallback: bool,
) -> Option<(Result<fanout::Bodies, fanout::FetchError>, Duration)> {
    let mut redis = RedisServer::start()?;
    let server = TestServer::start(|_| Reply::ok("x"));
    let mut limit = RedisGcra::connect(&redis.url(), "stopped", per_s(50), 1).unwrap();
    if fallback {
        limit = limit.with_local_fallback(1);
    }
    let client = FanOutClient::builder(server.template())
        .limiter(Arc::new(limit))
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let call = scope.spawn(|| client.fetch_all((0..100).collect::<Vec<_>>()));
        for _ in 0..5 {
            server
                .next_arrival(Duration::from_secs(10))
                .expect("requests arrive while redis is up");
        }
        redis.stop();
        let stopped = Instant::now();
        let result = call.join().unwrap();
        Some((result, stopped.elapsed()))
    })
}

#[test]
fn redis_stopped_mid_call_fails_the_call_without_hanging() {
    let Some((result, after_stop)) = stop_redis_mid_call(false) else {
        return;
    };
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limiter, "{err}");
    assert!(err.to_string().contains("redis at"), "{err}");
    // One failed question to Redis, bounded by its 1 s timeout; loose for CI.
    assert!(after_stop < Duration::from_secs(10), "{after_stop:?}");
}

#[test]
fn with_the_fallback_a_call_goes_on_when_redis_stops() {
    let Some((result, _)) = stop_redis_mid_call(true) else {
        return;
    };
    assert_eq!(result.unwrap().len(), 100);
}

/// Takes every free token from `limiter`, then returns how long it asks to wait.
fn wait_after_draining(limiter: &RedisGcra) -> Duration {
    loop {
        match limiter.try_take().expect("redis answers") {
            TryTake::Taken => {}
            TryTake::WaitFor(wait) => return wait,
        }
    }
}

/// The spacing `limiter` keeps between tokens now: drains it, waits out the wait,
/// takes one more token, and returns the wait it then asks for.
fn spacing(limiter: &RedisGcra) -> Duration {
    std::thread::sleep(wait_after_draining(limiter));
    wait_after_draining(limiter)
}

#[test]
fn a_pause_holds_every_limiter_on_the_key() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = RedisGcra::connect(&redis.url(), "paused", per_s(100), 10).unwrap();
    let b = RedisGcra::connect(&redis.url(), "paused", per_s(100), 10).unwrap();
    let other = RedisGcra::connect(&redis.url(), "not paused", per_s(100), 10).unwrap();
    a.pause(Duration::from_secs(2)).unwrap();
    // The pause is measured on the server's clock from the script's run: the wait
    // asked of `b` is the pause less the few milliseconds since.
    match b.try_take().unwrap() {
        TryTake::WaitFor(wait) => assert!(wait > Duration::from_millis(1500), "{wait:?}"),
        TryTake::Taken => panic!("a token was handed out during the pause"),
    }
    assert_eq!(other.try_take().unwrap(), TryTake::Taken);
}

#[test]
fn an_adapted_rate_holds_every_limiter_on_the_key_until_it_is_lifted() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = RedisGcra::connect(&redis.url(), "adapted", per_s(100), 1).unwrap();
    let b = RedisGcra::connect(&redis.url(), "adapted", per_s(100), 1).unwrap();
    assert!(a.is_shared());
    assert_eq!(a.rate(), Some(per_s(100)));
    assert!(spacing(&b) <= Duration::from_millis(10));

    // One process learned that the server allows 2/s: every process keeps to it.
    a.adapt(Some(per_s(2))).unwrap();
    let wait = spacing(&b);
    assert!(wait > Duration::from_millis(400), "{wait:?}");
    assert!(wait <= Duration::from_millis(500), "{wait:?}");

    // Back to the configured rate.
    a.adapt(None).unwrap();
    assert!(spacing(&b) <= Duration::from_millis(10));

    // Never faster than configured, whatever a process asks.
    a.adapt(Some(per_s(1000))).unwrap();
    let wait = spacing(&b);
    assert!(wait > Duration::from_millis(5), "{wait:?}");
}
