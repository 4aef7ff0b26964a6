//! `fanout`: fetch many IDs from one HTTP API within its rate limit and concurrency
//! cap, or watch the library keep a strict local API's limits (`fanout demo`).
//!
//! This file parses the command line, dispatches, and turns each command's outcome
//! into the process exit code. Only the binary prints; the library never does.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod demo;
mod demo_server;
mod failures;
mod fetch;
mod ids;
mod interrupt;
mod key;
mod lock;
mod logging;
mod output;
mod progress;
mod resume;
mod sampler;
mod shard;
mod timeline;
mod tls;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use fanout::BuildError;

use crate::args::{Cli, Command};

/// How a command ended, when its arguments were usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Success,
    /// The run failed; the command has already said why.
    Failure,
    /// Ctrl-C stopped the run.
    Interrupted,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failure => ExitCode::from(1),
            // 128 + SIGINT, as shells report a process ended by Ctrl-C.
            Outcome::Interrupted => ExitCode::from(130),
        }
    }
}

/// Arguments that parse but cannot be used: a bad ID file, a refused configuration, a
/// client whose threads the system would not start. Exits 2, like clap's own usage
/// errors, with nothing on stdout.
#[derive(Debug)]
pub struct UsageError(pub String);

impl UsageError {
    /// A usage error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError(message.into())
    }

    /// Why the library built no client. For a refused configuration, `at_fault` (such
    /// as the file it read) goes before the reason.
    pub fn build(error: &BuildError, at_fault: Option<String>) -> Self {
        if let BuildError::Config(config) = error {
            let at_fault = at_fault.map(|what| format!("{what}: "));
            return UsageError(format!(
                "invalid configuration: {}{config}",
                at_fault.unwrap_or_default()
            ));
        }
        // Such as the system's reason for refusing a thread.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        UsageError(message)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with exit 0; usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    logging::init(cli.verbose);

    let result = match &cli.command {
        Command::Fetch(args) => fetch::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(UsageError(message)) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = writeln!(io::stderr(), "error: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout::ConfigError;

    #[test]
    fn a_refused_configuration_names_what_is_at_fault_first() {
        let error = BuildError::from(ConfigError::ZeroBurst);
        let UsageError(message) = UsageError::build(&error, Some("--rate".into()));
        assert_eq!(
            message,
            "invalid configuration: --rate: burst must be at least 1"
        );
    }

    #[test]
    fn a_refused_thread_says_why_and_is_no_configuration_error() {
        let error = BuildError::Spawn(io::Error::other("no threads left"));
        let UsageError(message) = UsageError::build(&error, None);
        assert_eq!(message, "cannot start worker thread: no threads left");
    }
}
