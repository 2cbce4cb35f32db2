//! The worker's last resort against a module stuck outside a task.
//!
//! Starting an instance, `describe` and the initializer each have a time
//! limit. With epoch checks compiled in (a pool with a task time limit) the
//! runtime stops them cleanly at that limit. Without them a loop that never
//! calls the host cannot be stopped from inside, and the epoch checks cost a
//! compute-bound guest a third of its speed, so they are not compiled in just
//! for this. The backstop covers that case: a thread that, should a stage
//! outlive its limit (plus a short grace, so that a clean stop wins where
//! there is one), tells the pool why on the channel and ends the process.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::channel::{FromWorker, bounds};
use crate::error::Error;
use crate::worker::outbox::Outbox;

/// How much longer than its limit a stage may run before the backstop ends
/// the worker.
const GRACE: Duration = Duration::from_millis(200);

/// A stage being watched: when it must be over, and the error that says it
/// was not.
struct Armed {
    deadline: Instant,
    error: Error,
}

/// The watching thread's handle; cheap to clone.
#[derive(Clone)]
pub(crate) struct Backstop {
    state: Arc<(Mutex<Option<Armed>>, Condvar)>,
}

impl std::fmt::Debug for Backstop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backstop").finish_non_exhaustive()
    }
}

impl Backstop {
    /// Starts the watching thread, which writes its last word to `outbox`,
    /// after whatever waits there.
    pub(crate) fn start(outbox: Arc<Outbox>) -> std::io::Result<Backstop> {
        let state = Arc::new((Mutex::new(None::<Armed>), Condvar::new()));
        let watched = state.clone();
        std::thread::Builder::new()
            .name("wasmpool-backstop".into())
            .spawn(move || watch(&watched, &outbox))?;
        Ok(Backstop { state })
    }

    /// Watches a stage that must be over within `limit`; `error` says it
    /// was not. A limit too far away to reach is none.
    pub(crate) fn arm(&self, limit: Duration, error: Error) {
        let Some(deadline) = Instant::now()
            .checked_add(limit)
            .and_then(|deadline| deadline.checked_add(GRACE))
        else {
            return;
        };
        let (armed, wake) = &*self.state;
        *armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Armed { deadline, error });
        wake.notify_one();
    }

    /// The stage is over.
    pub(crate) fn disarm(&self) {
        let (armed, _) = &*self.state;
        *armed.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

fn watch(state: &(Mutex<Option<Armed>>, Condvar), outbox: &Outbox) {
    let (armed, wake) = state;
    let mut current = armed.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let deadline = match &*current {
            None => {
                current = wake.wait(current).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            Some(stage) => stage.deadline,
        };
        let now = Instant::now();
        if now < deadline {
            current = wake
                .wait_timeout(current, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        // Past the deadline and still armed: the lock is held from here on,
        // so a stage that ends now cannot go on.
        let error = bounds::bounded(current.take().expect("armed").error);
        let _ = outbox.send_now(&FromWorker::Stuck { error });
        // SAFETY: _exit ends the process at once; nothing of it is used after.
        unsafe { libc::_exit(4) };
    }
}
