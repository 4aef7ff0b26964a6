//! The cap on requests in flight: never crossed, and fully used.

mod common;

use std::time::Duration;

use common::{Reply, TestServer};
use fanout::FanOutClient;

fn slow_server() -> TestServer {
    TestServer::start(|id| Reply::delayed(format!("{id:?}"), Duration::from_millis(60)))
}

#[test]
fn in_flight_never_exceeds_the_cap_and_reaches_it() {
    for cap in [1, 3, 8] {
        let server = slow_server();
        let client = FanOutClient::builder(server.template())
            .no_rate_limit()
            .max_in_flight(cap)
            .build()
            .unwrap();
        let bodies = client
            .fetch_all(&(1..=(4 * cap as u64)).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(bodies.len(), 4 * cap);
        assert_eq!(server.peak_in_flight(), cap, "cap {cap}");
        assert_eq!(client.stats().peak_in_flight, cap as u64);
        assert_eq!(client.stats().in_flight, 0);
    }
}
