//! [`PoolBuilder`]: configuring a pool, and [`build`](PoolBuilder::build),
//! which compiles the module, starts the workers and waits until they are
//! ready.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::backend::HostFns;
use crate::backend::calls::Forward;
use crate::backend::output::{self, GuestOutput, OutputHandler};
use crate::backend::{Settings, SpawnConfig};
use crate::cache::CacheDir;
use crate::channel::codec::FRAME_LIMIT;
use crate::channel::{Call, EngineSettings, Grants, Limits, Preopen, Setup};
use crate::error::{Error, ErrorKind};
use crate::module::{self, Compiling};
use crate::objects::{ObjectRef, handle};
use crate::pool::Pool;
use crate::process::context::{Context, Prepared};
use crate::worker;

/// Set by [`crate::init`], so that a pool knows it may run this program as
/// its workers.
pub(crate) static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// The default most bytes of one task's arguments or result.
const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;
/// The largest `max_payload` a pool takes: a result, with the outcomes
/// coalesced before it, must fit in one frame.
const MAX_PAYLOAD_LIMIT: usize = FRAME_LIMIT / 2;
/// The default most bytes of stdout (and of stderr) kept per task.
const DEFAULT_OUTPUT_LIMIT: u32 = 64 << 10;
/// The default most bytes of artifacts the cache keeps.
const DEFAULT_CACHE_LIMIT: u64 = 1 << 30;
/// The default linear memory limit of one instance.
const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;
/// The largest memory limit: a wasm memory (32-bit) never grows past 4 GiB.
const MAX_MEMORY_LIMIT: u64 = 4 << 30;
/// The default time a fresh instance has to start, and `describe` to answer.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time one run of the initializer may take.
const DEFAULT_INITIALIZER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the module comes from.
enum ModuleSource {
    File(PathBuf),
    /// Bytes, and the name errors give them.
    Bytes {
        bytes: Vec<u8>,
        name: String,
    },
}

impl ModuleSource {
    /// The module's bytes, read once, and the name errors give it; refused
    /// past `limit` bytes.
    fn read(self, limit: u64) -> Result<(Vec<u8>, String), Error> {
        match self {
            ModuleSource::File(path) => {
                let bytes = module::read_file(&path, limit)?;
                Ok((bytes, path.display().to_string()))
            }
            ModuleSource::Bytes { bytes, name } if bytes.len() as u64 > limit => Err(Error::new(
                ErrorKind::BadModule,
                format!(
                    "{name} takes {} bytes, over the module limit of {limit} bytes \
                     (PoolBuilder::module_limit)",
                    bytes.len()
                ),
            )),
            ModuleSource::Bytes { bytes, name } => Ok((bytes, name)),
        }
    }
}

/// The error of a builder given no module.
fn no_module() -> Error {
    Error::new(
        ErrorKind::Config,
        "no module: set PoolBuilder::module_file or module_bytes",
    )
}

impl Pool {
    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }
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
    module_limit: u64,
    processes: Option<usize>,
    force_processes: bool,
    initializer: Option<Result<Call, Error>>,
    /// The shared objects in the initializer's arguments.
    initializer_objects: Vec<ObjectRef>,
    max_tasks_per_child: Option<usize>,
    fresh_instance: bool,
    worker_program: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    cache_limit: u64,
    on_output: Option<OutputHandler>,
    on_compile: Option<CompileHandler>,
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
    host_fns: HostFns,
    /// Where the tasks' calls go instead of being served here.
    forward: Option<Arc<dyn Forward>>,
    /// Run the tasks on agents through this NATS server.
    #[cfg(feature = "nats")]
    nats: Option<crate::Nats>,
    /// Whether [`NATS_ENV`] may say where to run the tasks (not for an
    /// agent's own pools, nor the check of a pool on agents).
    #[cfg(feature = "nats")]
    nats_from_env: bool,
}

/// The environment variable that runs a program's pools and processes on
/// the agents of a NATS server without a change to its code: the server's
/// URL, taken by every [`PoolBuilder`] not given [`nats`](PoolBuilder::nats).
#[cfg(feature = "nats")]
pub const NATS_ENV: &str = "WASMPOOL_NATS";

/// Told when the pool compiles its module.
type CompileHandler = Arc<dyn Fn(&Compiling<'_>) + Send + Sync>;

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("fresh_instance", &self.fresh_instance)
            .field("worker_program", &self.worker_program)
            .field("cache_dir", &self.cache_dir)
            .field("cache_limit", &self.cache_limit)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    fn new() -> Self {
        PoolBuilder {
            module: None,
            processes: None,
            force_processes: false,
            initializer: None,
            initializer_objects: Vec::new(),
            max_tasks_per_child: None,
            fresh_instance: false,
            worker_program: None,
            cache_dir: None,
            cache_limit: DEFAULT_CACHE_LIMIT,
            on_output: None,
            on_compile: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            max_payload: DEFAULT_MAX_PAYLOAD,
            module_limit: module::MODULE_BYTES,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            task_timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            initializer_timeout: DEFAULT_INITIALIZER_TIMEOUT,
            fuel: None,
            retries: 0,
            grants: Grants::default(),
            verify_sandbox: false,
            host_fns: HostFns::default(),
            forward: None,
            #[cfg(feature = "nats")]
            nats: None,
            #[cfg(feature = "nats")]
            nats_from_env: true,
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
        self.module = Some(ModuleSource::Bytes {
            bytes: bytes.into(),
            name: "the module".to_string(),
        });
        self
    }

    /// The most bytes of a module the pool reads: a module file larger (or
    /// not a regular file at all) is refused before it is read, naming its
    /// size and the limit.
    ///
    /// # Default
    ///
    /// [`MODULE_BYTES`](crate::MODULE_BYTES), 512 MiB: what agents fetch.
    pub fn module_limit(mut self, bytes: u64) -> Self {
        self.module_limit = bytes;
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

    /// Starts as many processes as [`processes`](Self::processes) asks even
    /// past what this machine can hold. Unless forced, a local pool (or a
    /// [`Context`]'s) refuses a count past the least of: 64 per CPU; what
    /// `RLIMIT_NPROC`, the kernel's `pid_max` and `threads-max` and a cgroup's
    /// `pids.max` leave room for at 6 threads a worker; what the available
    /// memory (and a cgroup's `memory.max`) leaves room for at 32 MiB a
    /// worker. The limits are read when the pool starts, and the refusal
    /// names the bound and what it came from. Forced or not, a pool stops
    /// starting workers at the first that cannot start.
    pub fn force_processes(mut self, force: bool) -> Self {
        self.force_processes = force;
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
        let mut bytes = Vec::new();
        let (encoded, objects) = handle::collecting(|| crate::args::encode(&mut bytes, &args));
        self.initializer_objects = objects;
        let encoded = encoded
            .map(|()| Call {
                task: task.to_string(),
                args: ByteBuf::from(bytes),
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

    /// Runs every task in an instance of its own: a fresh instance of the
    /// module, made for the task and thrown away after it, so that no task
    /// can read what another left behind — its memory, globals, tables and
    /// WASI state (open files, the environment it changed). The worker
    /// process stays; [`max_tasks_per_child`](Self::max_tasks_per_child)
    /// remains the wall for what a process keeps.
    ///
    /// Instances come from the pooling allocator with copy-on-write memory
    /// images, so a fresh one costs under 10 µs for a Rust guest, and about
    /// half a millisecond for a Python guest, whose interpreter fills a
    /// function table of thousands of entries and touches megabytes of
    /// memory as it starts; see BENCHMARKS.md, "Isolation between tasks".
    /// The [`initializer`](Self::initializer) runs on each fresh instance,
    /// before its task: a live instance cannot be captured and copied. What
    /// it acquires of shared objects it then holds for that task only.
    ///
    /// # Default
    ///
    /// False: a worker's instance serves task after task, and is renewed
    /// only after a task trapped, panicked or hit a limit.
    pub fn fresh_instance(mut self, fresh: bool) -> Self {
        self.fresh_instance = fresh;
        self
    }

    /// The program started as each worker process.
    ///
    /// # Default
    ///
    /// The running program itself ([`std::env::current_exe`]), which must
    /// then call [`crate::init`] first thing in `main`. Set this to use
    /// another program that does, such as the `wasmpool` command-line tool
    /// or this crate's `wasmpool-worker` (a program that is only a worker).
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

    /// The most bytes of compiled modules the [cache](Self::cache_dir)
    /// keeps. Every module compiled under a new content or configuration
    /// adds an artifact (a Python guest's is over 30 MB), so when a pool is
    /// built, it removes the least recently used artifacts (by the time a
    /// pool last used them) until the rest fit.
    ///
    /// An artifact in use by a live pool, of this process or another, is
    /// never removed: each pool holds a lock on its own for as long as its
    /// workers may start, and the limit may be exceeded by those. `0` keeps
    /// only the artifacts in use.
    ///
    /// # Default
    ///
    /// 1 GiB.
    pub fn cache_limit(mut self, bytes: u64) -> Self {
        self.cache_limit = bytes;
        self
    }

    /// Receives what tasks write to stdout and stderr, attributed to the task.
    ///
    /// Output streams: each line a task writes comes as soon as it is
    /// written (within a millisecond), while the task runs on; what is left
    /// of a line not ended comes when the task ends. A task's output comes in
    /// the order it was written, and all of it before the task's outcome.
    ///
    /// The handler is called on the thread that reads the worker's channel,
    /// before the outcome of the task that wrote the output is delivered (so
    /// a `map` returns after the output of its tasks was handled); a handler
    /// that blocks holds up that worker's outcomes, and one that panics ends
    /// the worker (the task it ran fails with [`ErrorKind::WorkerLost`]).
    ///
    /// # Default
    ///
    /// Each line goes to the host's stderr, prefixed with the worker's pid and
    /// the task's index.
    pub fn on_output(mut self, handler: impl Fn(&GuestOutput) + Send + Sync + 'static) -> Self {
        self.on_output = Some(Arc::new(handler));
        self
    }

    /// Calls `handler` when the pool compiles its module (no artifact of it
    /// is cached yet), as it starts and when it is done (or failed): a
    /// compilation takes seconds, which a program may want to say. Called
    /// on the thread that builds the pool.
    ///
    /// # Default
    ///
    /// Nothing is told.
    pub fn on_compile(mut self, handler: impl Fn(&Compiling<'_>) + Send + Sync + 'static) -> Self {
        self.on_compile = Some(Arc::new(handler));
        self
    }

    /// Prints what tasks write as they wrote it: their stdout to the host's
    /// stdout, their stderr to its stderr, without saying which task wrote
    /// it (a note on stderr says when output was truncated). Lines of tasks
    /// running at once do not mix within a line, as long as each task ends
    /// its lines. Replaces the [output handler](Self::on_output).
    pub fn plain_output(mut self) -> Self {
        self.on_output = Some(Arc::new(output::plain));
        self
    }

    /// The most bytes of stdout, and of stderr, kept from one task (whether
    /// handed on while it runs or at its end); the rest is dropped and the
    /// output marked truncated.
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

    /// The most linear memory one instance may grow to. A task whose memory
    /// would grow past it fails with [`ErrorKind::MemoryLimit`].
    ///
    /// A module whose memory starts larger than the limit could never run:
    /// [`build`](Self::build) refuses it with [`ErrorKind::MemoryLimit`],
    /// naming what it needs, before any worker starts. A Python guest built
    /// by componentize-py needs about 12 MiB to start; a Rust guest about
    /// 1 MiB.
    ///
    /// At most 4 GiB, all a wasm memory can address; [`build`](Self::build)
    /// refuses more with [`ErrorKind::Config`].
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

    /// Offers the host function `name` to tasks: a task calls it with
    /// `wasmpool_guest::call_host(name, args)` (any guest: the `host.call`
    /// import of `wit/wasmpool.wit`) and waits for its result while the rest
    /// of the pool goes on. `A` is the tuple of its positional arguments.
    ///
    /// Each call runs on a thread of its own, so `f` may block; the calling
    /// task's [time limit](Self::task_timeout) still holds, and a task that
    /// waits too long fails with [`ErrorKind::Timeout`] (the function's late
    /// result is dropped). The task gets an error — never the pool — when
    /// the arguments do not decode to `A`, when `f` returns `Err` or panics,
    /// or when arguments or result are over [`max_payload`](Self::max_payload).
    ///
    /// ```no_run
    /// let pool = wasmpool::Pool::builder()
    ///     .module_file("tasks.wasm")
    ///     .host_fn("lookup", |(key,): (String,)| -> Result<i64, String> {
    ///         Ok(key.len() as i64)
    ///     })
    ///     .build()?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    pub fn host_fn<A, R, E, F>(mut self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        E: fmt::Display,
        F: Fn(A) -> Result<R, E> + Send + Sync + 'static,
    {
        let label = name.to_string();
        self.host_fns.insert(
            name,
            Arc::new(move |args: &[u8]| {
                let args: A = crate::args::decode(args).map_err(|err| {
                    format!("the arguments of host function `{label}` do not decode: {err}")
                })?;
                let result = f(args).map_err(|err| err.to_string())?;
                rmp_serde::encode::to_vec_named(&result).map_err(|err| {
                    format!("the result of host function `{label}` does not encode: {err}")
                })
            }),
        );
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
        let builder = self.nats_from_env()?;
        let processes = builder
            .processes
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from));
        #[cfg(feature = "nats")]
        if builder.nats.is_some() {
            return builder.build_remote(processes);
        }
        builder.local_context()?.pool(processes)
    }

    /// Runs the pool's tasks on agents (`wasmpool agent`, or
    /// [`Agent`](crate::Agent)) on any machine, reached through the NATS
    /// server at `url`, which must have JetStream enabled. Credentials may
    /// be in the URL (`nats://user:password@host:4222`); see
    /// [`nats_options`](Self::nats_options) for the rest. A program not
    /// given a server runs on the one its environment names in
    /// [`NATS_ENV`] (`WASMPOOL_NATS=nats://host:4222`), unchanged.
    ///
    /// Every call of the pool works as on a local pool, with the same
    /// limits, initializer, retries and `max_tasks_per_child` (each agent
    /// runs the tasks on local workers of its own); and a
    /// [`context`](Self::context) starts each [`Process`](crate::Process)
    /// on an agent, in a worker of its own there. What differs:
    ///
    /// - [`processes`](Self::processes) is the parallelism the pool plans
    ///   for (the chunk size of `map`, and the window: 16 chunks per
    ///   process out at once unless [`Nats::window`](crate::Nats::window)
    ///   says otherwise); the agents decide how many workers they run, and
    ///   [`Pool::agents`] lists them;
    /// - [`Pool::worker_pids`] is empty: no worker runs here (a process's
    ///   [`pid`](crate::Process::pid) is its worker's, on its agent);
    /// - host functions and the shared objects in a task's arguments are
    ///   served here, as for a local pool (a task may use only what it was
    ///   handed, while it runs), each call a round trip through the server;
    ///   what a task held is let go of when its outcome comes, or when its
    ///   agent has been silent for the [ack wait](crate::Nats::ack_wait);
    ///   the initializer cannot be handed shared objects, and directories
    ///   are not offered (they are of this machine);
    /// - guest output reaches the [output handler](Self::on_output) as it
    ///   comes, not always before the task's outcome, and attributed to the
    ///   worker's pid on its agent's machine;
    /// - an agent that dies has the tasks it held run elsewhere after the
    ///   [ack wait](crate::Nats::ack_wait); its running task runs again up
    ///   to [`Nats::agent_retries`](crate::Nats::agent_retries) times (a
    ///   worker that dies on an agent, up to [`retries`](Self::retries)
    ///   times, as here), then fails with [`ErrorKind::WorkerLost`]; each
    ///   task gets one outcome however many times it ran (a process's task
    ///   never runs again: it fails, and the process ends as killed);
    /// - a pool whose agents are all gone waits for one to come.
    ///
    /// `build` checks the module here (a worker starts to list its tasks,
    /// and stops), then publishes it to the server's object store by its
    /// hash, where agents fetch it.
    #[cfg(feature = "nats")]
    pub fn nats(self, url: impl Into<String>) -> Self {
        self.nats_options(crate::Nats::new(url))
    }

    /// [`nats`](Self::nats), with credentials, TLS and the settings of the
    /// job in [`Nats`](crate::Nats).
    #[cfg(feature = "nats")]
    pub fn nats_options(mut self, nats: crate::Nats) -> Self {
        self.nats = Some(nats);
        self
    }

    /// Sets the initializer to a call whose arguments are encoded already
    /// (an agent's, from its job).
    #[cfg(feature = "nats")]
    pub(crate) fn initializer_call(mut self, call: Call) -> Self {
        self.initializer = Some(Ok(call));
        self
    }

    /// Passes the tasks' calls (of host functions, on shared objects) to
    /// `forward` rather than serving them: an agent's pool, whose job's
    /// host serves them.
    #[cfg(feature = "nats")]
    pub(crate) fn forward_calls(mut self, forward: Arc<dyn Forward>) -> Self {
        self.forward = Some(forward);
        self
    }

    /// Without the `nats` feature, tasks run here whatever the environment
    /// says.
    #[cfg(not(feature = "nats"))]
    fn nats_from_env(self) -> Result<Self, Error> {
        Ok(self)
    }

    /// Takes the server in [`NATS_ENV`], if set, for a builder not given
    /// one; an empty value is none.
    #[cfg(feature = "nats")]
    fn nats_from_env(mut self) -> Result<Self, Error> {
        if self.nats.is_none() && self.nats_from_env {
            match std::env::var(NATS_ENV) {
                Ok(url) if url.is_empty() => {}
                Ok(url) => self.nats = Some(crate::Nats::new(url)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("{NATS_ENV} is not UTF-8: it must be a NATS server's URL"),
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Runs the tasks here, whatever [`NATS_ENV`] says: an agent's pools.
    #[cfg(feature = "nats")]
    pub(crate) fn here(mut self) -> Self {
        self.nats_from_env = false;
        self
    }

    /// [`build`](Self::build) for [`nats`](Self::nats).
    #[cfg(feature = "nats")]
    fn build_remote(self, processes: usize) -> Result<Pool, Error> {
        crate::process::context::check_processes(processes)?;
        self.remote_context()?.pool(processes)
    }

    /// [`context`](Self::context) for [`nats`](Self::nats): the module is
    /// checked here, as a local pool checks it, and its tasks listed, by
    /// one worker that stops again; the pools and processes of the context
    /// run on agents.
    #[cfg(feature = "nats")]
    fn remote_context(mut self) -> Result<Context, Error> {
        use crate::backend::nats::on_agents::OnAgents;

        let nats = self.nats.take().expect("a builder set for NATS");
        nats.check()?;
        if !self.grants.dirs.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "preopened directories belong to this machine: a pool on NATS agents cannot \
                 offer them",
            ));
        }
        if !self.initializer_objects.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "a pool on NATS agents cannot hand shared objects to its initializer: an \
                 agent's workers outlive its tasks; hand them to the tasks in their arguments",
            ));
        }
        // Read once: published from the context, and checked here.
        let (module, name) = self
            .module
            .take()
            .ok_or_else(no_module)?
            .read(self.module_limit)?;
        self.module = Some(ModuleSource::Bytes {
            bytes: module.clone(),
            name,
        });
        let context = self.here().local_context()?;
        let tasks = context.pool(1)?.tasks().to_vec();
        Ok(context.on_agents(OnAgents::new(nats, module, tasks)))
    }

    /// Compiles the module (or loads it from the cache) and checks the
    /// configuration, without starting any worker: the [`Context`] starts
    /// [`Process`](crate::Process)es (and pools) with it, each loading the
    /// same artifact.
    ///
    /// ```no_run
    /// let context = wasmpool::Pool::builder()
    ///     .module_file("tasks.wasm")
    ///     .context()?;
    /// let p = context.process("greet").args(("bob",)).start()?;
    /// p.join();
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadModule`] for a module that is not a wasmpool
    /// component; [`ErrorKind::Config`] for an invalid configuration.
    pub fn context(self) -> Result<Context, Error> {
        let builder = self.nats_from_env()?;
        #[cfg(feature = "nats")]
        if builder.nats.is_some() {
            return builder.remote_context();
        }
        builder.local_context()
    }

    /// [`context`](Self::context) on this machine.
    fn local_context(self) -> Result<Context, Error> {
        if std::env::var_os(worker::MARKER).is_some() {
            return Err(Error::new(
                ErrorKind::Config,
                "this process was started as a wasmpool worker but runs the host's code: \
                 call wasmpool::init() first thing in main",
            ));
        }
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
        let (bytes, name) = self.module.ok_or_else(no_module)?.read(self.module_limit)?;
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
        // One result, or one task's arguments, must fit in a frame.
        if self.max_payload > MAX_PAYLOAD_LIMIT {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "max_payload of {} bytes is over the most a pool allows, \
                     {MAX_PAYLOAD_LIMIT} bytes",
                    self.max_payload
                ),
            ));
        }
        if self.memory_limit > MAX_MEMORY_LIMIT {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "memory_limit of {} bytes is over what a wasm memory can grow to: \
                     4 GiB ({MAX_MEMORY_LIMIT} bytes, 4G) is the largest",
                    self.memory_limit
                ),
            ));
        }
        let settings = EngineSettings {
            max_memory: self.memory_limit,
            epochs: self.task_timeout.is_some(),
            fuel: self.fuel.is_some(),
        };
        let cache_dir = self.cache_dir.unwrap_or_else(module::default_cache_dir);
        let cache = Arc::new(CacheDir::open(&cache_dir)?);
        let artifact =
            module::prepare(&settings, &bytes, &name, &cache, self.on_compile.as_deref())?;
        cache.evict(self.cache_limit);
        let mut grants = self.grants;
        grants.objects = self.initializer_objects.iter().map(|o| o.id()).collect();
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
                max_payload: self.max_payload as u64,
            },
            grants,
            probe_sandbox: self.verify_sandbox,
            fresh_instance: self.fresh_instance,
        };
        // A task may follow a renewal of the instance: its start and the
        // initializer count too.
        let watchdog_per_task = self.task_timeout.map(|limit| {
            let renewal = if initializer.is_some() {
                self.startup_timeout
                    .saturating_add(self.initializer_timeout)
            } else {
                self.startup_timeout
            };
            limit.saturating_add(renewal)
        });
        Ok(Context::new(Arc::new(Prepared {
            #[cfg(feature = "nats")]
            agents: None,
            local: Settings {
                spawn: SpawnConfig { program, setup },
                cache,
                max_tasks_per_child: self.max_tasks_per_child,
                watchdog_per_task,
                retries: self.retries,
                timed: self.task_timeout.is_some(),
                on_output: self
                    .on_output
                    .unwrap_or_else(|| Arc::new(output::to_stderr)),
                host_fns: self.host_fns,
                forward: self.forward,
                max_payload: self.max_payload,
                initializer_objects: self.initializer_objects,
            },
            name,
            force_processes: self.force_processes,
        })))
    }
}
