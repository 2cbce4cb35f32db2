//! Seed 003, `imap` and `imap_unordered`: results one at a time, in input
//! order or as they finish, with `next` and a timeout.
//!
//! Run: `cargo run --release --example imap`

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(3)
        .build()?;
    let mut ordered = pool.imap::<String, _, _>("tag", [1i64, 2, 3, 4, 5, 6, 7], 3)?;
    println!("{}", ordered.next().unwrap()?);
    println!("{}", ordered.next().unwrap()?);
    // next(timeout): waits at most that long for the next result.
    match ordered.next_timeout(Duration::from_secs(5))? {
        Some(result) => println!("{} (within the timeout)", result?),
        None => println!("no more results"),
    }

    // Unordered: whichever finishes first comes first. Early items nap
    // longest, so they come last.
    for (index, result) in pool
        .imap_unordered::<u64, _, _>("nap", [300u64, 200, 100, 0], 1)?
        .indexed()
    {
        println!("item {index} napped {} ms", result?);
    }
    Ok(())
}
