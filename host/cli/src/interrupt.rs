//! SIGINT and SIGTERM. The first stops the run: no more input is read, the
//! pool is terminated, and the records of the tasks that finished are still
//! written. A second exits at once.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wasmpool::Pool;

use crate::records::Gate;

/// The signals that stop a run.
pub(crate) const SIGNALS: [libc::c_int; 2] = [SIGINT, SIGTERM];

/// How long an exit at once waits for a record being written.
const WRITE_PATIENCE: Duration = Duration::from_secs(1);

/// The exit status after `signal`: 128 + its number, as a shell reports a
/// process the signal ended.
pub(crate) fn exit_status(signal: libc::c_int) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// Which signal stopped the run, if one did.
#[derive(Debug, Default)]
pub(crate) struct Interrupt(AtomicI32);

impl Interrupt {
    /// The signal that stopped the run.
    pub(crate) fn signal(&self) -> Option<libc::c_int> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }
}

/// What a signal acts on.
pub(crate) struct Watch<'a> {
    /// Where the first signal is recorded.
    pub(crate) interrupt: &'a Interrupt,
    /// Terminated on the first signal.
    pub(crate) pool: &'a Pool,
    /// Closed on the second, before exiting.
    pub(crate) gate: &'a Gate,
    /// Kept out of the way of the messages.
    pub(crate) bar: &'a ProgressBar,
}

impl Watch<'_> {
    /// Handles the signals `signals` receives until its handle is closed.
    ///
    /// The first is recorded before the pool is terminated, so whoever sees
    /// a task terminated (or refused as the pool closed) also sees that the
    /// run was interrupted: nothing else terminates or closes the pool.
    pub(crate) fn run(self, mut signals: Signals) {
        for signal in signals.forever() {
            if self.interrupt.0.swap(signal, Ordering::SeqCst) == 0 {
                self.pool.terminate();
                self.bar.suspend(|| {
                    eprintln!(
                        "wasmpool: interrupted: writing the records of the tasks that \
                         finished (interrupt again to exit at once)"
                    );
                });
            } else {
                self.gate.close(WRITE_PATIENCE);
                self.bar.suspend(|| {
                    eprintln!("wasmpool: interrupted again: exiting at once");
                });
                std::process::exit(i32::from(exit_status(signal)));
            }
        }
    }
}
