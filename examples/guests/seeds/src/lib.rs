//! The task functions of the Python multiprocessing tutorials in
//! `shared/seeds/`, as one wasmpool module. Each prints what its Python
//! original prints; the host shows that output attributed to its worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmpool_guest::{task, worker_pid};

/// `action(name='default')`: says which process runs it, then sleeps.
#[task]
fn action(name: Option<String>, sleep_ms: u64) {
    let name = name.unwrap_or_else(|| "default".to_string());
    println!("({}) is running, argument: {name}", worker_pid());
    std::thread::sleep(Duration::from_millis(sleep_ms));
}

/// `action(max)`: prints each step and returns the sum of `0..max`.
#[task]
fn sum_to(max: u64) -> u64 {
    let mut sum = 0;
    for i in 0..max {
        println!("({}) is running: {i}", worker_pid());
        sum += i;
    }
    sum
}

/// `func(num)`: prints its number and returns it.
#[task]
fn func(num: i64) -> i64 {
    println!("{num}");
    num
}

/// `func(args)`: returns `"(arg:pid)"`, showing which worker ran each item.
#[task]
fn tag(arg: i64) -> String {
    format!("({arg}:{})", worker_pid())
}

/// `func(*args)` for `starmap`: returns `"(a, b):pid"`.
#[task]
fn pair(a: i64, b: i64) -> String {
    format!("({a}, {b}):{}", worker_pid())
}

/// `work(n)`: prints the pid, sleeps, returns `n ** 2`.
#[task]
fn work(n: i64, sleep_ms: u64) -> i64 {
    println!("{} run", worker_pid());
    std::thread::sleep(Duration::from_millis(sleep_ms));
    n * n
}

/// `func(i)`: `i * i`.
#[task]
fn square(i: i64) -> i64 {
    i * i
}

/// `func(n)` of the efficiency comparison: adds `0..100` to `n`.
#[task]
fn add_range(n: i64) -> i64 {
    (0..100).fold(n, |n, i| n + i)
}

mod compute;

/// `sum(range(n))`, CPU-bound.
#[task]
fn sum_range(n: u64) -> u64 {
    compute::sum_range(n)
}

/// Counts the primes up to `n`, CPU-bound.
#[task]
fn sieve(n: u64) -> u64 {
    compute::sieve(n)
}

/// Does nothing: the cost of a task itself.
#[task]
fn noop() {}

static GREETING_COUNT: AtomicU64 = AtomicU64::new(0);

/// An initializer: sets a per-worker value the tasks can see.
#[task]
fn init_worker(start: u64) {
    GREETING_COUNT.store(start, Ordering::SeqCst);
    println!("worker {} initialised", worker_pid());
}

/// Counts the tasks this worker's instance ran since its initializer.
#[task]
fn greet(name: String) -> String {
    let n = GREETING_COUNT.fetch_add(1, Ordering::SeqCst);
    format!(
        "hello {name} from {} (task {n} of this worker)",
        worker_pid()
    )
}

/// Sleeps `ms` milliseconds and returns `ms`.
#[task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Seed 001's `action(name='default')` with its default: called with no
/// argument, by position or by keyword.
#[task]
fn action_named(#[default("default".to_string())] name: String) -> String {
    format!("({}) is running, argument: {name}", worker_pid())
}

/// Seed 003's `pool.apply(func, (123, 345), {'a': 1, 'b': 2})`: Rust has no
/// `*args, **kwargs`, so the parameters are named, `a` and `b` with defaults.
#[task]
fn func_kwds(x: i64, y: i64, #[default(0)] a: i64, #[default(0)] b: i64) -> String {
    format!("args: ({x}, {y}), kwargs: {{'a': {a}, 'b': {b}}}")
}
