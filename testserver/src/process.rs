//! What the helpers that run a program of the test's own (tinyproxy, redis-server)
//! share: whether it is installed, and a free port to start it on.

use std::net::TcpListener;
use std::process::Command;

/// Whether `program` runs with `version_arg`. When it does not and `required_by` is
/// set in the environment (as `.ci/run` sets it), panics, so that CI cannot skip the
/// tests that need it.
pub(crate) fn installed(program: &str, version_arg: &str, required_by: &str) -> bool {
    let installed = Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os(required_by).is_none(),
            "{required_by} is set but {program} is not installed"
        );
        eprintln!("{program} is not installed: skipping this test");
    }
    installed
}

/// Calls `start` with free ports until it returns a `T`, 20 times at most. Tests run in
/// parallel, and a port the system handed out and took back may be handed to another
/// test too: `start` returns `None` when what answers on the port is not its own.
///
/// # Panics
/// If all 20 tries fail, or no free port is found.
pub(crate) fn on_a_free_port<T>(program: &str, mut start: impl FnMut(u16) -> Option<T>) -> T {
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if let Some(started) = start(port) {
            return started;
        }
    }
    panic!("{program} did not start on any of 20 ports");
}
