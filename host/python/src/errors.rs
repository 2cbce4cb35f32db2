//! A wasmpool [`Error`] as the Python exception a programmer expects: built
//! by `wasmpool._errors.from_native`, which holds the mapping (a guest's
//! `ZeroDivisionError` raises `ZeroDivisionError`, a time limit
//! `wasmpool.TaskTimeout`, ...).

use pyo3::prelude::*;
use wasmpool::Error;

/// The Python exception of `err`.
pub(crate) fn exception(py: Python<'_>, err: &Error) -> PyErr {
    match exception_value(py, err) {
        Ok(value) => PyErr::from_value(value),
        Err(failed) => failed,
    }
}

/// The exception object of `err` (for an error callback).
pub(crate) fn exception_value<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyAny>> {
    py.import("wasmpool._errors")?
        .getattr("from_native")?
        .call1((err.kind().as_str(), err.message(), err.task_index()))
}
