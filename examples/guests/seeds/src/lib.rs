//! Tasks of the seed tutorials.
use wasmpool_guest::{task, task_index, worker_pid};

/// Squares a number.
#[task]
fn square(x: i64) -> i64 {
    x * x
}

/// Divides, failing on zero.
#[task]
fn divide(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        return Err("division by zero".into());
    }
    Ok(a / b)
}

/// Says where it runs.
#[task]
fn whoami() -> (u32, u64) {
    (worker_pid(), task_index())
}

/// Panics.
#[task]
fn boom(msg: String) -> i64 {
    panic!("{msg}")
}
