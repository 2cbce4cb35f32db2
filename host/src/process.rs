//! A worker process seen from the pool: started with exec, greeted, fed
//! batches, read by a thread of its own, and always reaped.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};

use crate::error::{Error, ErrorKind};
use crate::ipc::{FrameReader, FrameWriter};
use crate::protocol::{self, FromWorker, Setup, TaskInfo, ToWorker};
use crate::worker::MARKER;

/// The largest frame the pool accepts from a worker.
pub(crate) const FRAME_LIMIT: usize = 1 << 30;

/// How long a new worker has to greet the pool and load its module.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker told to shut down has before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What it takes to start a worker.
#[derive(Clone, Debug)]
pub(crate) struct SpawnConfig {
    pub(crate) program: PathBuf,
    pub(crate) setup: Setup,
}

/// What the reader thread reports.
pub(crate) enum Event {
    Message(FromWorker),
    /// The channel ended: the worker exited or broke the protocol.
    Closed(Option<String>),
}

/// A running worker process.
pub(crate) struct WorkerProcess {
    child: Child,
    pid: u32,
    writer: FrameWriter<ChildStdin>,
    pub(crate) events: Receiver<Event>,
    reaped: Option<ExitStatus>,
}

impl WorkerProcess {
    /// Starts a worker process and sends its setup at once, without waiting
    /// for its greeting: it loads its module while the pool goes on.
    /// [`handshake`](Self::handshake) then waits for it to be ready.
    pub(crate) fn start(config: &SpawnConfig) -> Result<Self, Error> {
        let mut command = Command::new(&config.program);
        command
            .env_clear()
            // The worker hardens itself first thing (see `worker::harden`),
            // checking it is still this process's child; with no pre-exec
            // hook, std starts it with posix_spawn rather than fork.
            .env(MARKER, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().map_err(|err| {
            Error::new(
                ErrorKind::Spawn,
                format!(
                    "cannot start the worker program {}: {err}",
                    config.program.display()
                ),
            )
        })?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, events) = unbounded();
        let reader = thread::Builder::new()
            .name(format!("wasmpool-reader-{pid}"))
            .spawn(move || {
                let mut reader = FrameReader::new(stdout, FRAME_LIMIT);
                loop {
                    match reader.read::<FromWorker>() {
                        Ok(Some(message)) => {
                            if tx.send(Event::Message(message)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            let _ = tx.send(Event::Closed(None));
                            return;
                        }
                        Err(err) => {
                            let _ = tx.send(Event::Closed(Some(err.to_string())));
                            return;
                        }
                    }
                }
            });
        let mut worker = WorkerProcess {
            child,
            pid,
            writer: FrameWriter::new(stdin),
            events,
            reaped: None,
        };
        if let Err(err) = reader {
            worker.kill();
            return Err(Error::new(
                ErrorKind::Spawn,
                format!("cannot start a reader thread: {err}"),
            ));
        }
        // The pipe holds the setup until the worker reads it, after its
        // greeting. Should the program not be a worker, the write may fail;
        // the handshake then says what the program did instead.
        let _ = worker
            .writer
            .send(&ToWorker::Setup(config.setup.clone()))
            .and_then(|()| worker.writer.flush());
        Ok(worker)
    }

    /// Waits until the worker is ready; returns the tasks its module offers.
    pub(crate) fn handshake(&mut self, config: &SpawnConfig) -> Result<Vec<TaskInfo>, Error> {
        let program = config.program.display().to_string();
        let hint = "is it a wasmpool worker? A program that builds pools must call \
                    wasmpool::init() first thing in main, or set PoolBuilder::worker_program";
        match self.next_event(&program, hint)? {
            FromWorker::Hello { version, .. } if version == protocol::VERSION => {}
            FromWorker::Hello { version, .. } => {
                return Err(self.fail(format!(
                    "worker {program} speaks protocol version {version}, this pool {}",
                    protocol::VERSION
                )));
            }
            other => return Err(self.fail(format!("worker {program} said {other:?} before hello"))),
        }
        match self.next_event(&program, "")? {
            FromWorker::Ready { tasks, escapes } if escapes.is_empty() => Ok(tasks),
            FromWorker::Ready { escapes, .. } => {
                self.kill();
                Err(Error::new(
                    ErrorKind::Spawn,
                    format!(
                        "the worker sandbox does not hold on this machine: {}",
                        escapes.join("; ")
                    ),
                ))
            }
            FromWorker::SetupFailed { error } => {
                self.kill();
                Err(error)
            }
            other => Err(self.fail(format!("worker {program} said {other:?} instead of ready"))),
        }
    }

    fn next_event(&mut self, program: &str, hint: &str) -> Result<FromWorker, Error> {
        match self.events.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Event::Message(message)) => Ok(message),
            Ok(Event::Closed(reason)) => {
                let status = self.wait();
                let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                Err(self.fail(format!(
                    "worker {program} {} during its handshake{reason}; {hint}",
                    describe_status(status)
                )))
            }
            Err(RecvTimeoutError::Timeout) => Err(self.fail(format!(
                "worker {program} did not finish its handshake within {HANDSHAKE_TIMEOUT:?}; {hint}"
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.fail(format!("worker {program}: its reader thread is gone")))
            }
        }
    }

    fn fail(&mut self, message: String) -> Error {
        self.kill();
        Error::new(ErrorKind::Spawn, message)
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends one message and pushes it out at once.
    pub(crate) fn send(&mut self, message: &ToWorker) -> std::io::Result<()> {
        self.writer.send(message)?;
        self.writer.flush()
    }

    /// Waits for the process to end and reaps it.
    pub(crate) fn wait(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.wait().ok();
        }
        self.reaped
    }

    /// Kills the process (if it still runs) and reaps it.
    pub(crate) fn kill(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            let _ = self.child.kill();
        }
        self.wait()
    }

    /// Asks the worker to finish and exit; kills it if it does not in time.
    pub(crate) fn shutdown(mut self) {
        let _ = self.send(&ToWorker::Shutdown);
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = Some(status);
                    return;
                }
                Ok(None) => {}
                Err(_) => break,
            }
            // The reader thread reports the end of the channel when the worker
            // exits; wait for that rather than poll.
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Message(_)) => {}
                Ok(Event::Closed(_)) | Err(RecvTimeoutError::Disconnected) => {
                    self.wait();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        self.kill();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "exited with status 3", "was killed by signal 9 (SIGKILL)", ...
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "ended (its exit status is unknown)".to_string();
    };
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGSYS => " (SIGSYS)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        None => format!("ended with {status}"),
    }
}
