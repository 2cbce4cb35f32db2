//! Host functions: what a running task may call on the host (`host.call` in
//! `wit/wasmpool.wit`), and serving one call. A call runs on a thread of its
//! own, so a function that blocks holds up only the task that called it —
//! which its time limit still stops — never its slot or the rest of the pool.

use std::thread;

use serde_bytes::ByteBuf;

use std::sync::Arc;

use super::Replies;
use crate::backend::HostFns;
use crate::channel::Failure;
use crate::user_code::call_guarded;

/// A task's call of a host function, as its worker sent it.
pub(crate) struct Request {
    pub(crate) call: u64,
    pub(crate) name: String,
    pub(crate) args: ByteBuf,
}

/// Runs `request`, a call of one of `functions`, on a thread of its own and
/// sends the reply through `replies`. Arguments and result are checked
/// against `max_payload`; a function that panics fails the call, not the
/// pool.
pub(crate) fn call(
    functions: &HostFns,
    request: Request,
    max_payload: usize,
    replies: Arc<dyn Replies>,
) {
    let Request { call, name, args } = request;
    let function = functions.get(&name);
    let known = || functions.names().join(", ");
    let reply = move |result: Result<Vec<u8>, String>| {
        replies.reply(call, result.map(ByteBuf::from).map_err(Failure::Refused));
    };
    let Some(function) = function else {
        return reply(Err(format!(
            "the pool has no host function named `{name}`; it has: {}",
            known()
        )));
    };
    if args.len() > max_payload {
        return reply(Err(format!(
            "the arguments of host function `{name}` take {} bytes, over the payload \
                 limit of {max_payload} bytes",
            args.len()
        )));
    }
    let replied = reply.clone();
    let spawned = thread::Builder::new()
        .name("wasmpool-host-call".into())
        .spawn(move || {
            let mut result = Err(format!("host function `{name}` panicked"));
            call_guarded(|| result = function(&args));
            if let Ok(bytes) = &result
                && bytes.len() > max_payload
            {
                result = Err(format!(
                    "the result of host function `{}` takes {} bytes, over the payload \
                         limit of {max_payload} bytes",
                    name,
                    bytes.len()
                ));
            }
            replied(result);
        });
    if let Err(err) = spawned {
        reply(Err(format!("cannot start a thread for the call: {err}")));
    }
}
