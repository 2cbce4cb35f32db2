//! What tasks ask of the host — its functions, its shared objects — on a
//! local pool: the cases of `tests/common/calls.rs` and the randomized
//! histories of `tests/common/histories/`, which agents run too
//! (`tests/nats.rs`).

use crate::calls::{Pools, tests_of_calls};
use crate::common::builder;
use crate::histories::tests_of_histories;
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
}

tests_of_calls!(Local);
tests_of_histories!(Local);
