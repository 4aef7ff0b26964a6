//! The logger: env_logger on stderr, kept from tearing through the progress bar.

use std::sync::Mutex;

use indicatif::ProgressBar;
use log::{Log, Metadata, Record};

use crate::lock::lock;

/// The progress bar on screen, if any; a log line hides it while it prints.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Installs the logger. The filter is `RUST_LOG` when set; otherwise warnings only,
/// plus the library's debug logs (one per attempt) with `verbose`.
pub fn init(verbose: bool) {
    let default_filter = if verbose { "warn,fanout=debug" } else { "warn" };
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .build();
    let max_level = logger.filter();
    if log::set_boxed_logger(Box::new(BarAwareLogger { inner: logger })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Shows `bar` until [`detach_bar`]; log lines are printed above it meanwhile.
pub fn attach_bar(bar: &ProgressBar) {
    *lock(&ACTIVE_BAR) = Some(bar.clone());
}

/// Forgets the bar given to [`attach_bar`].
pub fn detach_bar() {
    *lock(&ACTIVE_BAR) = None;
}

struct BarAwareLogger {
    inner: env_logger::Logger,
}

impl Log for BarAwareLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        // Clone out of the lock: the bar's own lock must not nest inside ours.
        let bar = lock(&ACTIVE_BAR).clone();
        match bar {
            Some(bar) => bar.suspend(|| self.inner.log(record)),
            None => self.inner.log(record),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}
