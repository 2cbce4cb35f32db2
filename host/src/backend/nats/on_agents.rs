//! [`OnAgents`]: what a [`Context`](crate::Context) built for NATS starts
//! its pools and processes with — each a job of its own on the agents of
//! the server.

use std::process::ExitStatus;
use std::sync::Arc;

use crossbeam_channel::unbounded;

use super::Nats;
use super::remote::Remote;
use crate::backend::Settings;
use crate::channel::TaskInfo;
use crate::chunk::Withdrawals;
use crate::error::Error;
use crate::pool::Pool;
use crate::pool::submit::Submitter;
use crate::settled::Settled;

/// The chunks per process a pool on NATS keeps out at once unless told
/// ([`Nats::window`](crate::Nats::window)). Each chunk is out for at least
/// a round trip to its agent: 4 a process covered a local network, and ran
/// waiting tasks on an agent 50 ms away (a round trip) at 61% of what its
/// workers could; 16 cover such a link. Agents take no more than they keep
/// ahead (see the agent's `depth`), so the rest wait on the server, for any
/// agent.
const WINDOW_PER_PROCESS: usize = 16;

/// Where a context's pools and processes run: the agents of a server.
pub(crate) struct OnAgents {
    nats: Nats,
    /// The module, published with each job.
    module: Vec<u8>,
    /// Its tasks, as a local worker listed them.
    tasks: Vec<TaskInfo>,
}

impl OnAgents {
    pub(crate) fn new(nats: Nats, module: Vec<u8>, tasks: Vec<TaskInfo>) -> Self {
        OnAgents {
            nats,
            module,
            tasks,
        }
    }

    /// Publishes a job of `settings` for `processes` workers; with `exit`,
    /// the job is a [`Process`](crate::Process)'s, whose exit status goes
    /// there.
    pub(crate) fn launch(
        &self,
        settings: &Settings,
        processes: usize,
        exit: Option<Arc<Settled<Option<ExitStatus>>>>,
    ) -> Result<Pool, Error> {
        let window = self.nats.window.unwrap_or(WINDOW_PER_PROCESS * processes);
        let (queue_tx, queue_rx) = unbounded();
        let remote = Remote::start(&self.nats, settings, &self.module, queue_rx, window, exit)?;
        Pool::new(
            Submitter::new(
                remote,
                queue_tx,
                processes,
                settings.max_payload,
                Withdrawals::new(Vec::new()),
            ),
            self.tasks.clone(),
        )
    }
}
