//! The worker's end of the channel from the pool: a thread that reads every
//! message as it comes, so that a withdraw, or the reply to a host call, is
//! seen while a task runs. Batches wait here, in order, until the thread
//! running the guest takes them.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use serde_bytes::ByteBuf;
use tokio::sync::oneshot;

use crate::channel::io::FrameReader;
use crate::channel::{Batch, FromWorker, ToWorker};
use crate::worker::outbox::Outbox;

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
    /// The thread running the guest sleeps until something arrives.
    asleep: bool,
}

/// Messages from the pool, read as they come.
pub(crate) struct Inbox {
    state: Mutex<State>,
    arrived: Condvar,
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
        self.arrived.notify_one();
    }

    /// Handles one message; `Err` when it ends the conversation.
    fn take(&self, message: ToWorker, outbox: &Outbox) -> Result<(), Result<(), String>> {
        match message {
            ToWorker::Run(batch) => {
                let mut state = self.lock();
                state.batches.push_back(batch);
                let asleep = state.asleep;
                drop(state);
                // A wake-up costs a system call: only for a sleeper. (Polling
                // for the next batch instead was measured: it sped a lone
                // apply's round trip up, and slowed everything else down more,
                // taking a core from the pool on a small machine.)
                if asleep {
                    self.arrived.notify_one();
                }
            }
            ToWorker::Withdraw { seq } => {
                let mut state = self.lock();
                let at = state.batches.iter().position(|batch| batch.seq == seq);
                // Not there: it started (or ran) already, and its outcomes
                // answer for it.
                if let Some(at) = at {
                    state.batches.remove(at);
                    // Queued while the batches are locked: the thread running
                    // the guest takes a later batch, and reports on it, only
                    // after this, so the pool hears of the withdrawal first.
                    outbox.send(&FromWorker::Withdrawn { seq });
                    drop(state);
                    if outbox.flush().is_err() {
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
        let mut state = self.lock();
        loop {
            if let Some(batch) = state.batches.pop_front() {
                return Next::Run(batch);
            }
            match &state.end {
                Some(Ok(())) => return Next::Shutdown,
                Some(Err(why)) => return Next::Failed(why.clone()),
                None => {}
            }
            state.asleep = true;
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.asleep = false;
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
