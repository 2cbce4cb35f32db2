//! Waiting on a shared object: its state under a mutex with a condition
//! variable ([`Monitor`]), how long a caller is willing to wait
//! ([`Patience`]), and the flag that ends a guest's wait early ([`Wait`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::channel::Failure;

/// Whether a guest still waits for the operation it asked for: cancelled
/// when its task is stopped or its worker dies. A host caller's wait is
/// never cancelled. It also says how large an item the caller can take.
#[derive(Clone, Debug)]
pub(crate) struct Wait {
    cancelled: Arc<AtomicBool>,
    /// The acquisition the operation made (0: none), so that giving its
    /// answer back undoes that one and no other.
    took: Arc<AtomicU64>,
    /// The most bytes of an item the caller can be given.
    max_item: usize,
}

impl Wait {
    /// A wait nothing cancels: a host thread's.
    pub(crate) fn forever() -> Wait {
        Wait::for_task(usize::MAX)
    }

    /// A task's wait, whose worker takes items of at most `max_item` bytes.
    pub(crate) fn for_task(max_item: usize) -> Wait {
        Wait {
            cancelled: Arc::default(),
            took: Arc::default(),
            max_item,
        }
    }

    /// Refuses to hand over an item of `len` bytes that the caller cannot
    /// take, so that it stays where it is rather than be lost on the way.
    pub(crate) fn fits(&self, len: usize) -> Result<(), Failure> {
        if len > self.max_item {
            return Err(Failure::Refused(format!(
                "the next item takes {len} bytes, over this pool's payload limit of {} bytes; \
                 it was left in place",
                self.max_item
            )));
        }
        Ok(())
    }

    /// The operation made acquisition `token` of its object.
    pub(crate) fn took(&self, token: u64) {
        self.took.store(token, Ordering::SeqCst);
    }

    /// The acquisition the operation made (0: none).
    pub(crate) fn taken(&self) -> u64 {
        self.took.load(Ordering::SeqCst)
    }

    /// Gives the wait up; the waiter sees it once the object is woken.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// How long a caller waits: not at all, until a deadline, or without end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Patience {
    None,
    Until(Instant),
    Forever,
}

impl Patience {
    /// From Python's `(block, timeout)`: `block` false waits not at all.
    pub(crate) fn new(block: bool, timeout: Option<Duration>) -> Patience {
        match (block, timeout) {
            (false, _) => Patience::None,
            (true, None) => Patience::Forever,
            (true, Some(timeout)) => match Instant::now().checked_add(timeout) {
                Some(deadline) => Patience::Until(deadline),
                None => Patience::Forever,
            },
        }
    }

    /// From a guest's `(block, timeout in milliseconds)`.
    pub(crate) fn from_millis(block: bool, timeout: Option<u64>) -> Patience {
        Patience::new(block, timeout.map(Duration::from_millis))
    }
}

/// An object's state, and the condition its waiters wait on.
#[derive(Debug, Default)]
pub(crate) struct Monitor<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T> Monitor<T> {
    pub(crate) fn new(state: T) -> Self {
        Monitor {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every waiter: the state changed (or a wait was cancelled).
    pub(crate) fn notify(&self) {
        // Taken, so that a waiter between its check and its sleep cannot
        // miss the news.
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Waits until `ready` holds of the state, as long as `patience` and
    /// `wait` allow: whether it does (`false` when patience ran out).
    pub(crate) fn wait_until(
        &self,
        patience: Patience,
        wait: &Wait,
        mut ready: impl FnMut(&T) -> bool,
    ) -> Result<bool, Failure> {
        match self.wait_for(patience, wait, |state| ready(state).then_some(())) {
            Ok(()) => Ok(true),
            Err(Failure::TimedOut) => Ok(false),
            Err(failure) => Err(failure),
        }
    }

    /// Runs `attempt` on the state until it returns `Some`, waiting for a
    /// change in between, as long as `patience` and `wait` allow: never once
    /// `wait` is cancelled. Ends with [`Failure::TimedOut`] when patience
    /// runs out.
    pub(crate) fn wait_for<R>(
        &self,
        patience: Patience,
        wait: &Wait,
        mut attempt: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<R, Failure> {
        let mut state = self.lock();
        loop {
            // Checked first: a wait given up takes nothing, even if what it
            // waited for came while it was being woken.
            if wait.is_cancelled() {
                return Err(Failure::Refused("the wait was cancelled".into()));
            }
            if let Some(done) = attempt(&mut state) {
                return Ok(done);
            }
            state = match patience {
                Patience::None => return Err(Failure::TimedOut),
                Patience::Forever => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Patience::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::TimedOut);
                    }
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_wait_ends_and_a_change_is_seen() {
        let monitor = Arc::new(Monitor::new(0));
        let wait = Wait::for_task(8);
        let waiter = {
            let (monitor, wait) = (monitor.clone(), wait.clone());
            std::thread::spawn(move || {
                monitor.wait_for(Patience::Forever, &wait, |n| (*n > 5).then_some(*n))
            })
        };
        wait.cancel();
        monitor.notify();
        assert_eq!(
            waiter.join().unwrap(),
            Err(Failure::Refused("the wait was cancelled".into()))
        );
        let waiter = {
            let monitor = monitor.clone();
            std::thread::spawn(move || {
                monitor.wait_for(Patience::Forever, &Wait::forever(), |n| {
                    (*n > 5).then_some(*n)
                })
            })
        };
        *monitor.lock() = 7;
        monitor.notify();
        assert_eq!(waiter.join().unwrap(), Ok(7));
    }

    #[test]
    fn a_cancelled_wait_takes_nothing_even_when_woken_to_what_it_waited_for() {
        // The wait was given up (its worker died, its pool terminated) and
        // what it waited for came before it was woken: it stays.
        let monitor = Monitor::new(vec![1]);
        let wait = Wait::for_task(8);
        wait.cancel();
        let taken = monitor.wait_for(Patience::Forever, &wait, |items| items.pop());
        assert_eq!(
            taken,
            Err(Failure::Refused("the wait was cancelled".into()))
        );
        assert_eq!(*monitor.lock(), [1]);
    }

    #[test]
    fn patience_runs_out() {
        let monitor = Monitor::new(());
        let never = |_: &mut ()| None::<()>;
        let wait = Wait::forever();
        assert_eq!(
            monitor.wait_for(Patience::None, &wait, never),
            Err(Failure::TimedOut)
        );
        let soon = Patience::new(true, Some(Duration::from_millis(5)));
        assert_eq!(monitor.wait_for(soon, &wait, never), Err(Failure::TimedOut));
    }
}
