//! A tinyproxy of the test's own on 127.0.0.1, for the proxy tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{installed, on_a_free_port};

/// A running tinyproxy on a port of its own, logging each connection to a file of
/// its own; stopped on drop.
#[derive(Debug)]
pub struct TinyProxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TinyProxy {
    /// Starts one, or returns `None` if tinyproxy is not installed. With
    /// `FANOUT_REQUIRE_TINYPROXY` set (as `.ci/run` does), a missing proxy is a failure
    /// instead, so that CI cannot skip these tests.
    pub fn start() -> Option<Self> {
        if !installed("tinyproxy", "-v", "FANOUT_REQUIRE_TINYPROXY") {
            return None;
        }
        Some(on_a_free_port("tinyproxy", Self::start_on))
    }

    /// Starts a proxy on `port`; `None` if another process has it.
    fn start_on(port: u16) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("tinyproxy.log");
        // The statistics page, served for StatHost, carries a mark of this instance.
        let stats = dir.path().join("stats.html");
        std::fs::write(&stats, format!("fanout-test-proxy {port}\n")).expect("write stats page");
        let config = dir.path().join("tinyproxy.conf");
        // No ConnectPort line: CONNECT is allowed to any port.
        std::fs::write(
            &config,
            format!(
                "Listen 127.0.0.1\nPort {port}\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\n\
                 LogFile \"{}\"\nLogLevel Connect\nStatHost \"{STAT_HOST}\"\nStatFile \"{}\"\n",
                log.display(),
                stats.display()
            ),
        )
        .expect("write tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        let mut proxy = TinyProxy {
            child,
            port,
            log,
            _dir: dir,
        };
        let ready_by = Instant::now() + Duration::from_secs(10);
        loop {
            if proxy.child.try_wait().ok().flatten().is_some() {
                return None; // it could not take the port
            }
            match proxy.stats_page() {
                Some(page) if page.contains(&format!("fanout-test-proxy {port}\n")) => {
                    return Some(proxy);
                }
                Some(_) => return None, // another test's proxy has the port
                None => {}
            }
            assert!(Instant::now() < ready_by, "tinyproxy did not start in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many tunnels the proxy was asked to open to `target` (`host:port`).
    pub fn tunnels_to(&self, target: &str) -> usize {
        self.log()
            .matches(&format!("CONNECT {target} HTTP/1.1"))
            .count()
    }

    /// Whether the proxy process holds the TCP socket whose local address is `addr`:
    /// given the peer address a server saw, whether the connection came from the proxy.
    pub fn owns_socket(&self, addr: SocketAddr) -> bool {
        let targets: Vec<String> = socket_inodes(addr)
            .into_iter()
            .map(|inode| format!("socket:[{inode}]"))
            .collect();
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|link| targets.iter().any(|t| link.as_os_str() == t.as_str()))
                })
            })
            .unwrap_or(false)
    }

    /// The statistics page, once the port answers.
    fn stats_page(&self) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET http://{STAT_HOST}/ HTTP/1.0\r\nHost: {STAT_HOST}\r\n\r\n"
        )
        .ok()?;
        let mut page = String::new();
        stream.read_to_string(&mut page).ok()?;
        Some(page)
    }
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STAT_HOST: &str = "fanout-proxy.stats";

/// The inodes of the open IPv4 TCP sockets bound to `addr`, from /proc/net/tcp. A busy
/// machine may also list closed sockets (TIME_WAIT, inode 0) that had the same local
/// port towards another peer; they are left out.
fn socket_inodes(addr: SocketAddr) -> Vec<String> {
    let SocketAddr::V4(v4) = addr else {
        return Vec::new();
    };
    // /proc/net/tcp shows the address as the hex of its in-memory (little-endian) u32.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = *fields.get(9)?;
            (fields.get(1) == Some(&local.as_str()) && inode != "0").then(|| inode.to_string())
        })
        .collect()
}
