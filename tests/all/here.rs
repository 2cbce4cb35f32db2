//! What tasks ask of the host — its functions, its shared objects — on a
//! local pool: the cases of `tests/common/calls.rs`, the randomized
//! histories of `tests/common/histories/` and the processes of
//! `tests/common/processes.rs`, which agents run too (`tests/nats.rs`).

use crate::calls::{Pools, tests_of_calls};
use crate::common::builder;
use crate::histories::tests_of_histories;
use crate::processes::tests_of_processes;
use wasmpool::{Pool, PoolBuilder};

/// Tasks run on this machine, by a local pool's workers.
pub(crate) struct Local;

impl Pools for Local {
    fn builder(&self, processes: usize) -> PoolBuilder {
        builder(processes)
    }

    fn worker_pids(&self, pool: &Pool) -> Vec<u32> {
        pool.worker_pids()
    }

    fn parent_of_workers(&self) -> u32 {
        std::process::id()
    }
}

tests_of_calls!(Local);
tests_of_histories!(Local);
tests_of_processes!(Local);
