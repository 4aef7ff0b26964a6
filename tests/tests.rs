//! The integration tests that neither time the client's pacing nor count its threads,
//! in one binary: one link instead of one per file, and no helper compiled into a
//! binary that does not use it.
//!
//! Their wall-clock checks only tell "at once" (a few seconds) from "waited out a
//! timeout" (tens of seconds), or are lower bounds, so a test of another file running
//! beside them cannot fail them. The tests that measure pacing, wake-up latency or the
//! process's threads have a binary each (see `[[test]]` in `Cargo.toml`): there, only
//! their own file's tests run beside them.
//!
//! Run one file's tests with `cargo test --test integration faults::`.

mod abort;
mod compression;
mod concurrency;
mod config;
mod failfast;
mod faults;
mod keys;
mod limiter;
mod proxy;
#[cfg(feature = "redis")]
mod redis;
mod retry;
mod tls;
