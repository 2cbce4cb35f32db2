//! [`Starting`]: how a pool's first workers are started — one process at a
//! time, and none after one could not be.
//!
//! Started all at once, a pool past the machine's process limit would have
//! every slot try its own `fork` into the exhausted limit (and other users'
//! `fork`s fail meanwhile). One at a time, the first failure stops the rest.
//! Only starting the process is in turn: the handshakes, which take longer,
//! overlap.

use std::sync::{Mutex, PoisonError};

/// Whether a pool's first workers may still be started.
#[derive(Debug, Default)]
pub(crate) struct Starting {
    /// Set once a worker could not start: held while one starts.
    failed: Mutex<bool>,
}

impl Starting {
    /// Runs `start` in turn with the other slots' starts, unless one failed
    /// already (then `None`); a failure stops the starts that follow.
    pub(crate) fn start<T, E>(&self, start: impl FnOnce() -> Result<T, E>) -> Option<Result<T, E>> {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if *failed {
            return None;
        }
        let started = start();
        *failed = started.is_err();
        Some(started)
    }

    /// A worker started but failed later (its handshake): no more start.
    pub(crate) fn fail(&self) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Whether a worker failed to start.
    pub(crate) fn failed(&self) -> bool {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;

    /// Many slots start at once; the `fail_at`-th start fails: no start runs
    /// after it, and every start before it ran.
    #[test]
    fn no_start_runs_after_a_failure() {
        for fail_at in [0, 1, 5, 31] {
            let starting = Starting::default();
            let runs = AtomicUsize::new(0);
            let outcomes: Vec<_> = thread::scope(|scope| {
                let slots: Vec<_> = (0..32)
                    .map(|_| {
                        scope.spawn(|| {
                            starting.start(|| {
                                let run = runs.fetch_add(1, Ordering::SeqCst);
                                thread::yield_now();
                                if run == fail_at { Err(run) } else { Ok(run) }
                            })
                        })
                    })
                    .collect();
                slots.into_iter().map(|slot| slot.join().unwrap()).collect()
            });
            assert_eq!(runs.load(Ordering::SeqCst), fail_at + 1);
            assert_eq!(
                outcomes
                    .iter()
                    .filter(|o| matches!(o, Some(Err(_))))
                    .count(),
                1
            );
            assert_eq!(
                outcomes.iter().filter(|o| matches!(o, Some(Ok(_)))).count(),
                fail_at
            );
            assert_eq!(
                outcomes.iter().filter(|o| o.is_none()).count(),
                31 - fail_at
            );
            assert!(starting.failed());
        }
    }

    #[test]
    fn a_failed_handshake_stops_the_starts() {
        let starting = Starting::default();
        assert!(matches!(starting.start(|| Ok::<_, ()>(1)), Some(Ok(1))));
        starting.fail();
        assert!(starting.start(|| Ok::<_, ()>(2)).is_none());
    }
}
