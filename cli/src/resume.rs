//! `--resume`: the keys an earlier run already saved, to skip them, and the repair of
//! what a run killed mid-write left behind (a temporary file, a torn last line).
//!
//! Keys are held as their text (a numeric ID's decimal form), so the set serves any
//! kind of key: about 60 bytes per saved key.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::UsageError;
use crate::key;
use crate::output::{TEMP_PREFIX, TEMP_SUFFIX};

/// The keys saved by an earlier run, and how many of this run's keys they skipped.
#[derive(Debug, Default)]
pub struct Saved {
    /// Saved keys not met yet in this run's input.
    unmet: HashSet<String>,
    /// Saved keys met (and skipped) already: a key given twice is counted once.
    met: HashSet<String>,
    /// `met.len()`, readable from the progress bar's thread.
    skipped: Arc<AtomicU64>,
}

impl Saved {
    /// The keys with a file in `dir`, read back from their file names (none if `dir`
    /// does not exist yet), after removing the temporary files a killed run left
    /// there.
    ///
    /// One process at a time may write to `dir`: another's temporary file would be
    /// removed from under it.
    pub fn in_out_dir(dir: &Path) -> Result<Saved, UsageError> {
        let failed =
            |e: io::Error| UsageError::new(format!("cannot resume from {}: {e}", dir.display()));
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(e) => return Err(failed(e)),
        };
        let mut unmet = HashSet::new();
        for entry in entries {
            let entry = entry.map_err(failed)?;
            // A name that is not UTF-8 is no key of ours.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if is_temporary(&name) {
                // Never renamed into place: its key was not done.
                fs::remove_file(entry.path()).map_err(failed)?;
            } else if let Some(key) = key::from_file_name(&name) {
                unmet.insert(key);
            }
            // Any other name is no key's: left alone, and not a saved key.
        }
        Ok(Saved::holding(unmet))
    }

    /// The keys of the result lines in `path` (none if it does not exist yet), after
    /// [`repair_jsonl`]. Lines that report an error are not results: their keys are
    /// fetched again.
    pub fn in_jsonl_file(path: &Path) -> Result<Saved, UsageError> {
        let failed =
            |e: String| UsageError::new(format!("cannot resume from {}: {e}", path.display()));
        repair_jsonl(path)?;
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(e) => return Err(failed(e.to_string())),
        };
        let mut unmet = HashSet::new();
        for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|e| failed(e.to_string()))?;
            if line.trim_ascii().is_empty() {
                continue;
            }
            let result: ResultLine = serde_json::from_slice(&line)
                .map_err(|e| failed(format!("line {} is not a result line: {e}", index + 1)))?;
            if let Some(key) = result.key_text() {
                unmet.insert(key);
            }
        }
        Ok(Saved::holding(unmet))
    }

    fn holding(unmet: HashSet<String>) -> Saved {
        Saved {
            unmet,
            ..Saved::default()
        }
    }

    /// Whether the key with this text was saved, and so is skipped: counted the first
    /// time.
    pub fn skips(&mut self, key: &str) -> bool {
        if self.met.contains(key) {
            return true;
        }
        match self.unmet.take(key) {
            Some(key) => {
                self.met.insert(key);
                self.skipped.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// How many distinct keys were skipped so far, shared with another thread.
    pub fn skipped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.skipped)
    }
}

/// Whether an `--out-dir` file name is a body not yet renamed into place.
fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Cuts from the JSON lines file at `path` a last line without its newline: the line
/// a killed run was writing. Nothing to do if the file does not exist.
pub fn repair_jsonl(path: &Path) -> Result<(), UsageError> {
    let failed = |e: io::Error| UsageError::new(format!("cannot repair {}: {e}", path.display()));
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed(e)),
    };
    let mut reader = BufReader::new(&file);
    let (mut length, mut complete) = (0u64, 0u64);
    loop {
        let buffer = reader.fill_buf().map_err(failed)?;
        if buffer.is_empty() {
            break;
        }
        let read = buffer.len();
        if let Some(last) = buffer.iter().rposition(|&b| b == b'\n') {
            complete = length + last as u64 + 1;
        }
        length += read as u64;
        reader.consume(read);
    }
    if complete < length {
        file.set_len(complete).map_err(failed)?;
        file.sync_all().map_err(failed)?;
    }
    Ok(())
}

/// What `--resume` reads of a `--jsonl` line.
#[derive(Deserialize)]
struct ResultLine {
    /// The key's text.
    key: Option<String>,
    /// A numeric ID: all that lines written before keys were text carry.
    id: Option<u64>,
    /// Present on the line of an ID that failed.
    error: Option<IgnoredAny>,
}

impl ResultLine {
    fn key_text(self) -> Option<String> {
        if self.error.is_some() {
            return None;
        }
        self.key.or_else(|| self.id.map(|id| id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_files_are_keys_and_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("1"), "user-1").unwrap();
        fs::write(dir.path().join("22"), "user-22").unwrap();
        fs::write(dir.path().join(".fanout-Ab12Cd.part"), "user-").unwrap();
        fs::write(dir.path().join("%2E.%2Fadmin"), "admin").unwrap();
        fs::write(dir.path().join("caf%C3%A9"), "cafe").unwrap();
        fs::write(dir.path().join(".DS_Store"), "").unwrap();
        let mut saved = Saved::in_out_dir(dir.path()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
        assert!(saved.skips("1") && saved.skips("22") && saved.skips("1"));
        assert!(saved.skips("../admin") && saved.skips("caf\u{e9}"));
        assert!(!saved.skips("3") && !saved.skips(".DS_Store") && !saved.skips("%2E.%2Fadmin"));
        assert_eq!(saved.skipped_counter().load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_missing_output_has_nothing_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = Saved::in_out_dir(&dir.path().join("none")).unwrap();
        assert!(!saved.skips("1"));
        let mut saved = Saved::in_jsonl_file(&dir.path().join("none.jsonl")).unwrap();
        assert!(!saved.skips("1"));
        assert!(!dir.path().join("none.jsonl").exists());
    }

    #[test]
    fn a_torn_last_line_is_cut_and_error_lines_are_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let complete = "{\"id\":1,\"bytes\":6,\"body\":\"user-1\"}\n\
                        {\"id\":2,\"kind\":\"http_status\",\"status\":404,\"error\":\"x\"}\n\
                        {\"key\":\"alice\",\"bytes\":1,\"body\":\"a\"}\n";
        fs::write(&path, format!("{complete}{{\"id\":3,\"bytes\":6,\"bo")).unwrap();
        let mut saved = Saved::in_jsonl_file(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), complete);
        assert!(saved.skips("1") && saved.skips("alice"));
        assert!(!saved.skips("2") && !saved.skips("3"));
    }

    #[test]
    fn a_complete_line_that_is_not_a_result_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        fs::write(&path, "{\"id\":1,\"body\":\"x\"}\nnot json\n").unwrap();
        let err = Saved::in_jsonl_file(&path).unwrap_err();
        assert!(err.0.contains("line 2"), "{}", err.0);
    }

    #[test]
    fn repair_leaves_whole_lines_and_empty_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        for text in ["", "{\"id\":1}\n", "{\"id\":1}\n{\"id\":2}\n"] {
            fs::write(&path, text).unwrap();
            repair_jsonl(&path).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
        fs::write(&path, "{\"id").unwrap();
        repair_jsonl(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
