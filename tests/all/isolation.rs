//! A fresh instance per task (`PoolBuilder::fresh_instance`): what a task
//! leaves in its instance — a global, a static buffer, the environment — the
//! next task on the same worker cannot find.

use crate::common::{DEADLINE, builder, deadline};

/// What each task of `swap_secret` found on one worker: three run one by
/// one, then four as one chunk.
fn swaps(fresh: bool) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let pool = builder(1).fresh_instance(fresh).build().unwrap();
    let apart = (1..=3u64)
        .map(|secret| pool.apply("swap_secret", (secret,)).unwrap())
        .collect();
    let chunk = pool.map("swap_secret", 4..=7u64, 4).unwrap();
    (apart, chunk)
}

fn left_by(secret: u64) -> Vec<String> {
    ["global", "buffer", "environment"]
        .map(|place| format!("{place} {secret}"))
        .to_vec()
}

#[test]
fn a_task_on_a_fresh_instance_finds_nothing_an_earlier_task_left() {
    let _deadline = deadline("secrets left on kept and on fresh instances", DEADLINE);
    // The instance kept: each task finds its predecessor's secret, which
    // shows the test can see one.
    let (apart, chunk) = swaps(false);
    assert_eq!(apart, [vec![], left_by(1), left_by(2)]);
    assert_eq!(chunk, [left_by(3), left_by(4), left_by(5), left_by(6)]);
    let (apart, chunk) = swaps(true);
    assert!(
        apart.iter().chain(&chunk).all(Vec::is_empty),
        "a task found a secret: {apart:?} {chunk:?}"
    );
}

#[test]
fn every_fresh_instance_is_initialized_before_its_task() {
    let _deadline = deadline("an initializer on every fresh instance", DEADLINE);
    let pool = builder(1)
        .initializer("set_base", (7u64,))
        .fresh_instance(true)
        .build()
        .unwrap();
    let bases: Vec<u64> = pool.map("get_base_of", 0..6i64, 3).unwrap();
    assert_eq!(bases, [7; 6]);
    let counts: Vec<u64> = (0..3).map(|_| pool.apply("count", ()).unwrap()).collect();
    assert_eq!(
        counts,
        [1, 1, 1],
        "each call counted on an instance of its own"
    );
}
