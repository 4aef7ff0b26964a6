//! A redis-server of the test's own on 127.0.0.1, for the shared rate limit's tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{installed, on_a_free_port};

/// A running redis-server on a port of its own, with no persistence; stopped on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one, or returns `None` if redis-server is not installed. With
    /// `FANOUT_REQUIRE_REDIS` set (as `.ci/run` does), a missing server is a failure
    /// instead, so that CI cannot skip these tests.
    pub fn start() -> Option<Self> {
        if !installed("redis-server", "--version", "FANOUT_REQUIRE_REDIS") {
            return None;
        }
        Some(on_a_free_port("redis-server", Self::start_on))
    }

    /// Starts a server on `port`; `None` if another process has it.
    fn start_on(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = RedisServer { child, port };
        let ready_by = Instant::now() + Duration::from_secs(10);
        loop {
            if server.child.try_wait().ok().flatten().is_some() {
                return None; // it could not take the port
            }
            match server.process_id() {
                Some(pid) if pid == server.child.id() => return Some(server),
                Some(_) => return None, // another test's server has the port
                None => {}
            }
            assert!(
                Instant::now() < ready_by,
                "redis-server did not start in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server again on its port after [`stop`](Self::stop), as a Redis
    /// that comes back; false if another process took the port meanwhile.
    pub fn restart(&mut self) -> bool {
        match Self::start_on(self.port) {
            Some(server) => {
                *self = server;
                true
            }
            None => false,
        }
    }

    /// Kills the server and waits for it to be gone.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process ID of the server answering on the port, once one answers.
    fn process_id(&self) -> Option<u32> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(b"INFO server\r\n").ok()?;
        let mut reply = Vec::new();
        let mut buffer = [0u8; 4096];
        // The reply is one bulk string; process_id comes early in it.
        while !String::from_utf8_lossy(&reply).contains("run_id:") {
            let read = stream.read(&mut buffer).ok()?;
            if read == 0 {
                return None;
            }
            reply.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
