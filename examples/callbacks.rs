//! Seed 004, the Pool part: synchronous `apply` (one task at a time, the
//! three workers taking turns), asynchronous `apply_async` (three at a time),
//! and callbacks that the host runs as each result arrives.
//!
//! Run: `cargo run --release --example callbacks`

use std::time::Instant;

use wasmpool::{AsyncResult, Callbacks};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(3)
        .on_output(|out| print!("{}", out.text()))
        .build()?;

    println!("synchronous apply:");
    let t = Instant::now();
    let mut res_l = Vec::new();
    for i in 0..10i64 {
        res_l.push(pool.apply::<i64, _>("work", (i, 100u64))?);
    }
    println!("{res_l:?} in {:.2?}", t.elapsed());

    println!("asynchronous apply_async:");
    let t = Instant::now();
    let pending: Vec<AsyncResult<i64>> = (0..10i64)
        .map(|i| pool.apply_async("work", (i, 100u64)))
        .collect::<Result<_, _>>()?;
    for res in &pending {
        println!("{}", res.get()?);
    }
    println!("in {:.2?}", t.elapsed());

    println!("callbacks:");
    for i in 1..=10i64 {
        let print = Callbacks::new().callback(|r: &i64| println!("{r}"));
        pool.apply_async_with("square", (i,), print)?;
    }
    pool.close();
    pool.join()?;
    Ok(())
}
