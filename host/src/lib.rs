//! A pool of sandboxed worker processes that run WebAssembly components, with
//! the API of Python's `multiprocessing.Pool`.
//!
//! ```no_run
//! fn main() -> Result<(), wasmpool::Error> {
//!     // Lets the pool run this program as its workers; returns at once here.
//!     wasmpool::init();
//!
//!     let pool = wasmpool::Pool::builder()
//!         .module_file("tasks.wasm")
//!         .processes(4)
//!         .build()?;
//!     let squares: Vec<i64> = pool.map("square", 0..10, None)?;
//!     assert_eq!(squares[3], 9);
//!     let q: i64 = pool.apply("divide", (7, 2))?;
//!     assert_eq!(q, 3);
//!     pool.close();
//!     pool.join()?;
//!     Ok(())
//! }
//! ```
//!
//! Tasks are plain Rust functions in a guest crate built with
//! [`wasmpool-guest`](https://docs.rs/wasmpool-guest) for `wasm32-wasip2` — or
//! any component that implements `wit/wasmpool.wit`.
//!
//! # Core concepts
//!
//! - **Workers** are separate OS processes, started with exec (never a bare
//!   fork of a process that runs wasmtime). By default a pool starts the
//!   running program itself as its workers: call [`init`] first thing in
//!   `main`, which turns the process into a worker when the pool started it and
//!   returns at once otherwise. That is the whole set-up. Alternatively, point
//!   [`PoolBuilder::worker_program`] at any program that calls [`init`], such
//!   as the `wasmpool` command-line tool.
//! - **The module** is compiled once, by the pool, into an artifact cached on
//!   disk under its content and the engine's configuration
//!   ([`PoolBuilder::cache_dir`]); workers only load it. A second run of the
//!   program does not compile.
//! - **Instances**: each worker keeps one instance of the module and runs task
//!   after task on it, so module state persists within a worker, as in
//!   CPython. When a task traps, that instance is thrown away and a fresh one
//!   (with the [initializer](PoolBuilder::initializer) run again) serves the
//!   next task.
//! - **Arguments and results** travel as MessagePack; any serde type works.
//!   `apply` and `starmap` take tuples of positional arguments; `map` and
//!   `imap` take one argument per item.
//! - **Chunks**: `map` sends tasks in chunks, one guest call per chunk;
//!   `chunksize` defaults as in CPython (the input spread over four chunks per
//!   process), 1 for `imap`. A worker is handed its next chunk before it
//!   finishes the current one, and never holds more than that.
//!
//! | CPython                      | wasmpool                                        |
//! |------------------------------|-------------------------------------------------|
//! | `Pool(4, init, args, n)`     | `Pool::builder().processes(4).initializer(..).max_tasks_per_child(n)` |
//! | `apply(f, args)`             | [`Pool::apply`]                                 |
//! | `apply_async(f, args, cb, ecb)` | [`Pool::apply_async`], [`Pool::apply_async_with`] |
//! | `map(f, xs, chunksize)`      | [`Pool::map`]                                   |
//! | `map_async(..)`              | [`Pool::map_async`], [`Pool::map_async_with`]   |
//! | `imap`, `imap_unordered`     | [`Pool::imap`], [`Pool::imap_unordered`]        |
//! | `starmap`, `starmap_async`   | [`Pool::starmap`], [`Pool::starmap_async`]      |
//! | `close`, `terminate`, `join` | [`Pool::close`], [`Pool::terminate`], [`Pool::join`] |
//! | `AsyncResult`                | [`AsyncResult`]: `get`, `get_timeout`, `wait`, `ready`, `successful`, `wait_any` |
//!
//! # Crash semantics
//!
//! Every submitted task gets exactly one outcome. A task that traps, panics
//! or returns an error fails alone, with an [`Error`] whose [`kind`](Error::kind)
//! says which; the rest of its `map` completes. A worker that dies fails only
//! the tasks it held ([`ErrorKind::WorkerLost`]) and is replaced; the pool
//! stays usable. Workers die with the pool, even if it is killed
//! (`PR_SET_PDEATHSIG`), and every worker that exits is reaped.
//!
//! # Limits
//!
//! A task's guest has no files, no environment variables, no arguments and no
//! network: only clocks and randomness. What it writes to stdout and stderr is
//! captured, bounded by [`PoolBuilder::output_limit`], and handed to
//! [`PoolBuilder::on_output`] with the task it came from. Arguments over
//! [`PoolBuilder::max_payload`] fail the task before it is sent; linear memory
//! is capped by [`PoolBuilder::memory_limit`].

mod callbacks;
mod engine;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod imap;
mod ipc;
mod job;
mod module;
mod output;
mod pool;
mod process;
mod protocol;
mod result;
mod runtime;
mod supervisor;
mod worker;

pub use error::{Error, ErrorKind, GetTimeoutError, NextTimeout, NotReady, TrapDetails};
pub use imap::{Entry, Imap, Indexed};
pub use output::{GuestOutput, Stream};
pub use pool::{Pool, PoolBuilder};
pub use protocol::{Preopen, TaskInfo};
pub use result::{AsyncResult, Callbacks};

/// Makes this program usable as the workers of its pools; call it first
/// thing in `main`.
///
/// When the process was started by a pool as a worker, `init` runs the worker
/// and exits the process when the pool is done with it: it never returns.
/// Otherwise it returns at once, and pools built afterwards run this program
/// as their workers.
pub fn init() {
    if let Some(marker) = std::env::var_os(worker::MARKER) {
        std::process::exit(worker::main(&marker));
    }
    pool::INIT_CALLED.store(true, std::sync::atomic::Ordering::SeqCst);
}
