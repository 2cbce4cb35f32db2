//! `wasmpool._native.Pool` and `AsyncResult`: a wasmpool [`Pool`] as the
//! Python layer (`python/wasmpool/_pool.py`) drives it. Every wait releases
//! the interpreter, and looks for a signal to raise (Ctrl-C) at least every
//! [`SIGNAL_CHECK`](crate::wait::SIGNAL_CHECK).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rmpv::Value;
use wasmpool::{
    AsyncResult, Callbacks, Compiling, Error, GetTimeoutError, GuestOutput, Pool, PoolBuilder,
    Stream,
};

use crate::errors::{exception, exception_value};
use crate::interpreter::with_python;
use crate::process;
use crate::values::{Arg, to_arg, to_python};
use crate::wait::{deadline, slice_until};
use crate::worker;

/// A pool of sandboxed workers running one component's tasks.
#[pyclass(module = "wasmpool._native", name = "Pool", frozen)]
pub(crate) struct NativePool {
    pool: Arc<Pool>,
}

impl Drop for NativePool {
    /// A pool dropped (collected without `terminate`) is terminated, with
    /// the interpreter released: what its tasks wrote meanwhile is written
    /// out before it is gone, not after.
    fn drop(&mut self) {
        let pool = &self.pool;
        Python::attach(|py| {
            py.detach(|| {
                pool.terminate();
                let _ = pool.join();
            });
        });
    }
}

/// The limits and settings of a pool, as `wasmpool.Pool` passes them (a
/// dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct Settings {
    processes: Option<usize>,
    initializer: Option<Py<PyAny>>,
    initargs: Vec<Py<PyAny>>,
    maxtasksperchild: Option<usize>,
    timeout: Option<f64>,
    memory: Option<u64>,
    fuel: Option<u64>,
    retries: Option<u32>,
    /// Every task on a fresh instance of the component.
    fresh_instance: bool,
    /// The URL of a NATS server whose agents run the tasks.
    nats: Option<String>,
    /// Host directories tasks may use: where a task sees each, the host's
    /// path, and whether it is read-only.
    dirs: Vec<(String, PathBuf, bool)>,
    /// What the component is built from, in messages.
    label: String,
}

impl Settings {
    /// Whether nothing but the process count is set: the pool then starts
    /// from the component's context, which the program's import of
    /// `wasmpool` compiled (or found in the cache) already, rather than
    /// read, hash and load the component once more.
    fn is_plain(&self) -> bool {
        self.initializer.is_none()
            && self.maxtasksperchild.is_none()
            && self.timeout.is_none()
            && self.memory.is_none()
            && self.fuel.is_none()
            && self.retries.is_none()
            && !self.fresh_instance
            && self.nats.is_none()
            && self.dirs.is_empty()
    }
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
        if settings.is_plain() {
            let processes = settings
                .processes
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let context = process::context(py, module, cache_dir, settings.label)?;
            let pool = py
                .detach(|| context.pool(processes))
                .map_err(|err| exception(py, &err))?;
            return Ok(NativePool {
                pool: Arc::new(pool),
            });
        }
        let mut builder = base_builder(&module, &cache_dir, settings.label.clone())?;
        if let Some(processes) = settings.processes {
            builder = builder.processes(processes);
        }
        if let Some(task) = &settings.initializer {
            let task = Task::from_python(task.bind(py))?;
            let args = settings
                .initargs
                .iter()
                .enumerate()
                .map(|(at, arg)| {
                    let what = format!("initarg {} of `{}`", at + 1, task.name());
                    to_arg(arg.bind(py), &what, task.keeps_tuples())
                })
                .collect::<PyResult<Vec<_>>>()?;
            let (args, _) = task.call(args, Arg::Map(Vec::new()));
            builder = builder.initializer(task.target(), args);
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
        builder = builder.fresh_instance(settings.fresh_instance);
        if let Some(url) = settings.nats {
            builder = builder.nats(url);
        }
        for (guest, host, read_only) in &settings.dirs {
            builder = builder.preopen_dir(host, guest, *read_only);
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
        task: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwds: &Bound<'_, PyDict>,
        callback: Option<Py<PyAny>>,
        error_callback: Option<Py<PyAny>>,
    ) -> PyResult<NativeResult> {
        let task = Task::from_python(task)?;
        let name = task.name();
        let tuples = task.keeps_tuples();
        let args = arguments(name, args, tuples)?;
        let kwargs = keywords(name, kwds, tuples)?;
        let callbacks = callbacks(callback, error_callback);
        let (args, kwargs) = task.call(args, kwargs);
        // Bound as Python binds a call: parameters left take their defaults.
        let submitted = self
            .pool
            .apply_async_kw_with(task.target(), args, kwargs, callbacks);
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
        task: &Bound<'_, PyAny>,
        items: &Bound<'_, PyAny>,
        chunksize: Option<usize>,
        star: bool,
        callback: Option<Py<PyAny>>,
        error_callback: Option<Py<PyAny>>,
    ) -> PyResult<NativeResult> {
        let task = Task::from_python(task)?;
        let name = task.name();
        let tuples = task.keeps_tuples();
        // Each item's arguments, bound as Python binds a call (parameters
        // left take their defaults).
        let mut rows = Vec::new();
        for (at, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let what = format!("item {at} of `{name}`'s input");
            let args = if star {
                let args = item.try_iter().map_err(|_| {
                    PyTypeError::new_err(format!("{what} is not a sequence of arguments"))
                })?;
                args.map(|arg| to_arg(&arg?, &what, tuples))
                    .collect::<PyResult<Vec<_>>>()?
            } else {
                vec![to_arg(&item, &what, tuples)?]
            };
            rows.push(task.call(args, Arg::Map(Vec::new())));
        }
        let callbacks = callbacks(callback, error_callback);
        let submitted = self
            .pool
            .starmap_async_kw_with(task.target(), rows, chunksize, callbacks);
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

/// A builder of pools (and processes) running the component at `module`,
/// caching what is compiled (and the worker program) under `cache_dir`,
/// their output going to `sys.stdout` and `sys.stderr`; `label` names the
/// component when it is compiled (its source file).
pub(crate) fn base_builder(
    module: &Path,
    cache_dir: &Path,
    label: String,
) -> PyResult<PoolBuilder> {
    let program = worker::program(cache_dir).map_err(PyValueError::new_err)?;
    Ok(Pool::builder()
        .module_file(module)
        .cache_dir(cache_dir)
        .worker_program(program)
        .on_output(write_output)
        .on_compile(move |compiling| tell_compiling(&label, compiling)))
}

/// Says on `sys.stderr` that the component of `label` is being compiled (a
/// first run takes seconds), and then, on the same line, how long it took.
fn tell_compiling(label: &str, compiling: &Compiling<'_>) {
    let line = match compiling {
        Compiling::Started { .. } => format!("wasmpool: compiling {label} ..."),
        Compiling::Finished { took, .. } => format!(" {:.1} s\n", took.as_secs_f64()),
        Compiling::Failed { .. } => " failed\n".to_string(),
        _ => return,
    };
    write_to(Stream::Stderr, line.as_bytes());
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

/// What a submission runs: a task of the component named by string, or a
/// Python callable found by its module and qualified name (a list
/// `[module, qualname, host_pid]`, or `[module, qualname, host_pid,
/// attributes]` for the `run` of an instance), called through the
/// component's `CALL` task.
pub(crate) enum Task {
    Named(String),
    Callable { name: String, callee: Arg },
}

/// The component's task through which a Python callable is called (see
/// `wasmpool_guest._runtime.CALL`).
const CALL: &str = "__wasmpool_call__";

impl Task {
    pub(crate) fn from_python(task: &Bound<'_, PyAny>) -> PyResult<Task> {
        if let Ok(name) = task.extract::<String>() {
            return Ok(Task::Named(name));
        }
        let module: String = task.get_item(0)?.extract()?;
        let qualname: String = task.get_item(1)?.extract()?;
        let name = format!("{module}.{qualname}");
        let callee = to_arg(task, &format!("the callable `{name}`"), true)?;
        Ok(Task::Callable { name, callee })
    }

    /// Its name, in messages.
    pub(crate) fn name(&self) -> &str {
        match self {
            Task::Named(name) | Task::Callable { name, .. } => name,
        }
    }

    /// Whether tuples go as tuples (to Python, which gives them back).
    pub(crate) fn keeps_tuples(&self) -> bool {
        matches!(self, Task::Callable { .. })
    }

    /// The component's task that runs it.
    pub(crate) fn target(&self) -> &str {
        match self {
            Task::Named(name) => name,
            Task::Callable { .. } => CALL,
        }
    }

    /// The positional and keyword arguments of the component's task, for a
    /// call with `args` and `kwargs`.
    pub(crate) fn call(&self, args: Vec<Arg>, kwargs: Arg) -> (Vec<Arg>, Arg) {
        match self {
            Task::Named(_) => (args, kwargs),
            Task::Callable { callee, .. } => (
                vec![callee.clone(), Arg::Array(args), kwargs],
                Arg::Map(Vec::new()),
            ),
        }
    }
}

/// `task`'s positional arguments.
pub(crate) fn arguments(task: &str, args: &Bound<'_, PyTuple>, tuples: bool) -> PyResult<Vec<Arg>> {
    args.iter()
        .enumerate()
        .map(|(at, arg)| to_arg(&arg, &format!("argument {} of `{task}`", at + 1), tuples))
        .collect()
}

/// `task`'s keyword arguments as a map of names.
pub(crate) fn keywords(task: &str, kwds: &Bound<'_, PyDict>, tuples: bool) -> PyResult<Arg> {
    kwds.iter()
        .map(|(name, value)| {
            let name: String = name.extract().map_err(|_| {
                PyTypeError::new_err(format!("`{task}`: keyword argument names must be str"))
            })?;
            let what = format!("keyword argument `{name}` of `{task}`");
            let value = to_arg(&value, &what, tuples)?;
            Ok((Arg::Plain(Value::from(name)), value))
        })
        .collect::<PyResult<Vec<_>>>()
        .map(Arg::Map)
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
            with_python(|py| {
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
            with_python(|py| {
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
    write_to(output.stream, &output.bytes);
}

/// Writes `bytes` to Python's `sys.stdout` or `sys.stderr` (`stream`): to
/// the process's own if there is no Python stream to write to (closed, or
/// the interpreter exiting).
fn write_to(stream: Stream, bytes: &[u8]) {
    let name = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let written = with_python(|py| {
        let text = String::from_utf8_lossy(bytes);
        py.import("sys").and_then(|sys| {
            let stream = sys.getattr(name)?;
            stream.call_method1("write", (text.as_ref(),))?;
            stream.call_method0("flush").map(drop)
        })
    });
    if !matches!(written, Some(Ok(()))) {
        let _ = match stream {
            Stream::Stdout => std::io::stdout().write_all(bytes),
            Stream::Stderr => std::io::stderr().write_all(bytes),
        };
    }
}
