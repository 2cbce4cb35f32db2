//! [`Lock`] and [`RLock`]: mutual exclusion across tasks and host threads,
//! robust to a holder that dies.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::Failure;
use crate::objects::acquire::{self, Acquire, Guard, guard};
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::{Monitor, Patience, Wait};
use crate::objects::{Holder, Kind, Object, next_id, unknown_op};

#[derive(Debug, Default)]
struct State {
    holder: Option<Holder>,
    /// How many times the holder acquired it (an rlock's recursion).
    depth: u32,
    /// Its last holder let go of it without releasing it.
    holder_died: bool,
    /// The current acquisition, numbered (0: none yet).
    token: u64,
}

/// A lock, or a reentrant one.
#[derive(Debug)]
pub(crate) struct LockCore {
    id: u64,
    reentrant: bool,
    state: Monitor<State>,
}

impl LockCore {
    fn new(reentrant: bool) -> Arc<Self> {
        Arc::new(LockCore {
            id: next_id(),
            reentrant,
            state: Monitor::new(State::default()),
        })
    }
}

impl Acquire for LockCore {
    fn acquire(&self, holder: Holder, patience: Patience, wait: &Wait) -> Result<bool, Failure> {
        self.state
            .wait_for(patience, wait, |state| match state.holder {
                None => {
                    state.holder = Some(holder);
                    state.depth = 1;
                    state.token += 1;
                    wait.took(state.token);
                    Some(std::mem::take(&mut state.holder_died))
                }
                Some(current) if self.reentrant && current == holder => {
                    state.depth += 1;
                    wait.took(state.token);
                    Some(false)
                }
                Some(_) => None,
            })
    }

    fn release(&self, holder: Holder) -> Result<(), Failure> {
        let mut state = self.state.lock();
        match state.holder {
            None => {
                return Err(Failure::Refused("release of an unlocked lock".into()));
            }
            // A plain lock may be released by anyone, as in Python.
            Some(current) if self.reentrant && current != holder => {
                return Err(Failure::Refused(
                    "cannot release an rlock held by someone else".into(),
                ));
            }
            Some(_) => {}
        }
        state.depth -= 1;
        if state.depth == 0 || !self.reentrant {
            state.holder = None;
            state.depth = 0;
            drop(state);
            self.state.notify();
        }
        Ok(())
    }

    fn undo(&self, holder: Holder, token: u64, holder_died: bool) -> bool {
        let mut state = self.state.lock();
        if state.holder != Some(holder) || state.token != token || token == 0 {
            return false;
        }
        state.depth -= 1;
        if state.depth == 0 {
            state.holder = None;
            state.holder_died |= holder_died;
            drop(state);
            self.state.notify();
        }
        true
    }
}

impl Object for LockCore {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        if self.reentrant {
            Kind::RLock
        } else {
            Kind::Lock
        }
    }

    fn may_wait(&self, op: &str) -> bool {
        op == "acquire"
    }

    fn invoke(
        &self,
        holder: Holder,
        op: &str,
        bytes: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure> {
        acquire::invoke(self, self.kind(), holder, op, bytes, wait)
            .unwrap_or_else(|| Err(unknown_op(self.kind(), op)))
    }

    fn let_go(&self, holder: Holder) {
        let mut state = self.state.lock();
        if state.holder == Some(holder) {
            state.holder = None;
            state.depth = 0;
            state.holder_died = true;
            drop(state);
            self.state.notify();
        }
    }

    fn give_back(&self, holder: Holder, op: &str, result: &[u8], took: u64) {
        acquire::give_back(self, holder, op, result, took);
    }
}

/// A lock shared by tasks and host threads: Python's `multiprocessing.Lock`.
///
/// Pass it to tasks as an argument; a guest acquires it through its handle
/// (`wasmpool_guest::Lock`). Host threads acquire it with
/// [`acquire`](Self::acquire), which returns a guard that releases it when
/// dropped.
///
/// If a task's worker dies holding the lock — or the task ends without
/// releasing it — the host releases it, and the next acquirer learns that
/// its previous holder died ([`LockGuard::previous_holder_died`]), instead
/// of waiting forever as it would in Python.
#[derive(Clone, Debug)]
pub struct Lock {
    core: Arc<LockCore>,
}

serialize_as_handle!(Lock, core);

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Self {
        Lock {
            core: LockCore::new(false),
        }
    }

    /// Waits for the lock and takes it.
    pub fn acquire(&self) -> LockGuard<'_> {
        guard(&*self.core, Patience::Forever).expect("a host wait without end")
    }

    /// Takes the lock if it is free.
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        guard(&*self.core, Patience::None)
    }

    /// Waits at most `timeout` for the lock.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        guard(&*self.core, Patience::new(true, Some(timeout)))
    }

    /// Releases it without a guard (one [kept](Guard::keep)), from any
    /// thread, as Python's `Lock.release()`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) if it is not locked.
    pub fn release(&self) -> Result<(), crate::Error> {
        acquire::release(&*self.core)
    }
}

/// A held [`Lock`] (or [`RLock`]); dropping it releases it.
pub type LockGuard<'a> = Guard<'a>;

/// A reentrant lock: Python's `multiprocessing.RLock`. Its holder (a host
/// thread, or a task) may acquire it again; it is free once released as
/// many times.
#[derive(Clone, Debug)]
pub struct RLock {
    core: Arc<LockCore>,
}

serialize_as_handle!(RLock, core);

/// A held [`RLock`]; dropping it releases one level.
pub type RLockGuard<'a> = LockGuard<'a>;

impl Default for RLock {
    fn default() -> Self {
        RLock::new()
    }
}

impl RLock {
    /// A new, unlocked reentrant lock.
    pub fn new() -> Self {
        RLock {
            core: LockCore::new(true),
        }
    }

    /// Waits for the lock and takes it (at once if this thread holds it).
    pub fn acquire(&self) -> RLockGuard<'_> {
        guard(&*self.core, Patience::Forever).expect("a host wait without end")
    }

    /// Takes the lock if it is free or this thread holds it.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        guard(&*self.core, Patience::None)
    }

    /// Waits at most `timeout` for the lock.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        guard(&*self.core, Patience::new(true, Some(timeout)))
    }

    /// Releases one level without a guard (one [kept](Guard::keep)), as
    /// Python's `RLock.release()`: only the thread holding it may.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) if it is not locked,
    /// or another holder holds it.
    pub fn release(&self) -> Result<(), crate::Error> {
        acquire::release(&*self.core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_lock_is_released_by_any_thread_and_a_kept_rlock_by_its_holder_only() {
        let lock = Lock::new();
        lock.acquire().keep();
        assert!(lock.try_acquire().is_none(), "kept past its guard");
        let other = lock.clone();
        std::thread::spawn(move || other.release().unwrap())
            .join()
            .unwrap();
        assert!(lock.try_acquire().is_some());
        assert!(lock.release().is_err(), "released while unlocked");
        let rlock = RLock::new();
        rlock.acquire().keep();
        rlock.acquire().keep();
        let other = rlock.clone();
        let refused = std::thread::spawn(move || other.release()).join().unwrap();
        assert!(
            refused.is_err(),
            "released by a thread that does not hold it"
        );
        rlock.release().unwrap();
        rlock.release().unwrap();
        assert!(rlock.release().is_err());
    }

    #[test]
    fn a_holder_that_lets_go_is_reported_to_the_next() {
        let lock = Lock::new();
        let worker = Holder::Task { worker: 1, nth: 1 };
        assert_eq!(
            lock.core.acquire(worker, Patience::None, &Wait::forever()),
            Ok(false)
        );
        assert!(lock.try_acquire().is_none());
        lock.core.let_go(worker);
        let guard = lock.try_acquire().unwrap();
        assert!(guard.previous_holder_died());
        drop(guard);
        assert!(!lock.acquire().previous_holder_died());
    }

    #[test]
    fn a_lock_acquired_for_a_task_that_stopped_waiting_is_released() {
        let lock = Lock::new();
        let worker = Holder::Task { worker: 2, nth: 1 };
        let wait = Wait::forever();
        let answer = lock
            .core
            .invoke(worker, "acquire", &[0x92, 0xc3, 0xc0], &wait)
            .unwrap();
        assert!(lock.try_acquire().is_none());
        lock.core
            .give_back(worker, "acquire", &answer, wait.taken());
        assert!(!lock.try_acquire().unwrap().previous_holder_died());
    }

    #[test]
    fn a_give_back_never_frees_what_another_acquisition_holds() {
        let lock = Lock::new();
        let worker = Holder::Task { worker: 4, nth: 1 };
        let stale = Wait::forever();
        let answer = lock
            .core
            .invoke(worker, "acquire", &[0x92, 0xc3, 0xc0], &stale)
            .unwrap();
        // Its task ended: the worker let go of the lock; the next task of
        // the same worker acquired it again before the stale answer came
        // back.
        lock.core.let_go(worker);
        let again = Wait::forever();
        lock.core
            .invoke(worker, "acquire", &[0x92, 0xc3, 0xc0], &again)
            .unwrap();
        lock.core
            .give_back(worker, "acquire", &answer, stale.taken());
        assert!(lock.try_acquire().is_none(), "the second holder lost it");
        // Nor what a host thread holds after the worker let go.
        lock.core.release(worker).unwrap();
        let held = lock.try_acquire().unwrap();
        lock.core
            .give_back(worker, "acquire", &answer, again.taken());
        assert!(lock.try_acquire().is_none(), "the host thread lost it");
        drop(held);
    }

    #[test]
    fn an_rlock_counts_its_holders_levels() {
        let lock = RLock::new();
        let outer = lock.acquire();
        let inner = lock.try_acquire().expect("reentrant");
        drop(inner);
        let other = std::thread::scope(|scope| {
            scope.spawn(|| lock.try_acquire().is_some()).join().unwrap()
        });
        assert!(!other, "held by the first thread still");
        drop(outer);
        assert_eq!(
            lock.core.release(Holder::this_thread()),
            Err(Failure::Refused("release of an unlocked lock".into()))
        );
    }
}
