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

use std::process::ExitStatus;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use rustix::process::Signal;

use crate::chunk::Chunk;
pub(crate) use host_fns::HostFns;
pub(crate) use kill::KillHandle;
pub(crate) use settings::{Settings, SpawnConfig};

/// What a [`Process`](crate::Process) holds of its one worker, wherever it
/// runs.
pub(crate) trait ProcessWorker: Send + Sync {
    /// Its pid (on its machine), once it started (on agents: waits until
    /// an agent started it); 0 if it never will: its task failed first.
    fn pid(&self) -> u32;

    /// Sends it `signal`; nothing happens to a worker that has ended.
    fn signal(&self, signal: Signal);

    /// Its task has its outcome, and no exit status came before it: the
    /// status to take, where the outcome is the last word (an agent's
    /// worker says its status first; a local one's slot says it once it
    /// reaped it: None).
    fn unreported_exit(&self) -> Option<ExitStatus> {
        None
    }
}

impl ProcessWorker for KillHandle {
    fn pid(&self) -> u32 {
        KillHandle::pid(self)
    }

    fn signal(&self, signal: Signal) {
        let _ = KillHandle::signal(self, signal);
    }
}

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

    /// The worker of a [`Process`](crate::Process)'s pool: the one it
    /// started, or, on agents, the one an agent will say it started.
    fn process_worker(&self) -> Option<Arc<dyn ProcessWorker>> {
        let worker = self.workers().pop()?;
        Some(Arc::new(worker))
    }

    /// The agents that run the chunks on other machines (none for a local
    /// backend).
    #[cfg(feature = "nats")]
    fn agents(&self) -> Result<Vec<nats::AgentInfo>, crate::Error> {
        Ok(Vec::new())
    }
}
