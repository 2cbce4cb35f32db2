//! The error type users branch on, and the small errors of waiting.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, for branching; the details are on [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task trapped: `unreachable`, an out-of-bounds access, a stack
    /// overflow, an integer division by zero, ...
    Trap,
    /// The task returned an error (`Err` in a Rust guest).
    Failed,
    /// The task panicked.
    Panic,
    /// The module has no task of that name.
    UnknownTask,
    /// The arguments did not encode, or did not decode to the task's parameters.
    BadArguments,
    /// The result did not encode in the guest, or did not decode to the type
    /// the caller asked for.
    BadResult,
    /// The task ran longer than its time limit
    /// ([`PoolBuilder::task_timeout`](crate::PoolBuilder::task_timeout)).
    Timeout,
    /// The task's linear memory would have grown past the limit
    /// ([`PoolBuilder::memory_limit`](crate::PoolBuilder::memory_limit)); or,
    /// from [`PoolBuilder::build`](crate::PoolBuilder::build), the module's
    /// memory starts larger than the limit.
    MemoryLimit,
    /// The task used up its fuel budget
    /// ([`PoolBuilder::fuel`](crate::PoolBuilder::fuel)).
    OutOfFuel,
    /// The initializer failed, so the worker could not prepare an instance.
    Initializer,
    /// The worker process running the task died.
    WorkerLost,
    /// The pool was terminated before the task finished.
    Terminated,
    /// The task was withdrawn before it started: its caller dropped the
    /// [`Imap`](crate::Imap) or cancelled the [`AsyncResult`](crate::AsyncResult).
    Cancelled,
    /// The pool is closed: it takes no new tasks.
    PoolClosed,
    /// The module is not a wasmpool task module.
    BadModule,
    /// A worker process could not be started or did not complete its handshake.
    Spawn,
    /// The pool's configuration is invalid.
    Config,
    /// An I/O error of the host: reading the module, the artifact cache.
    Io,
    /// A result was taken already, or asked for in a way that cannot work.
    Usage,
    /// The NATS server of a pool or agent could not be reached, refused
    /// the credentials, or failed a request.
    Remote,
}

impl ErrorKind {
    /// A short, stable name for the kind: `"trap"`, `"failed"`, `"worker-lost"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Trap => "trap",
            ErrorKind::Failed => "failed",
            ErrorKind::Panic => "panic",
            ErrorKind::UnknownTask => "unknown-task",
            ErrorKind::BadArguments => "bad-arguments",
            ErrorKind::BadResult => "bad-result",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MemoryLimit => "memory-limit",
            ErrorKind::OutOfFuel => "out-of-fuel",
            ErrorKind::Initializer => "initializer",
            ErrorKind::WorkerLost => "worker-lost",
            ErrorKind::Terminated => "terminated",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::PoolClosed => "pool-closed",
            ErrorKind::BadModule => "bad-module",
            ErrorKind::Spawn => "spawn",
            ErrorKind::Config => "config",
            ErrorKind::Io => "io",
            ErrorKind::Usage => "usage",
            ErrorKind::Remote => "remote",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a trap happened, as the worker saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrapDetails {
    /// wasmtime's name for the trap code, such as `"unreachable"` or
    /// `"stack overflow"`; `None` for a trap without a code.
    pub code: Option<String>,
    /// The wasm backtrace, innermost frame first: function names where the
    /// module keeps them, `<module>!<index>` otherwise.
    pub backtrace: Vec<String>,
}

/// A failure of a task or of the pool.
///
/// Task failures cross the process boundary as plain data: an `Error` is
/// `Clone`, `PartialEq` and serialisable, so it can be stored, compared in
/// tests and sent on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    task_index: Option<u64>,
    trap: Option<Box<TrapDetails>>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            task_index: None,
            trap: None,
        }
    }

    pub(crate) fn trap(message: impl Into<String>, details: TrapDetails) -> Self {
        Error {
            trap: Some(Box::new(details)),
            ..Error::new(ErrorKind::Trap, message)
        }
    }

    /// The message and the trap's details, to bound them.
    pub(crate) fn texts_mut(&mut self) -> (&mut String, Option<&mut TrapDetails>) {
        (&mut self.message, self.trap.as_deref_mut())
    }

    pub(crate) fn with_index(mut self, index: u64) -> Self {
        self.task_index = Some(index);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message: the guest's error or panic message, the trap's
    /// description, or what the host found wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The index of the task that failed, for failures of a task.
    pub fn task_index(&self) -> Option<u64> {
        self.task_index
    }

    /// The trap's code and backtrace, for a [`ErrorKind::Trap`].
    pub fn trap_details(&self) -> Option<&TrapDetails> {
        self.trap.as_deref()
    }

    /// Whether the task trapped.
    pub fn is_trap(&self) -> bool {
        self.kind == ErrorKind::Trap
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        self.kind == ErrorKind::Panic
    }

    /// Whether the task returned an error of its own.
    pub fn is_failed(&self) -> bool {
        self.kind == ErrorKind::Failed
    }

    /// Whether the task overran its time limit.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the task hit the memory limit.
    pub fn is_memory_limit(&self) -> bool {
        self.kind == ErrorKind::MemoryLimit
    }

    /// Whether the task used up its fuel.
    pub fn is_out_of_fuel(&self) -> bool {
        self.kind == ErrorKind::OutOfFuel
    }

    /// Whether the worker process running the task died.
    pub fn is_worker_lost(&self) -> bool {
        self.kind == ErrorKind::WorkerLost
    }

    /// Whether the pool was terminated under the task.
    pub fn is_terminated(&self) -> bool {
        self.kind == ErrorKind::Terminated
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task_index {
            Some(index) => write!(f, "task {index}: {}: {}", self.kind, self.message)?,
            None => write!(f, "{}: {}", self.kind, self.message)?,
        }
        if let Some(trap) = &self.trap {
            for frame in &trap.backtrace {
                write!(f, "\n    at {frame}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// [`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GetTimeoutError {
    /// The result was not ready in time; the task goes on, ask again later.
    #[error("the result was not ready in time")]
    Timeout,
    /// The task (or the call) failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// [`AsyncResult::successful`](crate::AsyncResult::successful) was asked before
/// the result was ready (CPython raises `ValueError` there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the result is not ready yet")]
pub struct NotReady;

/// Waiting for the next result of an [`Imap`](crate::Imap) timed out; the
/// iterator goes on, ask again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the next result was not ready in time")]
pub struct NextTimeout;
