//! [`Context`]: a module compiled once, from which processes (and pools)
//! start, and what it wraps ([`Prepared`]).

use std::fmt;
use std::sync::Arc;

use std::process::ExitStatus;

use crossbeam_channel::unbounded;

use crate::backend::Backend;
use crate::backend::Settings;
use crate::backend::local::Local;
use crate::backend::local::capacity::Capacity;
use crate::error::{Error, ErrorKind};
use crate::pool::Pool;
use crate::pool::submit::Submitter;
use crate::process::ProcessBuilder;
use crate::settled::Settled;

/// A task module compiled (or loaded from the cache) once, with one
/// configuration, ready to start [`Process`](crate::Process)es and
/// [`Pool`]s: each loads the same artifact, so starting many costs no
/// compilation. Made by [`PoolBuilder::context`](crate::PoolBuilder::context),
/// and everything configured there — limits, grants, host functions, the
/// output handler — holds for each. As CPython's `multiprocessing` context,
/// of which `Process` and `Pool` are methods.
///
/// Cheap to clone; processes and pools started from it need it no longer.
#[derive(Clone)]
pub struct Context {
    prepared: Arc<Prepared>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(prepared: Arc<Prepared>) -> Self {
        Context { prepared }
    }

    pub(crate) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The context, its pools and processes run on `agents`.
    #[cfg(feature = "nats")]
    pub(crate) fn on_agents(mut self, agents: crate::backend::nats::on_agents::OnAgents) -> Self {
        Arc::get_mut(&mut self.prepared)
            .expect("a context just made is not shared")
            .agents = Some(agents);
        self
    }

    /// Starts configuring a process that runs `task` (CPython's
    /// `Process(target=task)`).
    pub fn process(&self, task: &str) -> ProcessBuilder<'_> {
        ProcessBuilder::new(self, task)
    }

    /// Starts a pool of `processes` workers and waits until every one is
    /// ready, as [`PoolBuilder::build`](crate::PoolBuilder::build) does.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`](crate::PoolBuilder::build).
    pub fn pool(&self, processes: usize) -> Result<Pool, Error> {
        self.prepared.launch(processes, None)
    }
}

/// Refuses a pool of no process.
pub(crate) fn check_processes(processes: usize) -> Result<(), Error> {
    if processes == 0 {
        return Err(Error::new(
            ErrorKind::Config,
            "a pool needs at least one process",
        ));
    }
    Ok(())
}

/// A module compiled with a configuration: what the pools and processes
/// started from one [`Context`] share.
pub(crate) struct Prepared {
    /// What the local backend of each pool is built from.
    pub(crate) local: Settings,
    /// Where its pools and processes run instead, if on agents.
    #[cfg(feature = "nats")]
    pub(crate) agents: Option<crate::backend::nats::on_agents::OnAgents>,
    /// The module, as errors name it.
    pub(crate) name: String,
    /// Start pools past what this machine can hold.
    pub(crate) force_processes: bool,
}

impl Prepared {
    /// Starts `processes` workers and waits until every one is ready. With
    /// `exit`, the pool is a [`Process`](crate::Process)'s: its one worker
    /// runs tasks until it ends, which `exit` hears of; it is never
    /// replaced, recycled, nor its task retried.
    pub(crate) fn launch(
        &self,
        processes: usize,
        exit: Option<Arc<Settled<Option<ExitStatus>>>>,
    ) -> Result<Pool, Error> {
        check_processes(processes)?;
        #[cfg(feature = "nats")]
        if let Some(agents) = &self.agents {
            return agents.launch(&self.local, processes, exit);
        }
        if processes > 1 {
            Capacity::of_this_machine().check(processes, self.force_processes)?;
        }
        let (queue_tx, queue_rx) = unbounded();
        let (local, withdrawals, started) = Local::start(&self.local, processes, exit, queue_rx);
        let backend: Arc<dyn Backend> = local;
        let submitter = Submitter::new(
            backend,
            queue_tx,
            processes,
            self.local.max_payload,
            withdrawals,
        );
        match started {
            Ok(tasks) => Pool::new(submitter, tasks),
            Err(err) => {
                submitter.shut_down();
                // What the module did wrong, said of the module.
                Err(match err.kind() {
                    ErrorKind::BadModule | ErrorKind::Initializer => {
                        Error::new(err.kind(), format!("{}: {}", self.name, err.message()))
                    }
                    _ => err,
                })
            }
        }
    }
}
