//! Tasks written in Python: the seeds' functions of
//! `examples/guests/python/pytasks.py`, built by the Python guest SDK, run
//! from Rust like any other module: `map`, keyword arguments with defaults,
//! and a managed dict shared by the tasks.
//!
//! Run: `cargo run --release --example python_tasks`

use std::collections::BTreeMap;

use wasmpool::{Lock, Manager};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::PYTASKS)
        .processes(4)
        .build()?;

    let squares: Vec<i64> = pool.map("square", 0..10, None)?;
    println!("map(square, range(10)) = {squares:?}");
    let tags: Vec<String> = pool.map("tag", 0..8, 2)?;
    println!("which worker ran each item: {tags:?}");

    // Seed 003: apply(func, (123, 345), {'a': 1, 'b': 2}), then `b` left to its default.
    let out: String = pool.apply_kw(
        "func_kwds",
        (123, 345),
        BTreeMap::from([("a", 1), ("b", 2)]),
    )?;
    println!("{out}");
    let out: String = pool.apply_kw("func_kwds", (123, 345), BTreeMap::from([("a", 1)]))?;
    println!("{out}");

    // Seed 004's Manager: ten tasks decrement one count, under a lock and atomically.
    let manager = Manager::new();
    let lock = Lock::new();
    let counts = manager.dict([("count".to_string(), 100i64)])?;
    let items: Vec<_> = (0..10)
        .map(|_| (counts.clone(), lock.clone(), 10))
        .collect();
    let _: Vec<()> = pool.starmap("decrement_locked", items, 1)?;
    let items: Vec<_> = (0..10).map(|_| (counts.clone(),)).collect();
    let _: Vec<()> = pool.starmap("decrement_atomic", items, 1)?;
    println!(
        "count after 20 decrements of 100: {:?}",
        counts.get(&"count".to_string())?
    );

    pool.close();
    pool.join()?;
    Ok(())
}
