//! The cap on requests in flight: never crossed, and fully used.

use std::time::Duration;

use fanout::FanOutClient;
use testserver::{Reply, TestServer};

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
            .fetch_all((1..=(4 * cap as u64)).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(bodies.len(), 4 * cap);
        assert_eq!(server.peak_in_flight(), cap, "cap {cap}");
        assert_eq!(client.stats().peak_in_flight, cap as u64);
        assert_eq!(client.stats().in_flight, 0);
    }
}

#[test]
fn calls_sharing_the_pool_take_turns() {
    let server =
        TestServer::start(|id| Reply::delayed(format!("{id:?}"), Duration::from_millis(20)));
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(2)
        .build()
        .unwrap();
    let long: Vec<u64> = (1000..1200).collect();
    std::thread::scope(|scope| {
        // Alone, the long call keeps both workers busy for about 2 s.
        let long_call = scope.spawn(|| client.fetch_all(&long).unwrap().len());
        assert!(server.next_arrival(Duration::from_secs(10)).is_some());

        let short = client.fetch_all([1, 2]).unwrap();
        let long_served = server
            .arrivals()
            .iter()
            .filter(|a| a.id.is_some_and(|id| id >= 1000))
            .count();
        assert_eq!(short.len(), 2);
        // Taking turns, the short call waits for one request per worker, not for
        // the long call's 200.
        assert!(
            long_served < 100,
            "{long_served} of the long call's IDs came first"
        );
        assert_eq!(long_call.join().unwrap(), 200);
    });
}
