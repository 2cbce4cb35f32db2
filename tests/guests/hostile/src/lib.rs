//! A task module written against `wit/wasmpool.wit` by hand, without the
//! guest SDK, to misbehave where the SDK never would: its `describe` spins
//! for ever instead of listing its tasks. A pool must refuse it within its
//! startup time limit rather than wait.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "task-module",
});

use exports::wasmpool::task::tasks::{Guest, TaskInfo};
use wasmpool::task::outcomes;

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Vec<TaskInfo> {
        // A loop that never calls the host: only epoch interruption stops it.
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn run(_task: String, _first_index: u64, _args: Vec<u8>, ends: Vec<u32>) {
        // Never reached by a pool; answers `nil` to every task if it were.
        for _ in ends {
            outcomes::finish(Ok(&[0xc0]));
        }
    }
}

export!(Hostile);
