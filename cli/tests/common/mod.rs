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

/// A server answering `user-KEY` for every key, KEY being the last path segment
/// percent-decoded (so `user-1` for ID 1, as [`echo_server`] does).
pub fn key_echo_server() -> TestServer {
    Server::builder()
        .record_arrivals()
        .start(|request: &Request<'_>| {
            let segment = request.target.rsplit('/').next().unwrap_or_default();
            Answer::Respond(Response::new(200, key_body(&percent_decode(segment))))
        })
        .expect("start the test server")
}

/// The body [`key_echo_server`] answers for `key`.
pub fn key_body(key: &str) -> String {
    format!("user-{key}")
}

/// `text` with its `%XX` escapes decoded (lossily, should the bytes not be UTF-8).
pub fn percent_decode(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        let escaped = after
            .get(..2)
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (byte, escaped) {
            (b'%', Some(decoded)) => {
                bytes.push(decoded);
                rest = &after[2..];
            }
            _ => {
                bytes.push(byte);
                rest = after;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The `--out-dir` file name of `key`, as the README documents it: every byte
/// outside `[A-Za-z0-9_.-]`, and a leading `.`, as `%XX`.
pub fn file_name_of(key: &str) -> String {
    key.bytes()
        .enumerate()
        .map(|(at, byte)| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => char::from(byte).to_string(),
            b'.' if at > 0 => ".".to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
