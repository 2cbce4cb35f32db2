//! [`Semaphore`] and [`BoundedSemaphore`]: at most N holders at once, across
//! tasks and host threads; the permits of a holder that dies come back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::Failure;
use crate::objects::acquire::{self, Acquire, Guard, guard};
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::{Monitor, Patience, Wait};
use crate::objects::{Holder, Kind, Object, args, encode, next_id, unknown_op};

#[derive(Debug, Default)]
struct State {
    /// Permits free.
    value: usize,
    /// Permits taken, by holder: each acquisition's number.
    held: HashMap<Holder, Vec<u64>>,
    /// The last acquisition's number.
    token: u64,
    /// A holder died holding permits, since the last acquire.
    holder_died: bool,
}

#[derive(Debug)]
pub(crate) struct SemaphoreCore {
    id: u64,
    /// A bounded semaphore's initial value, which a release may not exceed.
    bound: Option<usize>,
    state: Monitor<State>,
}

impl SemaphoreCore {
    fn new(value: usize, bounded: bool) -> Arc<Self> {
        Arc::new(SemaphoreCore {
            id: next_id(),
            bound: bounded.then_some(value),
            state: Monitor::new(State {
                value,
                ..State::default()
            }),
        })
    }

    fn value(&self) -> usize {
        self.state.lock().value
    }
}

impl Acquire for SemaphoreCore {
    fn acquire(&self, holder: Holder, patience: Patience, wait: &Wait) -> Result<bool, Failure> {
        self.state.wait_for(patience, wait, |state| {
            if state.value == 0 {
                return None;
            }
            state.value -= 1;
            state.token += 1;
            let token = state.token;
            state.held.entry(holder).or_default().push(token);
            wait.took(token);
            Some(std::mem::take(&mut state.holder_died))
        })
    }

    fn release(&self, holder: Holder) -> Result<(), Failure> {
        let mut state = self.state.lock();
        if self.bound.is_some_and(|bound| state.value >= bound) {
            return Err(Failure::Refused(
                "a bounded semaphore was released too many times".into(),
            ));
        }
        state.value += 1;
        if let Some(held) = state.held.get_mut(&holder) {
            held.pop();
            if held.is_empty() {
                state.held.remove(&holder);
            }
        }
        drop(state);
        self.state.notify();
        Ok(())
    }

    fn undo(&self, holder: Holder, token: u64, holder_died: bool) -> bool {
        let mut state = self.state.lock();
        let Some(held) = state.held.get_mut(&holder) else {
            return false;
        };
        let Some(at) = held.iter().position(|&taken| taken == token) else {
            return false;
        };
        held.remove(at);
        if held.is_empty() {
            state.held.remove(&holder);
        }
        state.value += 1;
        state.holder_died |= holder_died;
        drop(state);
        self.state.notify();
        true
    }
}

impl Object for SemaphoreCore {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        if self.bound.is_some() {
            Kind::BoundedSemaphore
        } else {
            Kind::Semaphore
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
        if let Some(result) = acquire::invoke(self, self.kind(), holder, op, bytes, wait) {
            return result;
        }
        match op {
            "value" => {
                let () = args(self.kind(), op, bytes)?;
                encode(&self.value())
            }
            _ => Err(unknown_op(self.kind(), op)),
        }
    }

    fn let_go(&self, holder: Holder) {
        let mut state = self.state.lock();
        if let Some(held) = state.held.remove(&holder) {
            state.value += held.len();
            state.holder_died = true;
            drop(state);
            self.state.notify();
        }
    }

    fn give_back(&self, holder: Holder, op: &str, result: &[u8], took: u64) {
        acquire::give_back(self, holder, op, result, took);
    }
}

/// A counting semaphore shared by tasks and host threads: Python's
/// `multiprocessing.Semaphore`. At most `value` holders at once.
///
/// The permits of a task whose worker dies (or that ends without releasing
/// them) come back, and the next acquirer learns of it
/// ([`SemaphoreGuard::previous_holder_died`]).
#[derive(Clone, Debug)]
pub struct Semaphore {
    core: Arc<SemaphoreCore>,
}

serialize_as_handle!(Semaphore, core);

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Self {
        Semaphore {
            core: SemaphoreCore::new(value, false),
        }
    }

    /// Waits for a permit and takes it.
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        guard(&*self.core, Patience::Forever).expect("a host wait without end")
    }

    /// Takes a permit if one is free.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        guard(&*self.core, Patience::None)
    }

    /// Waits at most `timeout` for a permit.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        guard(&*self.core, Patience::new(true, Some(timeout)))
    }

    /// The permits free now.
    pub fn value(&self) -> usize {
        self.core.value()
    }

    /// Gives a permit back without a guard (one [kept](Guard::keep)), from
    /// any thread, as Python's `Semaphore.release()`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) if a bounded
    /// semaphore would exceed its initial value.
    pub fn release(&self) -> Result<(), crate::Error> {
        acquire::release(&*self.core)
    }
}

/// A semaphore whose permits never exceed their initial number: Python's
/// `multiprocessing.BoundedSemaphore`. A guest that releases once too often
/// gets an error.
#[derive(Clone, Debug)]
pub struct BoundedSemaphore {
    semaphore: Semaphore,
}

impl serde::Serialize for BoundedSemaphore {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.semaphore.serialize(serializer)
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits.
    pub fn new(value: usize) -> Self {
        BoundedSemaphore {
            semaphore: Semaphore {
                core: SemaphoreCore::new(value, true),
            },
        }
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.semaphore
    }
}

/// A permit of a [`Semaphore`]; dropping it gives the permit back.
pub type SemaphoreGuard<'a> = Guard<'a>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_of_a_holder_that_lets_go_come_back() {
        let semaphore = Semaphore::new(2);
        let worker = Holder::Task { worker: 7, nth: 1 };
        let wait = Wait::forever();
        semaphore
            .core
            .acquire(worker, Patience::None, &wait)
            .unwrap();
        semaphore
            .core
            .acquire(worker, Patience::None, &wait)
            .unwrap();
        assert!(semaphore.try_acquire().is_none());
        semaphore.core.let_go(worker);
        assert_eq!(semaphore.value(), 2);
        assert!(semaphore.try_acquire().unwrap().previous_holder_died());
    }

    #[test]
    fn a_bounded_semaphore_refuses_one_release_too_many() {
        let semaphore = BoundedSemaphore::new(1);
        let guard = semaphore.acquire();
        drop(guard);
        assert_eq!(
            semaphore.core.release(Holder::this_thread()),
            Err(Failure::Refused(
                "a bounded semaphore was released too many times".into()
            ))
        );
    }
}
