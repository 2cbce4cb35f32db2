//! The wasm side of a worker: the bindings of `wit/wasmpool.wit`, the linker
//! every task module is checked against, and running batches on an instance
//! that is renewed whenever a task traps, times out or hits a limit. Each
//! task's outcome goes to the [`Outbox`](crate::worker::outbox::Outbox) as
//! the guest reports it; a host call goes out as a request and waits for its
//! reply from the [`Inbox`](crate::worker::inbox::Inbox).
//!
//! Guest calls are async, so a task that overruns its time limit is stopped
//! wherever it is: in a loop (epoch interruption yields to the timer) or
//! blocked in a host call such as a sleep (its future is dropped).
//!
//! - [`imports`]: what a guest may call, and the state it works on;
//! - [`limits`]: the memory limiter and the task clock;
//! - [`linker`]: the linker, and checking a module against it;
//! - [`traps`]: turning a trap into the task's error;
//! - [`runner`]: running batches, and renewing the instance.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "task-module",
        imports: {
            "wasmpool:task/host.call": async,
            "wasmpool:task/objects.invoke": async,
        },
        exports: { default: async },
    });
}

mod imports;
mod limits;
mod linker;
mod runner;
mod traps;

pub(crate) use linker::check;
pub(crate) use runner::{Runner, RunnerConfig, epoch_tick};
