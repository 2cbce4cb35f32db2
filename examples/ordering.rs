//! Seed 002: `apply`, `apply_async`, `map` and `map_async` on the same 20
//! numbers (20 down to 1), five processes.
//!
//! - `apply` blocks on each call: prints and results in order.
//! - `apply_async` with a callback: results collected in completion order.
//! - `map`: prints in any order, results in input order.
//! - `map_async` with a callback: the callback gets the whole list, once.
//!
//! Run: `cargo run --release --example ordering`

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmpool::{Callbacks, Pool};

fn new_pool() -> Result<Pool, wasmpool::Error> {
    Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(5)
        .on_output(|out| print!("{} ", out.text().trim_end()))
        .build()
}

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    const COUNT: i64 = 20;

    println!("apply ----------------------------------------");
    let t = Instant::now();
    let pool = new_pool()?;
    let mut local_results = Vec::new();
    for i in (1..=COUNT).rev() {
        local_results.push(pool.apply::<i64, _>("func", (i,))?);
    }
    drop(pool);
    println!("\n{local_results:?}\napply time cost: {:?}", t.elapsed());

    println!("\napply_async ----------------------------------------");
    let t = Instant::now();
    let results = Arc::new(Mutex::new(Vec::new()));
    let pool = new_pool()?;
    for i in (1..=COUNT).rev() {
        let results = results.clone();
        let collect = Callbacks::new().callback(move |r: &i64| results.lock().unwrap().push(*r));
        pool.apply_async_with("func", (i,), collect)?;
    }
    pool.close();
    pool.join()?;
    println!(
        "\n{:?}\napply_async time cost: {:?}",
        results.lock().unwrap(),
        t.elapsed()
    );

    println!("\nmap ----------------------------------------");
    let t = Instant::now();
    let pool = new_pool()?;
    let mapped: Vec<i64> = pool.map("func", (1..=COUNT).rev(), None)?;
    drop(pool);
    println!("\n{mapped:?}\nmap: {:?}", t.elapsed());

    println!("\nmap_async ----------------------------------------");
    let t = Instant::now();
    let lists = Arc::new(Mutex::new(Vec::new()));
    let pool = new_pool()?;
    let collect = {
        let lists = lists.clone();
        Callbacks::new().callback(move |r: &Vec<i64>| lists.lock().unwrap().push(r.clone()))
    };
    pool.map_async_with::<i64, _, _>("func", (1..=COUNT).rev(), None, collect)?;
    pool.close();
    pool.join()?;
    println!(
        "\n{:?}\nmap_async: {:?}",
        lists.lock().unwrap(),
        t.elapsed()
    );
    println!("end");
    Ok(())
}
