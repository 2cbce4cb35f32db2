//! Running the host program's own code — callbacks, host functions — so
//! that a panic in it fails what called it, never the pool.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs a user callback, catching and logging a panic.
pub(crate) fn call_guarded(f: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string payload".to_string());
        tracing::error!("a wasmpool callback panicked: {message}");
    }
}
