//! `wasmpool._native.Process`: one call run in a sandboxed worker process of
//! its own (a [`wasmpool::Process`]), as `wasmpool.Process` drives it.
//! Processes of one component start from one [`Context`], compiled once.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rmpv::Value;
use wasmpool::Context;

use crate::errors::{exception, exception_value};
use crate::pool::{Task, arguments, base_builder, keywords};
use crate::values::to_python;
use crate::wait::waiting;

/// The context of each component processes (and pools of plain settings)
/// start from, by its path and its file's size and time of change: a module
/// file written anew is compiled anew.
static CONTEXTS: Mutex<Option<HashMap<ContextKey, Context>>> = Mutex::new(None);

type ContextKey = (PathBuf, u64, Option<SystemTime>);

/// The context of the component at `module`, made on first use. The map is
/// locked only with the GIL released: a thread holding it never waits for
/// the GIL, which a thread waiting for it holds.
pub(crate) fn context(
    py: Python<'_>,
    module: PathBuf,
    cache_dir: PathBuf,
    label: String,
) -> PyResult<Context> {
    let contexts = || CONTEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    let key = fs::metadata(&module)
        .ok()
        .map(|meta| (module.clone(), meta.len(), meta.modified().ok()));
    if let Some(key) = &key
        && let Some(context) = py.detach(|| contexts().as_ref()?.get(key).cloned())
    {
        return Ok(context);
    }
    let builder = base_builder(&module, &cache_dir, label)?;
    let context = py
        .detach(|| builder.context())
        .map_err(|err| exception(py, &err))?;
    if let Some(key) = key {
        let kept = context.clone();
        py.detach(|| contexts().get_or_insert_default().insert(key, kept));
    }
    Ok(context)
}

/// Compiles the component at `module` (or loads it from `cache_dir`) and
/// keeps it ready for processes, so that the first `Process.start` of a
/// program takes no longer than the next.
#[pyfunction]
pub(crate) fn prepare(
    py: Python<'_>,
    module: PathBuf,
    cache_dir: PathBuf,
    label: String,
) -> PyResult<()> {
    context(py, module, cache_dir, label).map(drop)
}

/// A started process.
#[pyclass(module = "wasmpool._native", name = "Process", frozen)]
pub(crate) struct NativeProcess {
    process: wasmpool::Process,
}

#[pymethods]
impl NativeProcess {
    /// Starts `task` of the component at `module` (compiled under
    /// `cache_dir`, built from `label`) with `args` and `kwds`, in a worker
    /// process of its own; returns once it runs.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        module: PathBuf,
        cache_dir: PathBuf,
        task: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwds: &Bound<'_, PyDict>,
        name: &str,
        daemon: bool,
        label: String,
    ) -> PyResult<Self> {
        let task = Task::from_python(task)?;
        let tuples = task.keeps_tuples();
        let args = arguments(task.name(), args, tuples)?;
        let kwargs = keywords(task.name(), kwds, tuples)?;
        let (args, kwargs) = task.call(args, kwargs);
        let context = context(py, module, cache_dir, label)?;
        let started = py.detach(|| {
            context
                .process(task.target())
                .args(args)
                .kwargs(kwargs)
                .name(name)
                .daemon(daemon)
                .start()
        });
        let process = started.map_err(|err| exception(py, &err))?;
        Ok(NativeProcess { process })
    }

    /// The worker process's pid.
    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it still runs.
    fn is_alive(&self) -> bool {
        self.process.is_alive()
    }

    /// Waits until it ends, at most `timeout` seconds; whether it has.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let process = &self.process;
        let ended = waiting(py, true, timeout, |slice: Option<Duration>| {
            process
                .join_timeout(slice.unwrap_or(Duration::ZERO))
                .then_some(())
        })?;
        Ok(ended.is_some())
    }

    /// Stops it with SIGTERM.
    fn terminate(&self) {
        self.process.terminate();
    }

    /// Stops it with SIGKILL.
    fn kill(&self) {
        self.process.kill();
    }

    /// Its exit code as CPython's: `None` while it runs, `-N` for signal N,
    /// 0 if its call returned, 1 if it raised.
    fn exitcode(&self) -> Option<i32> {
        self.process.exitcode()
    }

    /// Its call's outcome once it has one: `(True, result)`, or `(False,
    /// exception)` (not raised).
    fn outcome(&self, py: Python<'_>) -> PyResult<Option<(bool, Py<PyAny>)>> {
        Ok(match self.process.result::<Value>() {
            None => None,
            Some(Ok(value)) => Some((true, to_python(py, &value)?)),
            Some(Err(err)) => Some((false, exception_value(py, &err)?.unbind())),
        })
    }
}
