//! Object calls: a task's operation on a shared object (`objects.invoke`
//! in `wit/wasmpool.wit`), checked against its worker's grants, run at once
//! — or, if it must wait, parked on its object until a change or its
//! deadline lets it finish (see [`parked`](crate::objects::parked)): no
//! thread waits for a guest — and answered through its [`Replies`]; and
//! what a worker's waits and holdings become when its task stops waiting,
//! its answer comes back unclaimed, or it dies. The twin of
//! [`host_fns`](super::host_fns).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use serde_bytes::ByteBuf;

use super::Replies;
use crate::channel::Failure;
use crate::objects::grants::{Grants, release};
use crate::objects::parked::{self, Retry};
use crate::objects::wait::Wait;
use crate::objects::{Holder, Kind, ObjectRef};

/// A task's operation, as its worker sent it.
pub(crate) struct Invoke {
    pub(crate) call: u64,
    pub(crate) object: u64,
    pub(crate) op: String,
    pub(crate) args: ByteBuf,
}

/// Where the answer to one call goes.
#[derive(Clone)]
struct Answer {
    call: u64,
    replies: Arc<dyn Replies>,
    max_payload: usize,
}

impl Answer {
    /// Sends the answer to operation `op`: a result over `max_payload`
    /// bytes is refused. An answer the worker will never read (it is gone)
    /// is returned, to be given back.
    fn send(&self, op: &str, result: Result<Vec<u8>, Failure>) -> Option<Vec<u8>> {
        let result = result.and_then(|bytes| {
            if bytes.len() > self.max_payload {
                return Err(Failure::Refused(format!(
                    "the result of `{op}` takes {} bytes, over the payload limit of {} bytes",
                    bytes.len(),
                    self.max_payload
                )));
            }
            Ok(ByteBuf::from(bytes))
        });
        match self.replies.reply(self.call, result) {
            Some(Ok(bytes)) => Some(bytes.into_vec()),
            _ => None,
        }
    }
}

/// Runs `invoke` for the worker whose grants are `grants`, and answers
/// through `replies`. A result over `max_payload` bytes is refused.
///
/// Every try of an operation runs under its worker's grants, checked then:
/// the worker's death or its task's end, which let go of what it held only
/// after they changed the grants, cannot slip between the check and the
/// operation (a `release` let go of twice would free another holder's
/// lock). The tries a change causes run once the grants are let go of.
pub(crate) fn invoke(
    invoke: Invoke,
    grants: &Arc<Mutex<Grants>>,
    replies: &Arc<dyn Replies>,
    max_payload: usize,
) {
    parked::deferring(|| serve(invoke, grants, replies, max_payload));
}

fn serve(
    invoke: Invoke,
    grants: &Arc<Mutex<Grants>>,
    replies: &Arc<dyn Replies>,
    max_payload: usize,
) {
    let Invoke {
        call,
        object: id,
        op,
        args,
    } = invoke;
    let answer = Answer {
        call,
        replies: replies.clone(),
        max_payload,
    };
    let mut held = grants.lock().unwrap_or_else(PoisonError::into_inner);
    let holder = held.holder();
    let Some(object) = held.get(id) else {
        drop(held);
        let why = format!(
            "this task was not handed a shared object with id {id}: the handle is forged, \
             or belongs to a task that ended"
        );
        answer.send(&op, Err(Failure::Refused(why)));
        return;
    };
    if object.kind() == Kind::Connection && op == "close" {
        // The handle's end is closed for this task; the object itself is let
        // go of once nothing holds it.
        let closed = held.close(id);
        drop(held);
        drop(closed);
        answer.send(&op, Ok(vec![0xc0]));
        return;
    }
    if !object.may_wait(&op) {
        let wait = Wait::for_task(max_payload);
        let result = object.invoke(holder, &op, &args, &wait);
        if result.is_ok() {
            held.answered(call, holder, &object, op.clone(), wait.taken());
        }
        drop(held);
        if let Some(undelivered) = answer.send(&op, result) {
            object.give_back(holder, &op, &undelivered, wait.taken());
        }
        return;
    }
    let waiting = Arc::new_cyclic(|me: &Weak<Waiting>| Waiting {
        holder,
        object,
        op,
        args,
        wait: Wait::parking(max_payload, me.clone()),
        grants: grants.clone(),
        answer,
    });
    if held.wait(call, waiting.clone()) {
        waiting.try_under(held);
    }
}

/// A task's operation that may wait: tried at once, then, while it cannot
/// finish, each time its object changes and once its deadline passes,
/// until it is answered. Its worker's grants keep it alive; its object
/// holds it weakly, so a cancelled one is simply dropped.
struct Waiting {
    holder: Holder,
    object: ObjectRef,
    op: String,
    args: ByteBuf,
    wait: Wait,
    grants: Arc<Mutex<Grants>>,
    answer: Answer,
}

impl Waiting {
    /// One try, under its worker's grants `held` (which also keep two
    /// threads' tries from overlapping): none once it was answered or
    /// given up.
    fn try_under(&self, mut held: MutexGuard<'_, Grants>) {
        let call = self.answer.call;
        if !held.waits(call) {
            return;
        }
        let result = self
            .object
            .invoke(self.holder, &self.op, &self.args, &self.wait);
        if self.wait.parked() {
            return;
        }
        held.waited(call);
        if result.is_ok() {
            held.answered(
                call,
                self.holder,
                &self.object,
                self.op.clone(),
                self.wait.taken(),
            );
        }
        drop(held);
        // The worker died while its task waited, before the pool heard of
        // it: what the answer took goes back.
        if let Some(undelivered) = self.answer.send(&self.op, result) {
            self.object
                .give_back(self.holder, &self.op, &undelivered, self.wait.taken());
        }
    }
}

impl Retry for Waiting {
    fn retry(&self) {
        self.try_under(self.grants.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The answer to `call` reached the worker after its task stopped waiting:
/// what it took goes back.
pub(crate) fn unclaimed(call: u64, result: &[u8], grants: &Mutex<Grants>) {
    let answered = grants
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unclaimed(call);
    if let Some((object, answered)) = answered {
        object.give_back(answered.holder, &answered.op, result, answered.took);
    }
}

/// The task that made `call` stopped waiting: its operation is given up
/// (dropped, outside the lock; no try starts after this).
pub(crate) fn cancel(call: u64, grants: &Mutex<Grants>) {
    let cancelled = grants
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .cancel(call);
    drop(cancelled);
}

/// The worker is gone: its waits are given up and what it held let go of.
pub(crate) fn end(grants: &Mutex<Grants>) {
    let (waits, holders, objects) = grants.lock().unwrap_or_else(PoisonError::into_inner).end();
    release(&holders, waits, objects);
}
