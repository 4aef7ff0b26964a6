//! Failed keys as records: the JSON object `--failures FILE`, `--jsonl` and the
//! `--keep-going` summary share, and the file that lists them for a retry.

use std::fs::File;
use std::io::{self, LineWriter, Write};
use std::path::{Path, PathBuf};

use fanout::{ErrorKind, FetchError};
use serde::Serialize;

use crate::UsageError;
use crate::key::Key;

/// One key that failed for good:
/// `{"id":7,"key":"7","kind":"http_status","status":404,"error":"..."}`, without
/// `"id"` when the key is not numeric.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The key, when it is numeric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The key's text.
    pub key: String,
    /// What kind of failure, by [`kind_name`].
    pub kind: &'static str,
    /// The HTTP status, when the server answered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The library's message.
    pub error: String,
}

impl Failure {
    /// The record of `err`, which concerns `key`.
    pub fn new(key: &Key, err: &FetchError) -> Self {
        Failure {
            id: key.id(),
            key: key.text().into_owned(),
            kind: kind_name(err.kind()),
            status: err.status(),
            error: err.to_string(),
        }
    }
}

/// The name a kind of failure goes by in JSON: the C API's `FANOUT_STATUS_*` names,
/// in lower case.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Status => "http_status",
        ErrorKind::Transport => "transport",
        ErrorKind::Timeout => "timeout",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::DeadlineExceeded => "deadline_exceeded",
        ErrorKind::Limiter => "limiter",
        // An empty key, which the command line refuses before the library sees it.
        ErrorKind::InvalidKey => "invalid_argument",
        // Internal, and any kind a newer library adds, as the C API maps them.
        _ => "internal",
    }
}

/// `--failures FILE`: one [`Failure`] per line, written as each failure comes.
#[derive(Debug)]
pub struct FailuresFile {
    path: PathBuf,
    // Line-buffered: failures are few, and a crash loses none already reported.
    file: LineWriter<File>,
}

impl FailuresFile {
    /// Creates (or empties) the file: a usage error if that fails, before any request.
    pub fn create(path: &Path) -> Result<Self, UsageError> {
        let file = File::create(path).map_err(|e| {
            UsageError::new(format!("cannot create --failures {}: {e}", path.display()))
        })?;
        Ok(FailuresFile {
            path: path.to_path_buf(),
            file: LineWriter::new(file),
        })
    }

    /// Appends one failure; the message names the file.
    pub fn write(&mut self, failure: &Failure) -> Result<(), String> {
        let mut line = serde_json::to_vec(failure).unwrap_or_default();
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| self.failed(e))
    }

    /// Flushes what is left, at the end of the run.
    pub fn finish(mut self) -> Result<(), String> {
        self.file.flush().map_err(|e| self.failed(e))
    }

    fn failed(&self, e: io::Error) -> String {
        format!("cannot write --failures {}: {e}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_json_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed.jsonl");
        let mut file = FailuresFile::create(&path).unwrap();
        let failure = Failure {
            id: Some(7),
            key: "7".into(),
            kind: "http_status",
            status: Some(404),
            error: "user 7: http status 404".into(),
        };
        file.write(&failure).unwrap();
        let failure = Failure {
            id: Some(8),
            key: "8".into(),
            kind: "timeout",
            status: None,
            error: "user 8: timed out".into(),
        };
        file.write(&failure).unwrap();
        let failure = Failure {
            id: None,
            key: "a b".into(),
            kind: "timeout",
            status: None,
            error: "key \"a b\": timed out".into(),
        };
        file.write(&failure).unwrap();
        file.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":7,\"key\":\"7\",\"kind\":\"http_status\",\"status\":404,\"error\":\"user 7: http status 404\"}\n\
             {\"id\":8,\"key\":\"8\",\"kind\":\"timeout\",\"error\":\"user 8: timed out\"}\n\
             {\"key\":\"a b\",\"kind\":\"timeout\",\"error\":\"key \\\"a b\\\": timed out\"}\n"
        );
    }

    #[test]
    fn a_file_that_cannot_be_created_is_a_usage_error() {
        let err = FailuresFile::create(Path::new("/nonexistent/failed.jsonl")).unwrap_err();
        assert!(err.0.contains("--failures"), "{}", err.0);
    }
}
