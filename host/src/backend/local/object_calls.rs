//! Object calls: a task's operation on a shared object (`objects.invoke`
//! in `wit/wasmpool.wit`), checked against its worker's grants, run at once
//! or — if it may wait — on a thread of its own, and answered on the
//! worker's channel; and what a worker's waits and holdings become when its
//! task stops waiting, its answer comes back unclaimed, or it dies. The
//! twin of [`host_calls`](super::host_calls).

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use serde_bytes::ByteBuf;

use super::outbound::Outbound;
use crate::channel::{Failure, ToWorker};
use crate::objects::grants::{Grants, release};
use crate::objects::wait::Wait;
use crate::objects::{Kind, ObjectRef};

/// A task's operation, as its worker sent it.
pub(crate) struct Invoke {
    pub(crate) call: u64,
    pub(crate) object: u64,
    pub(crate) op: String,
    pub(crate) args: ByteBuf,
}

/// Runs `invoke` for the worker whose grants are `grants`, and answers on
/// `outbound`. A result over `max_payload` bytes is refused.
pub(crate) fn invoke(
    invoke: Invoke,
    grants: &Arc<Mutex<Grants>>,
    outbound: &Outbound,
    max_payload: usize,
) {
    let Invoke {
        call,
        object: id,
        op,
        args,
    } = invoke;
    let what = op.clone();
    let reply = move |outbound: &Outbound, result: Result<Vec<u8>, Failure>| {
        let result = result.and_then(|bytes| {
            if bytes.len() > max_payload {
                return Err(Failure::Refused(format!(
                    "the result of `{what}` takes {} bytes, over the payload limit of \
                     {max_payload} bytes",
                    bytes.len()
                )));
            }
            Ok(ByteBuf::from(bytes))
        });
        // An answer the worker will never read (it is gone) is returned,
        // to be given back.
        let message = ToWorker::Reply { call, result };
        match (outbound.send(&message), message) {
            (
                false,
                ToWorker::Reply {
                    result: Ok(bytes), ..
                },
            ) => Some(bytes.into_vec()),
            _ => None,
        }
    };
    let mut held = grants.lock().unwrap_or_else(PoisonError::into_inner);
    let holder = held.holder();
    let Some(object) = held.get(id) else {
        drop(held);
        let why = format!(
            "this task was not handed a shared object with id {id}: the handle is forged, \
             or belongs to a task that ended"
        );
        reply(outbound, Err(Failure::Refused(why)));
        return;
    };
    if object.kind() == Kind::Connection && op == "close" {
        // The handle's end is closed for this task; the object itself is let
        // go of once nothing holds it.
        let closed = held.close(id);
        drop(held);
        drop(closed);
        reply(outbound, Ok(vec![0xc0]));
        return;
    }
    if !object.may_wait(&op) {
        drop(held);
        let wait = Wait::for_task(max_payload);
        let result = object.invoke(holder, &op, &args, &wait);
        answered(grants, call, &object, &op, &result, &wait);
        if let Some(undelivered) = reply(outbound, result) {
            object.give_back(holder, &op, &undelivered, wait.taken());
        }
        return;
    }
    let wait = Wait::for_task(max_payload);
    if !held.wait(call, wait.clone(), object.clone()) {
        return;
    }
    drop(held);
    let (waiting, replied) = (grants.clone(), reply.clone());
    let sending = outbound.clone();
    let spawned = thread::Builder::new()
        .name("wasmpool-object-wait".into())
        .spawn(move || {
            let result = object.invoke(holder, &op, &args, &wait);
            waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .waited(call);
            answered(&waiting, call, &object, &op, &result, &wait);
            // The worker died while its task waited, before the pool heard
            // of it: what the answer took goes back.
            if let Some(undelivered) = replied(&sending, result) {
                object.give_back(holder, &op, &undelivered, wait.taken());
            }
        });
    if let Err(err) = spawned {
        grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waited(call);
        let why = format!("cannot start a thread for the task's wait: {err}");
        reply(outbound, Err(Failure::Refused(why)));
    }
}

/// Remembers that `call` was answered with `result` (and what its `wait`
/// took), should the answer come back unclaimed.
fn answered(
    grants: &Mutex<Grants>,
    call: u64,
    object: &ObjectRef,
    op: &str,
    result: &Result<Vec<u8>, Failure>,
    wait: &Wait,
) {
    if result.is_ok() {
        grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answered(call, object, op.to_string(), wait.taken());
    }
}

/// The answer to `call` reached the worker after its task stopped waiting:
/// what it took goes back.
pub(crate) fn unclaimed(call: u64, result: &[u8], grants: &Mutex<Grants>) {
    let mut held = grants.lock().unwrap_or_else(PoisonError::into_inner);
    let holder = held.holder();
    let answered = held.unclaimed(call);
    drop(held);
    if let Some((object, answered)) = answered {
        object.give_back(holder, &answered.op, result, answered.took);
    }
}

/// The task that made `call` stopped waiting: its wait is given up.
pub(crate) fn cancel(call: u64, grants: &Mutex<Grants>) {
    let cancelled = grants
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .cancel(call);
    if let Some((wait, object)) = cancelled {
        wait.cancel();
        object.wake();
    }
}

/// The worker is gone: its waits are given up and what it held let go of.
pub(crate) fn end(grants: &Mutex<Grants>) {
    let mut held = grants.lock().unwrap_or_else(PoisonError::into_inner);
    let holder = held.holder();
    let (waits, objects) = held.end();
    drop(held);
    release(holder, waits, objects);
}
