//! `wasmpool._native.Pool` and `AsyncResult`: a wasmpool [`Pool`] as the
//! Python layer (`python/wasmpool/_pool.py`) drives it. Every wait releases
//! the interpreter, and looks for a signal to raise (Ctrl-C) at least every
//! [`SIGNAL_CHECK`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rmpv::Value;
use wasmpool::{AsyncResult, Callbacks, Error, GetTimeoutError, GuestOutput, Pool, Stream};

use crate::errors::{exception, exception_value};
use crate::values::{to_python, to_value};
use crate::worker;

/// How often a wait looks for a signal to raise.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// A pool of sandboxed workers running one component's tasks.
#[pyclass(module = "wasmpool._native", name = "Pool", frozen)]
pub(crate) struct NativePool {
    pool: Arc<Pool>,
}

/// The limits and settings of a pool, as `wasmpool.Pool` passes them (a
/// dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct Settings {
    processes: Option<usize>,
    initializer: Option<String>,
    initargs: Vec<Py<PyAny>>,
    maxtasksperchild: Option<usize>,
    timeout: Option<f64>,
    memory: Option<u64>,
    fuel: Option<u64>,
    retries: Option<u32>,
}

#[pymethods]
impl NativePool {
    /// Starts the workers of the component at `module`, caching what is
    /// compiled (and the worker program) under `cache_dir`.
    #[new]
    fn new(
        py: Python<'_>,
        module: PathBuf,
        cache_dir: PathBuf,
        settings: Settings,
    ) -> PyResult<Self> {
        let program = worker::program(&cache_dir).map_err(PyValueError::new_err)?;
        let mut builder = Pool::builder()
            .module_file(&module)
            .cache_dir(&cache_dir)
            .worker_program(program)
            .on_output(write_output);
        if let Some(processes) = settings.processes {
            builder = builder.processes(processes);
        }
        if let Some(task) = &settings.initializer {
            let args = settings
                .initargs
                .iter()
                .enumerate()
                .map(|(at, arg)| to_value(arg.bind(py), &format!("initarg {}", at + 1)))
                .collect::<PyResult<Vec<_>>>()?;
            builder = builder.initializer(task, args);
        }
        if let Some(tasks) = settings.maxtasksperchild {
            builder = builder.max_tasks_per_child(tasks);
        }
        if let Some(seconds) = settings.timeout {
            let limit = Duration::try_from_secs_f64(seconds)
                .map_err(|_| PyValueError::new_err(format!("timeout={seconds}: not a duration")))?;
            builder = builder.task_timeout(limit);
        }
        if let Some(bytes) = settings.memory {
            builder = builder.memory_limit(bytes);
        }
        if let Some(fuel) = settings.fuel {
            builder = builder.fuel(fuel);
        }
        if let Some(retries) = settings.retries {
            builder = builder.retries(retries);
        }
        let pool = py
            .detach(|| builder.build())
            .map_err(|err| exception(py, &err))?;
        Ok(NativePool {
            pool: Arc::new(pool),
        })
    }

    /// The names of the component's tasks.
    fn tasks(&self) -> Vec<String> {
        self.pool
            .tasks()
            .iter()
            .map(|task| task.name.clone())
            .collect()
    }

    /// How many worker processes the pool runs.
    fn processes(&self) -> usize {
        self.pool.processes()
    }

    /// The pids of the worker processes alive now.
    fn worker_pids(&self) -> Vec<u32> {
        self.pool.worker_pids()
    }

    /// Submits `task` with positional `args` and keyword `kwds`.
    #[pyo3(signature = (task, args, kwds, callback=None, error_callback=None))]
    fn apply_async(
        &self,
        py: Python<'_>,
        task: &str,
        args: &Bound<'_, PyTuple>,
        kwds: &Bound<'_, PyDict>,
        callback: Option<Py<PyAny>>,
        error_callback: Option<Py<PyAny>>,
    ) -> PyResult<NativeResult> {
        let args = arguments(task, args)?;
        let kwargs = keywords(task, kwds)?;
        let callbacks = callbacks(callback, error_callback);
        // Bound as Python binds a call: parameters left take their defaults.
        let submitted = self.pool.apply_async_kw_with(task, args, kwargs, callbacks);
        let result = submitted.map_err(|err| exception(py, &err))?;
        Ok(NativeResult {
            waiting: Waiting::One(result),
        })
    }

    /// Submits `task` on each item of `items` (one argument each), or with
    /// each item's arguments if `star`, in chunks of `chunksize`.
    #[pyo3(signature = (task, items, chunksize, star, callback=None, error_callback=None))]
    #[allow(clippy::too_many_arguments)]
    fn map_async(
        &self,
        py: Python<'_>,
        task: &str,
        items: &Bound<'_, PyAny>,
        chunksize: Option<usize>,
        star: bool,
        callback: Option<Py<PyAny>>,
        error_callback: Option<Py<PyAny>>,
    ) -> PyResult<NativeResult> {
        let mut values = Vec::new();
        for (at, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let what = format!("item {at} of `{task}`'s input");
            if star {
                let args = item.try_iter().map_err(|_| {
                    PyTypeError::new_err(format!("{what} is not a sequence of arguments"))
                })?;
                let args = args
                    .map(|arg| to_value(&arg?, &what))
                    .collect::<PyResult<Vec<_>>>()?;
                values.push(Value::Array(args));
            } else {
                values.push(to_value(&item, &what)?);
            }
        }
        let callbacks = callbacks(callback, error_callback);
        // Each item's arguments, bound as Python binds a call (parameters
        // left take their defaults).
        let rows: Vec<(Vec<Value>, Value)> = values
            .into_iter()
            .map(|row| match row {
                Value::Array(args) if star => (args, Value::Map(Vec::new())),
                item => (vec![item], Value::Map(Vec::new())),
            })
            .collect();
        let submitted = self
            .pool
            .starmap_async_kw_with(task, rows, chunksize, callbacks);
        let result = submitted.map_err(|err| exception(py, &err))?;
        Ok(NativeResult {
            waiting: Waiting::Many(result),
        })
    }

    /// Takes no more tasks; the workers exit once those submitted are done.
    fn close(&self) {
        self.pool.close();
    }

    /// Stops the workers now; tasks not done fail.
    fn terminate(&self, py: Python<'_>) {
        py.detach(|| self.pool.terminate());
    }

    /// Waits for the workers to exit (after `close` or `terminate`).
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.pool.join())
            .map_err(|err| exception(py, &err))
    }
}

/// A task's (or a map's) result to come.
#[pyclass(module = "wasmpool._native", name = "AsyncResult", frozen)]
pub(crate) struct NativeResult {
    waiting: Waiting,
}

enum Waiting {
    One(AsyncResult<Value>),
    Many(AsyncResult<Vec<Value>>),
}

#[pymethods]
impl NativeResult {
    /// Whether the outcome is in.
    fn ready(&self) -> bool {
        match &self.waiting {
            Waiting::One(result) => result.ready(),
            Waiting::Many(result) => result.ready(),
        }
    }

    /// Whether the task succeeded; `ValueError` if it is not done.
    fn successful(&self) -> PyResult<bool> {
        let known = match &self.waiting {
            Waiting::One(result) => result.successful(),
            Waiting::Many(result) => result.successful(),
        };
        known.map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// Waits for the outcome, at most `timeout` seconds: whether it is in.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(timeout)?;
        loop {
            let slice = slice_until(deadline);
            let ready = py.detach(|| match &self.waiting {
                Waiting::One(result) => result.wait_timeout(slice),
                Waiting::Many(result) => result.wait_timeout(slice),
            });
            if ready {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(false);
            }
        }
    }

    /// The result, waiting at most `timeout` seconds (then
    /// `wasmpool.TimeoutError`); the task's failure raised as its
    /// exception.
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let deadline = deadline(timeout)?;
        loop {
            let slice = slice_until(deadline);
            let got = py.detach(|| match &self.waiting {
                Waiting::One(result) => result.get_timeout(slice).map(Got::One),
                Waiting::Many(result) => result.get_timeout(slice).map(Got::Many),
            });
            match got {
                Ok(Got::One(value)) => return value.to_python_value(py),
                Ok(Got::Many(values)) => return values.to_python_value(py),
                Err(GetTimeoutError::Failed(err)) => return Err(exception(py, &err)),
                Err(GetTimeoutError::Timeout) => {
                    py.check_signals()?;
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        let timed_out = py.import("wasmpool._errors")?.getattr("TimeoutError")?;
                        return Err(PyErr::from_value(
                            timed_out.call1(("the result was not ready in time",))?,
                        ));
                    }
                }
            }
        }
    }
}

enum Got {
    One(Value),
    Many(Vec<Value>),
}

/// When a wait of `timeout` seconds ends.
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    timeout
        .map(|seconds| {
            let wait = Duration::try_from_secs_f64(seconds.max(0.0))
                .map_err(|_| PyValueError::new_err(format!("timeout={seconds}: not a duration")))?;
            Ok(Instant::now() + wait)
        })
        .transpose()
}

/// The next slice of a wait until `deadline`.
fn slice_until(deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(deadline) => deadline
            .saturating_duration_since(Instant::now())
            .min(SIGNAL_CHECK),
        None => SIGNAL_CHECK,
    }
}

/// `task`'s positional arguments as MessagePack.
fn arguments(task: &str, args: &Bound<'_, PyTuple>) -> PyResult<Vec<Value>> {
    args.iter()
        .enumerate()
        .map(|(at, arg)| to_value(&arg, &format!("argument {} of `{task}`", at + 1)))
        .collect()
}

/// `task`'s keyword arguments as a MessagePack map of names.
fn keywords(task: &str, kwds: &Bound<'_, PyDict>) -> PyResult<Value> {
    kwds.iter()
        .map(|(name, value)| {
            let name: String = name.extract().map_err(|_| {
                PyTypeError::new_err(format!("`{task}`: keyword argument names must be str"))
            })?;
            let value = to_value(&value, &format!("keyword argument `{name}` of `{task}`"))?;
            Ok((Value::from(name), value))
        })
        .collect::<PyResult<Vec<_>>>()
        .map(Value::Map)
}

/// The pool's callbacks of Python's: each called with the interpreter, its
/// exception printed to stderr rather than raised into the pool.
fn callbacks<R>(callback: Option<Py<PyAny>>, error_callback: Option<Py<PyAny>>) -> Callbacks<R>
where
    R: IntoPythonValue + Send + 'static,
{
    let mut callbacks = Callbacks::new();
    if let Some(callback) = callback {
        callbacks = callbacks.callback(move |result: &R| {
            Python::attach(|py| {
                let called = result
                    .to_python_value(py)
                    .and_then(|value| callback.call1(py, (value,)));
                if let Err(err) = called {
                    err.print(py);
                }
            });
        });
    }
    if let Some(error_callback) = error_callback {
        callbacks = callbacks.error_callback(move |err: &Error| {
            Python::attach(|py| {
                let called = exception_value(py, err)
                    .and_then(|exception| error_callback.call1(py, (exception,)));
                if let Err(err) = called {
                    err.print(py);
                }
            });
        });
    }
    callbacks
}

/// What a callback is handed: a task's result, or a map's list of them.
trait IntoPythonValue {
    fn to_python_value(&self, py: Python<'_>) -> PyResult<Py<PyAny>>;
}

impl IntoPythonValue for Value {
    fn to_python_value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, self)
    }
}

impl IntoPythonValue for Vec<Value> {
    fn to_python_value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items = self
            .iter()
            .map(|value| to_python(py, value))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(pyo3::types::PyList::new(py, items)?.into_any().unbind())
    }
}

/// Writes what a task wrote to the host's `sys.stdout` or `sys.stderr`, as
/// it comes, partial lines included.
fn write_output(output: &GuestOutput) {
    Python::attach(|py| {
        let name = match output.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let text = String::from_utf8_lossy(&output.bytes);
        let written = py.import("sys").and_then(|sys| {
            let stream = sys.getattr(name)?;
            stream.call_method1("write", (text.as_ref(),))?;
            stream.call_method0("flush").map(drop)
        });
        if written.is_err() {
            // No Python stream to write to (closed): the process's own.
            let _ = std::io::stderr().write_all(&output.bytes);
        }
    });
}
