//! What every job an agent serves shares: the agent's connection, name and
//! keys, its caps on what a task may take, and the modules it fetched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::nats::SigningKey;
use crate::backend::nats::store::Store;

/// The most any task may take on this agent, whatever its job asks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caps {
    pub(crate) memory_limit: Option<u64>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) fuel: Option<u64>,
}

/// What the jobs an agent serves share.
pub(crate) struct JobContext {
    pub(crate) store: Store,
    pub(crate) agent: String,
    /// What the agent signs its requests, calls and output with.
    pub(crate) key: SigningKey,
    /// The host keys whose jobs it serves; empty: any host's.
    pub(crate) trusted_hosts: Vec<String>,
    pub(crate) processes: usize,
    /// The most jobs served at once.
    pub(crate) max_jobs: usize,
    pub(crate) caps: Caps,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) worker_program: Option<PathBuf>,
    pub(crate) allowed_modules: Option<Vec<String>>,
    /// Modules fetched, by hash.
    pub(crate) modules: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}
