//! Seed 004, "JoinableQueue(可连接队列)": producer and consumer. bob puts
//! ten apples in a [`JoinableQueue`] and waits until all are eaten; tom, a
//! daemon, eats them as they come, marking each done. The main program
//! waits for bob only: once bob is done every apple is eaten, and dropping
//! tom's handle kills him. The sleeps are the seed's tenths (bob 0.1–0.2 s
//! an apple, tom 0.2–0.3 s), so the lines interleave as the seed's do.
//!
//! Run: `cargo run --release --example joinable_queue`

use wasmpool::{JoinableQueue, Pool};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    let q = JoinableQueue::<String>::bounded(10);
    let producer = context.process("producer").args(("bob", &q)).start()?;
    let consumer = context
        .process("consumer")
        .args(("tom", &q))
        .daemon(true)
        .start()?;
    producer.join();
    drop(consumer);
    // bob生产的第1个苹果
    // tom吃了bob生产的第1个苹果
    // bob生产的第2个苹果
    // tom吃了bob生产的第2个苹果
    // ...
    // bob生产的第10个苹果
    // tom吃了bob生产的第8个苹果
    // tom吃了bob生产的第9个苹果
    // tom吃了bob生产的第10个苹果
    Ok(())
}
