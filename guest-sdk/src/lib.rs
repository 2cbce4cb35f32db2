//! Write task modules for [wasmpool](https://docs.rs/wasmpool): plain Rust
//! functions, run by a pool of sandboxed worker processes.
//!
//! ```no_run
//! use wasmpool_guest::task;
//!
//! #[task]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! #[task]
//! fn divide(a: i64, b: i64) -> Result<i64, String> {
//!     if b == 0 {
//!         return Err("division by zero".into());
//!     }
//!     Ok(a / b)
//! }
//! ```
//!
//! Put that in a library crate with `crate-type = ["cdylib"]` that depends on
//! `wasmpool-guest` and `serde`, and build it with
//! `cargo build --release --target wasm32-wasip2` (once:
//! `rustup target add wasm32-wasip2`). The `.wasm` file under
//! `target/wasm32-wasip2/release/` is the module a host hands to its pool:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wasmpool-guest = "0.1"
//! ```
//!
//! # Tasks
//!
//! - Parameters are any types that implement `serde::Deserialize` (owned:
//!   `String`, not `&str`); several parameters are passed positionally, which is
//!   what `starmap` does.
//! - The result is any type that implements `serde::Serialize`. A return type
//!   spelled `Result<T, E>` with `E: Display` makes `Err` a task error carrying
//!   `E`'s message.
//! - A panic fails the task with the panic message; the worker then throws the
//!   instance away and gives the next task a fresh one.
//! - State in `static`s persists from task to task in one worker, as module
//!   state does in a CPython pool worker, until the instance is renewed.
//! - Callers may pass parameters by keyword, under their names (`r#` left
//!   out); a parameter bound by a pattern such as `(a, b): (i64, i64)` is
//!   positional-only. `#[default(expr)]` (or `#[default = expr]`) gives a
//!   parameter a default, used when a keyword call leaves it out; as in
//!   Python, parameters with a default come last (a compile error says so
//!   otherwise):
//!
//!   ```no_run
//!   # use wasmpool_guest::task;
//!   #[task]
//!   fn greet(name: String, #[default("Hello".to_string())] greeting: String) -> String {
//!       format!("{greeting}, {name}!")
//!   }
//!   ```
//! - `#[task(name = "other")]` exports a function under another name.
//!
//! [`worker_pid`] and [`task_index`] tell a task where it runs, and
//! [`call_host`] calls a function the host offers. Shared objects the host
//! hands a task — a [`Lock`], a [`Queue`], a pipe's [`Connection`], a
//! managed [`Dict`], ... — are parameters like any other: see [`objects`]. Guest output on stdout
//! and stderr is captured by the host and attributed to the task.
//!
//! # The contract
//!
//! Modules implement the `task-module` world of `wit/wasmpool.wit`; arguments and
//! results travel as MessagePack (see that file). This crate is one way to
//! implement it; any language that targets the component model can.

use std::cell::Cell;
use std::fmt::Display;
use std::sync::Once;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "task-module",
    });
}

use bindings::exports::wasmpool::task::tasks::{Guest, TaskInfo};
use bindings::wasmpool::task::types::{ErrorKind, ParamInfo, TaskError};
use bindings::wasmpool::task::{context, host, outcomes};

pub use objects::{
    BoundedSemaphore, Connection, Dict, Event, Held, JoinableQueue, List, Lock, ObjectError, Queue,
    RLock, Semaphore, Value,
};
pub use wasmpool_guest_macros::task;

pub mod objects;

/// The operating-system process id of the worker running the current task.
///
/// Tasks of one pool see several ids, one for each worker process.
pub fn worker_pid() -> u32 {
    context::worker_pid()
}

/// The index of the current task: its position in the input of a `map`, `imap`
/// or `starmap`, or 0 for an `apply`.
pub fn task_index() -> u64 {
    context::task_index()
}

/// Why a call of a host function failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCallError {
    /// The arguments could not be encoded.
    Arguments(String),
    /// The host refused or failed the call: no such function, arguments that
    /// do not decode, the function's own error, or a payload over the
    /// pool's limit. The message says which.
    Host(String),
    /// The reply did not decode to the type asked for.
    Reply(String),
}

impl Display for HostCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostCallError::Arguments(why) => write!(f, "the host call's arguments: {why}"),
            HostCallError::Host(why) => write!(f, "{why}"),
            HostCallError::Reply(why) => write!(f, "the host call's reply: {why}"),
        }
    }
}

impl std::error::Error for HostCallError {}

/// Calls the host function `name` — one the pool offers
/// (`PoolBuilder::host_fn`) — with `args`, a tuple of its positional
/// arguments, and waits for its result. The rest of the pool goes on while
/// the task waits, and the task's time limit still holds.
///
/// ```no_run
/// let n: i64 = wasmpool_guest::call_host("lookup", ("key",)).unwrap();
/// ```
///
/// # Errors
///
/// [`HostCallError`] says what failed; the task decides what becomes of it.
pub fn call_host<A, R>(name: &str, args: A) -> Result<R, HostCallError>
where
    A: serde::Serialize,
    R: serde::de::DeserializeOwned,
{
    let mut encoded = rmp_serde::encode::to_vec_named(&args)
        .map_err(|err| HostCallError::Arguments(err.to_string()))?;
    // `()` encodes as nil; no arguments are the empty array.
    if encoded == [0xc0] {
        encoded = vec![0x90];
    }
    let reply = host::call(name, &encoded).map_err(HostCallError::Host)?;
    rmp_serde::from_slice(&reply).map_err(|err| HostCallError::Reply(err.to_string()))
}

/// Items used by the code `#[task]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use inventory;

    /// What a task's generated wrapper returns: whether it wrote its encoded
    /// result, or why it failed.
    pub type Outcome = Result<(), TaskError>;

    /// A task registered by `#[task]`.
    pub struct TaskDef {
        pub(crate) name: &'static str,
        pub(crate) params: &'static [Param],
        pub(crate) call: fn(&[u8], &mut Vec<u8>) -> Outcome,
    }

    impl TaskDef {
        /// Describes a task; used by `#[task]`.
        pub const fn new(
            name: &'static str,
            params: &'static [Param],
            call: fn(&[u8], &mut Vec<u8>) -> Outcome,
        ) -> Self {
            TaskDef { name, params, call }
        }
    }

    /// A parameter of a task registered by `#[task]`.
    pub struct Param {
        pub(crate) name: Option<&'static str>,
        pub(crate) default: Option<fn() -> Vec<u8>>,
    }

    impl Param {
        /// Describes a parameter: its name (none if positional-only) and
        /// the function that encodes its default; used by `#[task]`.
        pub const fn new(name: Option<&'static str>, default: Option<fn() -> Vec<u8>>) -> Self {
            Param { name, default }
        }
    }

    /// Encodes the default value of parameter `param` (its name in backticks,
    /// or `#n`) of task `task`.
    ///
    /// # Panics
    ///
    /// If the value does not encode as MessagePack: `describe` then traps,
    /// and the host rejects the module, naming the parameter.
    pub fn encode_default<T: serde::Serialize>(task: &str, param: &str, value: T) -> Vec<u8> {
        rmp_serde::encode::to_vec_named(&value).unwrap_or_else(|err| {
            panic!("the default of parameter {param} of task `{task}` does not encode: {err}")
        })
    }

    inventory::collect!(TaskDef);

    /// Decodes a task's MessagePack argument array into its parameter tuple.
    pub fn decode_args<T: serde::de::DeserializeOwned>(
        task: &str,
        arity: usize,
        bytes: &[u8],
    ) -> Result<T, TaskError> {
        let bad = |message: String| TaskError {
            kind: ErrorKind::BadArguments,
            message: format!("arguments of task `{task}`: {message}"),
        };
        if arity == 0 {
            // `()` deserializes from nil, not from the empty array.
            let args: Vec<serde::de::IgnoredAny> = rmp_serde::from_slice(bytes)
                .map_err(|err| bad(format!("expected an empty array: {err}")))?;
            if !args.is_empty() {
                return Err(bad(format!(
                    "the task takes no arguments, {} were given",
                    args.len()
                )));
            }
            return rmp_serde::from_slice(&[0xc0]).map_err(|err| bad(err.to_string()));
        }
        rmp_serde::from_slice(bytes).map_err(|err| {
            bad(format!(
                "they do not decode to {}: {err}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Encodes the value a task returned into `out`.
    pub fn finish_value<T: serde::Serialize>(value: T, out: &mut Vec<u8>) -> Outcome {
        rmp_serde::encode::write_named(out, &value).map_err(|err| TaskError {
            kind: ErrorKind::BadResult,
            message: format!("the result does not encode as MessagePack: {err}"),
        })
    }

    /// Encodes the `Ok` of a task that returns a `Result`, or reports its `Err`.
    pub fn finish_result<T: serde::Serialize, E: Display>(
        result: Result<T, E>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        match result {
            Ok(value) => finish_value(value, out),
            Err(err) => Err(TaskError {
                kind: ErrorKind::Failed,
                message: err.to_string(),
            }),
        }
    }
}

use __private::TaskDef;

thread_local! {
    /// Set while a task runs, so the panic hook knows to report it.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Reports a panic of the running task as its outcome; the abort that follows
/// traps, and the host renews the instance.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_string(),
                None => match info.payload().downcast_ref::<String>() {
                    Some(s) => s.clone(),
                    None => "panic with a non-string payload".to_string(),
                },
            };
            let message = match info.location() {
                Some(loc) => format!("{message} (at {}:{})", loc.file(), loc.line()),
                None => message,
            };
            if RUNNING.with(|running| running.replace(false)) {
                outcomes::finish(Err(&TaskError {
                    kind: ErrorKind::Panic,
                    message,
                }));
            } else {
                eprintln!("panic outside a task: {message}");
            }
        }));
    });
}

fn find(name: &str) -> Option<&'static TaskDef> {
    inventory::iter::<TaskDef>
        .into_iter()
        .find(|task| task.name == name)
}

struct Module;

impl Guest for Module {
    fn describe() -> Vec<TaskInfo> {
        let mut tasks: Vec<TaskInfo> = inventory::iter::<TaskDef>
            .into_iter()
            .map(|task| TaskInfo {
                name: task.name.to_string(),
                params: task
                    .params
                    .iter()
                    .map(|param| ParamInfo {
                        name: param.name.map(str::to_string),
                        default: param.default.map(|encode| encode()),
                    })
                    .collect(),
            })
            .collect();
        tasks.sort_by(|a, b| a.name.cmp(&b.name));
        tasks
    }

    fn run(task: String, _first_index: u64, args: Vec<u8>, ends: Vec<u32>) {
        install_panic_hook();
        let def = find(&task);
        // One buffer for every result of the batch.
        let mut out = Vec::with_capacity(64);
        let mut start = 0usize;
        for end in ends {
            let end = end as usize;
            out.clear();
            let outcome = match (def, args.get(start..end)) {
                (None, _) => Err(TaskError {
                    kind: ErrorKind::UnknownTask,
                    message: format!("this module has no task named `{task}`"),
                }),
                (Some(_), None) => Err(TaskError {
                    kind: ErrorKind::BadArguments,
                    message: format!("argument bounds {start}..{end} are outside the batch"),
                }),
                (Some(def), Some(bytes)) => {
                    RUNNING.with(|running| running.set(true));
                    let outcome = (def.call)(bytes, &mut out);
                    RUNNING.with(|running| running.set(false));
                    outcome
                }
            };
            // What the task printed without ending its line is its own: out
            // before its outcome, not with the next task's output.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            match &outcome {
                Ok(()) => outcomes::finish(Ok(&out)),
                Err(err) => outcomes::finish(Err(err)),
            }
            start = end;
        }
    }
}

bindings::export!(Module with_types_in bindings);
