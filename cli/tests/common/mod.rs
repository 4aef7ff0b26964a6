//! Helpers shared by the command-line tests: the binary, and the library tests' HTTP
//! server (included from the workspace's `tests/common`, so there is one test server).
#![allow(dead_code)] // each test file uses a different part

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[path = "../../../tests/common/mod.rs"]
mod server;

#[allow(unused_imports)] // for the tests of pacing
pub use server::{ARRIVAL_JITTER, arrival_times, worst_window_excess};
#[allow(unused_imports)] // for the tests against a server that limits its clients
pub use server::{QuotaArrival, QuotaConfig, QuotaHeaders, QuotaServer, RetryAfterForm, http_date};
#[allow(unused_imports)] // for the proxy and compression tests
pub use server::{RecordingServer, Seen, TinyProxy, response};
#[allow(unused_imports)] // RedisServer serves the shared rate limit's tests only
pub use server::{RedisServer, Reply, TestServer};
#[allow(unused_imports)] // for the TLS tests only
pub use server::{TestCa, TlsServer, TlsServerConfig};

/// The `fanout` binary, bounded in time so that no test can hang.
pub fn fanout() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_fanout"));
    command
        .timeout(Duration::from_secs(30))
        .env_remove("RUST_LOG")
        // Trusted roots are what each test says, whatever this machine has set.
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    // Tests that want a proxy set one; none may come from the machine's environment.
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command
}

/// The environment variables a proxy can come from.
pub const PROXY_VARIABLES: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// A server answering `user-ID` for every ID.
pub fn echo_server() -> TestServer {
    TestServer::start(|id| Reply::ok(body_of(id.unwrap_or(0))))
}

/// The body the echo server answers for `id`.
pub fn body_of(id: u64) -> String {
    format!("user-{id}")
}

/// Holds the tests of one file that time runs or count 429s on this small machine to
/// one at a time. A test that failed while holding it does not stop the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
