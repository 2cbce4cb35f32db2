//! [`Settings`]: what a backend is built from, as the
//! [`PoolBuilder`](crate::PoolBuilder) settled it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::HostFns;
use crate::backend::calls::Forward;
use crate::backend::output::OutputHandler;
use crate::cache::CacheDir;
use crate::channel::Setup;
use crate::objects::ObjectRef;

/// What it takes to start a worker.
#[derive(Clone, Debug)]
pub(crate) struct SpawnConfig {
    pub(crate) program: PathBuf,
    pub(crate) setup: Setup,
}

/// What a backend is built from: the module compiled with a configuration,
/// as the builder settled it. Every pool and process started from one
/// [`Context`](crate::Context) is built from the same; a pool on NATS agents
/// makes its job of it.
pub(crate) struct Settings {
    pub(crate) spawn: SpawnConfig,
    /// Where the workers' artifact is: kept as long as workers may start.
    pub(crate) cache: Arc<CacheDir>,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// The longest a worker may take per task of a chunk, a renewal of its
    /// instance included, if tasks have a time limit.
    pub(crate) watchdog_per_task: Option<Duration>,
    pub(crate) retries: u32,
    /// Tasks have a time limit.
    pub(crate) timed: bool,
    pub(crate) on_output: OutputHandler,
    pub(crate) host_fns: HostFns,
    /// Where the tasks' calls go instead, on an agent: its job's host.
    pub(crate) forward: Option<Arc<dyn Forward>>,
    pub(crate) max_payload: usize,
    /// The shared objects in the initializer's arguments.
    pub(crate) initializer_objects: Vec<ObjectRef>,
}
