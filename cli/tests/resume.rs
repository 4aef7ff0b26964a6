//! A run killed with SIGKILL at any moment and resumed with `--resume` loses nothing:
//! every key ends up saved exactly once with the server's body, no temporary file is
//! left, and only the keys that were in flight at each kill are fetched again.
//!
//! The long runs mix numeric IDs with text keys that need escaping in the URL and in
//! file names.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    PROXY_VARIABLES, TestServer, body_of, echo_server, fanout, file_name_of, key_body,
    key_echo_server,
};
use serde_json::Value;

const KEYS: u64 = 20_000;
const KILLS: usize = 5;
const MAX_IN_FLIGHT: usize = 4;
/// The IDs a kill can cost: those in flight, those whose results wait to be read
/// (the library reads ahead by twice the pool), and the one being written.
const REFETCHED_PER_KILL: usize = 2 * MAX_IN_FLIGHT + 1;

/// A small xorshift generator: the moments of the kills, reproducible from the seed
/// printed.
struct Moments(u64);

impl Moments {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        eprintln!("kill moments seed: {seed}");
        Moments(seed)
    }

    /// A moment from 50 to 500 ms.
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(50 + self.0 % 451)
    }
}

/// `KEYS` keys: even numbers as IDs, and text keys with a slash, a blank and an
/// accent between them.
fn keys() -> Vec<String> {
    (1..=KEYS)
        .map(|n| {
            if n % 2 == 0 {
                n.to_string()
            } else {
                format!("user {n}/caf\u{e9}")
            }
        })
        .collect()
}

fn run_args(server: &TestServer, keys_file: &Path, output: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "fetch",
        &server.template(),
        "--ids-file",
        keys_file.to_str().unwrap(),
        "--rate",
        "0",
        "--max-in-flight",
        &MAX_IN_FLIGHT.to_string(),
        "--resume",
    ]
    .map(String::from)
    .to_vec();
    args.extend(output.iter().map(|s| s.to_string()));
    args
}

/// Starts the run `KILLS` times and kills it at a random moment each time, then
/// runs it to the end; returns the last run's summary line.
fn kill_and_resume(server: &TestServer, dir: &Path, output: &[&str]) -> Value {
    let keys_file = dir.join("keys.txt");
    fs::write(&keys_file, keys().join("\n")).unwrap();
    let mut moments = Moments::new();
    for _ in 0..KILLS {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fanout"));
        command
            .args(run_args(server, &keys_file, output))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("RUST_LOG");
        for name in PROXY_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        thread::sleep(moments.next());
        // SIGKILL: no handler runs, whatever the process was doing.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // The keys left may be most of them, synced one by one on a loaded disk.
    let out = fanout()
        .timeout(Duration::from_secs(50))
        .args(run_args(server, &keys_file, output))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(line["ok"], true, "{line}");
    let (count, skipped) = (line["count"].as_u64(), line["skipped"].as_u64());
    assert_eq!(count.unwrap() + skipped.unwrap(), KEYS, "{line}");
    line
}

fn assert_refetched_at_most_the_ids_in_flight(server: &TestServer) {
    let requests = server.request_count();
    eprintln!(
        "{requests} requests for {KEYS} keys and {KILLS} kills ({} refetched)",
        requests - KEYS as usize
    );
    assert!(
        requests <= KEYS as usize + KILLS * REFETCHED_PER_KILL,
        "{requests} requests"
    );
}

#[test]
fn an_out_dir_run_killed_five_times_ends_with_every_file_once_and_whole() {
    // The two long runs would otherwise share the machine's cores and disk.
    let _serial = common::serial();
    let started = Instant::now();
    let server = key_echo_server();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    kill_and_resume(
        &server,
        dir.path(),
        &["--out-dir", out_dir.to_str().unwrap()],
    );

    let names: BTreeSet<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = keys().iter().map(|key| file_name_of(key)).collect();
    let strays: Vec<_> = names.difference(&expected).collect();
    assert!(
        strays.is_empty(),
        "files left besides the keys': {strays:?}"
    );
    assert_eq!(names.len(), expected.len(), "keys without a file");
    for key in keys() {
        let body = fs::read_to_string(out_dir.join(file_name_of(&key))).unwrap();
        assert_eq!(body, key_body(&key), "key {key:?}");
    }
    assert_refetched_at_most_the_ids_in_flight(&server);
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn a_jsonl_file_run_killed_five_times_ends_with_every_line_once_and_whole() {
    // The two long runs would otherwise share the machine's cores and disk.
    let _serial = common::serial();
    let started = Instant::now();
    let server = key_echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    kill_and_resume(
        &server,
        dir.path(),
        &["--jsonl-file", path.to_str().unwrap()],
    );

    let mut expected = keys();
    expected.sort_unstable();
    assert_eq!(keys_in_jsonl(&path), expected);
    assert_refetched_at_most_the_ids_in_flight(&server);
    eprintln!("took {:?}", started.elapsed());
}

/// The keys of the lines of `path`, sorted, after checking every line is whole, holds
/// its key's body, and carries a numeric key as `"id"` too.
fn keys_in_jsonl(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last line is torn");
    let mut keys: Vec<String> = text
        .lines()
        .map(|line| {
            let line: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let key = line["key"].as_str().unwrap().to_string();
            assert_eq!(line["body"], key_body(&key), "{line}");
            assert_eq!(line["id"].as_u64(), key.parse().ok(), "{line}");
            key
        })
        .collect();
    keys.sort_unstable();
    keys
}

/// The IDs of the lines of `path`, sorted, after checking every line is whole and
/// holds its ID's body.
fn ids_in_jsonl(path: &Path) -> Vec<u64> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last line is torn");
    let mut ids: Vec<u64> = text
        .lines()
        .map(|line| {
            let line: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let id = line["id"].as_u64().unwrap();
            assert_eq!(line["body"], body_of(id), "{line}");
            id
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_resumed_run_skips_every_saved_id_and_says_so() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let jsonl = path.to_str().unwrap();
    let first = "{\"id\":2,\"bytes\":6,\"body\":\"user-2\"}\n";
    // A run killed while writing the line of ID 3.
    fs::write(&path, format!("{first}{{\"id\":3,\"by")).unwrap();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-4", "--rate", "0"])
        .args(["--jsonl-file", jsonl, "--resume"])
        .assert()
        .success()
        .stdout("{\"ok\":true,\"count\":3,\"skipped\":1,\"bytes\":18}\n");
    assert_eq!(ids_in_jsonl(&path), [1, 2, 3, 4]);
    assert_eq!(server.request_count(), 3);
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-4,2", "--rate", "0"])
        .args(["--jsonl-file", jsonl, "--resume"])
        .assert()
        .success()
        .stdout("{\"ok\":true,\"count\":0,\"skipped\":4,\"bytes\":0}\n");
    assert_eq!(server.request_count(), 3);
}

#[test]
fn resume_needs_an_output_that_keeps_what_was_saved() {
    let server = echo_server();
    for mode in [&["--jsonl"][..], &[]] {
        fanout()
            .args(["fetch", &server.template(), "--ids", "1", "--resume"])
            .args(mode)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains("--out-dir or --jsonl-file"));
    }
    assert_eq!(server.request_count(), 0);
}
