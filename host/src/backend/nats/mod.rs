//! The NATS backend: a pool's tasks run on agents, on this machine or
//! others, reached through a NATS server with JetStream.
//!
//! - [`connect`]: [`Nats`], where the server is and how to log in;
//! - [`keys`]: [`SigningKey`], and the signatures every message carries;
//! - [`enroll`]: the host's answers to agents that ask to serve its job,
//!   and the roster of those it admitted;
//! - [`wire`]: the streams, buckets and subjects, and the messages on them;
//! - [`store`]: connecting, and making the streams and buckets;
//! - [`on_agents`]: what a context built for NATS starts its pools and
//!   processes with;
//! - [`remote`]: the host's side, the backend of a pool built with
//!   [`PoolBuilder::nats`](crate::PoolBuilder::nats);
//! - [`process`]: the host's record of a [`Process`](crate::Process) on an
//!   agent;
//! - [`calls`]: the host's side of what tasks on agents ask of it (host
//!   functions, shared objects): checked, served, answered;
//! - [`watchdog`]: the host's watch on the job's state on the server, which
//!   makes again what vanished;
//! - [`throttle`]: warnings that repeat, let through at most every few
//!   seconds;
//!
//! The far side is the agent (`host/src/agent/`, [`Agent`](crate::Agent),
//! `wasmpool agent`), which runs the chunks it pulls on a local pool of its
//! own.
//!
//! A task's walk: the pool's chunk is signed and published to the job's
//! work queue (`remote.rs`); an agent admitted to the job (`enroll.rs`,
//! `agent/enroll.rs`) pulls it, checks its signature, runs it on its local workers
//! (`agent/chunk.rs`), publishes the outcomes as they come, signed, and
//! acknowledges the chunk once they are stored; the host delivers each
//! task's first outcome signed by an admitted agent to its chunk
//! (`remote.rs`). An agent that dies leaves its chunk
//! unacknowledged, and JetStream hands it to another after the ack wait.

pub(crate) mod calls;
pub(crate) mod connect;
pub(crate) mod enroll;
pub(crate) mod keys;
pub(crate) mod on_agents;
pub(crate) mod process;
pub(crate) mod remote;
pub(crate) mod store;
pub(crate) mod throttle;
pub(crate) mod watchdog;
pub(crate) mod wire;

use std::future::Future;
use std::thread;

use crate::error::{Error, ErrorKind};

pub use connect::Nats;
pub use keys::SigningKey;
pub use store::AgentInfo;

/// A multi-threaded runtime of `threads` threads named `name`, on which
/// the NATS client runs (and [`block_on`] can wait from any thread: the
/// handle of a runtime of another kind drives no I/O).
pub(crate) fn runtime(threads: usize, name: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|err| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot start the NATS client's runtime: {err}"),
            )
        })
}

/// Runs `future` on the (multi-threaded) runtime of `handle`, from a thread
/// that may itself be inside a runtime (a caller's: then from a thread of
/// its own, as a runtime cannot be blocked on from inside one).
pub(crate) fn block_on<F: Future + Send>(handle: &tokio::runtime::Handle, future: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return handle.block_on(future);
    }
    thread::scope(|scope| {
        scope
            .spawn(|| handle.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
