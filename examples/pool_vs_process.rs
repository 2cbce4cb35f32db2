//! Seed 004, "efficiency": `map` over 100 items on a pool of five, against
//! 100 processes, one per item, all started and then joined. Both start
//! from one context, so neither compiles: the difference is the workers
//! started.
//!
//! Run: `cargo run --release --example pool_vs_process`

use std::time::Instant;

use wasmpool::{Pool, Process};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .context()?;

    let pool = context.pool(5)?;
    let start = Instant::now();
    let sums: Vec<i64> = pool.map("add_range", 0..100i64, None)?;
    println!("pool of 5, map over 100 items: {:.2?}", start.elapsed());

    let start = Instant::now();
    let processes: Vec<Process> = (0..100i64)
        .map(|n| context.process("add_range").args((n,)).start())
        .collect::<Result<_, _>>()?;
    for p in &processes {
        p.join();
    }
    println!("100 processes:                 {:.2?}", start.elapsed());
    for (p, sum) in processes.iter().zip(&sums) {
        assert_eq!(p.result::<i64>().expect("joined")?, *sum);
    }
    Ok(())
}
