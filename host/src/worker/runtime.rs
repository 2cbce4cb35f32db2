//! The wasm side of a worker: the bindings of `wit/wasmpool.wit`, the linker
//! every task module is checked against, and running batches on an instance
//! that is renewed whenever a task traps, times out or hits a limit. Each
//! task's outcome goes to the [`Outbox`] as the guest reports it; a host call
//! goes out as a request and waits for its reply from the [`Inbox`].
//!
//! Guest calls are async, so a task that overruns its time limit is stopped
//! wherever it is: in a loop (epoch interruption yields to the timer) or
//! blocked in a host call such as a sleep (its future is dropped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, WasmList};
use wasmtime::{
    AsContextMut, Engine, ResourceLimiter, Store, StoreContextMut, Trap, WasmBacktrace,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::args::bind;
use crate::cache;
use crate::channel::{
    ArtifactFile, Call, Failure, FromWorker, Grants, Limits, ParamInfo, Stream, TaskInfo,
};
use crate::error::{Error, ErrorKind, TrapDetails};
use crate::worker::backstop::Backstop;
use crate::worker::capture::Capture;
use crate::worker::inbox::Inbox;
use crate::worker::outbox::Outbox;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "task-module",
        imports: {
            "wasmpool:task/host.call": async,
            "wasmpool:task/objects.invoke": async,
        },
        exports: { default: async },
    });
}

use bindings::wasmpool::task::objects::ObjectError;
use bindings::wasmpool::task::types::{ErrorKind as GuestErrorKind, TaskError};
use bindings::{TaskModule, TaskModulePre};

/// The task's memory grew past the limit.
#[derive(Debug)]
struct MemoryLimitExceeded {
    limit: usize,
    desired: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the task's memory would grow to {} bytes, over the limit of {} bytes",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Refuses linear memory beyond the limit, with an error that says so.
struct Limiter {
    max_memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.max_memory,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// When the running task started, shared with the timer that enforces the
/// time limit while the store is busy.
#[derive(Debug)]
struct Clock {
    origin: Instant,
    /// Nanoseconds from `origin` to the start of the running task.
    task_started: AtomicU64,
}

impl Clock {
    fn new() -> Arc<Self> {
        Arc::new(Clock {
            origin: Instant::now(),
            task_started: AtomicU64::new(0),
        })
    }

    fn start_task(&self) {
        let now = self.origin.elapsed().as_nanos() as u64;
        self.task_started.store(now, Ordering::SeqCst);
    }

    /// When the running task must stop; `None` if that is too far away to
    /// reach (a timeout of `Duration::MAX` means no limit).
    fn task_deadline(&self, timeout: Duration) -> Option<Instant> {
        let started = Duration::from_nanos(self.task_started.load(Ordering::SeqCst));
        self.origin.checked_add(started)?.checked_add(timeout)
    }
}

/// The state a guest's imports work on.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pid: u32,
    /// The index of the task running now, which its output is attributed to.
    index: Arc<AtomicU64>,
    /// Where outcomes and output go.
    outbox: Arc<Outbox>,
    /// Where the replies to host calls come from; unset in-process.
    inbox: Arc<OnceLock<Arc<Inbox>>>,
    /// The id of the next host call.
    next_call: u64,
    /// What the guest reported during the current call.
    reported: Reported,
    stdout: Capture,
    stderr: Capture,
    clock: Arc<Clock>,
    limits: Limits,
}

/// What a guest reported during one call.
#[derive(Debug, Default)]
struct Reported {
    /// Tasks whose outcome was sent on.
    tasks: usize,
    /// The last of them panicked (a guest reports its panic, then aborts).
    panicked: bool,
    /// The initializer's outcome, when the call runs it: it is no task of a
    /// batch, so it is kept here rather than sent.
    initializer: Option<Result<(), Error>>,
    /// The call runs the initializer.
    initializing: bool,
}

impl HostState {
    fn new(runner: &Runner) -> Result<Self, Error> {
        let index = Arc::new(AtomicU64::new(0));
        let capture = |stream| {
            Capture::new(
                stream,
                runner.output_limit,
                runner.outbox.clone(),
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
        for (name, value) in &runner.grants.env {
            wasi.env(name, value);
        }
        for dir in &runner.grants.dirs {
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
                max_memory: runner.max_memory,
            },
            pid: runner.pid,
            index,
            outbox: runner.outbox.clone(),
            inbox: runner.inbox.clone(),
            next_call: 0,
            reported: Reported::default(),
            stdout,
            stderr,
            clock: runner.clock.clone(),
            limits: runner.limits.clone(),
        })
    }

    /// The index of the task running now.
    fn index(&self) -> u64 {
        self.index.load(Ordering::Relaxed)
    }

    /// Sends what is left of the running task's output on (whole lines went
    /// as they were written), ahead of its outcome.
    fn collect_output(&self) {
        self.stdout.end_task();
        self.stderr.end_task();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::wasmpool::task::context::Host for HostState {
    fn worker_pid(&mut self) -> u32 {
        self.pid
    }

    fn task_index(&mut self) -> u64 {
        self.index()
    }
}

impl HostState {
    /// Sends `request` (a call numbered `call`) to the pool and waits for
    /// its reply. The wait is a future: the task's time limit still stops it
    /// (dropping the future), and a reply that comes after is dropped by the
    /// inbox.
    async fn ask(&mut self, call: u64, request: FromWorker) -> Result<ByteBuf, Failure> {
        let gone = || Failure::Refused("the pool is gone".into());
        let Some(inbox) = self.inbox.get() else {
            return Err(Failure::Refused(
                "no pool to call: this module runs outside a pool".into(),
            ));
        };
        let reply = inbox.expect_reply(call);
        if self.outbox.send_now(&request).is_err() {
            return Err(gone());
        }
        inbox.reply(reply).await.unwrap_or_else(|| Err(gone()))
    }

    /// Numbers the next call; refuses arguments over the payload limit.
    fn next_call(&mut self, what: &str, args: &[u8]) -> Result<u64, Failure> {
        let limit = self.limits.max_payload;
        if args.len() as u64 > limit {
            return Err(Failure::Refused(format!(
                "the arguments of {what} take {} bytes, over the payload limit of {limit} bytes",
                args.len()
            )));
        }
        let call = self.next_call;
        self.next_call += 1;
        Ok(call)
    }
}

impl bindings::wasmpool::task::host::Host for HostState {
    /// Sends the call to the pool and waits for the reply.
    async fn call(&mut self, name: String, args: Vec<u8>) -> Result<Vec<u8>, String> {
        let call = self
            .next_call(&format!("host function `{name}`"), &args)
            .map_err(|failure| failure.to_string())?;
        let request = FromWorker::Request {
            call,
            index: self.index(),
            name,
            args: ByteBuf::from(args),
        };
        match self.ask(call, request).await {
            Ok(result) => Ok(result.into_vec()),
            Err(failure) => Err(failure.to_string()),
        }
    }
}

/// Tells the pool that a call's task stopped waiting for it, unless the call
/// was answered: dropped with the future of a task its time limit stopped.
struct Waiting<'a> {
    outbox: &'a Outbox,
    call: u64,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self
                .outbox
                .send_now(&FromWorker::Cancel { call: self.call });
        }
    }
}

impl bindings::wasmpool::task::objects::Host for HostState {
    /// Sends the operation to the pool and waits for the reply; a task
    /// stopped meanwhile cancels the wait on the pool's side.
    async fn invoke(
        &mut self,
        object: u64,
        op: String,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, ObjectError> {
        let call = self
            .next_call(&format!("`{op}` of object {object}"), &args)
            .map_err(object_error)?;
        let request = FromWorker::Invoke {
            call,
            index: self.index(),
            object,
            op,
            args: ByteBuf::from(args),
        };
        let outbox = self.outbox.clone();
        let mut waiting = Waiting {
            outbox: &outbox,
            call,
            answered: false,
        };
        let reply = self.ask(call, request).await;
        waiting.answered = true;
        reply.map(ByteBuf::into_vec).map_err(object_error)
    }
}

fn object_error(failure: Failure) -> ObjectError {
    match failure {
        Failure::Refused(why) => ObjectError::Refused(why),
        Failure::TimedOut => ObjectError::TimedOut,
        Failure::Closed(why) => ObjectError::Closed(why),
    }
}

/// Starts the clock and the fuel budget of the next task, where limits need
/// them.
fn start_task(store: &mut StoreContextMut<'_, HostState>) -> wasmtime::Result<()> {
    let limits = &store.data().limits;
    if limits.task_timeout.is_some() {
        store.data().clock.start_task();
    }
    if let Some(fuel) = store.data().limits.fuel {
        store.set_fuel(fuel)?;
    }
    Ok(())
}

/// `outcomes.finish`: sends a task's outcome on (after what it wrote) and
/// starts the next task. The result is copied from the guest's memory
/// straight into the outbox.
fn finish(
    mut store: StoreContextMut<'_, HostState>,
    (outcome,): (Result<WasmList<u8>, TaskError>,),
) -> wasmtime::Result<()> {
    store.data_mut().collect_output();
    let max_payload = store.data().limits.max_payload;
    let outcome = match outcome {
        Ok(list) => {
            let result = list.as_le_slice(&store);
            if result.len() as u64 > max_payload {
                Err(Error::new(
                    ErrorKind::BadResult,
                    format!(
                        "the result takes {} bytes, over the payload limit of {max_payload} bytes",
                        result.len()
                    ),
                ))
            } else if store.data().reported.initializing {
                Ok(None)
            } else {
                // Sent from the guest's memory: no copy of the result first.
                // A broken channel ends the worker at the end of the batch.
                let _ = store.data().outbox.ok(result);
                Ok(Some(()))
            }
        }
        Err(err) => Err(guest_error(err)),
    };
    let state = store.data_mut();
    let index = state.index();
    let reported = &mut state.reported;
    reported.panicked = matches!(&outcome, Err(err) if err.kind() == ErrorKind::Panic);
    if reported.initializing {
        reported.initializer.get_or_insert(outcome.map(drop));
    } else {
        reported.tasks += 1;
        if let Err(err) = outcome {
            let _ = state.outbox.err(err.with_index(index));
        }
    }
    state.index.fetch_add(1, Ordering::Relaxed);
    start_task(&mut store)
}

fn guest_error(err: TaskError) -> Error {
    let kind = match err.kind {
        GuestErrorKind::Failed => ErrorKind::Failed,
        GuestErrorKind::Panic => ErrorKind::Panic,
        GuestErrorKind::BadArguments => ErrorKind::BadArguments,
        GuestErrorKind::UnknownTask => ErrorKind::UnknownTask,
        GuestErrorKind::BadResult => ErrorKind::BadResult,
    };
    Error::new(kind, err.message)
}

/// The linker every task module is instantiated with: WASI 0.2 and the
/// wasmpool imports (`context`, `host`, `objects` and `outcomes`).
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::wasmpool::task::context::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    bindings::wasmpool::task::host::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    bindings::wasmpool::task::objects::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    // `finish` needs the store itself, to restart the clock and the fuel.
    linker
        .instance("wasmpool:task/outcomes@0.2.0")?
        .func_wrap("finish", finish)?;
    Ok(linker)
}

/// Checks that `component` implements the wasmpool world, without running it.
pub(crate) fn check(engine: &Engine, component: &Component) -> Result<(), Error> {
    let linker = linker(engine).map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
    let pre = linker.instantiate_pre(component).map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("the module needs imports wasmpool does not provide: {err:#}"),
        )
    })?;
    TaskModulePre::new(pre).map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("the module does not implement the wasmpool task-module world: {err:#}"),
        )
    })?;
    Ok(())
}

/// A short, stable name for a trap code.
fn trap_code(trap: Trap) -> &'static str {
    match trap {
        Trap::UnreachableCodeReached => "unreachable",
        Trap::StackOverflow => "stack overflow",
        Trap::MemoryOutOfBounds => "out-of-bounds memory access",
        Trap::HeapMisaligned => "misaligned memory access",
        Trap::TableOutOfBounds => "out-of-bounds table access",
        Trap::IndirectCallToNull => "indirect call to null",
        Trap::BadSignature => "indirect call type mismatch",
        Trap::IntegerOverflow => "integer overflow",
        Trap::IntegerDivisionByZero => "integer division by zero",
        Trap::BadConversionToInteger => "invalid conversion to integer",
        Trap::Interrupt => "interrupt",
        Trap::OutOfFuel => "out of fuel",
        Trap::NullReference => "null reference",
        Trap::AllocationTooLarge => "allocation too large",
        _ => "other",
    }
}

/// Turns a failed guest call into the error of the task that was running.
fn trap_error(err: wasmtime::Error, limits: &Limits) -> Error {
    if let Some(exceeded) = err.downcast_ref::<MemoryLimitExceeded>() {
        return Error::new(ErrorKind::MemoryLimit, exceeded.to_string());
    }
    let trap = err.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        let fuel = limits.fuel.unwrap_or_default();
        return Error::new(
            ErrorKind::OutOfFuel,
            format!("the task used up its fuel budget of {fuel}"),
        );
    }
    let backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .map(|trace| {
            trace
                .frames()
                .iter()
                .map(|frame| match frame.func_name() {
                    Some(name) => name.to_string(),
                    None => format!(
                        "{}!<wasm function {}>",
                        frame.module().name().unwrap_or("<module>"),
                        frame.func_index()
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    let message = match trap {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    Error::trap(
        message,
        TrapDetails {
            code: trap.map(|trap| trap_code(trap).to_string()),
            backtrace,
        },
    )
}

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
    /// Ends the worker should the module be stuck outside a task where the
    /// runtime cannot stop it (in a worker; none in-process).
    pub(crate) backstop: Option<Backstop>,
    /// Where outcomes and output go.
    pub(crate) outbox: Arc<Outbox>,
}

impl Runner {
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
        match described {
            Ok(tasks) => tasks
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
                        Error::new(
                            ErrorKind::BadModule,
                            format!("the module's task `{}`: {why}", task.name),
                        )
                    })?;
                    Ok(TaskInfo {
                        name: task.name,
                        params,
                    })
                })
                .collect(),
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
        let mut store = Store::new(&self.engine, HostState::new(self)?);
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
    /// goes on on a fresh one.
    pub(crate) async fn run(&mut self, task: &str, first_index: u64, args: &[u8], ends: &[u32]) {
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
            let rest: Vec<u32> = ends[done..].iter().map(|end| end - base).collect();
            let index = first_index + done as u64;
            let limit = self.limits.task_timeout;
            let result = self
                .call(&mut live, task, index, &args[base as usize..], &rest, limit)
                .await;
            let state = live.store.data_mut();
            done += state.reported.tasks;
            state.collect_output();
            match result {
                Ok(()) => {
                    if done < ends.len() {
                        // The guest broke the contract; fail the rest
                        // rather than wait.
                        let error = Error::new(
                            ErrorKind::BadModule,
                            "the module returned without reporting every task of the batch",
                        );
                        self.fail_tasks(first_index + done as u64, ends.len() - done, &error);
                        done = ends.len();
                    }
                    self.live = Some(live);
                }
                Err(err) => {
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
