//! The work one worker holds — the chunks handed to it, in order, and its
//! pace — shared by three threads, so that a task's round trip through an
//! idle worker wakes no thread but the worker's and its caller's:
//!
//! - the slot hands the worker chunks from the queue, and settles them if
//!   the worker dies ([`slot`](super::slot));
//! - a caller whose chunk finds the worker idle hands it over itself
//!   ([`Shared::hand_to_idle`](super::Shared::hand_to_idle));
//! - the thread reading the worker's channel delivers each outcome to its
//!   chunk (and so to its caller) as it comes, and takes back the chunks the
//!   worker gives back ([`inbound`](super::inbound)).
//!
//! The slot hears of progress only when it waits for it ([`Held::slot_waits`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_bytes::ByteBuf;

use crate::backend::calls::objects::{self as object_calls, Invoke};
use crate::backend::calls::{Asked, Forward, Replies};
use crate::backend::local::Shared;
use crate::backend::local::event::Event;
use crate::backend::local::outbound::Outbound;
use crate::backend::local::schedule::Pace;
use crate::channel::{Batch, Outcomes, ToWorker};
use crate::chunk::{Chunk, withdrawn_error};
use crate::objects::ObjectRef;
use crate::objects::grants::{Grants, release};

/// A chunk handed to the worker, waiting for its outcomes.
pub(crate) struct Handed {
    pub(crate) seq: u64,
    pub(crate) chunk: Chunk,
    /// A withdraw was sent for it: its submission was withdrawn, or it is reclaimed
    /// from a stalled worker.
    pub(crate) withdrawing: bool,
}

/// What the worker holds, under its lock.
pub(crate) struct Held {
    /// The chunks handed to it, in the order it runs them.
    pub(crate) chunks: VecDeque<Handed>,
    /// Tasks handed to it without an outcome yet.
    pub(crate) tasks: usize,
    /// Tasks it may still be handed, if limited.
    pub(crate) quota: Option<usize>,
    next_seq: u64,
    /// When it last made progress: started on work, or reported.
    pub(crate) progress: Instant,
    /// How fast it goes.
    pub(crate) pace: Pace,
    /// It serves its slot: it may be handed work, and what it reports counts.
    /// Not yet while it starts; no more once its slot took it out.
    serving: bool,
    /// Whether it is counted in [`Shared::idle`].
    counted_idle: bool,
    /// The slot sleeps until it hears of progress (it cannot take more work,
    /// or waits for the worker to finish all it holds).
    pub(crate) slot_waits: bool,
}

impl Held {
    /// Serving, and holding nothing.
    pub(crate) fn is_idle(&self) -> bool {
        self.serving && self.chunks.is_empty()
    }

    /// Keeps [`Shared::idle`] in step.
    fn count_idle(&mut self, shared: &Shared) {
        let idle = self.is_idle();
        if idle != self.counted_idle {
            self.counted_idle = idle;
            if idle {
                shared.idle.fetch_add(1, Ordering::SeqCst);
            } else {
                shared.idle.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// One worker's work in flight, and its sending end.
pub(crate) struct InFlight {
    held: Mutex<Held>,
    /// The shared objects its tasks may use, and their waits.
    grants: Arc<Mutex<Grants>>,
    outbound: Outbound,
    /// Where the answers to its tasks' calls go: its channel.
    replies: Arc<dyn Replies>,
    /// Its number, unique in this process: what names it to a [`Forward`].
    id: u64,
    /// Its slot's events, to wake it.
    events: Sender<Event>,
}

impl InFlight {
    /// A worker's, which may be handed `quota` tasks if limited, and may use
    /// the objects of its pool's initializer.
    pub(crate) fn new(
        outbound: Outbound,
        events: Sender<Event>,
        quota: Option<usize>,
        initializer: &[ObjectRef],
    ) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        InFlight {
            held: Mutex::new(Held {
                chunks: VecDeque::new(),
                tasks: 0,
                quota,
                next_seq: 0,
                progress: Instant::now(),
                pace: Pace::default(),
                serving: false,
                counted_idle: false,
                slot_waits: false,
            }),
            grants: Arc::new(Mutex::new(Grants::new(initializer))),
            replies: Arc::new(outbound.clone()),
            outbound,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            events,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The worker's sending end.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The worker starts serving its slot.
    pub(crate) fn enlist(&self, shared: &Shared) {
        self.grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .initialized();
        let mut held = self.lock();
        held.serving = true;
        held.count_idle(shared);
    }

    /// The worker's slot takes it out: it gets no more work, what it reports
    /// from now on is ignored, and the chunks it held are the slot's to
    /// settle.
    pub(crate) fn retire(&self, shared: &Shared) -> VecDeque<Handed> {
        let mut held = self.lock();
        held.serving = false;
        held.tasks = 0;
        let chunks = std::mem::take(&mut held.chunks);
        held.count_idle(shared);
        drop(held);
        // Its tasks' waits end, and what they held is let go of.
        match &shared.forward {
            Some(forward) => forward.ended(self.id),
            None => object_calls::end(&self.grants),
        }
        chunks
    }

    /// Where the answers to the worker's calls go.
    pub(crate) fn replies(&self) -> Arc<dyn Replies> {
        self.replies.clone()
    }

    /// Serves a task's operation on a shared object.
    pub(crate) fn invoke(&self, invoke: Invoke, max_payload: usize) {
        object_calls::invoke(invoke, &self.grants, &self.replies, max_payload);
    }

    /// Passes task `index`'s `call` on to `forward`, naming the chunk the
    /// task is in: the worker's first (it sends a task's outcome before
    /// any call of the next, and this channel's reader settles outcomes
    /// before it reads on), or none while its initializer runs.
    pub(crate) fn forward(&self, forward: &dyn Forward, call: u64, index: u64, asked: Asked) {
        let chunk = self
            .lock()
            .chunks
            .front()
            .and_then(|handed| handed.chunk.origin);
        forward.call(self.id, chunk, index, call, asked, self.replies());
    }

    /// A task stopped waiting for `call`.
    pub(crate) fn cancel(&self, call: u64, shared: &Shared) {
        match &shared.forward {
            Some(forward) => forward.cancel(self.id, call),
            None => object_calls::cancel(call, &self.grants),
        }
    }

    /// The answer to `call` came back unclaimed.
    pub(crate) fn unclaimed(&self, call: u64, result: ByteBuf, shared: &Shared) {
        match &shared.forward {
            Some(forward) => forward.unclaimed(self.id, call, result),
            None => object_calls::unclaimed(call, &result, &self.grants),
        }
    }

    /// The worker no longer holds a chunk that carried `objects`.
    fn revoke(&self, objects: &[ObjectRef]) {
        if objects.is_empty() {
            return;
        }
        let gone = self
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .revoke(objects);
        drop(gone);
    }

    /// `n` of the worker's tasks ended: what they still held is let go of.
    fn tasks_ended(&self, n: usize) {
        let (holders, objects) = self
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tasks_ended(n);
        release(&holders, Vec::new(), objects);
    }

    /// Hands `chunk` to the worker (its quota, if any, was charged): it is
    /// numbered, sent, and held until its outcomes come. Sent under the lock,
    /// so that batches reach the pipe in the order of their numbers whoever
    /// hands them.
    pub(crate) fn hand(&self, held: &mut Held, chunk: Chunk, shared: &Shared) {
        let seq = held.next_seq;
        held.next_seq += 1;
        // The chunk keeps its arguments, to run again elsewhere if this
        // worker dies before it starts on them.
        let batch = ToWorker::Run(Batch {
            seq,
            task: chunk.task.to_string(),
            first_index: chunk.first_index,
            args: ByteBuf::from(chunk.args.clone()),
            ends: chunk.ends.clone(),
            handed: chunk.handed.clone(),
        });
        if held.chunks.is_empty() {
            held.progress = Instant::now();
        }
        held.tasks += chunk.len();
        if !chunk.objects.is_empty() {
            // Granted before the batch is sent, so before any task uses them.
            self.grants
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .grant(&chunk.objects);
        }
        held.chunks.push_back(Handed {
            seq,
            chunk,
            withdrawing: false,
        });
        held.count_idle(shared);
        self.outbound.send(&batch);
    }

    /// Outcomes of the chunk the worker runs: each goes to its task now.
    /// `Err` says how the worker broke the protocol.
    pub(crate) fn deliver(
        &self,
        seq: u64,
        first: u32,
        outcomes: Outcomes,
        shared: &Shared,
    ) -> Result<(), String> {
        let n = outcomes.len();
        // Let go of before anyone hears the tasks ended: the next holder
        // may be told at once, and on this worker too (the worker sends an
        // outcome before any call its next task makes).
        self.tasks_ended(n);
        let mut held = self.lock();
        if !held.serving {
            return Ok(());
        }
        let fits = held.chunks.front().is_some_and(|front| {
            front.seq == seq && front.chunk.done() == first as usize && n <= front.chunk.remaining()
        });
        if !fits {
            let expected = held
                .chunks
                .front()
                .map(|front| (front.seq, front.chunk.done(), front.chunk.remaining()));
            return Err(format!(
                "it broke the protocol: sent {n} outcomes of batch {seq} from task {first}, \
                 expected (batch, from, at most) {expected:?}"
            ));
        }
        let now = Instant::now();
        let took = now - held.progress;
        held.pace.record(n, took);
        held.progress = now;
        held.tasks -= n;
        let front = held.chunks.front_mut().expect("checked");
        front.chunk.deliver(outcomes);
        let mut finished = None;
        if front.chunk.remaining() == 0 {
            finished = held.chunks.pop_front();
            held.count_idle(shared);
        }
        self.progressed(&mut held);
        drop(held);
        if let Some(finished) = finished {
            self.revoke(&finished.chunk.objects);
        }
        Ok(())
    }

    /// The worker gave back a chunk it had not started: it fails if its submission
    /// was withdrawn, else it goes back to the queue for another worker.
    /// `Err` says how the worker broke the protocol.
    pub(crate) fn given_back(&self, seq: u64, shared: &Shared) -> Result<(), String> {
        let mut held = self.lock();
        if !held.serving {
            return Ok(());
        }
        let at = held
            .chunks
            .iter()
            .position(|handed| handed.seq == seq && handed.withdrawing && handed.chunk.done() == 0);
        let Some(at) = at else {
            return Err(format!(
                "it broke the protocol: gave back batch {seq}, which it was not asked for"
            ));
        };
        let handed = held.chunks.remove(at).expect("found");
        let tasks = handed.chunk.len();
        held.tasks -= tasks;
        if let Some(quota) = &mut held.quota {
            *quota += tasks;
        }
        held.count_idle(shared);
        self.progressed(&mut held);
        drop(held);
        self.revoke(&handed.chunk.objects);
        if handed.chunk.is_withdrawn() {
            handed.chunk.fail(&withdrawn_error());
        } else {
            shared.put_back(handed.chunk);
        }
        Ok(())
    }

    /// Wakes the slot if it waits for progress.
    fn progressed(&self, held: &mut Held) {
        if held.slot_waits {
            held.slot_waits = false;
            let _ = self.events.send(Event::Progress);
        }
    }
}
