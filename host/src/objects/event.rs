//! [`Event`]: a flag tasks and host threads wait for.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::Failure;
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::{Monitor, Patience, Wait};
use crate::objects::{Holder, Kind, Object, args, encode, next_id, unknown_op};

#[derive(Debug)]
pub(crate) struct EventCore {
    id: u64,
    set: Monitor<bool>,
}

impl EventCore {
    fn set(&self) {
        *self.set.lock() = true;
        self.set.notify();
    }

    fn wait(&self, patience: Patience, wait: &Wait) -> Result<bool, Failure> {
        self.set.wait_until(patience, wait, |set| *set)
    }
}

impl Object for EventCore {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::Event
    }

    fn may_wait(&self, op: &str) -> bool {
        op == "wait"
    }

    fn invoke(
        &self,
        _holder: Holder,
        op: &str,
        bytes: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure> {
        match op {
            "set" => {
                let () = args(Kind::Event, op, bytes)?;
                self.set();
                encode(&())
            }
            "clear" => {
                let () = args(Kind::Event, op, bytes)?;
                *self.set.lock() = false;
                encode(&())
            }
            "is-set" => {
                let () = args(Kind::Event, op, bytes)?;
                encode(&*self.set.lock())
            }
            "wait" => {
                let (timeout,): (Option<u64>,) = args(Kind::Event, op, bytes)?;
                encode(&self.wait(Patience::from_millis(true, timeout), wait)?)
            }
            _ => Err(unknown_op(Kind::Event, op)),
        }
    }
}

/// A flag shared by tasks and host threads: Python's
/// `multiprocessing.Event`. Waiters block until it is set.
#[derive(Clone, Debug)]
pub struct Event {
    core: Arc<EventCore>,
}

serialize_as_handle!(Event, core);

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Self {
        Event {
            core: Arc::new(EventCore {
                id: next_id(),
                set: Monitor::new(false),
            }),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.core.set();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        *self.core.set.lock() = false;
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        *self.core.set.lock()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        let _ = self.core.wait(Patience::Forever, &Wait::forever());
    }

    /// Waits at most `timeout` for the flag; whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core
            .wait(Patience::new(true, Some(timeout)), &Wait::forever())
            .unwrap_or(false)
    }
}
