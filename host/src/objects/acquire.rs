//! What locks and semaphores share: acquiring for a holder (with Python's
//! `block` and `timeout`), releasing, the guard a host thread holds, and
//! putting back what a task no longer waits for.

use crate::channel::Failure;
use crate::objects::wait::{Patience, Wait};
use crate::objects::{Holder, Kind, args, encode};

/// A lock or a semaphore.
pub(crate) trait Acquire: Send + Sync {
    /// Acquires for `holder`; `Ok(true)` if a previous holder died holding
    /// it since the last acquire.
    fn acquire(&self, holder: Holder, patience: Patience, wait: &Wait) -> Result<bool, Failure>;

    /// Releases what `holder` acquired.
    fn release(&self, holder: Holder) -> Result<(), Failure>;

    /// Undoes acquisition `token` if `holder` still holds it (it did not
    /// release or let go of it since); whether it did. With
    /// `holder_died` (the acquisition had been told that a previous holder
    /// died), the next acquirer is told instead — in the same step, so that
    /// no acquirer slips in between and misses the news.
    fn undo(&self, holder: Holder, token: u64, holder_died: bool) -> bool;
}

/// Serves `acquire` and `release` for a guest; `None` for another operation.
pub(crate) fn invoke(
    object: &dyn Acquire,
    kind: Kind,
    holder: Holder,
    op: &str,
    bytes: &[u8],
    wait: &Wait,
) -> Option<Result<Vec<u8>, Failure>> {
    let result = match op {
        // 0: not acquired, 1: acquired, 2: acquired from a holder that died.
        "acquire" => args(kind, op, bytes).and_then(|(block, timeout): (bool, Option<u64>)| {
            match object.acquire(holder, Patience::from_millis(block, timeout), wait) {
                Ok(died) => encode(&(1 + u8::from(died))),
                Err(Failure::TimedOut) => encode(&0u8),
                Err(failure) => Err(failure),
            }
        }),
        "release" => args(kind, op, bytes)
            .and_then(|()| object.release(holder))
            .and_then(|()| encode(&())),
        _ => return None,
    };
    Some(result)
}

/// An `acquire` answered to a task that no longer waited for it (or never
/// used it): acquisition `took` undone, as if never made, if its holder
/// still holds it. Never a release: that would free what another holder
/// took since.
pub(crate) fn give_back(object: &dyn Acquire, holder: Holder, op: &str, result: &[u8], took: u64) {
    let state: u8 = rmp_serde::from_slice(result).unwrap_or(0);
    if op == "acquire" && state > 0 {
        object.undo(holder, took, state == 2);
    }
}

/// A held lock or semaphore permit, taken by a host thread; dropping it
/// releases it.
#[must_use = "it is released when the guard is dropped"]
pub struct Guard<'a> {
    object: &'a dyn Acquire,
    holder: Holder,
    previous_holder_died: bool,
}

impl std::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("previous_holder_died", &self.previous_holder_died)
            .finish_non_exhaustive()
    }
}

impl Guard<'_> {
    /// Whether a holder before this one died (or ended its task) holding
    /// it: whatever it protected may be half-updated.
    pub fn previous_holder_died(&self) -> bool {
        self.previous_holder_died
    }

    /// Keeps it acquired past the guard, for a caller that releases it
    /// itself, as Python's `acquire()` and `release()` do: see
    /// [`Lock::release`](crate::Lock::release).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

/// Releases what the calling host thread acquired of `object` (a guard it
/// kept), as Python's `release()`.
pub(crate) fn release(object: &dyn Acquire) -> Result<(), crate::Error> {
    object
        .release(Holder::this_thread())
        .map_err(|failure| crate::Error::new(crate::ErrorKind::Usage, failure.to_string()))
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.object.release(self.holder);
    }
}

/// Acquires `object` for the calling host thread, as long as `patience`
/// allows.
pub(crate) fn guard(object: &dyn Acquire, patience: Patience) -> Option<Guard<'_>> {
    let holder = Holder::this_thread();
    let died = object.acquire(holder, patience, &Wait::forever()).ok()?;
    Some(Guard {
        object,
        holder,
        previous_holder_died: died,
    })
}
