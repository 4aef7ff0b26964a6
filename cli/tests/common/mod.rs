//! Helpers shared by the command-line tests: the binary, and the workspace's test
//! servers (the `testserver` crate, which the library's tests use too).
#![allow(dead_code)] // each test file uses a different part of the helpers below

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[allow(unused_imports)] // the demo's tests start no server of their own
pub use testserver::*;

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
