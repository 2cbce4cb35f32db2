//! [`Process`]: one task in a sandboxed worker process of its own, with the
//! API of CPython's `multiprocessing.Process`, started from a [`Context`].
//!
//! A process is a pool of one worker that runs one task: the task takes the
//! walk of any pool task (chunk, slot, worker and back), so it gets all a
//! pool task gets — limits, grants, host functions, output. What differs:
//! its worker is never replaced, recycled, nor its task retried; once the
//! task ends the worker is shut down, and the process has ended.

pub(crate) mod context;

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::ProcessWorker;
use crate::channel::Outcomes;
use crate::chunk::{Shape, Sink, Submission, decode};
use crate::error::{Error, ErrorKind};
use crate::pool::Pool;
use crate::settled::Settled;

pub use context::Context;

/// Numbers the processes not given a name, as CPython does: `Process-1`, ...
static UNNAMED: AtomicUsize = AtomicUsize::new(1);

/// Configures a [`Process`]; from [`Context::process`].
///
/// ```no_run
/// # let context = wasmpool::Pool::builder().module_file("m.wasm").context()?;
/// let p = context
///     .process("greet")
///     .args(("bob",))
///     .kwargs(std::collections::BTreeMap::from([("greeting", "Hi")]))
///     .name("greeter")
///     .daemon(true)
///     .start()?;
/// # Ok::<(), wasmpool::Error>(())
/// ```
#[must_use = "a process runs only once started"]
pub struct ProcessBuilder<'a, A = (), K = ()> {
    context: &'a Context,
    task: String,
    args: A,
    /// The keyword arguments, if any were given.
    kwargs: Option<K>,
    name: Option<String>,
    daemon: bool,
}

impl<A, K> fmt::Debug for ProcessBuilder<'_, A, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessBuilder")
            .field("task", &self.task)
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

impl<'a> ProcessBuilder<'a> {
    pub(crate) fn new(context: &'a Context, task: &str) -> Self {
        ProcessBuilder {
            context,
            task: task.to_string(),
            args: (),
            kwargs: None,
            name: None,
            daemon: false,
        }
    }
}

impl<'a, A: Serialize, K: Serialize> ProcessBuilder<'a, A, K> {
    /// The task's positional arguments, as a tuple: `("bob",)`, `(1, 2)`.
    ///
    /// # Default
    ///
    /// None, `()`.
    pub fn args<B: Serialize>(self, args: B) -> ProcessBuilder<'a, B, K> {
        ProcessBuilder {
            context: self.context,
            task: self.task,
            args,
            kwargs: self.kwargs,
            name: self.name,
            daemon: self.daemon,
        }
    }

    /// The task's keyword arguments: anything that encodes as a map of
    /// parameter names to values (a `BTreeMap`, a struct with named fields),
    /// as CPython's `Process(kwargs={...})`. Parameters given neither here
    /// nor in [`args`](Self::args) take their defaults.
    ///
    /// # Default
    ///
    /// None.
    pub fn kwargs<L: Serialize>(self, kwargs: L) -> ProcessBuilder<'a, A, L> {
        ProcessBuilder {
            context: self.context,
            task: self.task,
            args: self.args,
            kwargs: Some(kwargs),
            name: self.name,
            daemon: self.daemon,
        }
    }

    /// The process's name, for the host's own use.
    ///
    /// # Default
    ///
    /// `Process-N`, N counting the processes started without a name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Whether the process is a daemon: dropping its handle kills it, as a
    /// daemonic process dies with its parent in CPython. A process that is
    /// not a daemon is waited for when its handle is dropped, as CPython
    /// waits for its children at exit.
    ///
    /// # Default
    ///
    /// False.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Starts the worker process, waits until it is ready, and hands it the
    /// task; returns while the task runs. On NATS agents, publishes its job
    /// and waits until an agent has started its worker (compiling the
    /// module first, the first time that agent sees it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] if the module has no such task; as
    /// [`PoolBuilder::build`](crate::PoolBuilder::build) if the worker cannot
    /// start; on NATS agents, [`ErrorKind::Spawn`] if no agent started it
    /// within [`Nats::process_start_limit`](crate::Nats::process_start_limit),
    /// or the agent that took it could not start a worker. Arguments that
    /// do not fit the task fail the task, not the start: see
    /// [`Process::result`].
    pub fn start(self) -> Result<Process, Error> {
        let ProcessBuilder {
            context,
            task,
            args,
            kwargs,
            name,
            daemon,
        } = self;
        start(context, name, daemon, |pool, submission| match kwargs {
            Some(kwargs) => {
                pool.submitter
                    .submit(&task, [(args, kwargs)], Shape::Keywords, 1, submission)
            }
            None => pool
                .submitter
                .submit(&task, [args], Shape::Star, 1, submission),
        })
    }
}

/// Starts a process of `context` whose task `batch` (one task, its
/// arguments encoded and bound) is chunk `origin` of a process job on
/// agents: an agent runs it so.
#[cfg(feature = "nats")]
pub(crate) fn start_encoded(
    context: &Context,
    origin: u64,
    batch: crate::channel::Batch,
) -> Result<Process, Error> {
    start(context, None, false, |pool, submission| {
        let chunk = crate::chunk::Chunk::encoded(origin, batch, submission);
        let sender = pool.submitter.sender()?;
        pool.submitter.send(&sender, chunk);
        Ok(())
    })
}

/// Starts the worker of a process of `context`, hands it its task with
/// `submit`, and waits until it has started (here: it is ready once its
/// pool is; on agents: an agent says so, or the task failed first).
fn start(
    context: &Context,
    name: Option<String>,
    daemon: bool,
    submit: impl FnOnce(&Pool, Arc<Submission>) -> Result<(), Error>,
) -> Result<Process, Error> {
    let exit = Arc::new(Settled::new());
    let pool = context.prepared().launch(1, Some(exit.clone()))?;
    let Some(worker) = pool.submitter.backend.process_worker() else {
        return Err(Error::new(
            ErrorKind::Spawn,
            "the process's worker ended as soon as it was ready",
        ));
    };
    let outcome = Arc::new(Outcome {
        result: Settled::new(),
        worker: worker.clone(),
        exit: exit.clone(),
    });
    submit(&pool, pool.submitter.submission(outcome.clone()))?;
    // Its one task is in: the worker shuts down once it is done.
    pool.close();
    if worker.pid() == 0 {
        // On agents, the task failed before any agent started its worker:
        // the start fails if no worker could start (none did within the
        // start limit, or the agent that took it could not spawn one), as
        // here; the task's own failure (its arguments) is the process's.
        let failed = outcome.result.wait(None).and_then(|r| r.as_ref().err());
        if let Some(err) = failed.filter(|err| err.kind() == ErrorKind::Spawn) {
            return Err(err.clone());
        }
    }
    let name =
        name.unwrap_or_else(|| format!("Process-{}", UNNAMED.fetch_add(1, Ordering::Relaxed)));
    Ok(Process {
        name,
        daemon,
        worker,
        outcome,
        exit,
        pool,
    })
}

/// Where the task's outcome goes: its encoded result, or its error.
struct Outcome {
    result: Settled<Result<Vec<u8>, Error>>,
    /// The worker, which says what its end was if it did not say so yet.
    worker: Arc<dyn ProcessWorker>,
    exit: Arc<Settled<Option<ExitStatus>>>,
}

impl Sink for Outcome {
    fn deliver(&self, _first_index: u64, outcomes: Outcomes) {
        if let Some(outcome) = outcomes.iter().next() {
            if let Some(status) = self.worker.unreported_exit() {
                self.exit.set(Some(status));
            }
            self.result
                .set(outcome.map(<[u8]>::to_vec).map_err(Error::clone));
        }
    }
}

/// One task running in a sandboxed worker process of its own: CPython's
/// `multiprocessing.Process`, started with [`Context::process`].
///
/// The process ends when its task does (or when it is killed). Dropping the
/// handle of a [daemon](ProcessBuilder::daemon) kills the process; dropping
/// that of any other process waits for it to end.
///
/// ```no_run
/// # let context = wasmpool::Pool::builder().module_file("m.wasm").context()?;
/// let p = context.process("square").args((7,)).start()?;
/// p.join();
/// assert_eq!(p.exitcode(), Some(0));
/// assert_eq!(p.result::<i64>().unwrap()?, 49);
/// # Ok::<(), wasmpool::Error>(())
/// ```
pub struct Process {
    name: String,
    daemon: bool,
    worker: Arc<dyn ProcessWorker>,
    outcome: Arc<Outcome>,
    /// How the worker ended, once it was reaped.
    exit: Arc<Settled<Option<ExitStatus>>>,
    pool: Pool,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("daemon", &self.daemon)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl Process {
    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker process's pid (on NATS agents, its worker's there).
    pub fn pid(&self) -> u32 {
        self.worker.pid()
    }

    /// Whether the process is a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the process still runs: false once it has ended and its task
    /// has its outcome.
    pub fn is_alive(&self) -> bool {
        !(self.exit.get().is_some() && self.outcome.result.get().is_some())
    }

    /// Waits until the process has ended.
    pub fn join(&self) {
        self.wait(None);
    }

    /// Waits until the process has ended, at most `timeout`; returns whether
    /// it has. The process runs on either way.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.wait(Instant::now().checked_add(timeout))
    }

    fn wait(&self, deadline: Option<Instant>) -> bool {
        // The worker's slot settles the task right after it reaps the
        // worker, then ends.
        if self.exit.wait(deadline).is_none() || self.outcome.result.wait(deadline).is_none() {
            return false;
        }
        let _ = self.pool.join();
        true
    }

    /// Stops the process with SIGTERM, as CPython's `terminate`: the task
    /// fails with [`ErrorKind::WorkerLost`] and the exit code is `-15`.
    /// Nothing happens to a process that has ended.
    pub fn terminate(&self) {
        self.worker.signal(Signal::TERM);
    }

    /// Stops the process with SIGKILL: the task fails with
    /// [`ErrorKind::WorkerLost`] and the exit code is `-9`. Nothing happens
    /// to a process that has ended.
    pub fn kill(&self) {
        self.worker.signal(Signal::KILL);
    }

    /// The exit code, as CPython gives it: `None` while the process runs,
    /// `-N` if it was ended by signal N, `0` if its task succeeded, `1` if
    /// it failed (the worker's own exit status if it ended otherwise).
    pub fn exitcode(&self) -> Option<i32> {
        let status = *self.exit.get()?;
        let succeeded = self.outcome.result.get()?.is_ok();
        if let Some(signal) = status.and_then(|status| status.signal()) {
            return Some(-signal);
        }
        Some(match status.and_then(|status| status.code()) {
            Some(code) if code != 0 => code,
            _ if succeeded => 0,
            _ => 1,
        })
    }

    /// The task's result, once it has one (`None` before): what it
    /// returned, decoded as `R`, or why it failed.
    ///
    /// # Errors
    ///
    /// The task's failure (such as [`ErrorKind::Failed`], or
    /// [`ErrorKind::WorkerLost`] for a process killed under it), or
    /// [`ErrorKind::BadResult`] if the result does not decode as `R`.
    pub fn result<R: DeserializeOwned>(&self) -> Option<Result<R, Error>> {
        Some(match self.outcome.result.get()? {
            Ok(bytes) => decode(0, bytes),
            Err(err) => Err(err.clone()),
        })
    }

    /// The task's outcome as it came (its result encoded), once it has one.
    #[cfg(feature = "nats")]
    pub(crate) fn outcome(&self) -> Option<&Result<Vec<u8>, Error>> {
        self.outcome.result.get()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.daemon {
            self.kill();
        }
        self.join();
    }
}
