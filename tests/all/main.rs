//! The library's integration tests, in one binary as wasmtime's `tests/all`
//! (a file of its own in `tests/` would be a binary of its own, linking
//! wasmtime once more): real guests in real worker processes, started as
//! the `wasmpool-worker` program ([`common::WORKER_PROGRAM`]).
//!
//! The modules share one process, so none may count on being alone in it:
//! none calls `wasmpool::init()` (`lifecycle` checks a pool says it was not
//! called), and each names its temporary directories apart. The tests that
//! run the `wasmpool` command are the `wasmpool-cli` package's.

#[path = "../common/calls.rs"]
mod calls;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/histories/mod.rs"]
mod histories;
#[path = "../common/processes.rs"]
mod processes;
#[path = "../common/terminal.rs"]
mod terminal;

mod bounds;
mod cache;
mod channel;
mod faults;
mod here;
mod isolation;
mod kwargs;
mod lifecycle;
mod limits;
mod objects;
mod pool;
mod process;
