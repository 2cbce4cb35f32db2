//! Seed 001, second example: `map` over (50, 100, 150) on four processes;
//! each task prints its steps, and the results are the sums of 0..50,
//! 0..100 and 0..150, in input order.
//!
//! Run: `cargo run --release --example map_sum`

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(4)
        .on_output(|out| print!("{}", out.text()))
        .build()?;
    let results: Vec<u64> = pool.map("sum_to", [50u64, 100, 150], None)?;
    println!("--------------");
    for r in results {
        println!("{r}");
    }
    Ok(())
}
