//! Seed 004, "Event(事件)": an [`Event`] is clear, set, cleared; then a
//! process waits on it while the main program prints the time each second,
//! and sets it once five seconds have passed — the process then says it ran,
//! and when. Times are UTC, in the host as in the guest.
//!
//! Run: `cargo run --release --example event`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmpool::{Event, Pool};

/// The time of day, `HH:MM:SS` in UTC, as the guest prints it.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}")
}

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    let e = Event::new();
    println!("{}", e.is_set()); // false: waiting blocks
    e.set();
    println!("{}", e.is_set()); // true: waiting does not block
    e.clear();
    println!("{}", e.is_set()); // false again

    let p = context.process("wait_for").args((&e,)).start()?;
    for _ in 0..5 {
        println!("当前时间:{}", clock());
        std::thread::sleep(Duration::from_secs(1));
    }
    println!("5秒过去了");
    e.set();
    p.join();
    // false
    // true
    // false
    // 当前时间:17:06:37
    // func准备执行
    // 当前时间:17:06:38
    // 当前时间:17:06:39
    // 当前时间:17:06:40
    // 当前时间:17:06:41
    // 5秒过去了
    // 执行了,当前时间:17:06:42
    Ok(())
}
