//! Seed 004, "efficiency": `map` of a small task over 100 items on a pool of
//! five, against starting a fresh one-process pool per item — the cost the
//! pool saves.
//!
//! Run: `cargo run --release --example efficiency`

use std::time::Instant;

use wasmpool::Pool;

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let builder = || Pool::builder().module_file(wasmpool_artifacts::SEEDS);
    let pool = builder().processes(5).build()?;
    let start = Instant::now();
    let sums: Vec<i64> = pool.map("add_range", 0..100i64, None)?;
    println!("pool of 5, map over 100 items: {:.2?}", start.elapsed());
    let start = Instant::now();
    for n in 0..100i64 {
        let one = builder().processes(1).build()?;
        assert_eq!(one.apply::<i64, _>("add_range", (n,))?, sums[n as usize]);
    }
    println!("a new process per item:        {:.2?}", start.elapsed());
    Ok(())
}
