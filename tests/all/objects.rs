//! Shared objects (locks, semaphores, events, queues, pipes, managed data)
//! used by tasks in real worker processes, by processes and by host threads
//! at once: what only a local pool has — processes, and the host's threads.
//! The cases every place runs are in `tests/common/calls.rs` (here: `here.rs`).

use std::time::{Duration, Instant};

use crate::common::{DEADLINE, OUTCOME_WAIT, builder, deadline, outcome, pool};
use wasmpool::{Event, Lock, Manager, Pipe, Queue, RecvError};

#[test]
fn a_lock_held_by_a_process_that_is_killed_is_released_and_the_next_holder_told() {
    let _deadline = deadline("a lock held by a killed process", DEADLINE);
    let lock = Lock::new();
    let context = builder(1).context().unwrap();
    let holding = Event::new();
    let holder = context
        .process("hold_lock")
        .args((lock.clone(), holding.clone(), "hang"))
        .start()
        .unwrap();
    assert!(holding.wait_timeout(OUTCOME_WAIT), "the task took the lock");
    assert!(lock.try_acquire().is_none());
    holder.kill();
    holder.join();
    assert_eq!(holder.exitcode(), Some(-9));
    let guard = lock
        .acquire_timeout(OUTCOME_WAIT)
        .expect("the lock of a dead holder is released");
    assert!(guard.previous_holder_died());
}

/// Tasks blocked on an `Event` hold no host thread: each wait is parked on
/// the event until it is set (or its timeout passes). Counted in a process
/// of its own, where no other test's threads run.
#[test]
fn tasks_blocked_on_an_event_hold_no_host_thread() {
    const NAME: &str = "objects::tasks_blocked_on_an_event_hold_no_host_thread";
    if std::env::var_os("WASMPOOL_TEST_ALONE").is_none() {
        let alone = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env("WASMPOOL_TEST_ALONE", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&alone.stdout);
        assert!(
            alone.status.success() && said.contains("1 passed"),
            "{NAME}, alone in its process, failed: {said}{}",
            String::from_utf8_lossy(&alone.stderr)
        );
        return;
    }
    let _deadline = deadline("sixteen tasks blocked on an event", DEADLINE);
    const BLOCKED: usize = 16;
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let pool = pool(BLOCKED);
    let _: Vec<i64> = pool.map("square", 0..BLOCKED as i64 * 4, 1).unwrap();
    let before = threads();
    let event = Event::new();
    let waiters: Vec<_> = (0..BLOCKED)
        .map(|index| {
            // Half wait without end, half with a timeout that does not pass.
            let timeout = (index % 2 == 0).then_some(60_000u64);
            pool.apply_async::<bool, _>("wait_for_event", (&event, timeout))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = threads();
    assert!(
        waiters.iter().all(|waiter| !waiter.ready()),
        "none passes before set"
    );
    event.set();
    for waiter in &waiters {
        assert!(outcome(waiter, "a waiter").unwrap());
    }
    // One thread may start for all the timeouts of every pool.
    assert!(
        during <= before + 1,
        "{BLOCKED} tasks blocked on an event took the host from {before} threads to {during}"
    );
}

#[test]
fn a_pipe_reads_end_of_file_once_the_other_end_is_closed() {
    let _deadline = deadline("a process echoing on a pipe", DEADLINE);
    let context = builder(1).context().unwrap();
    let (parent, child) = Pipe::new(true);
    let echo = context
        .process("echo_until_eof")
        .args((&child,))
        .start()
        .unwrap();
    // The host's copy of the child's end: closing it does not close the
    // end the process holds.
    child.close();
    parent.send(&"hello").unwrap();
    parent.send(&"world").unwrap();
    assert_eq!(parent.recv::<String>().unwrap(), "echo: hello");
    assert_eq!(parent.recv::<String>().unwrap(), "echo: world");
    parent.close();
    echo.join();
    assert_eq!(echo.result::<u64>().unwrap().unwrap(), 2);

    let (parent, child) = Pipe::new(false);
    let sender = context
        .process("send_and_close")
        .args((&child, "from sub process"))
        .start()
        .unwrap();
    drop(child);
    assert_eq!(parent.recv::<String>().unwrap(), "from sub process");
    sender.join();
    assert_eq!(parent.recv::<String>(), Err(RecvError::Eof));
}

#[test]
fn a_managed_dict_counts_down_exactly() {
    let _deadline = deadline("ten processes counting down a dict", DEADLINE);
    let context = builder(1).context().unwrap();
    let dict = Manager::new()
        .dict([("count".to_string(), 100i64)])
        .unwrap();
    let processes: Vec<_> = (0..10)
        .map(|_| {
            context
                .process("count_down")
                .args((dict.clone(), "count"))
                .start()
                .unwrap()
        })
        .collect();
    for p in &processes {
        p.join();
        assert_eq!(p.exitcode(), Some(0));
    }
    assert_eq!(dict.items().unwrap(), [("count".to_string(), 90)]);
    let missing = context
        .process("count_down")
        .args((dict.clone(), "no such key"))
        .start()
        .unwrap();
    missing.join();
    let err = missing.result::<i64>().unwrap().unwrap_err();
    assert!(err.message().contains("no such key"), "{err}");
}

/// Whether process `pid` has exited, every thread of it (so nothing holds
/// its descriptors any more): a zombie of one thread not reaped yet, or
/// gone.
fn exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command name, in parentheses.
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    zombie && threads <= 1
}

#[test]
fn an_item_put_after_its_takers_worker_died_stays_in_the_queue() {
    let _deadline = deadline("gets of killed processes", DEADLINE);
    let context = builder(1).context().unwrap();
    for round in 0..10i64 {
        let queue: Queue<i64> = Queue::new();
        let started = Event::new();
        let taker = context
            .process("announce_then_take")
            .args((started.clone(), queue.clone()))
            .start()
            .unwrap();
        assert!(started.wait_timeout(OUTCOME_WAIT), "round {round} started");
        // The get reaches the host and waits there.
        std::thread::sleep(Duration::from_millis(20));
        let pid = taker.pid();
        taker.kill();
        let gone = Instant::now() + OUTCOME_WAIT;
        while !exited(pid) {
            assert!(
                Instant::now() < gone,
                "round {round}: the worker did not die"
            );
            std::thread::yield_now();
        }
        // The worker is gone, though the pool may not have heard yet.
        queue.put(&round).unwrap();
        taker.join();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            queue.get_nowait(),
            Ok(round),
            "round {round}: the dead worker's wait took the item"
        );
    }
}
