//! The worker process — everything that runs in the child: it hardens
//! itself ([`harden`]), speaks the channel on its stdin ([`inbox`]) and
//! stdout ([`outbox`]), runs batches on the task module ([`runtime`]), and
//! seals itself in ([`sandbox`]) once the module is loaded.
//!
//! A task's walk through a worker: the main thread, idle, reads its batch
//! off the inbox's pipe, runs it on the module's instance
//! (`runtime::Runner::run`), and each task's outcome goes to the outbox as
//! the guest reports it, from where it streams to the pool. While the batch
//! runs, the [`ticker`] writes out the outcomes that wait and reads what the
//! pool sends meanwhile.

pub(crate) mod backstop;
mod capture;
mod harden;
pub(crate) mod inbox;
pub(crate) mod outbox;
pub(crate) mod runtime;
mod sandbox;
mod ticker;

use std::fs::File;
use std::sync::Arc;

use crate::channel::codec::FRAME_LIMIT;
use crate::channel::io::FrameReader;
use crate::channel::{self, FromWorker, ToWorker, bounds};
use crate::engine::{self, Role};
use crate::error::{Error, ErrorKind};
use backstop::Backstop;
use inbox::{Inbox, Next};
use outbox::Outbox;
use runtime::{Runner, RunnerConfig, epoch_tick};
use ticker::Ticker;

/// The environment variable that tells a process it was started as a worker.
pub(crate) const MARKER: &str = "WASMPOOL_WORKER";

/// Runs the worker to its end and returns the process exit code. `marker` is
/// the value of [`MARKER`]: the pid of the pool that started it.
pub(crate) fn main(marker: &std::ffi::OsStr) -> i32 {
    if let Err(err) = harden::harden(marker) {
        eprintln!("wasmpool worker: cannot harden the process: {err}");
        return 3;
    }
    let (input, output) = match harden::take_stdio() {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("wasmpool worker: cannot set up its channel: {err}");
            return 3;
        }
    };
    let outbox = Arc::new(Outbox::new(Box::new(output)));
    let served = converse(FrameReader::new(input, FRAME_LIMIT), &outbox);
    let closed = outbox.flush();
    match served.and_then(|()| closed.map_err(|err| err.to_string())) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("wasmpool worker {}: {err}", std::process::id());
            2
        }
    }
}

/// Greets the pool, loads the module, then runs batches until told to stop.
fn converse(mut reader: FrameReader<File>, outbox: &Arc<Outbox>) -> Result<(), String> {
    let pid = std::process::id();
    outbox
        .send_now(&FromWorker::Hello {
            version: channel::VERSION,
            pid,
        })
        .map_err(|err| format!("cannot greet the pool: {err}"))?;
    let setup = match reader.read::<ToWorker>() {
        Ok(Some(ToWorker::Setup(setup))) => setup,
        Ok(Some(other)) => return Err(format!("expected setup, got {other:?}")),
        Ok(None) => return Ok(()),
        Err(err) => return Err(format!("cannot read the setup: {err}")),
    };
    // With a task time limit, epoch checks stop whatever the module runs;
    // only without them does a stage need the backstop.
    let backstop = match setup.limits.task_timeout {
        Some(_) => None,
        None => Some(
            Backstop::start(outbox.clone())
                .map_err(|err| format!("cannot start the backstop thread: {err}"))?,
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let runner = engine::engine(&setup.engine, Role::Run).and_then(|engine| {
        if setup.limits.task_timeout.is_some() {
            start_epoch_ticker(engine.clone(), epoch_tick(&setup.limits))?;
        }
        let config = RunnerConfig {
            pid,
            output_limit: setup.output_limit as usize,
            max_memory: setup.engine.max_memory as usize,
            initializer: setup.initializer.clone(),
            limits: setup.limits.clone(),
            grants: setup.grants.clone(),
            fresh_instance: setup.fresh_instance,
            backstop,
            outbox: outbox.clone(),
        };
        // SAFETY: the pool checked or wrote this artifact with an engine of the same settings.
        unsafe { Runner::load(engine, &setup.artifact, config) }
    });
    let described = runner.and_then(|mut runner| {
        let tasks = runtime.block_on(runner.describe())?;
        sandbox::enter(&setup.grants)?;
        let escapes = if setup.probe_sandbox {
            sandbox::probe(&setup.grants)
        } else {
            Vec::new()
        };
        Ok((runner, tasks, escapes))
    });
    let mut runner = match described {
        Ok((runner, tasks, escapes)) => {
            outbox
                .send_now(&FromWorker::Ready { tasks, escapes })
                .map_err(|err| err.to_string())?;
            runner
        }
        Err(error) => {
            let error = bounds::bounded(error);
            let _ = outbox.send_now(&FromWorker::SetupFailed { error });
            return Ok(());
        }
    };
    let (input, unread) = reader.into_parts();
    let inbox = {
        let _entered = runtime.enter();
        Inbox::new(input, unread, outbox.clone())
            .map_err(|err| format!("cannot wait on the channel from the pool: {err}"))?
    };
    let ticker = Ticker::start(outbox.clone(), inbox.clone())
        .map_err(|err| format!("cannot start the ticker thread: {err}"))?;
    runner.answer_host_calls(inbox.clone());
    loop {
        match runtime.block_on(inbox.next()) {
            Next::Run(batch) => {
                outbox.begin(batch.seq);
                ticker.begin();
                runtime.block_on(runner.run(
                    &batch.task,
                    batch.first_index,
                    &batch.args,
                    &batch.ends,
                    &batch.handed,
                ));
                ticker.end();
                outbox.flush().map_err(|err| err.to_string())?;
            }
            Next::Shutdown => return Ok(()),
            Next::Failed(why) => return Err(why),
        }
    }
}

/// Advances the engine's epoch every `tick`, so that a task past its time
/// limit is interrupted even in a loop that never calls the host.
fn start_epoch_ticker(engine: wasmtime::Engine, tick: std::time::Duration) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("wasmpool-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .map(drop)
        .map_err(|err| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot start the epoch thread: {err}"),
            )
        })
}
