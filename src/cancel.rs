//! Cancellation: a token the caller can cancel from any thread, with an optional
//! deadline, and the one wait primitive that every blocking wait in the library uses.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{ErrorKind, FetchError};
use crate::lock::lock;

/// Nothing is ever sent on a cancel channel: it only disconnects.
pub(crate) enum Never {}

/// A cancellation signal with an optional deadline, shared by cloning.
///
/// This is the synchronous counterpart of Go's `context.Context`: pass it to
/// [`FanOutClient::fetch_all_with`](crate::FanOutClient::fetch_all_with) and call
/// [`cancel`](CancelToken::cancel) from any thread, or give it a deadline. Every wait
/// inside the call (for a rate-limit token, for a retry backoff, for results) wakes at
/// once when the token is cancelled or its deadline passes.
///
/// Clones share one state: cancelling any clone cancels them all. Cancelling twice is
/// harmless.
///
/// ```
/// use std::time::Duration;
/// use fanout::CancelToken;
///
/// let token = CancelToken::with_timeout(Duration::from_secs(30));
/// let for_other_thread = token.clone();
/// std::thread::spawn(move || for_other_thread.cancel()).join().unwrap();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set before `sender` is dropped, so a waiter woken by the disconnection
    /// always sees the flag.
    cancelled: AtomicBool,
    /// Dropped on cancel: disconnection wakes every `select!` on `receiver`.
    sender: Mutex<Option<Sender<Never>>>,
    receiver: Receiver<Never>,
    deadline: Option<Instant>,
}

impl CancelToken {
    /// A token with no deadline that ends only when [`cancel`](Self::cancel) is called.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A token whose deadline is `timeout` from now.
    ///
    /// A timeout too large to represent means no deadline.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self::build(Instant::now().checked_add(timeout))
    }

    /// A token whose deadline is `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        Self::build(Some(deadline))
    }

    fn build(deadline: Option<Instant>) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        CancelToken {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                sender: Mutex::new(Some(sender)),
                receiver,
                deadline,
            }),
        }
    }

    /// Cancels the token and every clone of it, waking every wait on it.
    ///
    /// Never blocks for long (it takes a lock held only by other `cancel` calls) and
    /// may be called from any thread, any number of times.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        // A poisoned lock only means another canceller panicked; dropping the
        // sender is still the right thing to do.
        let sender = lock(&self.inner.sender).take();
        drop(sender);
    }

    /// True once [`cancel`](Self::cancel) was called on this token or a clone, or
    /// its deadline has passed.
    pub fn is_cancelled(&self) -> bool {
        self.check().is_err()
    }

    /// The deadline, if the token has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The time left before the deadline: `None` without a deadline, zero once it
    /// has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Disconnects when the token is cancelled; for use in `select!`.
    pub(crate) fn receiver(&self) -> &Receiver<Never> {
        &self.inner.receiver
    }

    /// Fires at the deadline, for use in `select!`; never fires without one.
    pub(crate) fn deadline_receiver(&self) -> Receiver<Instant> {
        match self.inner.deadline {
            Some(at) => crossbeam_channel::at(at),
            None => crossbeam_channel::never(),
        }
    }

    /// `Err` with the reason once the token has ended.
    pub(crate) fn check(&self) -> Result<(), Stop> {
        if self.inner.cancelled.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled);
        }
        match self.inner.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(Stop::DeadlineExceeded),
            _ => Ok(()),
        }
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.inner.cancelled.load(Ordering::Relaxed))
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

/// Why a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The caller cancelled, or the call was abandoned after its first failure.
    Cancelled,
    DeadlineExceeded,
}

impl Stop {
    pub(crate) fn into_error(self) -> FetchError {
        FetchError::new(match self {
            Stop::Cancelled => ErrorKind::Cancelled,
            Stop::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        })
    }
}

/// What an ID's error means for its call: the one rule that `fetch_all` and
/// `fetch_iter` share.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Stopped by the call's cancel or abort: the caller knows already (it cancelled),
    /// or another ID's failure is the call's answer. Nothing to report for this ID.
    Stopped,
    /// The caller's deadline passed: it ends the whole call, as a cancel does. The
    /// error has no user ID: the ID whose worker found out first did not fail.
    Call(FetchError),
    /// The ID failed for good.
    Id(FetchError),
}

impl Failure {
    pub(crate) fn of(error: FetchError) -> Self {
        match error.kind() {
            ErrorKind::Cancelled => Failure::Stopped,
            ErrorKind::DeadlineExceeded => {
                Failure::Call(Stop::DeadlineExceeded.into_error().with_source(error))
            }
            _ => Failure::Id(error),
        }
    }
}

/// The two signals that end one call: the caller's token, and the call's own abort
/// token, cancelled on its first failure or when the caller stops reading results.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    pub(crate) caller: CancelToken,
    pub(crate) abort: CancelToken,
}

impl Signals {
    pub(crate) fn new(caller: CancelToken) -> Self {
        Signals {
            caller,
            abort: CancelToken::new(),
        }
    }

    /// `Err` once the call should stop.
    pub(crate) fn check(&self) -> Result<(), Stop> {
        if self.abort.inner.cancelled.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled);
        }
        self.caller.check()
    }

    /// The deadline an attempt must respect, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.caller.inner.deadline
    }

    /// Waits for `duration` unless the call stops first.
    ///
    /// A wait that would end past the caller's deadline fails at once with
    /// [`Stop::DeadlineExceeded`], as Go's `rate.Limiter.Wait` does: sleeping until
    /// the deadline only to fail then helps nobody.
    pub(crate) fn wait(&self, duration: Duration) -> Result<(), Stop> {
        self.check()?;
        if let Some(deadline) = self.deadline() {
            let now = Instant::now();
            if now.checked_add(duration).is_none_or(|end| end > deadline) {
                return Err(Stop::DeadlineExceeded);
            }
        }
        crossbeam_channel::select! {
            recv(self.caller.inner.receiver) -> _ => self.check(),
            recv(self.abort.inner.receiver) -> _ => Err(Stop::Cancelled),
            default(duration) => self.check(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn cancel_wakes_a_long_wait() {
        let signals = Signals::new(CancelToken::new());
        let caller = signals.caller.clone();
        let started = Instant::now();
        let waiter = thread::spawn(move || signals.wait(Duration::from_secs(60)));
        caller.cancel();
        assert_eq!(waiter.join().unwrap(), Err(Stop::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn abort_wakes_a_long_wait() {
        let signals = Signals::new(CancelToken::new());
        let abort = signals.abort.clone();
        let waiter = thread::spawn(move || signals.wait(Duration::from_secs(60)));
        abort.cancel();
        assert_eq!(waiter.join().unwrap(), Err(Stop::Cancelled));
    }

    #[test]
    fn wait_past_deadline_fails_at_once() {
        let signals = Signals::new(CancelToken::with_timeout(Duration::from_secs(60)));
        assert_eq!(
            signals.wait(Duration::from_secs(3600)),
            Err(Stop::DeadlineExceeded)
        );
    }

    #[test]
    fn short_wait_completes() {
        let signals = Signals::new(CancelToken::new());
        assert_eq!(signals.wait(Duration::from_millis(1)), Ok(()));
    }

    #[test]
    fn expired_deadline_reads_as_cancelled() {
        let token = CancelToken::with_deadline(Instant::now());
        assert!(token.is_cancelled());
        assert_eq!(token.check(), Err(Stop::DeadlineExceeded));
        assert_eq!(token.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn an_id_past_the_deadline_ends_the_call_without_its_id() {
        let late = Stop::DeadlineExceeded.into_error().with_user_id(7);
        let Failure::Call(error) = Failure::of(late) else {
            panic!("a deadline ends the call");
        };
        assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
        assert_eq!(error.user_id(), None);
        let stopped = Stop::Cancelled.into_error().with_user_id(7);
        assert!(matches!(Failure::of(stopped), Failure::Stopped));
        let failed = FetchError::new(ErrorKind::Status).with_user_id(7);
        assert!(matches!(Failure::of(failed), Failure::Id(e) if e.user_id() == Some(7)));
    }

    #[test]
    fn cancel_is_idempotent_and_shared_by_clones() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!token.is_cancelled());
        clone.cancel();
        clone.cancel();
        assert!(token.is_cancelled());
        assert_eq!(token.check(), Err(Stop::Cancelled));
    }
}
