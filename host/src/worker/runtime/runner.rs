//! [`Runner`]: runs batches of tasks on an instance that is renewed
//! whenever a task traps, times out or hits a limit — or after every task,
//! for a pool that gives each task a fresh instance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{AsContextMut, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::args::bind;
use crate::cache;
use crate::channel::{ArtifactFile, Call, Grants, Limits, ParamInfo, Stream, TaskInfo, bounds};
use crate::error::{Error, ErrorKind};
use crate::worker::backstop::Backstop;
use crate::worker::capture::Capture;
use crate::worker::inbox::Inbox;
use crate::worker::outbox::Outbox;

use super::bindings::{TaskModule, TaskModulePre};
use super::imports::{HostState, Reported, start_task};
use super::limits::{Clock, Limiter};
use super::linker::linker;
use super::traps::trap_error;

/// A live instance and the store it lives in.
struct Live {
    store: Store<HostState>,
    module: TaskModule,
}

/// Runs batches of tasks on one module, renewing its instance after a
/// failure that may have left it broken.
pub(crate) struct Runner {
    pre: TaskModulePre<HostState>,
    engine: Engine,
    pid: u32,
    output_limit: usize,
    max_memory: usize,
    initializer: Option<Call>,
    limits: Limits,
    grants: Grants,
    /// Every task on an instance of its own.
    fresh_instance: bool,
    backstop: Option<Backstop>,
    outbox: Arc<Outbox>,
    /// Set once the worker reads the pool's messages on a thread of its own.
    inbox: Arc<OnceLock<Arc<Inbox>>>,
    clock: Arc<Clock>,
    live: Option<Live>,
}

/// How often the epoch advances: a tenth of the shortest time limit, within
/// 1 ms and 100 ms.
pub(crate) fn epoch_tick(limits: &Limits) -> Duration {
    let shortest = [
        limits.task_timeout,
        Some(limits.startup_timeout),
        Some(limits.initializer_timeout),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(Duration::MAX);
    (shortest / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// Runs `stage`, which must be over within `limit`: stopped at the limit if
/// it yields (it does at every epoch tick when epoch checks are compiled
/// in), else ended by the backstop with the worker. `late` says it was not.
async fn within<F: Future>(
    backstop: &Option<Backstop>,
    limit: Duration,
    late: &Error,
    stage: F,
) -> Result<F::Output, Error> {
    arm(backstop, limit, late);
    let ended = tokio::time::timeout(limit, stage).await;
    disarm(backstop);
    ended.map_err(|_| late.clone())
}

/// Watches a stage that must be over within `limit`, if there is a backstop.
fn arm(backstop: &Option<Backstop>, limit: Duration, late: &Error) {
    if let Some(backstop) = backstop {
        backstop.arm(limit, late.clone());
    }
}

fn disarm(backstop: &Option<Backstop>) {
    if let Some(backstop) = backstop {
        backstop.disarm();
    }
}

/// What a worker needs to run a module, besides the module.
pub(crate) struct RunnerConfig {
    pub(crate) pid: u32,
    pub(crate) output_limit: usize,
    pub(crate) max_memory: usize,
    pub(crate) initializer: Option<Call>,
    pub(crate) limits: Limits,
    pub(crate) grants: Grants,
    /// Run every task on an instance of its own, thrown away after it.
    pub(crate) fresh_instance: bool,
    /// Ends the worker should the module be stuck outside a task where the
    /// runtime cannot stop it (in a worker; none in-process).
    pub(crate) backstop: Option<Backstop>,
    /// Where outcomes and output go.
    pub(crate) outbox: Arc<Outbox>,
}

impl Runner {
    /// A fresh state for an instance's guest imports: its captured output,
    /// its WASI context with what the pool grants, and its limits.
    fn host_state(&self) -> Result<HostState, Error> {
        let index = Arc::new(AtomicU64::new(0));
        let capture = |stream| {
            Capture::new(
                stream,
                self.output_limit,
                self.outbox.clone(),
                index.clone(),
            )
        };
        let (stdout, stderr) = (capture(Stream::Stdout), capture(Stream::Stderr));
        // Nothing is granted unless the pool says so: no files, no
        // environment, no arguments, no network. Clocks and randomness stay.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (name, value) in &self.grants.env {
            wasi.env(name, value);
        }
        for dir in &self.grants.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|err| {
                    Error::new(
                        ErrorKind::Config,
                        format!("cannot grant the directory {}: {err:#}", dir.host.display()),
                    )
                })?;
        }
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.max_memory,
            },
            pid: self.pid,
            index,
            outbox: self.outbox.clone(),
            inbox: self.inbox.clone(),
            reported: Reported::default(),
            stdout,
            stderr,
            clock: self.clock.clone(),
            limits: self.limits.clone(),
            last_answer: None,
            lifetime_objects: self.grants.objects.as_slice().into(),
            handed: Vec::new(),
            keeps_answers: self.limits.task_timeout.is_some() && self.grants.dirs.is_empty(),
        })
    }

    /// Loads the precompiled `artifact`.
    ///
    /// # Safety
    ///
    /// `artifact` must have been checked or written by [`crate::cache`] for
    /// an engine with the same settings as `engine`: loading it maps native
    /// code.
    pub(crate) unsafe fn load(
        engine: Engine,
        artifact: &ArtifactFile,
        config: RunnerConfig,
    ) -> Result<Self, Error> {
        // SAFETY: the caller vouches for the artifact.
        let component = unsafe { cache::load(&engine, artifact) }?;
        let linker =
            linker(&engine).map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(TaskModulePre::new)
            .map_err(|err| Error::new(ErrorKind::BadModule, format!("{err:#}")))?;
        Ok(Runner {
            pre,
            engine,
            pid: config.pid,
            output_limit: config.output_limit,
            max_memory: config.max_memory,
            initializer: config.initializer,
            limits: config.limits,
            grants: config.grants,
            fresh_instance: config.fresh_instance,
            backstop: config.backstop,
            outbox: config.outbox,
            inbox: Arc::default(),
            clock: Clock::new(),
            live: None,
        })
    }

    /// Throws the live instance away; the next call makes a fresh one.
    #[cfg(feature = "internals")]
    pub(crate) fn renew(&mut self) {
        self.live = None;
    }

    /// The tasks the module offers. `describe` must answer within the
    /// startup time limit.
    pub(crate) async fn describe(&mut self) -> Result<Vec<TaskInfo>, Error> {
        let limits = self.limits.clone();
        let backstop = self.backstop.clone();
        let max_payload = usize::try_from(limits.max_payload).unwrap_or(usize::MAX);
        let live = self.live().await?;
        let late = Error::new(
            ErrorKind::BadModule,
            format!(
                "`describe` did not return within {:?}",
                limits.startup_timeout
            ),
        );
        if limits.fuel.is_some() {
            // `describe` is no task: the fuel budget is each task's, and a
            // module with many tasks (and their defaults) may spend more on
            // listing them. Its time limit still holds; the next task's
            // budget is set when it starts.
            live.store
                .set_fuel(u64::MAX)
                .map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
        }
        let describe = live
            .module
            .wasmpool_task_tasks()
            .call_describe(&mut live.store);
        let Ok(described) = within(&backstop, limits.startup_timeout, &late, describe).await else {
            self.live = None;
            return Err(late);
        };
        let bad = |why: String| Error::new(ErrorKind::BadModule, why);
        match described {
            Ok(tasks) => {
                for task in &tasks {
                    bounds::check_name("a task", &task.name).map_err(bad)?;
                    for name in task.params.iter().filter_map(|param| param.name.as_deref()) {
                        bounds::check_name("a parameter", name).map_err(|why| {
                            bad(format!("the module's task `{}`: {why}", task.name))
                        })?;
                    }
                }
                let size: usize = tasks.iter().map(described_size).sum();
                if size > bounds::DESCRIPTION_BYTES {
                    return Err(bad(format!(
                        "the module's list of its tasks takes {size} bytes, over the limit \
                         of {} bytes",
                        bounds::DESCRIPTION_BYTES
                    )));
                }
                tasks
                    .into_iter()
                    .map(|task| {
                        let params: Vec<ParamInfo> = task
                            .params
                            .into_iter()
                            .map(|param| ParamInfo {
                                name: param.name,
                                default: param.default,
                            })
                            .collect();
                        bind::check_params(&params, max_payload).map_err(|why| {
                            bad(format!("the module's task `{}`: {why}", task.name))
                        })?;
                        Ok(TaskInfo {
                            name: task.name,
                            params,
                        })
                    })
                    .collect()
            }
            Err(err) => {
                self.live = None;
                Err(Error::new(
                    ErrorKind::BadModule,
                    format!(
                        "the module failed to list its tasks: {}",
                        trap_error(err, &limits)
                    ),
                ))
            }
        }
    }

    /// The live instance, made (and initialized) if there is none.
    async fn live(&mut self) -> Result<&mut Live, Error> {
        if self.live.is_none() {
            self.live = Some(self.instantiate().await?);
        }
        Ok(self.live.as_mut().expect("just made"))
    }

    fn new_store(&self) -> Result<Store<HostState>, Error> {
        let mut store = Store::new(&self.engine, self.host_state()?);
        store.limiter(|state| &mut state.limiter);
        if self.limits.task_timeout.is_some() {
            // Compiled with epoch checks: yield to the timers at every tick,
            // so whatever the module runs — its start, `describe`, the
            // initializer, a task — stops at its limit, even in a loop.
            store.epoch_deadline_async_yield_and_update(1);
        }
        if let Some(fuel) = self.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
        }
        Ok(store)
    }

    /// A fresh instance, started within the startup time limit and
    /// initialized within the initializer's.
    async fn instantiate(&mut self) -> Result<Live, Error> {
        let mut store = self.new_store()?;
        let startup = self.limits.startup_timeout;
        let late = Error::new(
            ErrorKind::BadModule,
            format!("instantiating the module did not finish within {startup:?}"),
        );
        let instantiate = self.pre.instantiate_async(&mut store);
        let module = within(&self.backstop, startup, &late, instantiate)
            .await?
            .map_err(|err| {
                let err = trap_error(err, &self.limits);
                Error::new(
                    ErrorKind::Initializer,
                    format!("cannot instantiate the module: {}", err.message()),
                )
            })?;
        let mut live = Live { store, module };
        if let Some(init) = self.initializer.clone() {
            let end = init.args.len() as u32;
            let limit = self.limits.initializer_timeout;
            let late = Error::new(
                ErrorKind::Initializer,
                format!(
                    "initializer `{}` did not return within {limit:?}",
                    init.task
                ),
            );
            arm(&self.backstop, limit, &late);
            live.store.data_mut().reported.initializing = true;
            let result = self
                .call(&mut live, &init.task, 0, &init.args, &[end], Some(limit))
                .await;
            disarm(&self.backstop);
            let reported = std::mem::take(&mut live.store.data_mut().reported);
            let failure = match (result, reported.initializer) {
                (Ok(()), Some(Ok(()))) => None,
                (_, Some(Err(err))) => Some(err),
                (Err(err), _) => Some(err),
                (Ok(()), None) => Some(Error::new(
                    ErrorKind::BadModule,
                    "the initializer reported no outcome",
                )),
            };
            if let Some(err) = failure {
                if err.kind() == ErrorKind::Timeout {
                    return Err(late);
                }
                return Err(Error::new(
                    ErrorKind::Initializer,
                    format!(
                        "initializer `{}` failed: {}: {}",
                        init.task,
                        err.kind(),
                        err.message()
                    ),
                ));
            }
        }
        Ok(live)
    }

    /// One guest call, stopped if a task runs longer than `limit`. Returns
    /// how the call ended (the error of the task that broke it); the outcomes
    /// the guest reported went to the outbox, and are counted in the state's
    /// `reported`.
    async fn call(
        &self,
        live: &mut Live,
        task: &str,
        first_index: u64,
        args: &[u8],
        ends: &[u32],
        limit: Option<Duration>,
    ) -> Result<(), Error> {
        let state = live.store.data_mut();
        state.index.store(first_index, Ordering::Relaxed);
        state.reported.tasks = 0;
        state.reported.panicked = false;
        state.last_answer = None;
        if limit.is_some() {
            self.clock.start_task();
        }
        let mut context = live.store.as_context_mut();
        if let Err(err) = start_task(&mut context) {
            return Err(Error::new(ErrorKind::Config, format!("{err:#}")));
        }
        let limits = &self.limits;
        let call = live.module.wasmpool_task_tasks().call_run(
            &mut live.store,
            task,
            first_index,
            args,
            ends,
        );
        match limit {
            None => call.await.map_err(|err| trap_error(err, limits)),
            Some(timeout) => {
                tokio::pin!(call);
                loop {
                    let Some(deadline) = self.clock.task_deadline(timeout) else {
                        // Too far away to reach: no limit after all.
                        break call.await.map_err(|err| trap_error(err, limits));
                    };
                    tokio::select! {
                        result = &mut call => break result.map_err(|err| trap_error(err, limits)),
                        () = tokio::time::sleep_until(deadline.into()) => {
                            // Still the same task past its deadline? (A new
                            // task moves the deadline.)
                            if self.clock.task_deadline(timeout).is_some_and(|d| d <= Instant::now()) {
                                break Err(Error::new(
                                    ErrorKind::Timeout,
                                    format!("the task ran longer than its limit of {timeout:?}"),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs a batch: every task gets one outcome, sent to the outbox as it is
    /// known. A task that breaks the instance fails; the rest of the batch
    /// goes on on a fresh one. With fresh instances, each call of the guest
    /// runs one task, on an instance made for it. `handed` says which shared
    /// objects each task may use, as (task index, object id).
    pub(crate) async fn run(
        &mut self,
        task: &str,
        first_index: u64,
        args: &[u8],
        ends: &[u32],
        handed: &[(u64, u64)],
    ) {
        let mut done = 0;
        while done < ends.len() {
            let mut live = match self.live.take() {
                Some(live) => live,
                None => match self.instantiate().await {
                    Ok(live) => live,
                    Err(err) => {
                        // Without an instance no task of the batch can run.
                        self.fail_tasks(first_index + done as u64, ends.len() - done, &err);
                        return;
                    }
                },
            };
            let base = if done == 0 { 0 } else { ends[done - 1] };
            let upto = if self.fresh_instance {
                done + 1
            } else {
                ends.len()
            };
            let rest: Vec<u32> = ends[done..upto].iter().map(|end| end - base).collect();
            let index = first_index + done as u64;
            let limit = self.limits.task_timeout;
            let state = live.store.data_mut();
            state.handed.clear();
            state.handed.extend_from_slice(handed);
            let result = self
                .call(&mut live, task, index, &args[base as usize..], &rest, limit)
                .await;
            let state = live.store.data_mut();
            done += state.reported.tasks;
            state.collect_output();
            match result {
                Ok(()) => {
                    if done < upto {
                        // The guest broke the contract; fail the rest
                        // rather than wait.
                        let error = Error::new(
                            ErrorKind::BadModule,
                            "the module returned without reporting every task of the batch",
                        );
                        self.fail_tasks(first_index + done as u64, upto - done, &error);
                        done = upto;
                    }
                    if !self.fresh_instance {
                        self.live = Some(live);
                    }
                }
                Err(err) => {
                    if err.kind() == ErrorKind::Timeout {
                        // Before the outcome: the caller who sees the
                        // timeout finds what the task did not use back.
                        state.give_back_unused_answer();
                    }
                    // A guest reports its panic, then aborts: the trap that
                    // follows is not another failure.
                    if !state.reported.panicked {
                        let index = first_index + done as u64;
                        let _ = self.outbox.err(err.with_index(index));
                        done += 1;
                    }
                    // No broken state reaches the next task: `live` is dropped.
                }
            }
        }
    }

    /// Fails the `count` tasks from `first_index` on with `error`.
    fn fail_tasks(&self, first_index: u64, count: usize, error: &Error) {
        for index in first_index..first_index + count as u64 {
            let _ = self.outbox.err(error.clone().with_index(index));
        }
    }

    /// Lets tasks call the host: their requests' replies come from `inbox`.
    pub(crate) fn answer_host_calls(&mut self, inbox: Arc<Inbox>) {
        let _ = self.inbox.set(inbox);
    }
}

/// Roughly how many bytes a task's entry in the module's description takes.
fn described_size(task: &super::bindings::wasmpool::task::types::TaskInfo) -> usize {
    let params: usize = task
        .params
        .iter()
        .map(|param| {
            let name = param.name.as_ref().map_or(0, String::len);
            name + param.default.as_ref().map_or(0, Vec::len) + 8
        })
        .sum();
    task.name.len() + params + 8
}
