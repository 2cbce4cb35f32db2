//! Shared objects used from tasks, beside CPython's `multiprocessing` used
//! from a `Process`, on the same machine in one run: a lock's round trip,
//! a value's read, a queue's ping-pong between the host and a task, and
//! what tasks blocked on an `Event` cost the host in threads.
//!
//! `cargo bench --bench objects` runs `objects_peer.py` (CPython, fork
//! start method), then the same on wasmpool, prints a table, and writes it
//! as the section "Shared objects" of `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::time::Duration;

use wasmpool::{Event, Lock, Manager, Pool, Queue};
use wasmpool_artifacts::FIXTURES;

mod shared;

use shared::{python_peer, time_runs, write_section};

/// Operations per timed run (of the round trips that cross processes).
const ROUND_TRIPS: u64 = 2_000;
/// Tasks blocked on one `Event` at once, each in a worker of its own.
const BLOCKED: usize = 32;
const SECTION: &str = "## Shared objects";

/// The median of 5 runs of `f`, per operation, in microseconds.
fn per_op_us(operations: u64, f: impl FnMut()) -> f64 {
    time_runs(5, f) * 1e6 / operations as f64
}

/// How many threads this process has.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

struct Measured {
    lock_us: f64,
    value_us: f64,
    ping_pong_us: f64,
    threads_before: usize,
    threads_blocked: usize,
}

fn run_wasmpool() -> Measured {
    let pool = Pool::builder()
        .module_file(FIXTURES)
        .processes(2)
        .build()
        .expect("the pool starts");
    let lock = Lock::new();
    let manager = Manager::new();
    let value = manager.value(&7i64).expect("a value");
    let _: () = pool
        .apply("lock_round_trips", (&lock, 100u64))
        .expect("a warm-up");
    let lock_us = per_op_us(ROUND_TRIPS, || {
        let _: () = pool
            .apply("lock_round_trips", (&lock, ROUND_TRIPS))
            .expect("lock round trips");
    });
    let value_us = per_op_us(ROUND_TRIPS, || {
        let sum: i64 = pool
            .apply("value_reads", (&value, ROUND_TRIPS))
            .expect("value reads");
        assert_eq!(sum, 7 * ROUND_TRIPS as i64);
    });
    let (inbox, outbox) = (Queue::<i64>::new(), Queue::<i64>::new());
    let ping_pong_us = per_op_us(ROUND_TRIPS, || {
        let echo = pool
            .apply_async::<(), _>("echo_items", (&inbox, &outbox, ROUND_TRIPS))
            .expect("the echo starts");
        for item in 0..ROUND_TRIPS as i64 {
            inbox.put(&item).expect("a put");
            assert_eq!(outbox.get().expect("a get"), item);
        }
        echo.get().expect("the echo ends");
    });
    drop(pool);

    let pool = Pool::builder()
        .module_file(FIXTURES)
        .processes(BLOCKED)
        .build()
        .expect("the pool starts");
    let _: Vec<i64> = pool
        .map("square", 0..BLOCKED as i64 * 4, 1)
        .expect("the workers start");
    let threads_before = threads();
    let event = Event::new();
    let waiting: Vec<_> = (0..BLOCKED)
        .map(|_| {
            pool.apply_async::<bool, _>("wait_for_event", (&event, None::<u64>))
                .expect("a waiter starts")
        })
        .collect();
    // Every worker is busy waiting once the pool has no idle worker left
    // and the waits have had a moment to reach the host.
    std::thread::sleep(Duration::from_millis(500));
    let threads_blocked = threads();
    event.set();
    for waiter in waiting {
        assert!(waiter.get().expect("a waiter ends"));
    }
    Measured {
        lock_us,
        value_us,
        ping_pong_us,
        threads_before,
        threads_blocked,
    }
}

fn main() {
    wasmpool::init();
    eprintln!("CPython multiprocessing, from a Process ...");
    let py = python_peer("objects_peer.py", &[&ROUND_TRIPS.to_string()]);
    eprintln!("wasmpool, from a task ...");
    let rs = run_wasmpool();
    let f = |key: &str| py[key].as_f64().unwrap_or(f64::NAN);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| operation, from a task | CPython, shared memory | CPython, `Manager` proxy | wasmpool |\n\
         |---|---:|---:|---:|"
    );
    let _ = writeln!(
        table,
        "| `Lock` acquire + release | {:.2} µs | {:.1} µs | {:.1} µs |",
        f("lock_us"),
        f("manager_lock_us"),
        rs.lock_us
    );
    let _ = writeln!(
        table,
        "| `Value` read | {:.2} µs | {:.1} µs | {:.1} µs |",
        f("value_us"),
        f("manager_value_us"),
        rs.value_us
    );
    let _ = writeln!(
        table,
        "| `Queue` ping-pong with the host (put, get back) | {:.1} µs | — | {:.1} µs |",
        f("ping_pong_us"),
        rs.ping_pong_us
    );
    let _ = writeln!(
        table,
        "| host threads while {BLOCKED} tasks wait on an `Event` (before → during) | — | — | {} → {} |",
        rs.threads_before, rs.threads_blocked
    );
    let section = format!(
        "{SECTION}\n\n\
         Written by `cargo bench --bench objects` (host/benches/objects.rs, host/benches/objects_peer.py):\n\
         {ROUND_TRIPS} operations in a row from one task (wasmpool, tasks of `tests/guests/fixtures`)\n\
         or one `Process` (CPython {}, fork), per operation, medians of 5. CPython's `Lock` and\n\
         `Value` are shared memory (a futex, no round trip); its `Manager` serves them from a process\n\
         of its own, a round trip each, as wasmpool's host does.\n\n{table}",
        py["python"].as_str().unwrap_or("?"),
    );
    println!("{section}");
    write_section(SECTION, &section);
}
