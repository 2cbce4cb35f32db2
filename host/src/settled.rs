//! [`Settled`]: a value set once, which any number of threads may wait for
//! (a worker's exit status, a [`Process`](crate::Process)'s outcome).

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

/// A value set once, which any number of threads may wait for.
pub(crate) struct Settled<T> {
    value: OnceLock<T>,
    /// Dropped when the value is set: every waiter then sees the channel
    /// disconnected.
    set_tx: Mutex<Option<Sender<()>>>,
    set_rx: Receiver<()>,
}

impl<T> Settled<T> {
    pub(crate) fn new() -> Self {
        let (set_tx, set_rx) = bounded(0);
        Settled {
            value: OnceLock::new(),
            set_tx: Mutex::new(Some(set_tx)),
            set_rx,
        }
    }

    /// Sets the value, unless it was set already, and wakes the waiters.
    pub(crate) fn set(&self, value: T) {
        if self.value.set(value).is_ok() {
            self.set_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }

    /// The value, if it was set.
    pub(crate) fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Waits until the value is set, or until `deadline` (`None`: for as
    /// long as it takes); the value, if it was set.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<&T> {
        if self.value.get().is_none() {
            // Nothing is ever sent: the channel disconnects when it is set.
            let _ = match deadline {
                None => self.set_rx.recv().is_ok(),
                Some(deadline) => self.set_rx.recv_deadline(deadline).is_ok(),
            };
        }
        self.value.get()
    }
}
