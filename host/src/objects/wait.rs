//! Waiting on a shared object: its state under a mutex with a condition
//! variable for host threads and a list of parked operations for guests
//! ([`Monitor`]), how long a caller is willing to wait ([`Patience`]), and
//! what a caller's wait carries: the flag that ends a guest's wait early,
//! and where it parks ([`Wait`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::channel::Failure;
use crate::objects::parked::{self, Retry};

/// What a caller's operation carries: how large an item the caller can
/// take, the acquisition it made, and, for a guest's operation that may
/// wait, where it parks. (A guest's wait given up — its task stopped, its
/// worker died — is dropped from its worker's grants, and never tried
/// again: see `backend/calls/objects.rs`.)
#[derive(Clone)]
pub(crate) struct Wait {
    /// The acquisition the operation made (0: none), so that giving its
    /// answer back undoes that one and no other.
    took: Arc<AtomicU64>,
    /// The most bytes of an item the caller can be given.
    max_item: usize,
    /// A guest's operation that may wait: it parks rather than block.
    parking: Option<Arc<Parking>>,
}

/// Where a guest's operation parks, and what its tries share.
struct Parking {
    /// The operation, to try again.
    retry: Weak<dyn Retry>,
    /// The patience of its first try: later tries keep its deadline.
    patience: Mutex<Option<Patience>>,
    /// Its last try parked it: its answer is not ready.
    parked: AtomicBool,
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("took", &self.taken())
            .field("parks", &self.parking.is_some())
            .finish_non_exhaustive()
    }
}

impl Wait {
    /// A wait nothing cancels: a host thread's.
    pub(crate) fn forever() -> Wait {
        Wait::for_task(usize::MAX)
    }

    /// A task's operation that does not wait, whose worker takes items of
    /// at most `max_item` bytes.
    pub(crate) fn for_task(max_item: usize) -> Wait {
        Wait {
            took: Arc::default(),
            max_item,
            parking: None,
        }
    }

    /// A task's operation that may wait: rather than block its thread, a
    /// try that cannot finish parks `retry` on the object, and says so
    /// ([`parked`](Self::parked)).
    pub(crate) fn parking(max_item: usize, retry: Weak<dyn Retry>) -> Wait {
        Wait {
            parking: Some(Arc::new(Parking {
                retry,
                patience: Mutex::new(None),
                parked: AtomicBool::new(false),
            })),
            ..Wait::for_task(max_item)
        }
    }

    /// Whether the last try parked the operation (its result then means
    /// nothing: the operation is tried again when its object changes, or
    /// its deadline passes). Asking clears it.
    pub(crate) fn parked(&self) -> bool {
        self.parking
            .as_ref()
            .is_some_and(|parking| parking.parked.swap(false, Ordering::SeqCst))
    }

    /// The patience of this try: for a parking operation, that of its
    /// first try, so that its deadline stays where it was set; and whether
    /// this is its first.
    fn fixed(&self, patience: Patience) -> (Patience, bool) {
        let Some(parking) = &self.parking else {
            return (patience, true);
        };
        let mut fixed = parking
            .patience
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = fixed.is_none();
        (*fixed.get_or_insert(patience), first)
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

/// An object's state, the condition host threads wait on, and the
/// operations guests wait for, parked.
#[derive(Default)]
pub(crate) struct Monitor<T> {
    state: Mutex<T>,
    changed: Condvar,
    /// Guests' operations waiting for a change; taken only while `state` is
    /// held, so that a change cannot slip between a try and its parking.
    parked: Mutex<Vec<Weak<dyn Retry>>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Monitor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<T> Monitor<T> {
    pub(crate) fn new(state: T) -> Self {
        Monitor {
            state: Mutex::new(state),
            changed: Condvar::new(),
            parked: Mutex::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn parked(&self) -> MutexGuard<'_, Vec<Weak<dyn Retry>>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells every waiter that the state changed: host threads wake, and
    /// guests' parked operations are tried again, on this thread.
    pub(crate) fn notify(&self) {
        // Taken, so that a waiter between its check and its sleep (or its
        // parking) cannot miss the news.
        let parked = {
            let _state = self.lock();
            std::mem::take(&mut *self.parked())
        };
        self.changed.notify_all();
        parked::retry(parked);
    }

    /// Parks a guest's operation until the state changes; false if it
    /// cannot wait for its deadline (the timer thread cannot start).
    fn park(&self, parking: &Parking, patience: Patience, first: bool) -> bool {
        if let (Patience::Until(deadline), true) = (patience, first)
            && !parked::retry_at(deadline, parking.retry.clone())
        {
            return false;
        }
        let mut parked = self.parked();
        // What finished or was given up since is dropped now and then.
        if parked.len() >= 64 && parked.len().is_power_of_two() {
            parked.retain(|retry| retry.strong_count() > 0);
        }
        parked.push(parking.retry.clone());
        parking.parked.store(true, Ordering::SeqCst);
        true
    }

    /// Waits until `ready` holds of the state, as long as `patience`
    /// allows: whether it does (`false` when patience ran out).
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
    /// change in between, as long as `patience` allows. Ends with
    /// [`Failure::TimedOut`] when patience runs out — and when a guest's
    /// operation parks instead of waiting (then [`Wait::parked`] says so,
    /// and the operation will be tried again).
    pub(crate) fn wait_for<R>(
        &self,
        patience: Patience,
        wait: &Wait,
        mut attempt: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<R, Failure> {
        let (patience, first) = wait.fixed(patience);
        let mut state = self.lock();
        loop {
            if let Some(done) = attempt(&mut state) {
                return Ok(done);
            }
            let expired = match patience {
                Patience::None => true,
                Patience::Until(deadline) => deadline <= Instant::now(),
                Patience::Forever => false,
            };
            if let (Some(parking), false) = (&wait.parking, expired) {
                if !self.park(parking, patience, first) {
                    tracing::warn!(
                        "the timer of shared objects cannot start: a task's wait with a \
                         timeout times out at once"
                    );
                }
                return Err(Failure::TimedOut);
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
    fn a_change_is_seen_by_a_waiting_thread() {
        let monitor = Arc::new(Monitor::new(0));
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

    /// A parked operation that counts its tries.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Retry for Counted {
        fn retry(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_guest_operation_parks_instead_of_blocking_and_is_tried_on_each_change() {
        let monitor = Monitor::new(0);
        let counted = Arc::new(Counted(Arc::default()));
        let weak: Weak<Counted> = Arc::downgrade(&counted);
        let wait = Wait::parking(8, weak);
        let never = |_: &mut i32| None::<()>;
        assert_eq!(
            monitor.wait_for(Patience::Forever, &wait, never),
            Err(Failure::TimedOut)
        );
        assert!(wait.parked(), "it parked");
        assert!(!wait.parked(), "asking cleared it");
        monitor.notify();
        assert_eq!(
            counted.0.load(Ordering::SeqCst),
            1,
            "tried once on a change"
        );
        monitor.notify();
        assert_eq!(counted.0.load(Ordering::SeqCst), 1, "and parked no more");
        // Dropped (given up), it is not tried again.
        assert!(monitor.wait_for(Patience::Forever, &wait, never).is_err());
        let tries = counted.0.clone();
        drop(counted);
        monitor.notify();
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_parked_operation_keeps_the_deadline_of_its_first_try() {
        let monitor = Monitor::new(());
        let counted = Arc::new(Counted(Arc::default()));
        let weak: Weak<Counted> = Arc::downgrade(&counted);
        let wait = Wait::parking(8, weak);
        let never = |_: &mut ()| None::<()>;
        let soon = Patience::new(true, Some(Duration::from_millis(20)));
        assert!(monitor.wait_for(soon, &wait, never).is_err());
        assert!(wait.parked());
        // The timer tries it once its deadline passes.
        let end = Instant::now() + Duration::from_secs(10);
        while counted.0.load(Ordering::SeqCst) == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(counted.0.load(Ordering::SeqCst), 1);
        // A later try with a fresh patience keeps the first deadline, now
        // passed: it times out rather than park.
        let later = Patience::new(true, Some(Duration::from_secs(60)));
        assert_eq!(
            monitor.wait_for(later, &wait, never),
            Err(Failure::TimedOut)
        );
        assert!(!wait.parked(), "timed out, not parked");
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
