//! Seed 001, first example: `apply_async` three times on a pool of four
//! processes — default, positional and (in Rust, also positional) named
//! arguments. Three different workers print their pids; `close` + `join`
//! wait for them.
//!
//! Run: `cargo run --release --example apply_async`

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(4)
        .on_output(|out| print!("{}", out.text()))
        .build()?;
    // Each task sleeps 1 s (3 s in the seed); the three run side by side.
    let started = std::time::Instant::now();
    pool.apply_async::<(), _>("action", (None::<String>, 1000))?;
    pool.apply_async::<(), _>("action", (Some("positional argument"), 1000))?;
    pool.apply_async::<(), _>("action", (Some("keyword argument"), 1000))?;
    pool.close();
    pool.join()?;
    println!("three tasks of 1 s each took {:.1?}", started.elapsed());
    Ok(())
}
