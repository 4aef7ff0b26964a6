//! `--shard INDEX/COUNT` splits one input among processes: every ID is fetched by
//! exactly one of them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{body_of, echo_server, fanout};
use predicates::prelude::*;
use serde_json::{Value, json};

const IDS: u64 = 2_000;

fn ids_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ids.txt");
    let text: String = (1..=IDS).map(|id| format!("{id}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The IDs a `--jsonl` run printed, sorted (they come in completion order).
fn fetched(stdout: &[u8]) -> Vec<u64> {
    let mut ids: Vec<u64> = std::str::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            assert_eq!(line["body"], json!(body_of(line["id"].as_u64().unwrap())));
            line["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn run_shard(template: &str, file: &Path, shard: &str) -> Vec<u64> {
    let output = fanout()
        .env_remove("JOB_COMPLETION_INDEX")
        .args([
            "fetch", template, "--rate", "0", "--jsonl", "--shard", shard,
        ])
        .arg("--ids-file")
        .arg(file)
        .assert()
        .success()
        .get_output()
        .clone();
    fetched(&output.stdout)
}

#[test]
fn four_shards_cover_every_id_exactly_once() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let file = ids_file(dir.path());
    let mut all = Vec::new();
    for index in 0..4 {
        let part = run_shard(&server.template(), &file, &format!("{index}/4"));
        // An even split, give or take: each holds about a quarter.
        assert!(
            (350..650).contains(&part.len()),
            "shard {index}: {}",
            part.len()
        );
        all.extend(part);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=IDS).collect::<Vec<_>>(), "each ID once");
    assert_eq!(
        server.request_count(),
        IDS as usize,
        "each ID requested once"
    );
    let seen: BTreeSet<u64> = server.arrivals().iter().filter_map(|a| a.id).collect();
    assert_eq!(seen.len(), IDS as usize);
}

#[test]
fn the_summary_counts_only_the_shard() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let file = ids_file(dir.path());
    let part = run_shard(&server.template(), &file, "1/3");
    let bytes: usize = part.iter().map(|&id| body_of(id).len()).sum();
    fanout()
        .args(["fetch", &server.template(), "--rate", "0", "--shard", "1/3"])
        .arg("--ids-file")
        .arg(&file)
        .assert()
        .success()
        .stdout(format!(
            "{{\"ok\":true,\"count\":{},\"bytes\":{bytes}}}\n",
            part.len()
        ));
}

#[test]
fn one_shard_of_one_is_everything() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let file = ids_file(dir.path());
    assert_eq!(
        run_shard(&server.template(), &file, "0/1").len(),
        IDS as usize
    );
}

#[test]
fn auto_takes_the_index_from_job_completion_index() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let file = ids_file(dir.path());
    let given = run_shard(&server.template(), &file, "2/4");
    let output = fanout()
        .env("JOB_COMPLETION_INDEX", "2")
        .args(["fetch", &server.template(), "--rate", "0", "--jsonl"])
        .args(["--shard", "auto/4"])
        .arg("--ids-file")
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(fetched(&output.stdout), given);
}

#[test]
fn auto_without_a_usable_index_is_a_usage_error_naming_the_variable() {
    let server = echo_server();
    let run = |value: Option<&str>| {
        let mut command = fanout();
        match value {
            Some(value) => command.env("JOB_COMPLETION_INDEX", value),
            None => command.env_remove("JOB_COMPLETION_INDEX"),
        };
        command
            .args(["fetch", &server.template(), "--ids", "1-10"])
            .args(["--shard", "auto/4"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("JOB_COMPLETION_INDEX"));
    };
    run(None);
    for value in ["4", "x", "", "-1"] {
        run(Some(value));
    }
    assert_eq!(server.request_count(), 0);
}

#[test]
fn bad_forms_are_usage_errors_naming_the_accepted_form() {
    let server = echo_server();
    for shard in ["4/4", "0/0", "x/2", "1", "1/2/3", "auto"] {
        fanout()
            .args([
                "fetch",
                &server.template(),
                "--ids",
                "1-10",
                "--shard",
                shard,
            ])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("INDEX/COUNT"));
    }
    assert_eq!(server.request_count(), 0);
}
