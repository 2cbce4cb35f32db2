//! [`Pool`] and [`PoolBuilder`]: the API of `multiprocessing.Pool`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::cache::CacheDir;
use crate::callbacks::CallbackThread;
use crate::engine::{self, Role};
use crate::error::{Error, ErrorKind};
use crate::imap::{Imap, Items};
use crate::job::{self, Chunk, Chunker, Sink};
use crate::module;
use crate::output::{self, GuestOutput, OutputHandler};
use crate::process::{KillHandle, SpawnConfig};
use crate::protocol::{Call, EngineSettings, Grants, Limits, Preopen, Setup, TaskInfo};
use crate::result::{self, AsyncResult, Callbacks};
use crate::supervisor::{self, Shared};
use crate::worker;

/// Set by [`crate::init`], so that a pool knows it may run this program as
/// its workers.
pub(crate) static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// The default most bytes of one task's arguments or result.
const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;
/// The default most bytes of stdout (and of stderr) kept per task.
const DEFAULT_OUTPUT_LIMIT: u32 = 64 << 10;
/// The default linear memory limit of one instance.
const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;
/// The default time a fresh instance has to start, and `describe` to answer.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time one run of the initializer may take.
const DEFAULT_INITIALIZER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the module comes from.
enum ModuleSource {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// Configures and starts a [`Pool`]; from [`Pool::builder`].
///
/// ```no_run
/// let pool = wasmpool::Pool::builder()
///     .module_file("tasks.wasm")
///     .processes(4)
///     .max_tasks_per_child(1000)
///     .build()?;
/// # Ok::<(), wasmpool::Error>(())
/// ```
pub struct PoolBuilder {
    module: Option<ModuleSource>,
    processes: Option<usize>,
    initializer: Option<Result<Call, Error>>,
    max_tasks_per_child: Option<usize>,
    worker_program: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    on_output: Option<OutputHandler>,
    output_limit: u32,
    max_payload: usize,
    memory_limit: u64,
    task_timeout: Option<Duration>,
    startup_timeout: Duration,
    initializer_timeout: Duration,
    fuel: Option<u64>,
    retries: u32,
    grants: Grants,
    verify_sandbox: bool,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("worker_program", &self.worker_program)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    fn new() -> Self {
        PoolBuilder {
            module: None,
            processes: None,
            initializer: None,
            max_tasks_per_child: None,
            worker_program: None,
            cache_dir: None,
            on_output: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            max_payload: DEFAULT_MAX_PAYLOAD,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            task_timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            initializer_timeout: DEFAULT_INITIALIZER_TIMEOUT,
            fuel: None,
            retries: 0,
            grants: Grants::default(),
            verify_sandbox: false,
        }
    }

    /// The task module: a WebAssembly component file (required, or
    /// [`module_bytes`](Self::module_bytes)).
    pub fn module_file(mut self, path: impl AsRef<Path>) -> Self {
        self.module = Some(ModuleSource::File(path.as_ref().to_path_buf()));
        self
    }

    /// The task module, as the bytes of a WebAssembly component.
    pub fn module_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.module = Some(ModuleSource::Bytes(bytes.into()));
        self
    }

    /// How many worker processes run tasks.
    ///
    /// # Default
    ///
    /// The available parallelism ([`std::thread::available_parallelism`]), as
    /// CPython uses `os.cpu_count()`.
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// A task of the module to run with `args` (a tuple of its positional
    /// arguments) on every fresh instance before its first task: when a
    /// worker starts, and again whenever its instance is renewed after a trap.
    /// State it leaves in the module is seen by the tasks that follow.
    ///
    /// # Errors
    ///
    /// If it fails, [`build`](Self::build) fails with
    /// [`ErrorKind::Initializer`].
    pub fn initializer(mut self, task: &str, args: impl Serialize) -> Self {
        let mut encoded = Vec::new();
        let encoded = job::encode_args(&mut encoded, &args)
            .map(|()| Call {
                task: task.to_string(),
                args: ByteBuf::from(encoded),
            })
            .map_err(|err| {
                Error::new(
                    ErrorKind::BadArguments,
                    format!("initializer `{task}`: {err}"),
                )
            });
        self.initializer = Some(encoded);
        self
    }

    /// How many tasks a worker process runs before it is replaced by a fresh
    /// one. Counted in tasks, not chunks: a worker is never handed more tasks
    /// than it has left, and chunks are split to fit.
    ///
    /// # Default
    ///
    /// None: workers live as long as the pool (unless they die).
    pub fn max_tasks_per_child(mut self, tasks: usize) -> Self {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// The program started as each worker process.
    ///
    /// # Default
    ///
    /// The running program itself ([`std::env::current_exe`]), which must
    /// then call [`crate::init`] first thing in `main`. Set this to use
    /// another program that does, such as the `wasmpool` command-line tool.
    pub fn worker_program(mut self, path: impl AsRef<Path>) -> Self {
        self.worker_program = Some(path.as_ref().to_path_buf());
        self
    }

    /// Where compiled modules are cached, so that the next run of the program
    /// does not compile again.
    ///
    /// The directory is used only if it is private: owned by this user and
    /// writable by nobody else (it is created with mode 0700 if missing),
    /// since loading an artifact runs its native code. Otherwise the pool
    /// compiles into a private temporary directory, removed with the pool,
    /// and logs a warning once.
    ///
    /// # Default
    ///
    /// `$XDG_CACHE_HOME/wasmpool`, else `~/.cache/wasmpool`, else (no home
    /// directory) `wasmpool-<uid>` in the temporary directory.
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Receives what tasks write to stdout and stderr, attributed to the task.
    ///
    /// # Default
    ///
    /// Each line goes to the host's stderr, prefixed with the worker's pid and
    /// the task's index.
    pub fn on_output(mut self, handler: impl Fn(&GuestOutput) + Send + Sync + 'static) -> Self {
        self.on_output = Some(Arc::new(handler));
        self
    }

    /// The most bytes of stdout, and of stderr, kept from one task; the rest
    /// is dropped and the output marked truncated.
    ///
    /// # Default
    ///
    /// 64 KiB.
    pub fn output_limit(mut self, bytes: u32) -> Self {
        self.output_limit = bytes;
        self
    }

    /// The most bytes one task's encoded arguments, or its encoded result,
    /// may take; a task over it fails with [`ErrorKind::BadArguments`]
    /// without being sent, or with [`ErrorKind::BadResult`].
    ///
    /// # Default
    ///
    /// 64 MiB.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The most linear memory one instance may grow to.
    ///
    /// # Default
    ///
    /// 1 GiB.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The wall-clock time one task may take. A task over it fails with
    /// [`ErrorKind::Timeout`] — stopped inside its worker wherever it is, in a
    /// loop or blocked in a sleep — and its instance is renewed. Should a
    /// worker not answer within the limit plus a grace period even so, a
    /// watchdog kills and replaces it.
    ///
    /// Any duration works: `Duration::MAX` is as good as no limit.
    ///
    /// # Default
    ///
    /// None: tasks may run for ever.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// The wall-clock time a fresh instance of the module may take to start
    /// (its start functions), and then its `describe` to list its tasks.
    /// Both run outside any task, when a worker starts or renews its
    /// instance; a module over the limit is stopped wherever it is, and
    /// [`build`](Self::build) fails with [`ErrorKind::BadModule`] naming the
    /// module and what it did not finish.
    ///
    /// # Default
    ///
    /// 5 seconds.
    pub fn startup_timeout(mut self, limit: Duration) -> Self {
        self.startup_timeout = limit;
        self
    }

    /// The wall-clock time one run of the [initializer](Self::initializer)
    /// may take. An initializer over it is stopped wherever it is; at start,
    /// [`build`](Self::build) fails with [`ErrorKind::Initializer`], and on a
    /// renewed instance the tasks waiting for it fail with that error.
    ///
    /// # Default
    ///
    /// 30 seconds.
    pub fn initializer_timeout(mut self, limit: Duration) -> Self {
        self.initializer_timeout = limit;
        self
    }

    /// A deterministic budget per task: fuel, roughly one unit per wasm
    /// instruction. A task that uses it up fails with
    /// [`ErrorKind::OutOfFuel`].
    ///
    /// # Default
    ///
    /// None: no budget (and no metering cost).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// How many times tasks whose worker died are run again on another
    /// worker before they fail with [`ErrorKind::WorkerLost`]. A retried task
    /// may have run partly before: use it for tasks that can run twice.
    ///
    /// # Default
    ///
    /// 0.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Lets guests use the host directory `host`, seen as `guest` (such as
    /// `/data`), read-only or read-write.
    pub fn preopen_dir(mut self, host: impl AsRef<Path>, guest: &str, read_only: bool) -> Self {
        self.grants.dirs.push(Preopen {
            host: host.as_ref().to_path_buf(),
            guest: guest.to_string(),
            read_only,
        });
        self
    }

    /// Gives guests the environment variable `name` with `value`. Guests see
    /// no other variables.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.grants.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Makes every worker check, once sandboxed, that it cannot exec, fork,
    /// create sockets or (with no directory granted) open files, and fails
    /// [`build`](Self::build) with [`ErrorKind::Spawn`] if any of it works.
    ///
    /// # Default
    ///
    /// Off.
    pub fn verify_sandbox(mut self, verify: bool) -> Self {
        self.verify_sandbox = verify;
        self
    }

    /// Compiles the module (or loads it from the cache), starts the workers
    /// and waits until every one is ready.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadModule`] for a module that is not a wasmpool task
    /// module, or that does not start or list its tasks within
    /// [`startup_timeout`](Self::startup_timeout); [`ErrorKind::Spawn`] if
    /// workers cannot start; [`ErrorKind::Initializer`] if the initializer
    /// fails or runs past [`initializer_timeout`](Self::initializer_timeout);
    /// [`ErrorKind::Config`] for an invalid configuration.
    pub fn build(self) -> Result<Pool, Error> {
        if std::env::var_os(worker::MARKER).is_some() {
            return Err(Error::new(
                ErrorKind::Config,
                "this process was started as a wasmpool worker but runs the host's code: \
                 call wasmpool::init() first thing in main",
            ));
        }
        let processes = match self.processes {
            Some(0) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a pool needs at least one process",
                ));
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, usize::from),
        };
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::new(
                ErrorKind::Config,
                "max_tasks_per_child must be at least 1",
            ));
        }
        let initializer = self.initializer.transpose()?;
        let program = match self.worker_program {
            Some(program) => program,
            None if INIT_CALLED.load(Ordering::SeqCst) => {
                std::env::current_exe().map_err(|err| {
                    Error::new(
                        ErrorKind::Spawn,
                        format!("cannot find the running program to start workers: {err}"),
                    )
                })?
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "no worker program: call wasmpool::init() first thing in main (the pool \
                     then runs this program as its workers), or set \
                     PoolBuilder::worker_program",
                ));
            }
        };
        let (bytes, name) = match self.module {
            Some(ModuleSource::File(path)) => {
                let bytes = std::fs::read(&path).map_err(|err| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot read the module {}: {err}", path.display()),
                    )
                })?;
                (bytes, path.display().to_string())
            }
            Some(ModuleSource::Bytes(bytes)) => (bytes, "the module".to_string()),
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "no module: set PoolBuilder::module_file or module_bytes",
                ));
            }
        };
        for (name, limit) in [
            ("task_timeout", self.task_timeout),
            ("startup_timeout", Some(self.startup_timeout)),
            ("initializer_timeout", Some(self.initializer_timeout)),
        ] {
            if limit.is_some_and(|limit| limit.is_zero()) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("{name} must be more than zero"),
                ));
            }
        }
        let settings = EngineSettings {
            max_memory: self.memory_limit,
            epochs: self.task_timeout.is_some(),
            fuel: self.fuel.is_some(),
        };
        let engine = engine::engine(&settings, Role::Compile)?;
        let cache_dir = self.cache_dir.unwrap_or_else(module::default_cache_dir);
        let cache = CacheDir::open(&cache_dir)?;
        let artifact = module::prepare(&engine, &bytes, &name, &cache)?;
        let setup = Setup {
            artifact,
            engine: settings,
            initializer: initializer.clone(),
            output_limit: self.output_limit,
            limits: Limits {
                task_timeout: self.task_timeout,
                startup_timeout: self.startup_timeout,
                initializer_timeout: self.initializer_timeout,
                fuel: self.fuel,
                max_result: self.max_payload as u64,
            },
            grants: self.grants,
            probe_sandbox: self.verify_sandbox,
        };
        let (queue_tx, queue_rx) = unbounded();
        let (stop_tx, stop_rx) = bounded(0);
        let shared = Arc::new(Shared {
            spawn: SpawnConfig { program, setup },
            _cache: cache,
            max_tasks_per_child: self.max_tasks_per_child,
            // A task may follow a renewal of the instance: its start and
            // the initializer count too.
            watchdog_per_task: self.task_timeout.map(|limit| {
                let renewal = if initializer.is_some() {
                    self.startup_timeout
                        .saturating_add(self.initializer_timeout)
                } else {
                    self.startup_timeout
                };
                limit.saturating_add(renewal)
            }),
            retries: self.retries,
            queue: queue_rx,
            requeue: unbounded(),
            stop: stop_rx,
            terminating: AtomicBool::new(false),
            idle: AtomicUsize::new(0),
            workers: Mutex::new(vec![None; processes]),
            on_output: self
                .on_output
                .unwrap_or_else(|| Arc::new(output::to_stderr)),
            reapers: Mutex::default(),
        });
        let callbacks = CallbackThread::start().map_err(|err| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot start the callback thread: {err}"),
            )
        })?;
        // Each slot starts its own worker from its own thread: Linux delivers
        // a worker's parent-death signal when the thread that started it
        // exits, and a slot's thread lives as long as the slot.
        let (started_tx, started_rx) = unbounded();
        let mut slots = Vec::with_capacity(processes);
        for index in 0..processes {
            let (shared, started) = (shared.clone(), started_tx.clone());
            let handle = thread::Builder::new()
                .name(format!("wasmpool-slot-{index}"))
                .spawn(move || supervisor::run(index, shared, started))
                .map_err(|err| {
                    Error::new(
                        ErrorKind::Spawn,
                        format!("cannot start a slot thread: {err}"),
                    )
                })?;
            slots.push(handle);
        }
        drop(started_tx);
        let pool = Pool {
            shared,
            queue: Mutex::new(Some(queue_tx)),
            stop: Mutex::new(Some(stop_tx)),
            slots: Mutex::new(slots),
            callbacks,
            tasks: Vec::new(),
            processes,
            max_payload: self.max_payload,
            closed: AtomicBool::new(false),
        };
        let mut tasks = None;
        let mut first_error = None;
        for started in started_rx.iter() {
            match started {
                Ok(offered) => tasks = tasks.or(Some(offered)),
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        if let Some(err) = first_error {
            pool.terminate();
            // What the module did wrong, said of the module.
            return Err(match err.kind() {
                ErrorKind::BadModule | ErrorKind::Initializer => {
                    Error::new(err.kind(), format!("{name}: {}", err.message()))
                }
                _ => err,
            });
        }
        let mut pool = pool;
        pool.tasks = tasks.unwrap_or_default();
        Ok(pool)
    }
}

/// A pool of sandboxed worker processes running the tasks of one module.
///
/// The API is CPython's `multiprocessing.Pool`: see the [crate
/// documentation](crate) for an overview. A `Pool` is `Send` and `Sync`: tasks
/// may be submitted from many threads at once.
///
/// Dropping a pool terminates it: tasks not finished fail with
/// [`ErrorKind::Terminated`], and every worker is killed and reaped. Call
/// [`close`](Self::close) and [`join`](Self::join) first to let them finish.
pub struct Pool {
    shared: Arc<Shared>,
    queue: Mutex<Option<Sender<Chunk>>>,
    stop: Mutex<Option<Sender<()>>>,
    slots: Mutex<Vec<JoinHandle<()>>>,
    callbacks: Arc<CallbackThread>,
    tasks: Vec<TaskInfo>,
    processes: usize,
    max_payload: usize,
    closed: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .field("tasks", &self.tasks)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// How many worker processes the pool runs.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The tasks the module offers, by name.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// The pids of the worker processes running now (fewer while some are
    /// being replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.workers().iter().map(KillHandle::pid).collect()
    }

    fn task(&self, name: &str) -> Result<&TaskInfo, Error> {
        self.tasks
            .iter()
            .find(|task| task.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
                Error::new(
                    ErrorKind::UnknownTask,
                    format!(
                        "the module has no task named `{name}`; it has: {}",
                        known.join(", ")
                    ),
                )
            })
    }

    /// The queue to submit chunks to, unless the pool is closed.
    pub(crate) fn sender(&self) -> Result<Sender<Chunk>, Error> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::PoolClosed,
                    "the pool is closed: it takes no new tasks",
                )
            })
    }

    /// Puts `chunk` on the queue of a sender from [`sender`](Self::sender).
    pub(crate) fn send(&self, sender: &Sender<Chunk>, chunk: Chunk) {
        // If every slot is gone the chunk comes back and is dropped here,
        // which fails its tasks: nothing is lost silently.
        let _ = sender.send(chunk);
        // Sent as another thread terminates the pool: not left behind.
        self.shared.drop_if_terminating();
    }

    /// A chunker for tasks of `task`, if the pool has that task and is open.
    pub(crate) fn chunker(
        &self,
        task: &str,
        chunksize: usize,
        sink: Arc<dyn Sink>,
    ) -> Result<Chunker, Error> {
        let info = self.task(task)?;
        self.sender()?;
        Ok(Chunker::new(
            info.name.as_str().into(),
            info.arity,
            chunksize,
            self.max_payload,
            sink,
        ))
    }

    fn submit<A: Serialize>(
        &self,
        task: &str,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        sink: Arc<dyn Sink>,
    ) -> Result<(), Error> {
        let mut chunker = self.chunker(task, chunksize, sink)?;
        let sender = self.sender()?;
        for item in items {
            if let Some(chunk) = chunker.push(&item) {
                self.send(&sender, chunk);
            }
        }
        if let Some(chunk) = chunker.finish() {
            self.send(&sender, chunk);
        }
        Ok(())
    }

    /// The chunk size CPython's `map` picks: the tasks spread over four
    /// chunks per process.
    fn default_chunksize(&self, tasks: usize) -> usize {
        tasks.div_ceil(self.processes * 4).max(1)
    }

    /// Runs `task` with `args` (a tuple of its positional arguments) on a
    /// worker and waits for its result.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let q: i64 = pool.apply("divide", (7, 2))?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The task's failure, or why it could not be submitted.
    pub fn apply<R, A>(&self, task: &str, args: A) -> Result<R, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        self.apply_async(task, args)?.get()
    }

    /// Submits `task` with `args` and returns at once with a handle to its result.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once;
    /// anything else through the [`AsyncResult`].
    pub fn apply_async<R, A>(&self, task: &str, args: A) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        self.apply_async_with(task, args, Callbacks::new())
    }

    /// [`apply_async`](Self::apply_async) with a callback and an error callback.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Self::apply_async).
    pub fn apply_async_with<R, A>(
        &self,
        task: &str,
        args: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        let (result, sink) = result::gather(1, result::single, callbacks, self.callbacks.queue());
        self.submit(task, [args], 1, sink)?;
        Ok(result)
    }

    /// Runs `task` on every item of `items` and returns the results in order.
    ///
    /// Each item is the task's single argument. `chunksize` (`None` for
    /// CPython's default) sets how many items a worker takes at once.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let squares: Vec<i64> = pool.map("square", 0..10, None)?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The failure of the first task (by index) that failed; the other tasks
    /// still run. Use [`imap`](Self::imap) for each task's own outcome.
    pub fn map<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Vec<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        self.map_async(task, items, chunksize)?.get()
    }

    /// Like [`map`](Self::map), but returns at once with a handle to the results.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once;
    /// task failures through the [`AsyncResult`].
    pub fn map_async<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        self.map_async_with(task, items, chunksize, Callbacks::new())
    }

    /// [`map_async`](Self::map_async) with a callback (called once with all
    /// the results) and an error callback (called once per failed task).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn map_async_with<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        let items: Vec<(T,)> = items.into_iter().map(|item| (item,)).collect();
        self.many_async(task, items, chunksize.into(), callbacks)
    }

    /// Like [`map`](Self::map), but each item is a tuple of the task's
    /// positional arguments: `[(1, 2), (3, 4)]` runs `f(1, 2)` and `f(3, 4)`.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub fn starmap<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Vec<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.starmap_async(task, items, chunksize)?.get()
    }

    /// Like [`starmap`](Self::starmap), but returns at once with a handle to the results.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.starmap_async_with(task, items, chunksize, Callbacks::new())
    }

    /// [`starmap_async`](Self::starmap_async) with callbacks, as
    /// [`map_async_with`](Self::map_async_with).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async_with<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.many_async(task, items, chunksize.into(), callbacks)
    }

    fn many_async<R, A>(
        &self,
        task: &str,
        items: Vec<A>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        // Check before anything is submitted, so a bad call leaves no trace.
        self.task(task)?;
        self.sender()?;
        let chunksize = chunksize.unwrap_or_else(|| self.default_chunksize(items.len()));
        let (result, sink) =
            result::gather(items.len(), result::all, callbacks, self.callbacks.queue());
        self.submit(task, items, chunksize, sink)?;
        Ok(result)
    }

    /// A lazy, ordered [`map`](Self::map): results come back in input order as
    /// they are ready, each task's own outcome.
    ///
    /// `items` is pulled as results are consumed, through a bounded window, so
    /// an endless input runs in bounded memory. `chunksize` defaults to 1, as
    /// in CPython.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once.
    pub fn imap<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Imap<'_, R, T, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        Imap::new(
            self,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            true,
            false,
        )
    }

    /// Like [`imap`](Self::imap), but results come back as soon as they are
    /// ready, in any order. Each carries its task's index.
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Imap<'_, R, T, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        Imap::new(
            self,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            false,
            false,
        )
    }

    /// A lazy [`starmap`](Self::starmap): as [`imap`](Self::imap) (or, with
    /// `ordered` false, [`imap_unordered`](Self::imap_unordered)), but each
    /// item is a tuple of the task's positional arguments.
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn istarmap<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        ordered: bool,
    ) -> Result<Imap<'_, R, A, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        Imap::new(
            self,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            ordered,
            true,
        )
    }

    /// Like [`istarmap`](Self::istarmap), but the items come from a channel,
    /// as a producer sends them: each item is submitted as soon as it comes
    /// (a chunk goes out with what there is when the channel is momentarily
    /// empty), and results are yielded as they finish even while no item
    /// comes. Use it when items trickle in, such as lines of a pipe, where
    /// `istarmap` would wait inside its input for the next item before
    /// yielding finished results.
    ///
    /// Ends once the channel is disconnected and every result was yielded.
    /// Once the pool is closed or terminated the channel is let go (its
    /// sender's `send` fails), and items left in it are no tasks; a
    /// terminate wakes a waiting iterator.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let (tx, rx) = wasmpool::crossbeam_channel::bounded(64);
    /// std::thread::spawn(move || {
    ///     for x in 0..10i64 {
    ///         tx.send((x,)).unwrap();
    ///         std::thread::sleep(std::time::Duration::from_millis(100));
    ///     }
    /// });
    /// for result in pool.istarmap_stream::<i64, _>("square", rx, None, true)? {
    ///     println!("{}", result?);
    /// }
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn istarmap_stream<R, A>(
        &self,
        task: &str,
        items: Receiver<A>,
        chunksize: impl Into<Option<usize>>,
        ordered: bool,
    ) -> Result<Imap<'_, R, A, std::iter::Empty<A>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        Imap::new(
            self,
            task,
            Items::Streamed(items),
            chunksize.into().unwrap_or(1),
            ordered,
            true,
        )
    }

    /// Whether the pool was closed (or terminated).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Disconnects when the pool is terminated.
    pub(crate) fn terminated_signal(&self) -> &Receiver<()> {
        &self.shared.stop
    }

    /// Stops the pool from taking new tasks; those already submitted still
    /// run. Then [`join`](Self::join) waits for them.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Stops the pool at once: workers are killed, tasks not finished fail
    /// with [`ErrorKind::Terminated`].
    pub fn terminate(&self) {
        self.close();
        self.shared.terminating.store(true, Ordering::SeqCst);
        self.stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for worker in self.shared.workers() {
            // Through its pidfd: a worker its slot reaped in the meantime is
            // not signalled, nor a process that took its pid.
            let _ = worker.kill();
        }
        // Tasks still queued will never run: dropping them fails them. (A
        // chunk sent from now on is dropped by its sender: see
        // `Shared::drop_if_terminating`, whose fence pairs with this one.)
        fence(Ordering::SeqCst);
        self.shared.drop_queued();
    }

    /// Waits until every worker has exited and every callback has run. Call
    /// [`close`](Self::close) or [`terminate`](Self::terminate) first.
    ///
    /// Safe to call from a callback: it then waits for the workers, not for
    /// the callback thread it runs on.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] if the pool was neither closed nor terminated
    /// (CPython raises `ValueError`).
    pub fn join(&self) -> Result<(), Error> {
        if !self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Usage,
                "join() needs close() or terminate() first: the pool is still running",
            ));
        }
        let slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(PoisonError::into_inner));
        for slot in slots {
            let _ = slot.join();
        }
        let reapers = std::mem::take(
            &mut *self
                .shared
                .reapers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for reaper in reapers {
            let _ = reaper.join();
        }
        self.callbacks.finish();
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
        let _ = self.join();
    }
}
