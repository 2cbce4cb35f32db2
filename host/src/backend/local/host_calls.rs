//! Host functions: what a running task may call on the host (`host.call` in
//! `wit/wasmpool.wit`), and serving one call. A call runs on a thread of its
//! own, so a function that blocks holds up only the task that called it —
//! which its time limit still stops — never its slot or the rest of the pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::thread;

use serde_bytes::ByteBuf;

use crate::backend::local::outbound::Outbound;
use crate::channel::{Failure, ToWorker};
use crate::user_code::call_guarded;

/// A host function on encoded values: a MessagePack array of positional
/// arguments in, a MessagePack result or an error message out.
pub(crate) type HostFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The host functions of a pool, by name.
#[derive(Clone, Default)]
pub(crate) struct HostFns {
    functions: HashMap<String, HostFn>,
}

impl fmt::Debug for HostFns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.functions.keys()).finish()
    }
}

/// A task's call of a host function, as its worker sent it.
pub(crate) struct Request {
    pub(crate) call: u64,
    pub(crate) name: String,
    pub(crate) args: ByteBuf,
}

impl HostFns {
    /// Whether no function is offered.
    #[cfg(feature = "nats")]
    pub(crate) fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Adds (or replaces) the function `name`.
    pub(crate) fn insert(&mut self, name: &str, function: HostFn) {
        self.functions.insert(name.to_string(), function);
    }

    /// Runs `request` on a thread of its own and sends the reply through
    /// `outbound`. Arguments and result are checked against `max_payload`;
    /// a function that panics fails the call, not the pool.
    pub(crate) fn call(&self, request: Request, max_payload: usize, outbound: Outbound) {
        let Request { call, name, args } = request;
        let function = self.functions.get(&name).cloned();
        let known = || {
            let mut names: Vec<&str> = self.functions.keys().map(String::as_str).collect();
            names.sort_unstable();
            names.join(", ")
        };
        let reply = move |result: Result<Vec<u8>, String>| {
            outbound.send(&ToWorker::Reply {
                call,
                result: result.map(ByteBuf::from).map_err(Failure::Refused),
            });
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
}
