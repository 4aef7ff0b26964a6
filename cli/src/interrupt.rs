//! Ctrl-C: the first one cancels the run through its `CancelToken`, a second one
//! exits at once.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use fanout::CancelToken;

use crate::lock::lock;

/// Ctrl-C as seen by one run: it cancels [`Interrupt::token`], and ends
/// [`Interrupt::wait`].
#[derive(Debug)]
pub struct Interrupt {
    /// Cancelled by Ctrl-C; the run passes it to the library.
    pub token: CancelToken,
    /// Disconnects on Ctrl-C: nothing is ever sent.
    fired: Receiver<()>,
    /// Keeps `fired` connected when no handler could be installed.
    _never: Option<Sender<()>>,
}

impl Interrupt {
    /// Installs the process's Ctrl-C handler, which cancels `token`. A process runs
    /// one command, so this is called once.
    pub fn install(token: CancelToken) -> Interrupt {
        let (sender, fired) = crossbeam_channel::bounded::<()>(0);
        let sender: Mutex<Option<Sender<()>>> = Mutex::new(Some(sender));
        let handler_token = token.clone();
        let pressed = AtomicBool::new(false);
        let installed = ctrlc::set_handler(move || {
            if pressed.swap(true, Ordering::SeqCst) {
                // The user asked twice: do not wait for a clean stop.
                std::process::exit(130);
            }
            // Mark the interrupt before cancelling: the run, woken by the cancel,
            // asks `fired()` to tell Ctrl-C from any other cancellation.
            lock(&sender).take();
            handler_token.cancel();
        });
        match installed {
            Ok(()) => Interrupt {
                token,
                fired,
                _never: None,
            },
            Err(err) => {
                // The run still works; only Ctrl-C falls back to the default.
                let _ = writeln!(io::stderr(), "warning: cannot handle Ctrl-C: {err}");
                // The refused handler took the first sender with it.
                let (never, fired) = crossbeam_channel::bounded(0);
                Interrupt {
                    token,
                    fired,
                    _never: Some(never),
                }
            }
        }
    }

    /// True once Ctrl-C was pressed (not merely the token's deadline passed).
    pub fn fired(&self) -> bool {
        matches!(
            self.fired.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }
}
