//! What runs a pool's chunks: the seam between the [`Pool`](crate::Pool)
//! API and the workers.
//!
//! A pool's calls become chunks (`crate::chunk`) on one queue, whatever runs
//! them; a [`Backend`] takes them from that queue and brings every task's
//! outcome back to its chunk. Two do:
//!
//! - [`local`]: worker processes on this machine, one slot (a supervising
//!   thread) per worker;
//! - [`nats`] (feature `nats`): agents on any machine, reached through a
//!   NATS JetStream server; each agent runs the chunks it takes on a local
//!   backend of its own.
//!
//! `Pool`, `AsyncResult`, `Imap`, callbacks, binding of arguments and the
//! limits on them are one code path above this seam. What the seam itself
//! hands up sits here, below both backends: a [`KillHandle`] on each worker
//! process, and the [`output`] guests write.

pub(crate) mod calls;
mod host_fns;
mod kill;
pub(crate) mod local;
#[cfg(feature = "nats")]
pub(crate) mod nats;
pub(crate) mod output;
mod settings;

use crossbeam_channel::Receiver;

use crate::chunk::Chunk;
pub(crate) use host_fns::HostFns;
pub(crate) use kill::KillHandle;
pub(crate) use settings::{Settings, SpawnConfig};

/// What runs the chunks a pool queues.
pub(crate) trait Backend: Send + Sync {
    /// Hands `chunk` straight to an idle worker, from the caller's thread,
    /// or gives it back to be queued.
    fn hand_to_idle(&self, chunk: Chunk) -> Option<Chunk> {
        Some(chunk)
    }

    /// Called after a chunk was queued: if the backend is terminating, the
    /// chunk is dropped (which fails its tasks) rather than left in a queue
    /// nobody reads any more.
    fn drop_if_terminating(&self);

    /// Disconnects once the backend is terminated.
    fn stopped(&self) -> &Receiver<()>;

    /// Stops at once: tasks not finished fail as terminated, and whatever
    /// runs them is stopped.
    fn terminate(&self);

    /// Waits until the backend has stopped: every queued chunk has run, or
    /// the backend was terminated. Called once the pool's queue is closed.
    fn join(&self);

    /// The worker processes on this machine running now.
    fn workers(&self) -> Vec<KillHandle>;

    /// The agents that run the chunks on other machines (none for a local
    /// backend).
    #[cfg(feature = "nats")]
    fn agents(&self) -> Result<Vec<nats::AgentInfo>, crate::Error> {
        Ok(Vec::new())
    }
}
