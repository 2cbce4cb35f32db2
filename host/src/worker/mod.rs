//! The worker process: speaks the protocol on its stdin and stdout and runs
//! batches on the task module.

pub(crate) mod backstop;
pub(crate) mod output;
mod sandbox;

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::engine::{self, Role};
use crate::error::{Error, ErrorKind};
use crate::ipc::{FrameReader, FrameWriter};
use crate::protocol::{self, FromWorker, ToWorker};
use crate::runtime::{Runner, RunnerConfig, epoch_tick};
use backstop::Backstop;

/// The environment variable that tells a process it was started as a worker.
pub(crate) const MARKER: &str = "WASMPOOL_WORKER";

/// The largest frame a worker accepts from its pool.
const FRAME_LIMIT: usize = 1 << 30;

/// The most descriptors a worker may have open.
const MAX_DESCRIPTORS: libc::rlim_t = 256;

/// Runs the worker to its end and returns the process exit code. `marker` is
/// the value of [`MARKER`]: the pid of the pool that started it.
pub(crate) fn main(marker: &std::ffi::OsStr) -> i32 {
    if let Err(err) = harden(marker) {
        eprintln!("wasmpool worker: cannot harden the process: {err}");
        return 3;
    }
    let (input, output) = match take_stdio() {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("wasmpool worker: cannot set up its channel: {err}");
            return 3;
        }
    };
    let mut reader = FrameReader::new(input, FRAME_LIMIT);
    let mut writer = FrameWriter::new(output);
    match serve(&mut reader, &mut writer) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("wasmpool worker {}: {err}", std::process::id());
            2
        }
    }
}

/// The first wall, before anything else runs: die with the pool, never gain
/// privileges, no core dumps, few descriptors, and none but the standard
/// three inherited.
fn harden(marker: &std::ffi::OsStr) -> std::io::Result<()> {
    let parent: libc::pid_t = marker
        .to_str()
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("{MARKER} is not a pid")))?;
    let check = |status: libc::c_int| {
        if status != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: prctl, getppid, setrlimit and close_range on this process.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        // The pool may have died before prctl took effect.
        if libc::getppid() != parent {
            std::process::exit(1);
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        for (resource, value) in [
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_NOFILE, MAX_DESCRIPTORS),
        ] {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            check(libc::setrlimit(resource, &limit))?;
        }
        // Descriptors the host left open (without close-on-exec) end here.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes stdin and stdout for the protocol, and points descriptors 0 and 1 at
/// /dev/null and stderr so that nothing else can write into the channel.
fn take_stdio() -> std::io::Result<(File, File)> {
    // SAFETY: dup and dup2 on the standard descriptors, which this process owns;
    // the duplicates are owned by the Files made from them.
    unsafe {
        let input = libc::dup(0);
        let output = libc::dup(1);
        if input < 0 || output < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let null = File::open("/dev/null")?;
        use std::os::fd::AsRawFd;
        if libc::dup2(null.as_raw_fd(), 0) < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((
            File::from(OwnedFd::from_raw_fd(input)),
            File::from(OwnedFd::from_raw_fd(output)),
        ))
    }
}

fn serve(reader: &mut FrameReader<File>, writer: &mut FrameWriter<File>) -> Result<(), String> {
    let pid = std::process::id();
    writer
        .send(&FromWorker::Hello {
            version: protocol::VERSION,
            pid,
        })
        .and_then(|()| writer.flush())
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
            writer
                .get_ref()
                .try_clone()
                .and_then(Backstop::start)
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
            backstop,
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
            writer
                .send(&FromWorker::Ready { tasks, escapes })
                .and_then(|()| writer.flush())
                .map_err(|err| err.to_string())?;
            runner
        }
        Err(error) => {
            let _ = writer
                .send(&FromWorker::SetupFailed { error })
                .and_then(|()| writer.flush());
            return Ok(());
        }
    };
    loop {
        match reader.read::<ToWorker>() {
            Ok(Some(ToWorker::Run(batch))) => {
                let (output, outcomes) = runtime.block_on(runner.run(
                    &batch.task,
                    batch.first_index,
                    &batch.args,
                    &batch.ends,
                ));
                for message in &output {
                    writer.send(message).map_err(|err| err.to_string())?;
                }
                writer
                    .send(&FromWorker::Done {
                        seq: batch.seq,
                        outcomes,
                    })
                    .map_err(|err| err.to_string())?;
                // Answer at once, even with the next batch waiting: the
                // pool hands out more work as answers come back.
                writer.flush().map_err(|err| err.to_string())?;
            }
            Ok(Some(ToWorker::Shutdown)) | Ok(None) => {
                writer.flush().map_err(|err| err.to_string())?;
                return Ok(());
            }
            Ok(Some(ToWorker::Setup(_))) => return Err("setup sent twice".into()),
            Err(err) => {
                let _ = writer.flush();
                return Err(format!("cannot read from the pool: {err}"));
            }
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
