//! Seed 004, "Queue(队列)": a [`Queue`] of three used by the main program
//! alone — puts until full, a put that may not wait fails, gets until
//! empty, a get that may not wait fails — then a child process puts a
//! message that the main program gets once the child has ended.
//!
//! Run: `cargo run --release --example queue`

use wasmpool::{Pool, Queue, QueueError};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    println!("-- put, get, put_nowait, get_nowait, full, empty");
    let q = Queue::bounded(3);
    for _ in 0..3 {
        q.put(&3)?;
    }
    // A fourth `put` would wait until an item is taken; `put_nowait` fails.
    if let Err(QueueError::Full) = q.put_nowait(&3) {
        println!("队列已经满了");
    }
    println!("{}", q.full()); // true
    for _ in 0..3 {
        println!("{}", q.get()?);
    }
    // A fourth `get` would wait for an item; `get_nowait` fails.
    if let Err(QueueError::Empty) = q.get_nowait() {
        println!("队列已经空了");
    }
    println!("{}", q.empty()); // true
    // 队列已经满了
    // true
    // 3
    // 3
    // 3
    // 队列已经空了
    // true

    println!("-- from a child process to the main process");
    let q = Queue::<String>::bounded(5);
    let p = context.process("put_from_son").args((&q,)).start()?;
    p.join();
    println!("{}", q.get()?);
    // from son process
    Ok(())
}
