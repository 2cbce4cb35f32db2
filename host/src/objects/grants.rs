//! What one worker may touch: the shared objects of the tasks it holds, and
//! the waits its tasks are in, so that both end with the task or the worker;
//! and which of its tasks runs, the holder of what the worker acquires.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::objects::parked::Retry;
use crate::objects::{Holder, Object, ObjectRef};

/// One worker's capabilities.
pub(crate) struct Grants {
    worker: u64,
    /// The task running, or the next to run: 0 while the initializer runs,
    /// then 1, 2, … in the order the worker runs them.
    nth: u64,
    /// The objects it may use, by id, with how many of its chunks (or its
    /// initializer) hold each.
    held: HashMap<u64, (ObjectRef, usize)>,
    /// Operations waiting on the host for its tasks, by call: what keeps
    /// them alive while they are parked on their objects.
    pending: HashMap<u64, Pending>,
    /// The last operations answered, in case an answer comes back
    /// unclaimed: a task makes one call at a time, so a few are plenty.
    /// Weak: remembering an answer keeps no object alive (a pipe's end must
    /// close once no task holds it).
    answered: VecDeque<Answered>,
    /// The worker is gone: nothing is granted or waited for any more.
    ended: bool,
}

/// An operation answered with a result, should its answer come back
/// unclaimed.
pub(crate) struct Answered {
    call: u64,
    /// The task that made the call.
    pub(crate) holder: Holder,
    object: Weak<dyn Object>,
    pub(crate) op: String,
    /// The acquisition it made (0: none).
    pub(crate) took: u64,
}

/// An operation waiting on the host, parked on its object: kept alive
/// here, and given up by dropping it.
pub(crate) type Pending = Arc<dyn Retry>;

/// How many answered operations a worker's grants remember.
const ANSWERED: usize = 8;

impl Grants {
    /// A new worker's, holding the objects of its pool's initializer for as
    /// long as it lives.
    pub(crate) fn new(initializer: &[ObjectRef]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut grants = Grants {
            worker: NEXT.fetch_add(1, Ordering::Relaxed),
            nth: 0,
            held: HashMap::new(),
            pending: HashMap::new(),
            answered: VecDeque::new(),
            ended: false,
        };
        grants.grant(initializer);
        grants
    }

    /// Who the worker's running task is, to the objects.
    pub(crate) fn holder(&self) -> Holder {
        Holder::Task {
            worker: self.worker,
            nth: self.nth,
        }
    }

    /// The initializer is done: the tasks come next. What it acquired, it
    /// keeps for as long as the worker lives, as in Python.
    pub(crate) fn initialized(&mut self) {
        self.nth = self.nth.max(1);
    }

    /// The running task and the `n - 1` after it ended: returns each as a
    /// holder, with every object the worker may use, which the caller lets
    /// them go of (outside the lock) — a task holds nothing past its end.
    #[must_use]
    pub(crate) fn tasks_ended(&mut self, n: usize) -> (Vec<Holder>, Vec<ObjectRef>) {
        let first = self.nth;
        self.nth += n as u64;
        if self.held.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let holders = (first..self.nth)
            .map(|nth| Holder::Task {
                worker: self.worker,
                nth,
            })
            .collect();
        let objects = self
            .held
            .values()
            .map(|(object, _)| object.clone())
            .collect();
        (holders, objects)
    }

    /// The worker was handed a chunk carrying `objects`.
    pub(crate) fn grant(&mut self, objects: &[ObjectRef]) {
        if self.ended {
            return;
        }
        for object in objects {
            self.held
                .entry(object.id())
                .or_insert_with(|| (object.clone(), 0))
                .1 += 1;
        }
    }

    /// A chunk carrying `objects` is done (or was taken back): returns the
    /// objects no chunk of the worker holds any more, which the caller drops
    /// (outside the lock). What its tasks held was let go of as each ended.
    #[must_use]
    pub(crate) fn revoke(&mut self, objects: &[ObjectRef]) -> Vec<ObjectRef> {
        let mut gone = Vec::new();
        for object in objects {
            let id = object.id();
            if let Some((_, count)) = self.held.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    gone.extend(self.held.remove(&id).map(|(object, _)| object));
                }
            }
        }
        gone
    }

    /// The worker's task closed its handle on `id`: it may not use it again.
    pub(crate) fn close(&mut self, id: u64) -> Option<ObjectRef> {
        self.held.remove(&id).map(|(object, _)| object)
    }

    /// The object `id`, if the worker may use it.
    pub(crate) fn get(&self, id: u64) -> Option<ObjectRef> {
        self.held.get(&id).map(|(object, _)| object.clone())
    }

    /// Records (and keeps alive) the operation `call`, which may wait;
    /// false if the worker is gone.
    pub(crate) fn wait(&mut self, call: u64, pending: Pending) -> bool {
        if self.ended {
            return false;
        }
        self.pending.insert(call, pending);
        true
    }

    /// Whether `call` still waits: not answered, cancelled, nor ended
    /// with its worker.
    pub(crate) fn waits(&self, call: u64) -> bool {
        self.pending.contains_key(&call)
    }

    /// The wait for `call` is over.
    pub(crate) fn waited(&mut self, call: u64) {
        self.pending.remove(&call);
    }

    /// `call`, operation `op` of `object` by task `holder`, was answered
    /// with a result.
    pub(crate) fn answered(
        &mut self,
        call: u64,
        holder: Holder,
        object: &ObjectRef,
        op: String,
        took: u64,
    ) {
        if self.answered.len() == ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back(Answered {
            call,
            holder,
            object: Arc::downgrade(object),
            op,
            took,
        });
    }

    /// The answer to `call` came back unclaimed: its object (unless nothing
    /// holds it any more), and what it answered.
    pub(crate) fn unclaimed(&mut self, call: u64) -> Option<(ObjectRef, Answered)> {
        let at = self
            .answered
            .iter()
            .position(|answered| answered.call == call)?;
        let answered = self.answered.remove(at)?;
        Some((answered.object.upgrade()?, answered))
    }

    /// The task no longer waits for `call`: returns its operation, to drop
    /// (outside the lock).
    pub(crate) fn cancel(&mut self, call: u64) -> Option<Pending> {
        self.pending.remove(&call)
    }

    /// The worker is gone: returns every operation waiting, to drop, and
    /// every object it held, with the holders that may hold them (its
    /// initializer and its running task), to let go of. What it was
    /// answered is still remembered: an answer on its way when it ended (to
    /// an agent's task, whose end the host may hear of first) can still
    /// come back unclaimed, and what it carries be given back.
    #[must_use]
    pub(crate) fn end(&mut self) -> (Vec<Pending>, Vec<Holder>, Vec<ObjectRef>) {
        self.ended = true;
        let pending = self.pending.drain().map(|(_, wait)| wait).collect();
        let held = self.held.drain().map(|(_, (object, _))| object).collect();
        let mut holders = vec![Holder::Task {
            worker: self.worker,
            nth: 0,
        }];
        if self.nth > 0 {
            holders.push(self.holder());
        }
        (pending, holders, held)
    }
}

/// Drops `waits` and lets each of `holders` go of `objects`.
pub(crate) fn release(holders: &[Holder], waits: Vec<Pending>, objects: Vec<ObjectRef>) {
    drop(waits);
    for object in objects {
        for &holder in holders {
            object.let_go(holder);
        }
    }
}
