//! `wasmpool-worker`: a program that does nothing but be a pool's worker,
//! for [`PoolBuilder::worker_program`](wasmpool::PoolBuilder::worker_program)
//! in hosts that cannot call `wasmpool::init()` first thing in their own
//! `main`: a test harness (the integration tests of this package use it), or
//! a host in another language.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Started by a pool, this runs the worker and never returns.
    wasmpool::init();
    eprintln!(
        "wasmpool-worker: not started by a pool; name this program in \
         PoolBuilder::worker_program and the pool starts it as its workers"
    );
    ExitCode::from(2)
}
