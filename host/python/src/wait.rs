//! Blocking calls as a good citizen of a Python process: the interpreter is
//! released while they wait, and a signal's exception (Ctrl-C's
//! `KeyboardInterrupt`) is raised within [`SIGNAL_CHECK`].

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// How often a wait looks for a signal to raise.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// When a wait of `timeout` seconds ends (`None`: never). A negative
/// timeout waits not at all.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    timeout
        .map(|seconds| {
            let wait = Duration::try_from_secs_f64(seconds.max(0.0))
                .map_err(|_| PyValueError::new_err(format!("timeout={seconds}: not a duration")))?;
            Ok(Instant::now() + wait)
        })
        .transpose()
}

/// The next slice of a wait until `deadline`.
pub(crate) fn slice_until(deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(deadline) => deadline
            .saturating_duration_since(Instant::now())
            .min(SIGNAL_CHECK),
        None => SIGNAL_CHECK,
    }
}

/// Waits as Python's `(block, timeout)` ask: `attempt(None)` tries once
/// without waiting; `attempt(Some(slice))` waits at most `slice`, with the
/// interpreter released. `Ok(None)` if nothing came in time.
pub(crate) fn waiting<R: Send>(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    mut attempt: impl FnMut(Option<Duration>) -> Option<R> + Send,
) -> PyResult<Option<R>> {
    if !block {
        return Ok(attempt(None));
    }
    let deadline = deadline(timeout)?;
    loop {
        let slice = slice_until(deadline);
        if let Some(done) = py.detach(|| attempt(Some(slice))) {
            return Ok(Some(done));
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
    }
}
