//! Where `fanout fetch` puts results: a one-line JSON summary, files in a directory,
//! or a stream of JSON lines (on stdout or appended to a file).
//!
//! What goes to disk is synced before an ID counts as done: a file is renamed into
//! place whole and its directory synced, a line is appended whole and its file
//! synced. So a run killed at any moment, or a machine that loses power, leaves only
//! complete results under their names, besides a temporary file or a torn last line
//! that `--resume` removes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;

use crate::UsageError;
use crate::failures::Failure;
use crate::key::Key;

/// What to do with each body.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Count bodies and bytes; print one summary line at the end.
    Summary,
    /// Write each body to `DIR/NAME`, the key's file name (see [`Key::file_name`]),
    /// then print the summary line.
    OutDir(PathBuf),
    /// Print one JSON line per key as it completes.
    Jsonl,
    /// Append one JSON line per key to this file, then print the summary line.
    JsonlFile(PathBuf),
}

/// How the temporary file of an `--out-dir` body starts, and ends: never a key's name.
pub const TEMP_PREFIX: &str = ".fanout-";
/// See [`TEMP_PREFIX`].
pub const TEMP_SUFFIX: &str = ".part";

/// Why a result could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// Whoever read stdout has gone (a closed pipe): nobody is left to tell.
    StdoutClosed,
    /// Writing stdout failed otherwise.
    Stdout(io::Error),
    /// A body could not be saved under `--out-dir` or in `--jsonl-file`.
    File {
        /// The key whose body it was.
        key: Key,
        /// What went wrong, naming the file.
        message: String,
    },
}

impl WriteError {
    fn from_stdout(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            WriteError::StdoutClosed
        } else {
            WriteError::Stdout(err)
        }
    }
}

/// Writes results to `out` (stdout, in the binary) as they arrive.
#[derive(Debug)]
pub struct Output<W: Write> {
    mode: Mode,
    out: W,
    /// The `--out-dir` directory or the `--jsonl-file` file, open to be synced.
    disk: Option<File>,
    count: u64,
    /// IDs skipped as saved by an earlier run (`--resume`).
    skipped: Option<u64>,
    bytes: u64,
    redis_fallback_requests: Option<u64>,
    /// `--keep-going`: the summary of a stopped run counts what was done.
    keep_going: bool,
    failed: u64,
    /// Sorted, so the line is the same for the same failures.
    failures_by_kind: BTreeMap<&'static str, u64>,
    first_failure: Option<Failure>,
}

#[derive(Serialize)]
struct SummaryOk {
    ok: bool,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_fallback_requests: Option<u64>,
}

#[derive(Serialize)]
struct SummaryFailed<'a> {
    ok: bool,
    user_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_fallback_requests: Option<u64>,
}

/// The summary of a `--keep-going` run that had failures or was stopped.
#[derive(Serialize)]
struct SummaryKeptGoing<'a> {
    ok: bool,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
    bytes: u64,
    failed: u64,
    failures_by_kind: &'a BTreeMap<&'static str, u64>,
    first_failure: Option<&'a Failure>,
    #[serde(flatten)]
    stopped: Option<Stopped<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_fallback_requests: Option<u64>,
}

/// Why a run ended before every ID was tried, as the fail-fast line says it.
#[derive(Serialize)]
struct Stopped<'a> {
    user_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    error: &'a str,
}

#[derive(Serialize)]
struct LineText<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    key: Cow<'a, str>,
    bytes: usize,
    body: &'a str,
}

#[derive(Serialize)]
struct LineBinary<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    key: Cow<'a, str>,
    bytes: usize,
    body_base64: String,
}

#[derive(Serialize)]
struct LineFailed<'a> {
    id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    error: &'a str,
}

impl<W: Write> Output<W> {
    /// Prepares `mode`: creates the output directory if it does not exist, or opens
    /// the JSON lines file to append to (creating it if need be).
    pub fn new(mode: Mode, out: W) -> Result<Self, UsageError> {
        let disk = match &mode {
            Mode::Summary | Mode::Jsonl => None,
            Mode::OutDir(dir) => Some(open_out_dir(dir)?),
            Mode::JsonlFile(path) => Some(open_jsonl_file(path)?),
        };
        let mut output = Self::unprepared(mode, out);
        output.disk = disk;
        Ok(output)
    }

    fn unprepared(mode: Mode, out: W) -> Self {
        Output {
            mode,
            out,
            disk: None,
            count: 0,
            skipped: None,
            bytes: 0,
            redis_fallback_requests: None,
            keep_going: false,
            failed: 0,
            failures_by_kind: BTreeMap::new(),
            first_failure: None,
        }
    }

    /// Reports failed IDs as they come and goes on (`--keep-going`): the summary
    /// counts them, and the summary of a stopped run counts what was done.
    pub fn keep_going(&mut self) {
        self.keep_going = true;
    }

    /// Ends a run that failed before its first request, with the line
    /// [`failure`](Self::failure) would write, and without creating the output
    /// directory.
    pub fn failure_before_start(mode: Mode, out: W, error: &str) -> Result<(), WriteError> {
        Self::unprepared(mode, out).failure(None, error)
    }

    /// Adds to the summary line how many requests went out on this process's share
    /// of the quota while Redis was unreachable (`--redis-fallback-processes`).
    pub fn redis_fallback_requests(&mut self, requests: u64) {
        self.redis_fallback_requests = Some(requests);
    }

    /// Adds to the summary line how many IDs were skipped as already saved
    /// (`--resume`).
    pub fn skipped(&mut self, skipped: u64) {
        self.skipped = Some(skipped);
    }

    /// Handles the body of one key; returns once it is on disk, if it goes there.
    pub fn body(&mut self, key: &Key, body: &[u8]) -> Result<(), WriteError> {
        match (&self.mode, &mut self.disk) {
            (Mode::Summary, _) => {}
            (Mode::OutDir(dir), disk) => write_atomically(dir, disk.as_ref(), key, body)?,
            (Mode::Jsonl, _) => {
                let line = result_line(key, body);
                self.out.write_all(&line).map_err(WriteError::from_stdout)?;
            }
            (Mode::JsonlFile(path), disk) => {
                let failed = |e: io::Error| WriteError::File {
                    key: key.clone(),
                    message: format!("cannot write {}: {e}", path.display()),
                };
                let file = disk
                    .as_mut()
                    .ok_or_else(|| failed(io::Error::other("not open")))?;
                // One write of the whole line: a crash tears at most the last one.
                file.write_all(&result_line(key, body)).map_err(failed)?;
                file.sync_data().map_err(failed)?;
            }
        }
        self.count += 1;
        self.bytes += body.len() as u64;
        Ok(())
    }

    /// Handles an ID that failed for good in a `--keep-going` run: counted, and in
    /// `--jsonl` mode printed as its own line.
    pub fn failed(&mut self, failure: Failure) -> Result<(), WriteError> {
        if let Mode::Jsonl = self.mode {
            self.out
                .write_all(&to_line(&failure))
                .map_err(WriteError::from_stdout)?;
        }
        self.failed += 1;
        *self.failures_by_kind.entry(failure.kind).or_default() += 1;
        self.first_failure.get_or_insert(failure);
        Ok(())
    }

    /// How many IDs [`failed`](Self::failed).
    pub fn failed_count(&self) -> u64 {
        self.failed
    }

    /// Ends a run in which every ID was tried: `ok` unless some
    /// [`failed`](Self::failed).
    pub fn success(mut self) -> Result<(), WriteError> {
        if !matches!(self.mode, Mode::Jsonl) {
            let line = if self.failed == 0 {
                to_line(&SummaryOk {
                    ok: true,
                    count: self.count,
                    skipped: self.skipped,
                    bytes: self.bytes,
                    redis_fallback_requests: self.redis_fallback_requests,
                })
            } else {
                self.kept_going_line(None)
            };
            self.out.write_all(&line).map_err(WriteError::from_stdout)?;
        }
        self.out.flush().map_err(WriteError::from_stdout)
    }

    /// Ends a failed run: `failed` is the key that failed, or `None` when the whole
    /// run was stopped. The line names it as `"key"`, and as a number in `"user_id"`
    /// (`"id"` in `--jsonl` mode) when it is numeric, `null` otherwise.
    pub fn failure(mut self, failed: Option<&Key>, error: &str) -> Result<(), WriteError> {
        let user_id = failed.and_then(Key::id);
        let key = failed.map(Key::text);
        let line = match self.mode {
            Mode::Jsonl => to_line(&LineFailed {
                id: user_id,
                key,
                error,
            }),
            Mode::Summary | Mode::OutDir(_) | Mode::JsonlFile(_) if self.keep_going => self
                .kept_going_line(Some(Stopped {
                    user_id,
                    key,
                    error,
                })),
            Mode::Summary | Mode::OutDir(_) | Mode::JsonlFile(_) => to_line(&SummaryFailed {
                ok: false,
                user_id,
                key,
                error,
                skipped: self.skipped,
                redis_fallback_requests: self.redis_fallback_requests,
            }),
        };
        self.out.write_all(&line).map_err(WriteError::from_stdout)?;
        self.out.flush().map_err(WriteError::from_stdout)
    }
}

impl<W: Write> Output<W> {
    fn kept_going_line(&self, stopped: Option<Stopped<'_>>) -> Vec<u8> {
        to_line(&SummaryKeptGoing {
            ok: false,
            count: self.count,
            skipped: self.skipped,
            bytes: self.bytes,
            failed: self.failed,
            failures_by_kind: &self.failures_by_kind,
            first_failure: self.first_failure.as_ref(),
            stopped,
            redis_fallback_requests: self.redis_fallback_requests,
        })
    }
}

fn to_line(value: &impl Serialize) -> Vec<u8> {
    // These structs hold only strings, numbers and maps keyed by strings, which
    // always serialize.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The `--jsonl` line of one body: `"key"` always, `"id"` too for a numeric key.
fn result_line(key: &Key, body: &[u8]) -> Vec<u8> {
    let (id, key) = (key.id(), key.text());
    match std::str::from_utf8(body) {
        Ok(text) => to_line(&LineText {
            id,
            key,
            bytes: body.len(),
            body: text,
        }),
        Err(_) => to_line(&LineBinary {
            id,
            key,
            bytes: body.len(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(body),
        }),
    }
}

/// Creates `dir` if need be (syncing its parent, so that the new name survives a
/// crash), and opens it to sync the names renamed into it.
fn open_out_dir(dir: &Path) -> Result<File, UsageError> {
    let failed =
        |e: io::Error| UsageError::new(format!("cannot create --out-dir {}: {e}", dir.display()));
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(failed)?;
        sync_parent(dir).map_err(failed)?;
    }
    File::open(dir).map_err(failed)
}

/// Opens `path` to append to, creating it (and syncing its directory, so that the
/// new name survives a crash) if it does not exist.
fn open_jsonl_file(path: &Path) -> Result<File, UsageError> {
    let failed =
        |e: io::Error| UsageError::new(format!("cannot open --jsonl-file {}: {e}", path.display()));
    let existed = path.exists();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(failed)?;
    if !existed {
        sync_parent(path).map_err(failed)?;
    }
    Ok(file)
}

/// Syncs the directory that holds `path`, making a name just created there durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Writes `body` to `dir/NAME`, the key's file name, through a temporary file in `dir` and a rename, so the
/// final name never holds a partial body, whenever the process stops. The file, then
/// `dir` (open as `dir_handle`), are synced before returning, so the name and its
/// body survive a crash of the machine too.
fn write_atomically(
    dir: &Path,
    dir_handle: Option<&File>,
    key: &Key,
    body: &[u8],
) -> Result<(), WriteError> {
    let target = dir.join(key.file_name());
    let failed = |e: io::Error| WriteError::File {
        key: key.clone(),
        message: format!("cannot write {}: {e}", target.display()),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(failed)?;
    temp.write_all(body).map_err(failed)?;
    temp.as_file().sync_data().map_err(failed)?;
    temp.persist(&target).map_err(|e| failed(e.error))?;
    match dir_handle {
        Some(dir) => dir.sync_all().map_err(failed),
        None => File::open(dir).and_then(|d| d.sync_all()).map_err(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[u8]) -> Vec<&str> {
        std::str::from_utf8(out).unwrap().lines().collect()
    }

    #[test]
    fn summary_counts_bodies_and_bytes() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.body(&Key::Id(2), b"de").unwrap();
        output.success().unwrap();
        assert_eq!(out, b"{\"ok\":true,\"count\":2,\"bytes\":5}\n");
    }

    #[test]
    fn failure_line_names_the_id_or_null() {
        let mut out = Vec::new();
        let output = Output::new(Mode::Summary, &mut out).unwrap();
        output
            .failure(Some(&Key::Id(4)), "user 4: http status 500")
            .unwrap();
        let output = Output::new(Mode::Summary, &mut out).unwrap();
        output.failure(None, "deadline exceeded").unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"ok\":false,\"user_id\":4,\"key\":\"4\",\"error\":\"user 4: http status 500\"}",
                "{\"ok\":false,\"user_id\":null,\"error\":\"deadline exceeded\"}",
            ]
        );
    }

    #[test]
    fn jsonl_text_binary_and_error_lines() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Jsonl, &mut out).unwrap();
        output
            .body(&Key::Id(7), "h\u{e9}llo \"x\"".as_bytes())
            .unwrap();
        output.body(&Key::Id(8), &[0xff, 0x00]).unwrap();
        output
            .failure(Some(&Key::Id(3)), "user 3: http status 500")
            .unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"id\":7,\"key\":\"7\",\"bytes\":10,\"body\":\"h\u{e9}llo \\\"x\\\"\"}",
                "{\"id\":8,\"key\":\"8\",\"bytes\":2,\"body_base64\":\"/wA=\"}",
                "{\"id\":3,\"key\":\"3\",\"error\":\"user 3: http status 500\"}",
            ]
        );
    }

    #[test]
    fn a_text_key_is_named_by_key_alone_in_lines_and_escaped_in_file_names() {
        let key = Key::Text("../a b".into());
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Jsonl, &mut out).unwrap();
        output.body(&key, b"x").unwrap();
        output
            .failure(Some(&key), "key \"../a b\": http status 500")
            .unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"key\":\"../a b\",\"bytes\":1,\"body\":\"x\"}",
                "{\"id\":null,\"key\":\"../a b\",\"error\":\"key \\\"../a b\\\": http status 500\"}",
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let mut output = Output::new(Mode::OutDir(dir.path().into()), &mut out).unwrap();
        output.body(&key, b"x").unwrap();
        assert_eq!(fs::read(dir.path().join("%2E.%2Fa%20b")).unwrap(), b"x");
    }

    #[test]
    fn redis_fallback_requests_are_counted_in_the_summary_when_asked_for() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.redis_fallback_requests(1);
        output.success().unwrap();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.redis_fallback_requests(0);
        output
            .failure(Some(&Key::Id(2)), "user 2: http status 500")
            .unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"ok\":true,\"count\":1,\"bytes\":3,\"redis_fallback_requests\":1}",
                "{\"ok\":false,\"user_id\":2,\"key\":\"2\",\"error\":\"user 2: http status 500\",\"redis_fallback_requests\":0}",
            ]
        );
    }

    #[test]
    fn a_failure_before_start_creates_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("never");
        let mut out = Vec::new();
        Output::failure_before_start(Mode::OutDir(target.clone()), &mut out, "redis down").unwrap();
        assert!(!target.exists());
        assert_eq!(
            out,
            b"{\"ok\":false,\"user_id\":null,\"error\":\"redis down\"}\n"
        );
        let mut out = Vec::new();
        Output::failure_before_start(Mode::Jsonl, &mut out, "redis down").unwrap();
        assert_eq!(out, b"{\"id\":null,\"error\":\"redis down\"}\n");
    }

    #[test]
    fn jsonl_prints_no_summary() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Jsonl, &mut out).unwrap();
        output.body(&Key::Id(1), b"x").unwrap();
        output.success().unwrap();
        assert_eq!(
            out,
            b"{\"id\":1,\"key\":\"1\",\"bytes\":1,\"body\":\"x\"}\n"
        );
    }

    #[test]
    fn out_dir_is_created_and_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nested");
        let mut out = Vec::new();
        let mut output = Output::new(Mode::OutDir(target.clone()), &mut out).unwrap();
        output.body(&Key::Id(5), b"first").unwrap();
        output.body(&Key::Id(5), b"second").unwrap();
        output.success().unwrap();
        assert_eq!(fs::read(target.join("5")).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["5"]);
        assert_eq!(out, b"{\"ok\":true,\"count\":2,\"bytes\":11}\n");
    }

    #[test]
    fn a_jsonl_file_is_appended_to_and_stdout_gets_the_summary_with_skipped_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        fs::write(&path, "{\"id\":1,\"bytes\":1,\"body\":\"a\"}\n").unwrap();
        let mut out = Vec::new();
        let mut output = Output::new(Mode::JsonlFile(path.clone()), &mut out).unwrap();
        output.keep_going();
        output.body(&Key::Id(2), b"bc").unwrap();
        output.failed(failure(3, "http_status", Some(404))).unwrap();
        output.skipped(1);
        output.failure(None, "deadline exceeded").unwrap();
        assert_eq!(
            lines(fs::read(&path).unwrap().as_slice()),
            [
                "{\"id\":1,\"bytes\":1,\"body\":\"a\"}",
                "{\"id\":2,\"key\":\"2\",\"bytes\":2,\"body\":\"bc\"}",
            ]
        );
        assert_eq!(
            lines(&out),
            [
                "{\"ok\":false,\"count\":1,\"skipped\":1,\"bytes\":2,\"failed\":1,\
              \"failures_by_kind\":{\"http_status\":1},\"first_failure\":{\"id\":3,\"key\":\"3\",\
              \"kind\":\"http_status\",\"status\":404,\"error\":\"user 3: failed\"},\
              \"user_id\":null,\"error\":\"deadline exceeded\"}"
            ]
        );
    }

    #[test]
    fn skipped_ids_are_counted_apart_in_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let mut output = Output::new(Mode::OutDir(dir.path().into()), &mut out).unwrap();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.skipped(4);
        output.success().unwrap();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.skipped(4);
        output
            .failure(Some(&Key::Id(2)), "user 2: http status 500")
            .unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"ok\":true,\"count\":1,\"skipped\":4,\"bytes\":3}",
                "{\"ok\":false,\"user_id\":2,\"key\":\"2\",\"error\":\"user 2: http status 500\",\"skipped\":4}",
            ]
        );
    }

    fn failure(id: u64, kind: &'static str, status: Option<u16>) -> Failure {
        Failure {
            id: Some(id),
            key: id.to_string(),
            kind,
            status,
            error: format!("user {id}: failed"),
        }
    }

    #[test]
    fn kept_going_summary_counts_failures_by_kind_and_names_the_first() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.keep_going();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.failed(failure(2, "http_status", Some(404))).unwrap();
        output.failed(failure(3, "timeout", None)).unwrap();
        output.failed(failure(4, "http_status", Some(500))).unwrap();
        assert_eq!(output.failed_count(), 3);
        output.success().unwrap();
        assert_eq!(
            lines(&out),
            ["{\"ok\":false,\"count\":1,\"bytes\":3,\"failed\":3,\
              \"failures_by_kind\":{\"http_status\":2,\"timeout\":1},\
              \"first_failure\":{\"id\":2,\"key\":\"2\",\"kind\":\"http_status\",\"status\":404,\
              \"error\":\"user 2: failed\"}}"]
        );
    }

    #[test]
    fn kept_going_without_failures_is_the_plain_success_line() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.keep_going();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.success().unwrap();
        assert_eq!(out, b"{\"ok\":true,\"count\":1,\"bytes\":3}\n");
    }

    #[test]
    fn a_stopped_kept_going_run_counts_what_was_done() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Summary, &mut out).unwrap();
        output.keep_going();
        output.body(&Key::Id(1), b"abc").unwrap();
        output.failure(None, "deadline exceeded").unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"ok\":false,\"count\":1,\"bytes\":3,\"failed\":0,\"failures_by_kind\":{},\
              \"first_failure\":null,\"user_id\":null,\"error\":\"deadline exceeded\"}"
            ]
        );
    }

    #[test]
    fn jsonl_prints_each_failure_and_no_summary() {
        let mut out = Vec::new();
        let mut output = Output::new(Mode::Jsonl, &mut out).unwrap();
        output.keep_going();
        output.body(&Key::Id(1), b"x").unwrap();
        output.failed(failure(2, "http_status", Some(404))).unwrap();
        output.success().unwrap();
        assert_eq!(
            lines(&out),
            [
                "{\"id\":1,\"key\":\"1\",\"bytes\":1,\"body\":\"x\"}",
                "{\"id\":2,\"key\":\"2\",\"kind\":\"http_status\",\"status\":404,\"error\":\"user 2: failed\"}",
            ]
        );
    }

    #[test]
    fn closed_pipe_is_recognised() {
        let err = WriteError::from_stdout(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(err, WriteError::StdoutClosed));
    }
}
