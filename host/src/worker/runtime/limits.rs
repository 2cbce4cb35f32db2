//! The limiter that caps a task's memory, and the clock its time limit
//! runs on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

/// The task's memory grew past the limit.
#[derive(Debug)]
pub(super) struct MemoryLimitExceeded {
    pub(super) limit: usize,
    pub(super) desired: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the task's memory would grow to {} bytes, over the limit of {} bytes",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Refuses linear memory beyond the limit, with an error that says so.
pub(super) struct Limiter {
    pub(super) max_memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.max_memory,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// When the running task started, shared with the timer that enforces the
/// time limit while the store is busy.
#[derive(Debug)]
pub(super) struct Clock {
    pub(super) origin: Instant,
    /// Nanoseconds from `origin` to the start of the running task.
    pub(super) task_started: AtomicU64,
}

impl Clock {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Clock {
            origin: Instant::now(),
            task_started: AtomicU64::new(0),
        })
    }

    pub(super) fn start_task(&self) {
        let now = self.origin.elapsed().as_nanos() as u64;
        self.task_started.store(now, Ordering::SeqCst);
    }

    /// When the running task must stop; `None` if that is too far away to
    /// reach (a timeout of `Duration::MAX` means no limit).
    pub(super) fn task_deadline(&self, timeout: Duration) -> Option<Instant> {
        let started = Duration::from_nanos(self.task_started.load(Ordering::SeqCst));
        self.origin.checked_add(started)?.checked_add(timeout)
    }
}
