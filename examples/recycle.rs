//! `initializer` and `max_tasks_per_child` (seed 003's constructor): every
//! worker runs the initializer before its first task, and a worker is
//! replaced by a fresh process after two tasks, so the pids change.
//!
//! Run: `cargo run --release --example recycle`

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(2)
        .initializer("init_worker", (100u64,))
        .max_tasks_per_child(2)
        .on_output(|out| print!("{}", out.text()))
        .build()?;
    let names = ["ann", "bob", "cy", "dee", "eve", "fay"];
    for greeting in pool.map::<String, _, _>("greet", names, 1)? {
        println!("{greeting}");
    }
    Ok(())
}
