//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use serde::Deserialize;
use wasmpool::Pool;

/// A pool of `processes` workers on the fixtures module, started as the
/// `wasmpool` binary of this package.
pub fn pool(processes: usize) -> Pool {
    builder(processes).build().expect("the pool starts")
}

/// The builder of [`pool`], to configure further.
pub fn builder(processes: usize) -> wasmpool::PoolBuilder {
    Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(processes)
}

/// What the `place` task returns.
#[derive(Debug, Deserialize)]
pub struct Place {
    pub pid: u32,
    pub index: u64,
    pub value: i64,
}
