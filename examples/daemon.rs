//! Seed 004, "daemon": a daemon process dies with the main program; a
//! process that is not a daemon runs on after the main program is done, and
//! is waited for. The child's lines appear as it prints them.
//!
//! Run: `cargo run --release --example daemon`

use std::time::Duration;

use wasmpool::{Context, Pool};

/// The seed's main: works two seconds while the child says it is alive.
fn main_work() {
    for _ in 0..2 {
        println!("the main process runs");
        std::thread::sleep(Duration::from_secs(1));
    }
    println!("the main process is done");
}

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context: Context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    println!("-- a daemon");
    {
        let p = context
            .process("alive")
            .args((None::<u64>,))
            .daemon(true)
            .start()?;
        main_work();
        // Dropping a daemon's handle kills it, mid-loop.
        drop(p);
    }
    // the main process runs
    // I am alive
    // I am alive
    // the main process runs
    // I am alive
    // I am alive
    // the main process is done

    println!("-- not a daemon");
    {
        // The seed's loop runs for ever; this one stops after eight lines,
        // so that the example ends.
        let p = context.process("alive").args((Some(8u64),)).start()?;
        main_work();
        // Dropping the handle waits for the process, which goes on saying
        // it is alive after the main process is done.
        drop(p);
    }
    // the main process runs
    // I am alive
    // I am alive
    // the main process runs
    // I am alive
    // I am alive
    // the main process is done
    // I am alive
    // I am alive
    // I am alive
    // I am alive
    Ok(())
}
