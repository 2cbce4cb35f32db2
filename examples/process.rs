//! Seed 004, "Process": a child process per task — start, join, the pids of
//! parent and children, several children at once, and named processes (the
//! seed's `MyProcess`). Guest output is printed as the guest wrote it.
//!
//! Run: `cargo run --release --example process`

use std::time::Duration;

use wasmpool::{Pool, Process};

/// The parent pid of process `pid`, from `/proc/<pid>/stat`, if it still runs.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`
    let after = stat.get(stat.rfind(')')? + 2..)?;
    after.split(' ').nth(1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    // Compiled once; every process below loads the same artifact.
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    println!("-- a child process");
    let p = context.process("greet").args(("bob", 0u64)).start()?;
    std::thread::sleep(Duration::from_secs(1));
    println!("the main process goes on");
    p.join();
    // hello bob
    // I am the child process
    // the main process goes on

    println!("-- join");
    let p = context.process("greet").args(("bob", 2000u64)).start()?;
    std::thread::sleep(Duration::from_secs(1));
    p.join();
    println!("the main process goes on");
    // hello bob
    // I am the child process
    // the main process goes on

    println!("-- process ids");
    println!("main process id: {}", std::process::id());
    let children: Vec<Process> = (0..5i64)
        .map(|i| context.process("square_with_pid").args((i, 500u64)).start())
        .collect::<Result<_, _>>()?;
    for child in &children {
        // A guest cannot see its parent: the host reads it from /proc.
        match parent_of(child.pid()) {
            Some(parent) => println!("child {} has parent id: {parent}", child.pid()),
            None => println!("child {} has ended already", child.pid()),
        }
    }
    for child in &children {
        child.join();
    }

    println!("-- several children");
    let children: Vec<Process> = (0..5)
        .map(|i| {
            context
                .process("greet")
                .args((format!("bob{i}"), 1000u64))
                .start()
        })
        .collect::<Result<_, _>>()?;
    for child in &children {
        child.join();
    }
    println!("the parent process runs");
    // hello bob0 ... hello bob4, then (a second later) the child lines
    // the parent process runs

    println!("-- named processes");
    let named: Vec<Process> = ["p1", "p2", "p3"]
        .into_iter()
        .map(|name| {
            context
                .process("introduce")
                .args((name,))
                .name(name)
                .start()
        })
        .collect::<Result<_, _>>()?;
    for p in &named {
        p.join();
        println!("{} ended with exit code {:?}", p.name(), p.exitcode());
    }
    println!("main thread 111");
    Ok(())
}
