//! A worker process seen from the pool — the child's handle: started with
//! exec, greeted, written to without ever blocking the slot (see
//! [`Outbound`]) and read by a thread of its own (see
//! [`inbound`]), killed through its pidfd, and always reaped.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};

use crate::backend::calls::Replies;
use crate::backend::local::Shared;
use crate::backend::local::event::Event;
use crate::backend::local::in_flight::InFlight;
use crate::backend::local::inbound;
use crate::backend::local::outbound::Outbound;
use crate::backend::{KillHandle, SpawnConfig};
use crate::channel::{self, FromWorker, TaskInfo, ToWorker};
use crate::error::{Error, ErrorKind};
use crate::settled::Settled;
use crate::worker::MARKER;

/// How long a new worker has to greet the pool, and then to load its
/// module, besides the time limits on what the module runs at start.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker told to shut down has before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running worker process: the pool's handle on its child.
pub(crate) struct WorkerChild {
    child: Child,
    handle: KillHandle,
    /// The work it holds, and its sending end.
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) events: Receiver<Event>,
    reaped: Option<ExitStatus>,
    /// A process's: told how it ended, once reaped.
    exit: Option<Arc<Settled<Option<ExitStatus>>>>,
}

impl WorkerChild {
    /// Starts a worker process and sends its setup at once, without waiting
    /// for its greeting: it loads its module while the pool goes on.
    /// [`handshake`](Self::handshake) then waits for it to be ready.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<Self, Error> {
        let config = &shared.spawn;
        let mut command = Command::new(&config.program);
        command
            .env_clear()
            // The worker hardens itself first thing (see `worker::harden`),
            // checking it is still this process's child; with no pre-exec
            // hook, std starts it with posix_spawn rather than fork.
            .env(MARKER, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A process group of its own: a Ctrl-C on the terminal signals
            // the host's group, and the host decides what its workers do
            // (they die with it in any case, by their parent-death signal).
            .process_group(0);
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
        let handle = match KillHandle::open(pid) {
            Ok(handle) => handle,
            Err(err) => {
                return Err(abandon(
                    &mut child,
                    format!("cannot open a pidfd for worker {pid} (Linux 5.3 or later): {err}"),
                ));
            }
        };
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, events) = unbounded();
        let pipe = File::from(OwnedFd::from(stdin));
        let started = Outbound::new(pipe, tx.clone(), handle.clone()).and_then(|outbound| {
            let quota = shared.max_tasks_per_child;
            let in_flight = Arc::new(InFlight::new(
                outbound,
                tx.clone(),
                quota,
                &shared.initializer_objects,
            ));
            inbound::start(stdout, pid, in_flight.clone(), shared.clone(), tx)?;
            Ok(in_flight)
        });
        let in_flight = match started {
            Ok(in_flight) => in_flight,
            Err(err) => {
                return Err(abandon(
                    &mut child,
                    format!("cannot start the threads of a worker's channel: {err}"),
                ));
            }
        };
        let worker = WorkerChild {
            child,
            handle,
            in_flight,
            events,
            reaped: None,
            exit: shared.exit.clone(),
        };
        // The pipe holds the setup until the worker reads it, after its
        // greeting. Should the program not be a worker, the write may fail;
        // the handshake then says what the program did instead.
        worker.send(&ToWorker::Setup(config.setup.clone()));
        Ok(worker)
    }

    /// Waits until the worker is ready; returns the tasks its module offers.
    pub(crate) fn handshake(&mut self, config: &SpawnConfig) -> Result<Vec<TaskInfo>, Error> {
        let program = config.program.display().to_string();
        let hint = "is it a wasmpool worker? A program that builds pools must call \
                    wasmpool::init() first thing in main, or set PoolBuilder::worker_program";
        match self.next_event(&program, hint, HANDSHAKE_TIMEOUT)? {
            FromWorker::Hello { version, .. } if version == channel::VERSION => {}
            FromWorker::Hello { version, .. } => {
                return Err(self.fail(format!(
                    "worker {program} speaks protocol version {version}, this pool {}",
                    channel::VERSION
                )));
            }
            other => {
                return Err(self.fail(format!(
                    "worker {program} said {} before hello",
                    other.name()
                )));
            }
        }
        // The worker enforces the limits on its module's start, `describe`
        // and initializer itself, and says which one failed; this only
        // catches a worker that stopped answering altogether.
        let limits = &config.setup.limits;
        let ready_within = HANDSHAKE_TIMEOUT
            .saturating_add(limits.startup_timeout.saturating_mul(2))
            .saturating_add(limits.initializer_timeout);
        match self.next_event(&program, "", ready_within)? {
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
            FromWorker::SetupFailed { error } | FromWorker::Stuck { error } => {
                self.kill();
                Err(error)
            }
            other => Err(self.fail(format!(
                "worker {program} said {} instead of ready",
                other.name()
            ))),
        }
    }

    fn next_event(
        &mut self,
        program: &str,
        hint: &str,
        timeout: Duration,
    ) -> Result<FromWorker, Error> {
        let received = loop {
            match self.events.recv_timeout(timeout) {
                // It holds no work yet: nothing to hear of.
                Ok(Event::Progress) => {}
                received => break received,
            }
        };
        match received {
            Ok(Event::Message(message)) => Ok(message),
            Ok(Event::Progress) => unreachable!("skipped"),
            Ok(Event::Closed(reason)) => {
                let status = self.wait();
                let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                Err(self.fail(format!(
                    "worker {program} {} during its handshake{reason}; {hint}",
                    describe_status(status)
                )))
            }
            Err(RecvTimeoutError::Timeout) => Err(self.fail(format!(
                "worker {program} did not finish its handshake within {timeout:?}; {hint}"
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
        self.handle.pid()
    }

    /// A handle that can kill the worker from any thread, safely even after
    /// it was reaped.
    pub(crate) fn kill_handle(&self) -> KillHandle {
        self.handle.clone()
    }

    /// Queues one message for the worker; never blocks.
    pub(crate) fn send(&self, message: &ToWorker) {
        self.in_flight.outbound().send(message);
    }

    /// Where the answers to the worker's calls go, from any thread.
    pub(crate) fn replies(&self) -> Arc<dyn Replies> {
        self.in_flight.replies()
    }

    /// Waits for the process to end and reaps it.
    pub(crate) fn wait(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            let status = self.child.wait().ok();
            self.reaped(status);
        }
        self.reaped
    }

    /// The process was reaped (its status is unknown if `None`).
    fn reaped(&mut self, status: Option<ExitStatus>) {
        self.reaped = status;
        if let Some(exit) = self.exit.take() {
            exit.set(status);
        }
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
        self.send(&ToWorker::Shutdown);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped(Some(status));
                    return;
                }
                Ok(None) => {}
                Err(_) => break,
            }
            // The reader thread reports the end of the channel when the worker
            // exits; wait for that rather than poll.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Message(_) | Event::Progress) => {}
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

impl Drop for WorkerChild {
    fn drop(&mut self) {
        self.in_flight.outbound().close();
        self.kill();
    }
}

/// Kills and reaps a worker that could not be set up; the error says why.
fn abandon(child: &mut Child, why: String) -> Error {
    let _ = child.kill();
    let _ = child.wait();
    Error::new(ErrorKind::Spawn, why)
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
