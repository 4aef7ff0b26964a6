//! The line for the token bucket: first come, first served.
//!
//! Without a line, every waiting worker wakes for the next token and one wins at
//! random, so an ID claimed early can go unsent until the end of the call. In the
//! line only the worker at its head waits on the bucket; the others wait their turn,
//! and any of them can still leave at once when its call stops.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::cancel::{Signals, Stop};
use crate::lock::lock;

/// Who may wait on the bucket now, and who is next.
#[derive(Debug, Default)]
pub(crate) struct Line {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// True while some worker holds the head of the line.
    taken: bool,
    /// Waiters in the order they came; each is told its turn by one message.
    waiting: VecDeque<(u64, Sender<()>)>,
    /// Names waiters, so one that leaves can find itself.
    next_name: u64,
}

/// The head of the line; dropping it hands the head to the next waiter.
#[derive(Debug)]
pub(crate) struct Turn<'a>(&'a Line);

impl Line {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a flag and a queue, each left whole by every operation, so a
        // panic elsewhere while holding the lock leaves nothing to repair.
        lock(&self.state)
    }

    /// Waits until this worker is at the head of the line, or its call stops.
    pub(crate) fn join(&self, signals: &Signals) -> Result<Turn<'_>, Stop> {
        let (name, told) = {
            let mut state = self.state();
            if !state.taken {
                state.taken = true;
                return Ok(Turn(self));
            }
            let name = state.next_name;
            state.next_name += 1;
            let (tell, told) = crossbeam_channel::bounded(1);
            state.waiting.push_back((name, tell));
            (name, told)
        };
        match wait_for_turn(&told, signals) {
            Ok(()) => Ok(Turn(self)),
            Err(stop) => {
                let mut state = self.state();
                if let Some(at) = state.waiting.iter().position(|(n, _)| *n == name) {
                    state.waiting.remove(at);
                    return Err(stop);
                }
                drop(state);
                // The turn was handed over while the call stopped: pass it on.
                drop(Turn(self));
                Err(stop)
            }
        }
    }

    /// How many wait behind the head; for tests.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    /// How many are in line, the head included; for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let state = self.state();
        usize::from(state.taken) + state.waiting.len()
    }
}

fn wait_for_turn(told: &Receiver<()>, signals: &Signals) -> Result<(), Stop> {
    signals.check()?;
    let deadline = signals.caller.deadline_receiver();
    crossbeam_channel::select! {
        recv(told) -> _ => Ok(()),
        recv(signals.caller.receiver()) -> _ => signals.check(),
        recv(signals.abort.receiver()) -> _ => Err(Stop::Cancelled),
        recv(deadline) -> _ => Err(Stop::DeadlineExceeded),
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        // The next waiter's receiver lives until it has left the line, and it leaves
        // only under this lock, so the message always finds it.
        match state.waiting.pop_front() {
            Some((_, tell)) => {
                let _ = tell.send(());
            }
            None => state.taken = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::CancelToken;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn until(what: &str, done: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < give_up, "timed out waiting until {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn turns_go_in_the_order_waiters_came() {
        let line = Arc::new(Line::default());
        let head = line.join(&Signals::new(CancelToken::new())).unwrap();
        let (order_tx, order) = crossbeam_channel::unbounded();
        let mut waiters = Vec::new();
        for i in 0..6 {
            let (waiter_line, order_tx) = (line.clone(), order_tx.clone());
            waiters.push(std::thread::spawn(move || {
                let turn = waiter_line.join(&Signals::new(CancelToken::new())).unwrap();
                order_tx.send(i).unwrap();
                drop(turn);
            }));
            until("the waiter is in line", || line.waiting() == i + 1);
        }
        drop(head);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        let order: Vec<usize> = order.try_iter().collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_waiter_whose_call_stops_leaves_the_line() {
        let line = Arc::new(Line::default());
        let head = line.join(&Signals::new(CancelToken::new())).unwrap();

        let stopped = Signals::new(CancelToken::new());
        let leaver = {
            let (line, signals) = (line.clone(), stopped.clone());
            std::thread::spawn(move || line.join(&signals).map(drop))
        };
        until("the leaver is in line", || line.waiting() == 1);
        let stayer = {
            let line = line.clone();
            std::thread::spawn(move || line.join(&Signals::new(CancelToken::new())).map(drop))
        };
        until("the stayer is in line", || line.waiting() == 2);

        stopped.caller.cancel();
        assert_eq!(leaver.join().unwrap(), Err(Stop::Cancelled));
        assert_eq!(line.waiting(), 1, "the leaver is still in line");
        drop(head);
        assert_eq!(stayer.join().unwrap(), Ok(()));
        // Nobody holds the head now: the next comer takes it at once.
        assert!(line.join(&Signals::new(CancelToken::new())).is_ok());
    }

    #[test]
    fn a_waiter_leaves_at_its_deadline() {
        let line = Line::default();
        let _head = line.join(&Signals::new(CancelToken::new())).unwrap();
        let signals = Signals::new(CancelToken::with_timeout(Duration::from_millis(10)));
        assert_eq!(line.join(&signals).map(drop), Err(Stop::DeadlineExceeded));
        assert_eq!(line.waiting(), 0);
    }
}
