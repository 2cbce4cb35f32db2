//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` and `Event`: the host's
//! objects (`wasmpool::Lock`, ...) with Python's methods. A task handed one
//! uses it as its own (`wasmpool_guest.objects`).

use std::time::Duration;

use pyo3::exceptions::{PyAssertionError, PyValueError};
use pyo3::prelude::*;

use crate::wait::waiting;

/// Acquires through `acquire_timeout(slice)` / `try_acquire()`, keeping
/// what is taken (released by `release`).
macro_rules! acquire_methods {
    ($type:ident, $released_too_often:ident, $too_often:literal) => {
        #[pymethods]
        impl $type {
            /// Acquires it, waiting as `block` and `timeout` (seconds) say;
            /// whether it was taken.
            #[pyo3(signature = (block=true, timeout=None))]
            fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
                // Python's "wait for ever" is a timeout of -1.
                let timeout = timeout.filter(|&seconds| seconds != -1.0);
                let inner = &self.inner;
                let taken = waiting(py, block, timeout, |slice: Option<Duration>| {
                    let guard = match slice {
                        Some(slice) => inner.acquire_timeout(slice),
                        None => inner.try_acquire(),
                    };
                    guard.map(|guard| guard.keep())
                })?;
                Ok(taken.is_some())
            }

            /// Releases it.
            fn release(&self) -> PyResult<()> {
                // CPython's type and message for a release too many.
                self.inner
                    .release()
                    .map_err(|_| $released_too_often::new_err($too_often))
            }

            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.acquire(py, true, None)
            }

            #[pyo3(signature = (*_exc))]
            fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
                self.release()
            }
        }
    };
}

/// A lock shared by the program's threads and its tasks: `multiprocessing.Lock`.
/// If a task ends or its worker dies holding it, it is released.
#[pyclass(module = "wasmpool._native", name = "Lock", frozen, subclass)]
pub(crate) struct Lock {
    pub(crate) inner: wasmpool::Lock,
}

#[pymethods]
impl Lock {
    #[new]
    fn new() -> Self {
        Lock {
            inner: wasmpool::Lock::new(),
        }
    }
}

acquire_methods!(
    Lock,
    PyValueError,
    "semaphore or lock released too many times"
);

/// A reentrant lock: `multiprocessing.RLock`. Only its holder releases it.
#[pyclass(module = "wasmpool._native", name = "RLock", frozen, subclass)]
pub(crate) struct RLock {
    pub(crate) inner: wasmpool::RLock,
}

#[pymethods]
impl RLock {
    #[new]
    fn new() -> Self {
        RLock {
            inner: wasmpool::RLock::new(),
        }
    }
}

acquire_methods!(
    RLock,
    PyAssertionError,
    "attempt to release recursive lock not owned by thread"
);

/// A counting semaphore: `multiprocessing.Semaphore`.
#[pyclass(module = "wasmpool._native", name = "Semaphore", frozen, subclass)]
pub(crate) struct Semaphore {
    pub(crate) inner: wasmpool::Semaphore,
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(signature = (value=1))]
    fn new(value: usize) -> Self {
        Semaphore {
            inner: wasmpool::Semaphore::new(value),
        }
    }

    /// The permits free now.
    fn get_value(&self) -> usize {
        self.inner.value()
    }
}

acquire_methods!(
    Semaphore,
    PyValueError,
    "semaphore or lock released too many times"
);

/// A semaphore never released past its initial value:
/// `multiprocessing.BoundedSemaphore`.
#[pyclass(
    module = "wasmpool._native",
    name = "BoundedSemaphore",
    frozen,
    subclass
)]
pub(crate) struct BoundedSemaphore {
    pub(crate) inner: wasmpool::BoundedSemaphore,
}

#[pymethods]
impl BoundedSemaphore {
    #[new]
    #[pyo3(signature = (value=1))]
    fn new(value: usize) -> Self {
        BoundedSemaphore {
            inner: wasmpool::BoundedSemaphore::new(value),
        }
    }

    /// The permits free now.
    fn get_value(&self) -> usize {
        self.inner.value()
    }
}

acquire_methods!(
    BoundedSemaphore,
    PyValueError,
    "semaphore or lock released too many times"
);

/// A flag tasks and threads wait on: `multiprocessing.Event`.
#[pyclass(module = "wasmpool._native", name = "Event", frozen, subclass)]
pub(crate) struct Event {
    pub(crate) inner: wasmpool::Event,
}

#[pymethods]
impl Event {
    #[new]
    fn new() -> Self {
        Event {
            inner: wasmpool::Event::new(),
        }
    }

    /// Sets the flag: every waiter wakes.
    fn set(&self) {
        self.inner.set();
    }

    /// Clears the flag.
    fn clear(&self) {
        self.inner.clear();
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    /// Waits until the flag is set, at most `timeout` seconds; whether it is.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let inner = &self.inner;
        let set = waiting(py, true, timeout, |slice: Option<Duration>| {
            let set = match slice {
                Some(slice) => inner.wait_timeout(slice),
                None => inner.is_set(),
            };
            set.then_some(())
        })?;
        Ok(set.is_some())
    }
}
