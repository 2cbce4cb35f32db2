//! The pool's own threads (output, callbacks) calling into Python, only
//! until the interpreter begins to exit.
//!
//! CPython ends a thread that waits for the interpreter lock once it is
//! finalizing with `pthread_exit`, whose unwinding cannot cross a Rust frame:
//! the process aborts. So the Python layer calls [`shutdown`] at exit, while
//! every thread still runs: no new call goes in, and it waits for those
//! inside to leave. After it, output goes straight to the process's own
//! streams, and callbacks are not called (as CPython's pool calls none once
//! its program exits).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Whether calls are shut out, and how many are inside.
static GATE: Mutex<(bool, usize)> = Mutex::new((false, 0));
static LEFT: Condvar = Condvar::new();

/// The longest [`shutdown`] waits for a call inside (a callback that never
/// returns must not hold up the exit for ever).
const MOST_WAIT: Duration = Duration::from_secs(5);

/// Runs `call` with the interpreter, unless it is exiting (then `None`).
pub(crate) fn with_python<R>(call: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    {
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        if gate.0 {
            return None;
        }
        gate.1 += 1;
    }
    let result = Python::attach(call);
    let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
    gate.1 -= 1;
    LEFT.notify_all();
    Some(result)
}

/// The interpreter is exiting: no call from the pool's threads goes in any
/// more, and those inside are waited for (at most [`MOST_WAIT`]).
#[pyfunction]
pub(crate) fn shutdown(py: Python<'_>) {
    py.detach(|| {
        let end = Instant::now() + MOST_WAIT;
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        gate.0 = true;
        while gate.1 > 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            gate = LEFT
                .wait_timeout(gate, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    });
}
