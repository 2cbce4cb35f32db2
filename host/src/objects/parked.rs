//! Guests' operations that wait without a thread: an operation that cannot
//! finish at once is *parked* on its object ([`Retry`]), tried again each
//! time the object changes — on the thread that changed it — and once when
//! its deadline passes, on one timer thread shared by every pool. Ten
//! thousand tasks blocked on an `Event` cost ten thousand small records,
//! not ten thousand threads.
//!
//! Tries never nest: a try that changes an object (a `get` that makes room
//! for a blocked `put`) queues the tries it causes on its own thread, run
//! one after another once it returns, so that no try runs inside another
//! and the stack stays flat however long the chain.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{OnceLock, Weak};
use std::time::Instant;

use tokio::runtime::Handle;

/// A parked operation: tries to finish, and parks again if it still cannot.
pub(crate) trait Retry: Send + Sync {
    fn retry(&self);
}

thread_local! {
    /// The tries this thread has still to run, while it runs one.
    static QUEUED: RefCell<Option<VecDeque<Weak<dyn Retry>>>> = const { RefCell::new(None) };
}

/// Runs `f`, holding back the tries its changes cause until it returns;
/// then runs them, on this thread — unless this thread is already running
/// tries, which then runs them after the one under way. So `f` may hold a
/// lock a try takes.
pub(crate) fn deferring<R>(f: impl FnOnce() -> R) -> R {
    let nested = QUEUED.with(|queued| {
        let mut queued = queued.borrow_mut();
        let nested = queued.is_some();
        queued.get_or_insert_with(VecDeque::new);
        nested
    });
    if nested {
        return f();
    }
    // Ends the run even if a try panics, so that the thread's later
    // changes still try what they wake.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            QUEUED.with(|queued| queued.borrow_mut().take());
        }
    }
    let _running = Running;
    let result = f();
    while let Some(next) = QUEUED.with(|queued| queued.borrow_mut().as_mut()?.pop_front()) {
        if let Some(parked) = next.upgrade() {
            parked.retry();
        }
    }
    result
}

/// Tries each of `parked` that is still wanted, on this thread (after the
/// tries this thread is running, if it is running some).
pub(crate) fn retry(parked: impl IntoIterator<Item = Weak<dyn Retry>>) {
    deferring(|| {
        QUEUED.with(|queued| {
            if let Some(queue) = queued.borrow_mut().as_mut() {
                queue.extend(parked);
            }
        });
    });
}

/// Tries `parked` once `deadline` has passed (if it is still wanted then);
/// false if the timer thread cannot be started.
pub(crate) fn retry_at(deadline: Instant, parked: Weak<dyn Retry>) -> bool {
    // A thread that only drives tokio's timer wheel: a sleep per deadline.
    static TIMER: OnceLock<Option<Handle>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("wasmpool-object-deadlines".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .ok()?;
        Some(handle)
    });
    let Some(timer) = timer else {
        return false;
    };
    timer.spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        retry([parked]);
    });
    true
}
