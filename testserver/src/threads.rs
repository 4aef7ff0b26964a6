//! This process's threads by name, so that thread counts can leave the servers' out.

use std::thread;
use std::time::{Duration, Instant};

use crate::server::SERVER_THREAD;

/// The names of this process's threads, from /proc/self/task.
///
/// # Panics
/// Where there is no /proc (the tests run on Linux).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// The number of threads in this process that are not test server threads.
pub fn thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| !name.starts_with(SERVER_THREAD))
        .count()
}

/// The number of threads started by the library (its workers are named `fanout-...`,
/// and a thread started by one of them inherits its name).
pub fn library_thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("fanout"))
        .count()
}

/// True once no library thread is listed, within 5 s. A joined thread can stay listed
/// in /proc for a moment after `join` returns: the kernel wakes the joiner as the
/// thread exits, before it removes the thread from the process.
pub fn library_threads_gone() -> bool {
    eventually(Duration::from_secs(5), || library_thread_count() == 0)
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
