//! Seed 003, `map` and `map_async`: how `chunksize` spreads items over
//! worker pids. With chunksize 3 on three processes, items run in runs of 3,
//! 3 and 1 per pid; with chunksize 7, one pid runs them all. `map_async`
//! returns at once; `get` blocks for the list.
//!
//! Run: `cargo run --release --example chunksize`

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(3)
        .build()?;
    let items = [1i64, 2, 3, 4, 5, 6, 7];
    for chunksize in [3, 7] {
        let tagged: Vec<String> = pool.map("tag", items, chunksize)?;
        println!("chunksize={chunksize}: {tagged:?}");
    }
    let pending = pool.map_async::<String, _, _>("tag", items, 5)?;
    println!("map_async returned at once; ready: {}", pending.ready());
    println!("map_async, chunksize=5: {:?}", pending.get()?);
    Ok(())
}
