//! Where a call's tasks become chunks on the pool's queue: the part of a
//! pool that [`Pool`](super::Pool) and its [`Imap`](super::Imap)s share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::backend::Backend;
use crate::channel::TaskInfo;
use crate::chunk::{Chunk, Chunker, Shape, Sink, Submission, Withdrawals};
use crate::error::{Error, ErrorKind};

/// Submits tasks to a pool's slots.
pub(crate) struct Submitter {
    /// What runs the chunks.
    pub(crate) backend: Arc<dyn Backend>,
    /// Taken when the pool closes.
    queue: Mutex<Option<Sender<Chunk>>>,
    /// The tasks the module offers.
    pub(crate) tasks: Vec<TaskInfo>,
    processes: usize,
    max_payload: usize,
    closed: AtomicBool,
    withdrawals: Arc<Withdrawals>,
}

impl Submitter {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        queue: Sender<Chunk>,
        processes: usize,
        max_payload: usize,
        withdrawals: Arc<Withdrawals>,
    ) -> Self {
        Submitter {
            backend,
            queue: Mutex::new(Some(queue)),
            tasks: Vec::new(),
            processes,
            max_payload,
            closed: AtomicBool::new(false),
            withdrawals,
        }
    }

    pub(crate) fn processes(&self) -> usize {
        self.processes
    }

    /// The task `name`, if the module has it.
    pub(crate) fn task(&self, name: &str) -> Result<&TaskInfo, Error> {
        self.tasks
            .iter()
            .find(|task| task.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
                Error::new(
                    ErrorKind::UnknownTask,
                    format!(
                        "the module has no task named `{name}`; it has: {}",
                        known.join(", ")
                    ),
                )
            })
    }

    /// A submission whose outcomes go to `sink`.
    pub(crate) fn submission(&self, sink: Arc<dyn Sink>) -> Arc<Submission> {
        Submission::new(sink, self.withdrawals.clone())
    }

    /// The queue to submit chunks to, unless the pool is closed.
    pub(crate) fn sender(&self) -> Result<Sender<Chunk>, Error> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::PoolClosed,
                    "the pool is closed: it takes no new tasks",
                )
            })
    }

    /// Puts `chunk` on the queue of a sender from [`sender`](Self::sender).
    pub(crate) fn send(&self, sender: &Sender<Chunk>, chunk: Chunk) {
        // If every slot is gone the chunk comes back and is dropped here,
        // which fails its tasks: nothing is lost silently.
        let _ = sender.send(chunk);
        // Sent as another thread terminates the pool: not left behind.
        self.backend.drop_if_terminating();
    }

    /// A chunker for tasks of `task` of `submission`, their arguments in `shape`,
    /// if the pool has that task and is open.
    pub(crate) fn chunker(
        &self,
        task: &str,
        shape: Shape,
        chunksize: usize,
        submission: Arc<Submission>,
    ) -> Result<Chunker, Error> {
        let info = self.task(task)?;
        self.sender()?;
        Ok(Chunker::new(
            info,
            shape,
            chunksize,
            self.max_payload,
            submission,
        ))
    }

    /// Submits every item of `items` (each a task's arguments in `shape`) as
    /// tasks of `submission`.
    pub(crate) fn submit<A: Serialize>(
        &self,
        task: &str,
        items: impl IntoIterator<Item = A>,
        shape: Shape,
        chunksize: usize,
        submission: Arc<Submission>,
    ) -> Result<(), Error> {
        let mut chunker = self.chunker(task, shape, chunksize, submission)?;
        let sender = self.sender()?;
        for item in items {
            if let Some(chunk) = chunker.push(&item) {
                self.hand_or_send(&sender, chunk);
            }
        }
        if let Some(chunk) = chunker.finish() {
            self.hand_or_send(&sender, chunk);
        }
        Ok(())
    }

    /// Hands `chunk` straight to an idle worker if there is one (its caller,
    /// who waits anyway, writes it: no slot wakes up), else queues it. Not
    /// for a stream's chunks: its feeding thread has better to do than write
    /// to workers, and the slots keep them fed in step.
    fn hand_or_send(&self, sender: &Sender<Chunk>, chunk: Chunk) {
        if let Some(chunk) = self.backend.hand_to_idle(chunk) {
            self.send(sender, chunk);
        }
    }

    /// Whether the pool was closed (or terminated).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Takes no more tasks.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Terminates the backend of a pool that did not start, and waits
    /// until it has stopped.
    pub(crate) fn shut_down(&self) {
        self.close();
        self.backend.terminate();
        self.backend.join();
    }

    /// Disconnects when the pool is terminated.
    pub(crate) fn terminated_signal(&self) -> &Receiver<()> {
        self.backend.stopped()
    }
}
