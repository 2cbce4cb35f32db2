//! Seed 004, "Semaphore(信号量)": ten processes share a [`Semaphore`] of
//! two permits; each prints its number and the time, then holds its permit
//! a second, so two processes print each second. Times are UTC.
//!
//! Run: `cargo run --release --example semaphore`

use wasmpool::{Pool, Process, Semaphore};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    let s = Semaphore::new(2);
    let children: Vec<Process> = (0..10u32)
        .map(|i| context.process("numbered").args((i, &s)).start())
        .collect::<Result<_, _>>()?;
    children.iter().for_each(Process::join);
    // 编号:0 正在执行, 16:16:28
    // 编号:1 正在执行, 16:16:28
    // 编号:2 正在执行, 16:16:29
    // 编号:3 正在执行, 16:16:29
    // ... two a second, to 编号:9
    Ok(())
}
