//! The thread that runs user callbacks, away from the threads that deliver
//! results: a slow callback delays only the callbacks queued after it, and a
//! panicking one is caught and logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::user_code::call_guarded;

type Callback = Box<dyn FnOnce() + Send>;

/// A handle to queue callbacks; cheap to clone.
#[derive(Clone)]
pub(crate) struct CallbackQueue {
    tx: Sender<Callback>,
}

impl CallbackQueue {
    /// Queues `job` to run on the callback thread.
    pub(crate) fn push(&self, job: impl FnOnce() + Send + 'static) {
        // The thread lives until the last queue handle is gone, so this only
        // fails if the thread itself died, which catch_unwind prevents.
        if let Err(err) = self.tx.send(Box::new(job)) {
            (err.0)();
        }
    }
}

/// The callback thread of a pool.
pub(crate) struct CallbackThread {
    queue: Mutex<Option<CallbackQueue>>,
    handle: Mutex<Option<JoinHandle<()>>>,
    id: ThreadId,
}

impl CallbackThread {
    pub(crate) fn start() -> std::io::Result<Arc<Self>> {
        let (tx, rx) = unbounded::<Callback>();
        let handle = thread::Builder::new()
            .name("wasmpool-callbacks".into())
            .spawn(move || run(rx))?;
        Ok(Arc::new(CallbackThread {
            id: handle.thread().id(),
            queue: Mutex::new(Some(CallbackQueue { tx })),
            handle: Mutex::new(Some(handle)),
        }))
    }

    /// A handle to queue callbacks, `None` once the thread was told to stop.
    pub(crate) fn queue(&self) -> Option<CallbackQueue> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the caller is running on the callback thread.
    pub(crate) fn is_current(&self) -> bool {
        thread::current().id() == self.id
    }

    /// Lets the thread finish the callbacks queued so far (and any queued by
    /// handles still alive), and waits for it, unless called from the callback
    /// thread itself, which cannot wait for itself.
    pub(crate) fn finish(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if self.is_current() {
            return;
        }
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run(rx: Receiver<Callback>) {
    for job in rx {
        call_guarded(job);
    }
}
