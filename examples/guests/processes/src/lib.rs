//! The targets of the `Process` and shared-object examples of seed 004 (a
//! tutorial of Python's `multiprocessing`), one task per
//! `Process(target=...)`. Each prints what its Python original prints.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmpool_guest::{
    Connection, Dict, Event, JoinableQueue, Lock, ObjectError, Queue, Semaphore, task, worker_pid,
};

/// `f(name)`: greets, sleeps `sleep_ms`, then says it is the child.
#[task]
fn greet(name: String, sleep_ms: u64) {
    println!("hello {name}");
    std::thread::sleep(Duration::from_millis(sleep_ms));
    println!("I am the child process");
}

/// `f(x)` of "process ids": prints its pid (a guest cannot see its
/// parent's: the host reports that), lingers, returns `x * x`.
#[task]
fn square_with_pid(x: i64, linger_ms: u64) -> i64 {
    println!("child process id: {}", worker_pid());
    std::thread::sleep(Duration::from_millis(linger_ms));
    x * x
}

/// `MyProcess.run`: prints its pid, then its name.
#[task]
fn introduce(name: String) {
    println!("{}", worker_pid());
    println!("{name}");
}

/// `func` of the daemon examples: says it is alive every half second, for
/// ever (`None`) or `times` times.
#[task]
fn alive(times: Option<u64>) {
    let mut said = 0;
    while times.is_none_or(|times| said < times) {
        println!("I am alive");
        std::thread::sleep(Duration::from_millis(500));
        said += 1;
    }
}

/// `func(n)` of the timing example: adds `0..100` to `n`.
#[task]
fn add_range(n: i64) -> i64 {
    (0..100).fold(n, |n, i| n + i)
}

/// The time of day, `HH:MM:SS` in UTC (a guest has no time zone).
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `func` of "Lock": sleeps a second, then prints its pid and the time;
/// with a lock, holds it all along, so one process prints at a time.
#[task]
fn report(lock: Option<Lock>) -> Result<(), ObjectError> {
    let held = lock.as_ref().map(Lock::acquire).transpose()?;
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "正在执行子进程的进程号:{},当前时间:{}",
        worker_pid(),
        clock()
    );
    if let Some(held) = held {
        held.release()?;
    }
    Ok(())
}

/// `func(num, s)` of "Semaphore": prints while it holds a permit for a
/// second.
#[task]
fn numbered(num: u32, s: Semaphore) -> Result<(), ObjectError> {
    let permit = s.acquire()?;
    println!("编号:{num} 正在执行, {}", clock());
    std::thread::sleep(Duration::from_secs(1));
    permit.release()
}

/// `func(e)` of "Event": waits for the event, then says it ran, and when.
#[task]
fn wait_for(e: Event) -> Result<(), ObjectError> {
    println!("func准备执行");
    e.wait()?;
    println!("执行了,当前时间:{}", clock());
    Ok(())
}

/// `func(q)` of "Queue": puts a message for the parent.
#[task]
fn put_from_son(q: Queue<String>) -> Result<(), ObjectError> {
    q.put(&"from son process".to_string())
}

/// A number of milliseconds in `low..=high`, at random: std's hasher keys
/// come from the WASI random source.
fn random_ms(low: u64, high: u64) -> u64 {
    let noise = RandomState::new().build_hasher().finish();
    low + noise % (high - low + 1)
}

/// `producer(name, q)` of "JoinableQueue": puts ten apples, one each
/// 100–200 ms (the seed's 1–2 s, scaled down), then waits until all are
/// eaten.
#[task]
fn producer(name: String, q: JoinableQueue<String>) -> Result<(), ObjectError> {
    for i in 1..=10 {
        std::thread::sleep(Duration::from_millis(random_ms(100, 200)));
        let apple = format!("{name}生产的第{i}个苹果");
        q.put(&apple)?;
        println!("{apple}");
    }
    q.join()
}

/// `consumer(name, q)` of "JoinableQueue": eats apples for ever, one each
/// 200–300 ms (the seed's 2–3 s, scaled down), marking each done.
#[task]
fn consumer(name: String, q: JoinableQueue<String>) -> Result<(), ObjectError> {
    loop {
        std::thread::sleep(Duration::from_millis(random_ms(200, 300)));
        let apple = q.get()?;
        println!("{name}吃了{apple}");
        q.task_done()?;
    }
}

/// `f(conn)` of "Pipe": sends the parent a message and closes its end.
#[task]
fn send_from_sub(conn: Connection) -> Result<(), ObjectError> {
    conn.send("from sub process")?;
    conn.close()
}

/// `f(child_conn)` of "EOFError": prints what comes until the other end is
/// closed, then closes its own.
#[task]
fn print_until_eof(child_conn: Connection) -> Result<(), ObjectError> {
    loop {
        match child_conn.recv::<String>() {
            Ok(message) => println!("{message}"),
            Err(err) if err.is_eof() => return child_conn.close(),
            Err(err) => return Err(err),
        }
    }
}

/// `work(d, lock)` of "Manager", as the seed runs it (without the lock):
/// reads the count, and writes it back less one `pause_ms` later — a
/// process that reads in between loses its update, or this one's.
#[task]
fn decrement_racy(d: Dict<String, i64>, pause_ms: u64) -> Result<(), ObjectError> {
    let key = "count".to_string();
    let count = d.get(&key)?.unwrap_or_default();
    std::thread::sleep(Duration::from_millis(pause_ms));
    d.set(&key, &(count - 1))
}

/// `work(d, lock)` with `with lock:`: the read and the write under the
/// lock, so none is lost.
#[task]
fn decrement_locked(d: Dict<String, i64>, lock: Lock, pause_ms: u64) -> Result<(), ObjectError> {
    let key = "count".to_string();
    let _held = lock.acquire()?;
    let count = d.get(&key)?.unwrap_or_default();
    std::thread::sleep(Duration::from_millis(pause_ms));
    d.set(&key, &(count - 1))
}

/// `work(d)` as one atomic step: the dict's own read-modify-write.
#[task]
fn decrement_atomic(d: Dict<String, i64>) -> Result<(), ObjectError> {
    d.add(&"count".to_string(), -1i64).map(drop)
}
