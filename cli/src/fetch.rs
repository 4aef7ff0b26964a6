//! `fanout fetch`: every key (of this shard, not saved yet) through the library,
//! results to the chosen output, fail-fast or going on past failed keys.
//!
//! When every key is a numeric ID, they go through the library's `u64` path, as
//! lazily as ever; otherwise every key goes as text (an ID as its digits, which make
//! the same URL).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fanout::{CancelToken, ErrorKind, FanOutClient, FetchError, LimiterError, RedisGcra};

use crate::args::FetchArgs;
use crate::failures::{Failure, FailuresFile};
use crate::ids::KeyList;
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::output::{Mode, Output, WriteError};
use crate::progress::Progress;
use crate::resume::{self, Saved};
use crate::sampler;
use crate::shard;
use crate::timeline::Timeline;
use crate::{Outcome, UsageError};

/// Runs `fanout fetch`.
pub fn run(args: &FetchArgs) -> Result<Outcome, UsageError> {
    let ids = collect_ids(args)?;
    let shard = args
        .shard
        .map(|arg| arg.resolve(std::env::var(shard::INDEX_VARIABLE).ok().as_deref()))
        .transpose()
        .map_err(UsageError)?;
    let quota = redis_quota(args)?;
    let mode = match (&args.out_dir, &args.jsonl_file, args.jsonl) {
        (Some(dir), _, _) => Mode::OutDir(dir.clone()),
        (None, Some(path), _) => Mode::JsonlFile(path.clone()),
        (None, None, true) => Mode::Jsonl,
        (None, None, false) => Mode::Summary,
    };
    if args.resume && !matches!(mode, Mode::OutDir(_) | Mode::JsonlFile(_)) {
        return Err(UsageError::new(
            "--resume reads what was saved: it needs --out-dir or --jsonl-file",
        ));
    }
    // Checked before `Output::new` creates the output directory: a usage error
    // leaves nothing behind.
    if let Some(path) = &args.limits.timeline {
        Timeline::check_writable(path)?;
    }
    let quota = match quota.map(|quota| connect(args, quota)).transpose() {
        Ok(quota) => quota.map(Arc::new),
        Err(e) => {
            // Nothing was requested, and stdout still gets its one line.
            let error = format!("shared rate limit: {e}");
            let written = Output::failure_before_start(mode, io::stdout().lock(), &error);
            return Ok(settle(written, Outcome::Failure));
        }
    };
    let client = build_client(args, quota.clone())?;
    // Created before the output directory, so that a path that cannot be created
    // leaves nothing behind either.
    let failures = args
        .failures
        .as_deref()
        .map(FailuresFile::create)
        .transpose()?;
    let saved = match (&mode, args.resume) {
        (Mode::OutDir(dir), true) => Some(Saved::in_out_dir(dir)?),
        (Mode::JsonlFile(path), true) => Some(Saved::in_jsonl_file(path)?),
        // Appending after a torn line would spoil the next line too.
        (Mode::JsonlFile(path), false) => {
            resume::repair_jsonl(path)?;
            None
        }
        _ => None,
    };
    let skipped = saved.as_ref().map(Saved::skipped_counter);
    let mut output = Output::new(mode, io::stdout().lock())?;
    if args.keep_going {
        output.keep_going();
    }

    // The deadline counts from here, once everything is ready.
    let token = match args.deadline_ms {
        Some(ms) => CancelToken::with_timeout(Duration::from_millis(ms)),
        None => CancelToken::new(),
    };
    let interrupt = Interrupt::install(token);

    let base = client.stats();
    let mut progress = Progress::start_counting(|| ids.distinct_count_in(shard.as_ref()), base);
    if let (Some(progress), Some(skipped)) = (&mut progress, &skipped) {
        progress.count_skipped(Arc::clone(skipped));
    }
    let timeline = args
        .limits
        .timeline
        .as_ref()
        .map(|_| Timeline::new(args.limits.timeline_limits(), base));
    let (end, timeline) = sampler::observe(&client, progress, timeline, || {
        let mut saved = saved;
        let policy = Policy {
            keep_going: args.keep_going,
            failures,
        };
        let token = &interrupt.token;
        if ids.is_numeric() {
            let mut text = String::new();
            let ids = ids
                .ids()
                .filter(|&id| shard.is_none_or(|s| s.holds_id(id)))
                .filter(move |&id| {
                    let Some(saved) = &mut saved else {
                        return true;
                    };
                    text.clear();
                    // Writing to a String cannot fail.
                    let _ = write!(text, "{id}");
                    !saved.skips(&text)
                });
            let results = client
                .fetch_iter_with(token, ids)
                .map(|item| item.map(|(id, body)| (Key::Id(id), body)));
            drain(results, policy, &mut output)
        } else {
            let keys = ids
                .texts()
                .filter(|key| shard.is_none_or(|s| s.holds_key(key)))
                .filter(move |key: &Cow<'_, str>| saved.as_mut().is_none_or(|s| !s.skips(key)));
            let results = client
                .fetch_iter_keys_with(token, keys)
                .map(|item| item.map(|(key, body)| (Key::from_text(key), body)));
            drain(results, policy, &mut output)
        }
    });

    if let Some(skipped) = skipped {
        output.skipped(skipped.load(Ordering::Relaxed));
    }
    if let (Some(_), Some(quota)) = (args.redis_fallback_processes, &quota) {
        output.redis_fallback_requests(quota.fallback_tokens());
    }
    let outcome = finish(end, output, &interrupt);
    if let (Some(path), Some(timeline)) = (&args.limits.timeline, timeline) {
        // The path was writable before the run; if drawing still fails, the exit
        // status keeps telling about the fetch, as the JSON line on stdout does.
        if let Err(message) = timeline.write_svg(path) {
            let _ = writeln!(io::stderr(), "warning: {message}");
        }
    }
    Ok(outcome)
}

/// How the result loop ended.
enum End {
    /// Every key was handled.
    Done,
    /// A key failed for good, or the run was stopped (no key).
    Fetch(FetchError),
    /// A result could not be written.
    Write(WriteError),
    /// The `--failures` file could not be written.
    Failures(String),
}

/// What to do with a key that fails for good.
struct Policy {
    /// Report it and go on (`--keep-going`) rather than stop.
    keep_going: bool,
    /// Where to list it (`--failures`).
    failures: Option<FailuresFile>,
}

/// Hands each result to `output` as it completes; stops at the first failure unless
/// told to keep going.
fn drain<W: Write>(
    results: impl Iterator<Item = Result<(Key, Vec<u8>), FetchError>>,
    mut policy: Policy,
    output: &mut Output<W>,
) -> End {
    // Returning drops the iterator, which abandons the rest of the call: keys not yet
    // sent are never requested.
    for item in results {
        let err = match item {
            Ok((key, body)) => match output.body(&key, &body) {
                Ok(()) => continue,
                Err(err) => return End::Write(err),
            },
            Err(err) => err,
        };
        // No key: the whole run was stopped (Ctrl-C, deadline).
        let Some(key) = Key::of_error(&err) else {
            return End::Fetch(err);
        };
        let failure = Failure::new(&key, &err);
        if let Some(Err(message)) = policy.failures.as_mut().map(|f| f.write(&failure)) {
            return End::Failures(message);
        }
        // A limiter that cannot answer would fail every key left, none of them for
        // anything of its own: it ends the run even when keeping going.
        if !policy.keep_going || err.kind() == ErrorKind::Limiter {
            return End::Fetch(err);
        }
        if let Err(err) = output.failed(failure) {
            return End::Write(err);
        }
    }
    match policy.failures.map(FailuresFile::finish) {
        Some(Err(message)) => End::Failures(message),
        _ => End::Done,
    }
}

/// Writes the last line and chooses the exit status.
fn finish<W: Write>(end: End, output: Output<W>, interrupt: &Interrupt) -> Outcome {
    let (written, outcome) = match end {
        End::Done => {
            let outcome = if output.failed_count() == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            (output.success(), outcome)
        }
        End::Fetch(err) => {
            let outcome = if err.kind() == ErrorKind::Cancelled && interrupt.fired() {
                Outcome::Interrupted
            } else {
                Outcome::Failure
            };
            let key = Key::of_error(&err);
            (output.failure(key.as_ref(), &err.to_string()), outcome)
        }
        End::Write(WriteError::File { key, message }) => {
            (output.failure(Some(&key), &message), Outcome::Failure)
        }
        End::Failures(message) => (output.failure(None, &message), Outcome::Failure),
        // Whoever read the stream stopped reading: nobody is left to tell.
        End::Write(WriteError::StdoutClosed) => return Outcome::Success,
        End::Write(WriteError::Stdout(err)) => {
            let _ = writeln!(io::stderr(), "error: cannot write stdout: {err}");
            return Outcome::Failure;
        }
    };
    settle(written, outcome)
}

/// The exit status once the last line was written, or could not be.
fn settle(written: Result<(), WriteError>, outcome: Outcome) -> Outcome {
    match written {
        Ok(()) | Err(WriteError::StdoutClosed) => outcome,
        Err(WriteError::Stdout(err)) => {
            let _ = writeln!(io::stderr(), "error: cannot write stdout: {err}");
            Outcome::Failure
        }
        Err(WriteError::File { message, .. }) => {
            let _ = writeln!(io::stderr(), "error: {message}");
            Outcome::Failure
        }
    }
}

fn collect_ids(args: &FetchArgs) -> Result<KeyList, UsageError> {
    if args.ids.is_empty() && args.ids_file.is_none() {
        return Err(UsageError::new(
            "no keys to fetch: give --ids LIST or --ids-file FILE (- for stdin)",
        ));
    }
    let mut ids = KeyList::default();
    for list in &args.ids {
        ids.extend(list.clone());
    }
    if let Some(path) = &args.ids_file {
        ids.extend(read_ids_file(path)?);
    }
    Ok(ids)
}

fn read_ids_file(path: &Path) -> Result<KeyList, UsageError> {
    let parsed = if path == Path::new("-") {
        KeyList::parse_lines(io::stdin().lock(), "stdin")
    } else {
        let file = File::open(path)
            .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
        KeyList::parse_lines(BufReader::new(file), &path.display().to_string())
    };
    parsed.map_err(UsageError)
}

/// The Redis quota of `--redis`, if asked for, not yet connected: a usage error for
/// a bad combination or a URL that is not a Redis URL.
fn redis_quota(args: &FetchArgs) -> Result<Option<RedisGcra>, UsageError> {
    let (Some(url), Some(key)) = (&args.redis, &args.limit_key) else {
        return Ok(None);
    };
    let Some((rate, burst)) = args.limits.rate_limit() else {
        return Err(UsageError::new(
            "--redis shares a rate limit: it needs --rate above 0",
        ));
    };
    RedisGcra::new(url, key.as_str(), rate, burst)
        .map(Some)
        .map_err(|e| UsageError::new(format!("--redis: {e}")))
}

/// Without a fallback, connects now, so that an unreachable Redis ends the run before
/// any request. With one, the first token finds out, and the local share takes over.
fn connect(args: &FetchArgs, quota: RedisGcra) -> Result<RedisGcra, LimiterError> {
    if let Some(processes) = args.redis_fallback_processes {
        return Ok(quota.with_local_fallback(processes));
    }
    // `redis_quota` accepted these settings: only reaching Redis can fail here.
    match (&args.redis, &args.limit_key, args.limits.rate_limit()) {
        (Some(url), Some(key), Some((rate, burst))) => {
            RedisGcra::connect(url, key.as_str(), rate, burst)
        }
        _ => Ok(quota),
    }
}

fn build_client(
    args: &FetchArgs,
    shared_limit: Option<Arc<RedisGcra>>,
) -> Result<FanOutClient, UsageError> {
    let limits = &args.limits;
    let mut builder = FanOutClient::builder(args.template.as_str())
        .max_in_flight(limits.max_in_flight)
        .timeout(Duration::from_millis(args.timeout_ms))
        .max_attempts(args.max_attempts)
        .adaptive_rate(!args.no_adaptive_rate)
        .max_throttled(Duration::from_millis(args.max_throttled_ms));
    builder = match (shared_limit, limits.rate_limit()) {
        (Some(shared), _) => builder.limiter(shared),
        (None, Some((rate, burst))) => builder.rate(rate, burst),
        (None, None) => builder.no_rate_limit(),
    };
    for header in &args.headers {
        let (name, value) = parse_header(header)?;
        builder = builder.header(name, value);
    }
    if let Some(proxy) = &args.proxy {
        // '' turns the proxy off, as in curl.
        builder = builder.proxy(Some(proxy));
    }
    builder = args.tls.configure(builder)?;
    builder
        .compression(!args.no_compression)
        .build()
        .map_err(|e| UsageError::build(&e, args.tls.file_at_fault(&e)))
}

/// Splits `Name: value` at its first colon.
fn parse_header(header: &str) -> Result<(&str, &str), UsageError> {
    match header.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value.trim())),
        _ => Err(UsageError::new(format!(
            "header {header:?} is not of the form 'Name: value'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_at_the_first_colon() {
        let (name, value) = parse_header("Authorization: Bearer a:b").unwrap();
        assert_eq!((name, value), ("Authorization", "Bearer a:b"));
        let (name, value) = parse_header("X-Empty:").unwrap();
        assert_eq!((name, value), ("X-Empty", ""));
    }

    #[test]
    fn headers_without_name_or_colon_are_refused() {
        assert!(parse_header("Authorization").is_err());
        assert!(parse_header(": value").is_err());
    }
}
