//! Seed 004, "Lock(锁)": five processes that sleep a second and print their
//! pid and the time. Without a lock all five print in the same second; with
//! a [`Lock`] passed to each, which each holds while it sleeps and prints,
//! they print one a second. Times are UTC.
//!
//! Run: `cargo run --release --example lock`

use wasmpool::{Lock, Pool, Process};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    println!("-- without a lock");
    let children: Vec<Process> = (0..5)
        .map(|_| context.process("report").args((None::<Lock>,)).start())
        .collect::<Result<_, _>>()?;
    children.iter().for_each(Process::join);
    // 正在执行子进程的进程号:6044,当前时间:19:22:12
    // ... five lines, all in the same second

    println!("-- with a lock");
    let lock = Lock::new();
    let children: Vec<Process> = (0..5)
        .map(|_| context.process("report").args((Some(&lock),)).start())
        .collect::<Result<_, _>>()?;
    children.iter().for_each(Process::join);
    // 正在执行子进程的进程号:8752,当前时间:19:25:39
    // 正在执行子进程的进程号:10152,当前时间:19:25:40
    // ... one line a second
    Ok(())
}
