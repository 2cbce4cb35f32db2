//! [`Context`]: a module compiled once, from which processes (and pools)
//! start.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::pool::Pool;
use crate::pool::builder::Prepared;
use crate::process::ProcessBuilder;

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
