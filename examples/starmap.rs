//! Seed 003, `starmap` and `starmap_async`: each item is unpacked into the
//! task's positional arguments, `[(1, 2), (3, 4)]` runs `pair(1, 2)` and
//! `pair(3, 4)`.
//!
//! Run: `cargo run --release --example starmap`

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(3)
        .build()?;
    let pairs = [(1i64, 2i64), (4, 4), (43, 432)];
    let out: Vec<String> = pool.starmap("pair", pairs, 3)?;
    println!("{out:?}");
    let pending = pool.starmap_async::<String, _, _>("pair", [(5i64, 6i64), (7, 8)], None)?;
    println!("{:?}", pending.get()?);
    Ok(())
}
