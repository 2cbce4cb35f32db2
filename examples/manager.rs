//! Seed 004, "Manager": ten processes each take one from `count` in a
//! [`Manager`] dict holding `{"count": 100}`. As the seed writes it (read,
//! then write back) two processes may read the same count and one update is
//! lost — each operation on the dict is atomic, the pair is not; the seed
//! printed 91. To make the race show, each process pauses between its read
//! and its write. Under a [`Lock`], or with the dict's atomic `add`, no
//! update is lost: 90.
//!
//! Run: `cargo run --release --example manager`

use serde::Serialize;
use wasmpool::{Context, Dict, Lock, Manager, Pool, Process};

/// Starts ten processes of `task` with `args`, and waits for them all.
fn run_ten<A: Serialize + Copy>(context: &Context, task: &str, args: A) -> anyhow::Result<()> {
    let children: Vec<Process> = (0..10)
        .map(|_| context.process(task).args(args).start())
        .collect::<Result<_, _>>()?;
    children.iter().for_each(Process::join);
    for child in &children {
        child.result::<()>().expect("joined")?;
    }
    Ok(())
}

/// The dict as Python prints it: `{'count': 90}`.
fn show(dict: &Dict<String, i64>) -> anyhow::Result<String> {
    let entries: Vec<String> = dict
        .items()?
        .iter()
        .map(|(key, value)| format!("'{key}': {value}"))
        .collect();
    Ok(format!("{{{}}}", entries.join(", ")))
}

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;
    let m = Manager::new();
    let count = || m.dict([("count".to_string(), 100i64)]);
    let pause_ms = 200u64;

    println!("-- d['count'] -= 1: read, then write");
    let dic = count()?;
    run_ten(&context, "decrement_racy", (&dic, pause_ms))?;
    println!("{}", show(&dic)?);
    // {'count': 99}: all ten read 100 within the pause, and nine updates
    // were lost (the seed, without a pause, lost one: 91)

    println!("-- with lock: d['count'] -= 1");
    let dic = count()?;
    let lock = Lock::new();
    run_ten(&context, "decrement_locked", (&dic, &lock, pause_ms))?;
    println!("{}", show(&dic)?);
    // {'count': 90}

    println!("-- d.add('count', -1): one atomic step");
    let dic = count()?;
    run_ten(&context, "decrement_atomic", (&dic,))?;
    println!("{}", show(&dic)?);
    // {'count': 90}
    Ok(())
}
