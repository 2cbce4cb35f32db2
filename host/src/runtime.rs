//! The wasm side of a worker: the bindings of `wit/wasmpool.wit`, the linker
//! every task module is checked against, and running batches on an instance
//! that is renewed whenever it traps.

use serde_bytes::ByteBuf;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::{Error, ErrorKind, TrapDetails};
use crate::protocol::{Call, FromWorker, Outcome, Stream, TaskInfo};
use crate::worker::output::Capture;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "task-module",
    });
}

use bindings::wasmpool::task::types::{ErrorKind as GuestErrorKind, TaskError};
use bindings::{TaskModule, TaskModulePre};

/// The state a guest's imports work on.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pid: u32,
    /// The index of the task running now.
    index: u64,
    /// Outcomes reported by the guest during the current call.
    outcomes: Vec<Outcome>,
    /// The last outcome reported was a panic: the trap that follows is its abort.
    panicked: bool,
    stdout: Capture,
    stderr: Capture,
    /// Output of finished tasks, waiting to be sent.
    output: Vec<FromWorker>,
}

impl HostState {
    fn new(pid: u32, output_limit: usize) -> Self {
        let stdout = Capture::new(output_limit);
        let stderr = Capture::new(output_limit);
        // Nothing is granted: no files, no environment, no arguments, no
        // network. Clocks and randomness stay.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            pid,
            index: 0,
            outcomes: Vec::new(),
            panicked: false,
            stdout,
            stderr,
            output: Vec::new(),
        }
    }

    /// Moves what the running task wrote into `output`, attributed to it.
    fn collect_output(&mut self) {
        for (stream, capture) in [
            (Stream::Stdout, &self.stdout),
            (Stream::Stderr, &self.stderr),
        ] {
            if let Some((bytes, truncated)) = capture.drain() {
                self.output.push(FromWorker::Output {
                    index: self.index,
                    stream,
                    bytes: ByteBuf::from(bytes),
                    truncated,
                });
            }
        }
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

impl bindings::wasmpool::task::types::Host for HostState {}

impl bindings::wasmpool::task::context::Host for HostState {
    fn worker_pid(&mut self) -> u32 {
        self.pid
    }

    fn task_index(&mut self) -> u64 {
        self.index
    }
}

impl bindings::wasmpool::task::outcomes::Host for HostState {
    fn finish(&mut self, outcome: Result<Vec<u8>, TaskError>) {
        self.collect_output();
        let index = self.index;
        self.panicked = matches!(&outcome, Err(err) if err.kind == GuestErrorKind::Panic);
        self.outcomes.push(match outcome {
            Ok(bytes) => Ok(ByteBuf::from(bytes)),
            Err(err) => Err(guest_error(err).with_index(index)),
        });
        self.index += 1;
    }
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
/// wasmpool imports.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    TaskModule::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
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
fn trap_error(err: wasmtime::Error) -> Error {
    let code = err
        .downcast_ref::<Trap>()
        .map(|trap| trap_code(*trap).to_string());
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
    let message = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    Error::trap(message, TrapDetails { code, backtrace })
}

/// A live instance and the store it lives in.
struct Live {
    store: Store<HostState>,
    module: TaskModule,
}

/// Runs batches of tasks on one module, renewing its instance after a trap.
pub(crate) struct Runner {
    pre: TaskModulePre<HostState>,
    engine: Engine,
    pid: u32,
    output_limit: usize,
    initializer: Option<Call>,
    live: Option<Live>,
}

impl Runner {
    /// Loads the precompiled `artifact`.
    ///
    /// # Safety
    ///
    /// `artifact` must have been written by [`crate::module`] for an engine with
    /// the same settings as `engine`: loading it maps native code.
    pub(crate) unsafe fn load(
        engine: Engine,
        artifact: &std::path::Path,
        pid: u32,
        output_limit: usize,
        initializer: Option<Call>,
    ) -> Result<Self, Error> {
        // SAFETY: the caller vouches for the artifact.
        let component =
            unsafe { Component::deserialize_file(&engine, artifact) }.map_err(|err| {
                Error::new(
                    ErrorKind::BadModule,
                    format!(
                        "cannot load the compiled module {}: {err:#}",
                        artifact.display()
                    ),
                )
            })?;
        let linker =
            linker(&engine).map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(TaskModulePre::new)
            .map_err(|err| Error::new(ErrorKind::BadModule, format!("{err:#}")))?;
        Ok(Runner {
            pre,
            engine,
            pid,
            output_limit,
            initializer,
            live: None,
        })
    }

    /// The tasks the module offers.
    pub(crate) fn describe(&mut self) -> Result<Vec<TaskInfo>, Error> {
        let live = self.live()?;
        match live
            .module
            .wasmpool_task_tasks()
            .call_describe(&mut live.store)
        {
            Ok(tasks) => Ok(tasks
                .into_iter()
                .map(|task| TaskInfo {
                    name: task.name,
                    arity: task.arity,
                })
                .collect()),
            Err(err) => {
                self.live = None;
                Err(Error::new(
                    ErrorKind::BadModule,
                    format!("the module failed to list its tasks: {}", trap_error(err)),
                ))
            }
        }
    }

    /// The live instance, made (and initialized) if there is none.
    fn live(&mut self) -> Result<&mut Live, Error> {
        if self.live.is_none() {
            self.live = Some(self.instantiate()?);
        }
        Ok(self.live.as_mut().expect("just made"))
    }

    fn instantiate(&mut self) -> Result<Live, Error> {
        let mut store = Store::new(&self.engine, HostState::new(self.pid, self.output_limit));
        let module = self.pre.instantiate(&mut store).map_err(|err| {
            Error::new(
                ErrorKind::Initializer,
                format!("cannot instantiate the module: {err:#}"),
            )
        })?;
        let mut live = Live { store, module };
        if let Some(init) = &self.initializer {
            let end = init.args.len() as u32;
            let result = live.module.wasmpool_task_tasks().call_run(
                &mut live.store,
                &init.task,
                0,
                &init.args,
                &[end],
            );
            let state = live.store.data_mut();
            let reported = std::mem::take(&mut state.outcomes);
            let output = std::mem::take(&mut state.output);
            let failure = match (result, reported.into_iter().next()) {
                (Ok(()), Some(Ok(_))) => None,
                (_, Some(Err(err))) => Some(err),
                (Err(err), _) => Some(trap_error(err)),
                (Ok(()), None) => Some(Error::new(
                    ErrorKind::BadModule,
                    "the initializer reported no outcome",
                )),
            };
            if let Some(err) = failure {
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
            // The initializer's output belongs to no task; keep it for the next.
            live.store.data_mut().output = output;
        }
        Ok(live)
    }

    /// Runs a batch, one outcome per task, and returns the output the tasks
    /// wrote along with the outcomes.
    pub(crate) fn run(
        &mut self,
        task: &str,
        first_index: u64,
        args: &[u8],
        ends: &[u32],
    ) -> (Vec<FromWorker>, Vec<Outcome>) {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(ends.len());
        let mut output = Vec::new();
        while outcomes.len() < ends.len() {
            let done = outcomes.len();
            let index = first_index + done as u64;
            let live = match self.live() {
                Ok(live) => live,
                Err(err) => {
                    // Without an instance no task of the batch can run.
                    for i in done..ends.len() {
                        outcomes.push(Err(err.clone().with_index(first_index + i as u64)));
                    }
                    break;
                }
            };
            let base = if done == 0 { 0 } else { ends[done - 1] };
            let rest: Vec<u32> = ends[done..].iter().map(|end| end - base).collect();
            let state = live.store.data_mut();
            state.index = index;
            state.panicked = false;
            state.outcomes = std::mem::take(&mut outcomes);
            let result = live.module.wasmpool_task_tasks().call_run(
                &mut live.store,
                task,
                index,
                &args[base as usize..],
                &rest,
            );
            let state = live.store.data_mut();
            outcomes = std::mem::take(&mut state.outcomes);
            let panicked = state.panicked;
            match result {
                Ok(()) if outcomes.len() == ends.len() => {}
                Ok(()) => {
                    // The guest broke the contract; fail the rest rather than wait.
                    let message = "the module returned without reporting every task of the batch";
                    for i in outcomes.len()..ends.len() {
                        outcomes.push(Err(Error::new(ErrorKind::BadModule, message)
                            .with_index(first_index + i as u64)));
                    }
                }
                Err(err) => {
                    live.store.data_mut().collect_output();
                    if !panicked {
                        let index = first_index + outcomes.len() as u64;
                        outcomes.push(Err(trap_error(err).with_index(index)));
                    }
                    output.append(&mut live.store.data_mut().output);
                    // No broken state reaches the next task.
                    self.live = None;
                    continue;
                }
            }
            output.append(&mut live.store.data_mut().output);
        }
        (output, outcomes)
    }
}
