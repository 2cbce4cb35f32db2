//! The worker's end of the channel from the pool: a thread that reads every
//! message as it comes, so that a withdraw, or the reply to a host call, is
//! seen while a task runs. Batches wait here, in order, until the thread
//! running the guest takes them.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use tokio::sync::oneshot;

use crate::channel::io::FrameReader;
use crate::channel::{Batch, FromWorker, ToWorker};
use crate::worker::outbox::Outbox;

/// How long the thread running the guest polls for its next batch before it
/// sleeps: a batch that comes within this costs no wake-up.
const SPIN: Duration = Duration::from_micros(50);

/// The reply to a host call.
pub(crate) type Reply = Result<ByteBuf, String>;

/// What the thread running the guest does next.
pub(crate) enum Next {
    Run(Batch),
    /// The pool is done with this worker.
    Shutdown,
    /// The channel broke.
    Failed(String),
}

#[derive(Default)]
struct State {
    batches: VecDeque<Batch>,
    /// Why no more batches will come, once that is known.
    end: Option<Result<(), String>>,
    /// The host call waiting for its reply.
    waiting: Option<(u64, oneshot::Sender<Reply>)>,
}

/// Messages from the pool, read as they come.
pub(crate) struct Inbox {
    state: Mutex<State>,
    arrived: Condvar,
    /// Something for [`next`](Self::next) arrived: polled without the lock.
    pending: AtomicBool,
}

impl Inbox {
    /// Starts the thread reading `reader`; withdrawals are answered on
    /// `outbox`.
    pub(crate) fn start(
        mut reader: FrameReader<File>,
        outbox: Arc<Outbox>,
    ) -> std::io::Result<Arc<Inbox>> {
        let inbox = Arc::new(Inbox {
            state: Mutex::default(),
            arrived: Condvar::new(),
            pending: AtomicBool::new(false),
        });
        let reading = inbox.clone();
        thread::Builder::new()
            .name("wasmpool-inbox".into())
            .spawn(move || {
                loop {
                    let end = match reader.read::<ToWorker>() {
                        Ok(Some(message)) => match reading.take(message, &outbox) {
                            Ok(()) => continue,
                            Err(end) => end,
                        },
                        Ok(None) => Ok(()),
                        Err(err) => Err(format!("cannot read from the pool: {err}")),
                    };
                    let mut state = reading.lock();
                    state.end = Some(end);
                    // A host call waiting now gets no reply: its receiver
                    // fails rather than waits.
                    state.waiting = None;
                    drop(state);
                    reading.wake();
                    return;
                }
            })?;
        Ok(inbox)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.arrived.notify_one();
    }

    /// Handles one message; `Err` when it ends the conversation.
    fn take(&self, message: ToWorker, outbox: &Outbox) -> Result<(), Result<(), String>> {
        match message {
            ToWorker::Run(batch) => {
                self.lock().batches.push_back(batch);
                self.wake();
            }
            ToWorker::Withdraw { seq } => {
                let mut state = self.lock();
                let at = state.batches.iter().position(|batch| batch.seq == seq);
                // Not there: it started (or ran) already, and its outcomes
                // answer for it.
                if let Some(at) = at {
                    state.batches.remove(at);
                    drop(state);
                    if outbox.send_now(&FromWorker::Withdrawn { seq }).is_err() {
                        return Err(Err("cannot write to the pool".into()));
                    }
                }
            }
            ToWorker::Reply { call, result } => {
                let mut state = self.lock();
                // A reply to a call given up (its task timed out) finds no
                // one waiting, and is dropped.
                if state.waiting.as_ref().is_some_and(|(id, _)| *id == call) {
                    let (_, tx) = state.waiting.take().expect("checked");
                    let _ = tx.send(result);
                }
            }
            ToWorker::Shutdown => return Err(Ok(())),
            ToWorker::Setup(_) => return Err(Err("setup sent twice".into())),
        }
        Ok(())
    }

    /// The next batch, or why there is none; waits for it.
    pub(crate) fn next(&self) -> Next {
        let spin_until = Instant::now() + SPIN;
        while !self.pending.load(Ordering::Acquire) && Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        let mut state = self.lock();
        loop {
            if let Some(batch) = state.batches.pop_front() {
                if state.batches.is_empty() && state.end.is_none() {
                    self.pending.store(false, Ordering::Release);
                }
                return Next::Run(batch);
            }
            match &state.end {
                Some(Ok(())) => return Next::Shutdown,
                Some(Err(why)) => return Next::Failed(why.clone()),
                None => {}
            }
            self.pending.store(false, Ordering::Release);
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Registers host call `call` as waiting; its reply arrives on the
    /// returned receiver (which fails if the channel ends first).
    pub(crate) fn expect_reply(&self, call: u64) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        if state.end.is_none() {
            state.waiting = Some((call, tx));
        }
        rx
    }
}
