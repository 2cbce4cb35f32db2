//! [`HostFns`]: the functions a pool offers its tasks on the host, by name
//! (`host.call` in `wit/wasmpool.wit`); the local backend serves their calls
//! (`backend/calls/host_fns.rs`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A host function on encoded values: a MessagePack array of positional
/// arguments in, a MessagePack result or an error message out.
pub(crate) type HostFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The host functions of a pool, by name.
#[derive(Clone, Default)]
pub(crate) struct HostFns {
    functions: HashMap<String, HostFn>,
}

impl fmt::Debug for HostFns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.functions.keys()).finish()
    }
}

impl HostFns {
    /// Adds (or replaces) the function `name`.
    pub(crate) fn insert(&mut self, name: &str, function: HostFn) {
        self.functions.insert(name.to_string(), function);
    }

    /// The function `name`, if the pool offers it.
    pub(crate) fn get(&self, name: &str) -> Option<HostFn> {
        self.functions.get(name).cloned()
    }

    /// The names of the functions offered, sorted.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.functions.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
