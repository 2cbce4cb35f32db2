//! Shared objects — [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`Queue`], [`JoinableQueue`], [`Pipe`]
//! and the [`Manager`]'s [`Dict`], [`List`] and [`Value`] — owned by the host
//! and reached by tasks as capabilities.
//!
//! A host program creates an object and passes it to tasks as an argument,
//! as Python passes `lock` in `args=(lock,)`. It travels as a handle (see
//! [`handle`]); the worker that runs the task may use it while the task is
//! held — from the moment its chunk is handed over until the task's outcome
//! — and any other id a guest names is refused ([`grants`]). A guest's
//! operation reaches the host over the worker channel as an `Invoke`, and is
//! answered by the local backend's object calls
//! (`backend/calls/objects.rs`): at once, or, if it must wait, once a
//! change to the object or its deadline lets it finish — parked on the
//! object meanwhile, holding no thread ([`parked`]) — unless the task's
//! time limit (a `Cancel` from the worker) or the worker's death gives it
//! up first. The host uses the same objects directly, from any thread.
//!
//! What a holder lets go of when its task ends or its worker dies: the lock
//! it held (the next acquirer learns that its holder died), the permits of a
//! semaphore, a pipe's end (the other end reads end-of-file once its
//! messages are read).

mod acquire;
pub(crate) mod grants;
pub(crate) mod handle;
pub(crate) mod parked;
pub(crate) mod wait;

mod event;
mod lock;
mod manager;
mod pipe;
mod queue;
mod semaphore;

use std::sync::Arc;

use crate::channel::Failure;

pub use acquire::Guard;
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use manager::{Dict, List, MANAGED_BYTES, Manager, Value};
pub use pipe::{Connection, PIPE_BYTES, Pipe, RecvError};
pub use queue::{JoinableQueue, QUEUE_BYTES, Queue, QueueError};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

use wait::Wait;

/// Who holds a lock or a permit: a host thread, or one task of a worker
/// process. Each task is a holder of its own, so what a task still holds when
/// it ends is let go of then, whatever its worker runs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    Host(std::thread::ThreadId),
    /// The `nth` task worker `worker` ran (0: its pool's initializer).
    Task {
        worker: u64,
        nth: u64,
    },
}

impl Holder {
    /// The calling host thread.
    pub(crate) fn this_thread() -> Holder {
        Holder::Host(std::thread::current().id())
    }
}

/// The kinds of shared object, numbered as in `wit/wasmpool.wit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Lock = 1,
    RLock = 2,
    Semaphore = 3,
    BoundedSemaphore = 4,
    Event = 5,
    Queue = 6,
    JoinableQueue = 7,
    Connection = 8,
    Dict = 9,
    List = 10,
    Value = 11,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::BoundedSemaphore => "bounded semaphore",
            Kind::Event => "event",
            Kind::Queue => "queue",
            Kind::JoinableQueue => "joinable queue",
            Kind::Connection => "pipe connection",
            Kind::Dict => "dict",
            Kind::List => "list",
            Kind::Value => "value",
        }
    }
}

/// What the host does for a guest's operation on a shared object.
pub(crate) trait Object: Send + Sync {
    /// The object's id, as its handles carry it.
    fn id(&self) -> u64;

    fn kind(&self) -> Kind;

    /// Whether operation `op` may wait (a guest's then parks on the object
    /// while it cannot finish, and can be cancelled).
    fn may_wait(&self, op: &str) -> bool;

    /// Runs operation `op` with `args` (a MessagePack array) for `holder`;
    /// a wait gives up once `wait` is cancelled.
    fn invoke(
        &self,
        holder: Holder,
        op: &str,
        args: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure>;

    /// `holder` no longer holds the object (its task ended, or its worker
    /// died): what it held is let go.
    fn let_go(&self, _holder: Holder) {}

    /// The answer `result` to `holder`'s operation `op` reached its worker
    /// after the task stopped waiting for it (or the task never used it):
    /// whatever it took is put back (an item at the front of its queue), and
    /// acquisition `took` undone if `holder` still holds it — never what the
    /// holder let go of since, nor another acquisition.
    fn give_back(&self, _holder: Holder, _op: &str, _result: &[u8], _took: u64) {}
}

/// A shared object, as chunks and grants hold it.
pub(crate) type ObjectRef = Arc<dyn Object>;

/// The refusal of an operation the object does not have.
pub(crate) fn unknown_op(kind: Kind, op: &str) -> Failure {
    Failure::Refused(format!("a {} has no operation `{op}`", kind.name()))
}

/// Decodes an operation's arguments (a MessagePack array) into `A`, a tuple.
pub(crate) fn args<A: serde::de::DeserializeOwned>(
    kind: Kind,
    op: &str,
    args: &[u8],
) -> Result<A, Failure> {
    crate::args::decode(args).map_err(|err| {
        Failure::Refused(format!(
            "the arguments of `{op}` of a {} do not decode: {err}",
            kind.name()
        ))
    })
}

/// Encodes an operation's result.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    rmp_serde::to_vec_named(value)
        .map_err(|err| Failure::Refused(format!("the result does not encode: {err}")))
}

/// A fresh object id. Ids are names, not secrets: what a worker may touch
/// is decided by its grants.
pub(crate) fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
