//! Serving what a running task asks of the host: calls of its pool's host
//! functions ([`host_fns`], `host.call` in `wit/wasmpool.wit`) and
//! operations on the shared objects it was handed ([`objects`],
//! `objects.invoke`). Both backends serve them here: the local backend for
//! its workers, a pool on NATS for the tasks its agents run
//! (`backend/nats/calls.rs`). Each answer goes back through [`Replies`]:
//! a worker's channel, or a message to an agent.

pub(crate) mod host_fns;
pub(crate) mod objects;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::channel::Failure;

/// Where the answers to one worker's calls go.
pub(crate) trait Replies: Send + Sync {
    /// Sends the answer to `call`. Gives `result` back when it can never
    /// reach the task (its worker or agent is gone), so that what it
    /// carries (an item, a lock) can be given back.
    fn reply(
        &self,
        call: u64,
        result: Result<ByteBuf, Failure>,
    ) -> Option<Result<ByteBuf, Failure>>;
}

/// What a task asks of the host in one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Asked {
    /// A call of the host function `name`.
    HostFn { name: String, args: ByteBuf },
    /// Operation `op` of the shared object `object`.
    Invoke {
        object: u64,
        op: String,
        args: ByteBuf,
    },
}

/// Where a pool whose tasks' calls are served elsewhere passes them on: an
/// agent's pool, to its job's host. Workers are named by a number unique in
/// the pool's process, their calls by the worker's own numbers.
pub(crate) trait Forward: Send + Sync {
    /// Task `index` on `worker` asks `asked` in `call`; the answer goes to
    /// `replies`. `chunk` is the number the job's host gave the chunk the
    /// task is in (none: the pool's initializer asks).
    fn call(
        &self,
        worker: u64,
        chunk: Option<u64>,
        index: u64,
        call: u64,
        asked: Asked,
        replies: Arc<dyn Replies>,
    );

    /// The task that made `call` on `worker` no longer waits for it.
    fn cancel(&self, worker: u64, call: u64);

    /// The answer to `call` on `worker` came after its task stopped waiting:
    /// `result` is what it carried.
    fn unclaimed(&self, worker: u64, call: u64, result: ByteBuf);

    /// `worker` is gone: what its tasks held is let go of.
    fn ended(&self, worker: u64);
}
