//! A limiter of the caller's: asked once per attempt, obeyed when it says wait, and
//! its failure fails the call with `ErrorKind::Limiter`.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient, Limiter, LimiterError, TryTake};
use testserver::{Reply, TestServer};

/// Says "wait 50 ms" to every other question, and counts the tokens it gave.
#[derive(Debug, Default)]
struct EveryOther {
    asked: AtomicU64,
    given: AtomicU64,
}

impl Limiter for EveryOther {
    fn try_take(&self) -> Result<TryTake, LimiterError> {
        if self.asked.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            return Ok(TryTake::WaitFor(Duration::from_millis(50)));
        }
        self.given.fetch_add(1, Ordering::SeqCst);
        Ok(TryTake::Taken)
    }
}

#[test]
fn a_custom_limiter_gives_every_token() {
    let server = TestServer::start(|id| Reply::ok(format!("{}", id.unwrap())));
    let limiter = Arc::new(EveryOther::default());
    let client = FanOutClient::builder(server.template())
        .limiter(limiter.clone())
        .build()
        .unwrap();

    let started = Instant::now();
    let bodies = client.fetch_all((1..=6).collect::<Vec<_>>()).unwrap();

    assert_eq!(bodies.len(), 6);
    assert_eq!(limiter.given.load(Ordering::SeqCst), 6);
    assert_eq!(server.request_count(), 6);
    // Each token came after one 50 ms wait, one at a time in line.
    assert!(started.elapsed() >= Duration::from_millis(6 * 50));
}

/// Fails from the third question on, as a shared store that went away would.
#[derive(Debug, Default)]
struct GoesAway(AtomicU64);

impl Limiter for GoesAway {
    fn try_take(&self) -> Result<TryTake, LimiterError> {
        if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
            Ok(TryTake::Taken)
        } else {
            Err(LimiterError::new("the quota store is unreachable")
                .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)))
        }
    }
}

#[test]
fn a_failing_limiter_fails_the_call_with_its_reason() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let client = FanOutClient::builder(server.template())
        .limiter(Arc::new(GoesAway::default()))
        .max_in_flight(1)
        .build()
        .unwrap();

    let err = client.fetch_all([1, 2, 3, 4]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Limiter);
    assert_eq!(err.user_id(), Some(3));
    assert!(
        err.to_string().contains("the quota store is unreachable"),
        "{err}"
    );
    assert!(err.source().is_some());
    assert_eq!(server.request_count(), 2, "no request without a token");
}
