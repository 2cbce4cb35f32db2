//! A [`Process`](crate::Process) on agents: its job is one chunk of one
//! task, which an agent runs in a worker of its own (`agent/chunk.rs`). The
//! agent reports the worker started (with its pid) and exited (with its
//! exit code, and the task's outcome in the same report); the host signals
//! it through the job's control subject. [`ProcessWatch`] is the host's
//! record of it, and [`RemoteWorker`] what the `Process` holds.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rustix::process::Signal;

use super::keys::{Domain, SigningKey};
use super::wire::{self, Control, Signed};
use crate::backend::ProcessWorker;
use crate::settled::Settled;

/// The number of a process job's one chunk (a job numbers its chunks from
/// 0).
pub(crate) const CHUNK: u64 = 0;

/// The host's record of its process on an agent.
pub(crate) struct ProcessWatch {
    job: String,
    key: SigningKey,
    client: async_nats::Client,
    handle: tokio::runtime::Handle,
    /// The worker's pid once an agent started it (0: it never did).
    pid: Settled<u32>,
    exit: Arc<Settled<Option<ExitStatus>>>,
    /// A signal asked for before the worker started: sent once it has.
    pending: Mutex<Option<Signal>>,
}

impl ProcessWatch {
    /// The record of `job`'s process, whose exit status goes to `exit`;
    /// its controls signed with `key`, sent through `client`.
    pub(crate) fn new(
        job: &str,
        key: SigningKey,
        client: async_nats::Client,
        handle: tokio::runtime::Handle,
        exit: Arc<Settled<Option<ExitStatus>>>,
    ) -> Self {
        ProcessWatch {
            job: job.to_string(),
            key,
            client,
            handle,
            pid: Settled::new(),
            exit,
            pending: Mutex::new(None),
        }
    }

    /// An agent started the worker, as `pid`.
    pub(crate) fn started(&self, pid: u32) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.pid.set(pid);
        if let Some(signal) = pending.take() {
            self.send(signal);
        }
    }

    /// The worker exited with `exitcode` (as `Process::exitcode` says it):
    /// said before its task's outcome is delivered.
    pub(crate) fn exited(&self, exitcode: i32) {
        let status = match exitcode {
            signal @ ..0 => ExitStatus::from_raw(-signal),
            code => ExitStatus::from_raw(code << 8),
        };
        self.exit.set(Some(status));
        self.pid.set(0);
    }

    /// The job's chunk is over: a worker that never started never will.
    pub(crate) fn over(&self) {
        self.pid.set(0);
    }

    /// Whether the worker's start is settled: it started, or never will.
    pub(crate) fn settled(&self) -> bool {
        self.pid.get().is_some()
    }

    /// Sends `signal` to the agent running the chunk.
    fn send(&self, signal: Signal) {
        let control = Control::Signal {
            chunk: CHUNK,
            signal: signal.as_raw(),
        };
        let message = Bytes::from(Signed::encode(
            &self.key,
            Domain::Control,
            &self.job,
            &control,
        ));
        let (client, subject) = (self.client.clone(), wire::control_subject(&self.job));
        self.handle.spawn(async move {
            let _ = client.publish(subject, message).await;
        });
    }
}

/// What a [`Process`](crate::Process) on agents holds of its worker.
pub(crate) struct RemoteWorker(pub(crate) Arc<ProcessWatch>);

impl ProcessWorker for RemoteWorker {
    fn pid(&self) -> u32 {
        self.0.pid.wait(None).copied().unwrap_or(0)
    }

    fn signal(&self, signal: Signal) {
        let watch = &self.0;
        let mut pending = watch.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match watch.pid.get() {
            Some(_) => watch.send(signal),
            None => *pending = Some(signal),
        }
    }

    /// A worker that started and said nothing of its end was lost with its
    /// agent: as killed. One that never started (its task failed before
    /// it went out, or its agent was lost first) ends as a failed task.
    fn unreported_exit(&self) -> Option<ExitStatus> {
        let watch = &self.0;
        watch.pid.set(0);
        Some(match watch.pid.get() {
            Some(0) | None => ExitStatus::from_raw(1 << 8),
            Some(_) => ExitStatus::from_raw(libc::SIGKILL),
        })
    }
}
