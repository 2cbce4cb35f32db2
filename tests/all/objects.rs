//! Shared objects (locks, semaphores, events, queues, pipes, managed data)
//! used by tasks in real worker processes, by processes and by host threads
//! at once: their promises across processes, and what happens when a holder
//! dies, times out or presents a handle it was not handed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, OUTCOME_WAIT, builder, deadline, outcome, pool};
use wasmpool::{
    ErrorKind, Event, JoinableQueue, Lock, Manager, Pipe, Pool, Queue, QueueError, RecvError,
    Semaphore,
};

#[test]
fn a_counter_under_a_lock_ends_exact_across_processes_and_host_threads() {
    let _deadline = deadline("tasks and host threads counting under a lock", DEADLINE);
    let pool = pool(4);
    let lock = Lock::new();
    let counter = Manager::new().value(&0i64).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            pool.apply_async::<u64, _>("locked_increments", (lock.clone(), counter.clone(), 25))
                .unwrap()
        })
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..25 {
                    let _held = lock.acquire();
                    let n = counter.get().unwrap();
                    std::thread::yield_now();
                    counter.set(&(n + 1)).unwrap();
                }
            });
        }
    });
    for task in &tasks {
        assert_eq!(
            outcome(task, "a counting task").unwrap(),
            0,
            "no holder died"
        );
    }
    assert_eq!(counter.get().unwrap(), 8 * 25 + 2 * 25);
}

#[test]
fn a_semaphore_never_admits_more_than_its_permits() {
    let _deadline = deadline("ten tasks through a semaphore of two", DEADLINE);
    let pool = pool(4);
    let semaphore = Semaphore::new(2);
    let manager = Manager::new();
    let (inside, peak) = (manager.value(&0i64).unwrap(), manager.value(&0i64).unwrap());
    let items: Vec<_> = (0..10)
        .map(|_| (semaphore.clone(), inside.clone(), peak.clone(), 20u64))
        .collect();
    let done: Vec<()> = pool.starmap("within_semaphore", items, 1).unwrap();
    assert_eq!(done.len(), 10);
    let peak = peak.get().unwrap();
    assert!(
        (1..=2).contains(&peak),
        "{peak} tasks held a permit at once"
    );
    assert_eq!(inside.get().unwrap(), 0);
    assert_eq!(semaphore.value(), 2, "every permit came back");
}

#[test]
fn setting_an_event_wakes_every_waiter() {
    let _deadline = deadline("three tasks waiting for an event", DEADLINE);
    let pool = pool(3);
    let event = Event::new();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            pool.apply_async::<bool, _>("wait_for_event", (event.clone(), None::<u64>))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        waiters.iter().all(|waiter| !waiter.ready()),
        "none passes before set"
    );
    event.set();
    for waiter in &waiters {
        assert!(outcome(waiter, "a waiter").unwrap());
    }
    event.clear();
    let timed: bool = pool
        .apply("wait_for_event", (event.clone(), Some(20u64)))
        .unwrap();
    assert!(!timed, "a cleared event lets a timed wait run out");
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
fn a_queue_keeps_order_and_a_bounded_one_holds_its_producer_back() {
    let _deadline = deadline("a producer and a consumer on a queue of 2", DEADLINE);
    let pool = pool(2);
    let queue: Queue<i64> = Queue::bounded(2);
    let producer = pool
        .apply_async::<(), _>("produce", (queue.clone(), 0, 50))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!producer.ready(), "the producer waits for room");
    assert_eq!(queue.qsize(), 2);
    let consumed: Vec<i64> = pool.apply("consume", (queue.clone(), 50u64)).unwrap();
    outcome(&producer, "the producer").unwrap();
    assert_eq!(consumed, (0..50).collect::<Vec<_>>());
    assert_eq!(queue.get_nowait(), Err(QueueError::Empty));
}

#[test]
fn joinable_queue_join_returns_when_every_item_is_done() {
    let _deadline = deadline("two workers working off a joinable queue", DEADLINE);
    let pool = pool(2);
    let queue: JoinableQueue<i64> = JoinableQueue::new();
    let done = Manager::new().list(Vec::<i64>::new()).unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            pool.apply_async::<u64, _>("work_off", (queue.clone(), done.clone(), 500u64))
                .unwrap()
        })
        .collect();
    for item in 0..40 {
        queue.put(&item).unwrap();
    }
    queue.join();
    // Each item was recorded before it was marked done.
    let mut recorded = done.items().unwrap();
    recorded.sort_unstable();
    assert_eq!(recorded, (0..40).collect::<Vec<_>>());
    let taken: u64 = workers
        .iter()
        .map(|worker| outcome(worker, "a worker").unwrap())
        .sum();
    assert_eq!(taken, 40);
    assert!(matches!(queue.task_done(), Err(QueueError::Item(_))));
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
fn a_pipe_reads_end_of_file_once_the_pool_task_holding_the_other_end_ends() {
    let _deadline = deadline("a pool task sending on a pipe", DEADLINE);
    // One worker: the end the task held must not outlive the task in what
    // the worker's grants remember of answered operations.
    let pool = pool(1);
    let (reader, writer) = Pipe::new(true);
    pool.apply::<(), _>("send_messages", (&writer, 5u64))
        .unwrap();
    drop(writer);
    for n in 0..5u64 {
        assert_eq!(reader.recv::<u64>().unwrap(), n);
    }
    assert_eq!(
        reader.recv_bytes_timeout(Duration::from_secs(5)),
        Err(RecvError::Eof),
        "no end-of-file after the task that held the other end ended"
    );
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

#[test]
fn a_lock_held_by_a_task_that_ends_or_dies_is_released_and_the_next_holder_told() {
    let _deadline = deadline("locks held by tasks that end or die", DEADLINE);
    let pool = builder(2).retries(0).build().unwrap();
    let lock = Lock::new();
    for how in ["return", "panic"] {
        let holding = Event::new();
        let ended = pool
            .apply_async::<(), _>("hold_lock", (lock.clone(), holding.clone(), how))
            .unwrap();
        let _ = outcome(&ended, how);
        let died: bool = pool.apply("take_lock", (lock.clone(),)).unwrap();
        assert!(died, "after a task that ended by {how}");
    }
    // A worker killed while it holds the lock.
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

#[test]
fn a_task_stopped_while_it_waits_in_get_takes_nothing() {
    let _deadline = deadline("gets given up by a time limit and a kill", DEADLINE);
    let queue: Queue<i64> = Queue::new();
    // Its time limit stops the task in its wait.
    let pool = builder(1)
        .task_timeout(Duration::from_millis(300))
        .retries(0)
        .build()
        .unwrap();
    let err = pool
        .apply::<i64, _>("take_one", (queue.clone(), None::<u64>))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    queue.put(&1).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(queue.qsize(), 1, "the given-up wait took the item");
    assert_eq!(queue.get_nowait(), Ok(1));
    // Its worker is killed while the task waits.
    let context = builder(1).context().unwrap();
    let started = Event::new();
    let taker = context
        .process("announce_then_take")
        .args((started.clone(), queue.clone()))
        .start()
        .unwrap();
    assert!(started.wait_timeout(OUTCOME_WAIT), "the task started");
    std::thread::sleep(Duration::from_millis(200));
    taker.kill();
    taker.join();
    queue.put(&2).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        queue.get_nowait(),
        Ok(2),
        "the dead worker's wait took the item"
    );
    // A timed get that runs out says so.
    let err = pool
        .apply::<i64, _>("take_one", (queue.clone(), Some(10u64)))
        .unwrap_err();
    assert!(err.message().contains("timed out"), "{err}");
}

/// A pool of `processes` whose tasks have the time limit `limit`, and what
/// its tasks write, a piece each.
pub(crate) fn pool_hearing_its_tasks(
    processes: usize,
    limit: Duration,
) -> (Pool, Arc<Mutex<Vec<String>>>) {
    let said = Arc::new(Mutex::new(Vec::new()));
    let hearing = said.clone();
    let pool = builder(processes)
        .task_timeout(limit)
        .on_output(move |output| {
            let line = String::from_utf8_lossy(&output.bytes).into_owned();
            hearing.lock().unwrap().push(line);
        })
        .build()
        .unwrap();
    (pool, said)
}

/// Waits up to `patience` for `queue` to hold an item, and takes it.
fn item_back(queue: &Queue<i64>, patience: Duration) -> Option<i64> {
    let end = Instant::now() + patience;
    loop {
        if let Ok(item) = queue.get_nowait() {
            return Some(item);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_item_put_as_its_takers_time_limit_fires_is_taken_once_or_stays() {
    let _deadline = deadline("gets crossing their time limit", Duration::from_secs(120));
    let limit = Duration::from_millis(100);
    // What each task said it took.
    let (pool, said) = pool_hearing_its_tasks(1, limit);
    let queue: Queue<i64> = Queue::new();
    let started = Event::new();
    let (mut taken, mut seen, mut timed_out) = (0, 0, 0);
    // The put steps through the window around the limit, half a
    // millisecond at a time: the answer crosses the time limit on the way.
    for round in 0..60i64 {
        started.clear();
        let result = pool
            .apply_async::<i64, _>("announce_take_and_say", (started.clone(), queue.clone()))
            .unwrap();
        assert!(started.wait_timeout(OUTCOME_WAIT), "round {round} started");
        std::thread::sleep(
            limit - Duration::from_millis(15) + Duration::from_micros(500) * round as u32,
        );
        queue.put(&round).unwrap();
        match outcome(&result, "a get crossing its time limit") {
            Ok(item) => {
                assert_eq!(item, round);
                taken += 1;
            }
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
                // The task was stopped after it took the item (its output,
                // which comes before its outcome, says so), or the item
                // comes back: an answer that reached the task too late goes
                // back to the queue.
                let took = format!("took {round}\n");
                if said.lock().unwrap().contains(&took) {
                    seen += 1;
                } else {
                    assert_eq!(
                        item_back(&queue, Duration::from_secs(5)),
                        Some(round),
                        "round {round}: the item was lost with the timed-out get"
                    );
                    timed_out += 1;
                }
            }
        }
        assert_eq!(queue.qsize(), 0, "round {round}: an item was left twice");
    }
    eprintln!(
        "{taken} returned, {seen} seen by a task stopped after its get, \
         {timed_out} timed out and given back"
    );
}

#[test]
fn a_lock_whose_acquire_crosses_its_time_limit_has_one_holder_at_a_time() {
    let _deadline = deadline(
        "acquires crossing their time limit",
        Duration::from_secs(120),
    );
    let limit = Duration::from_millis(100);
    let pool = builder(1).task_timeout(limit).build().unwrap();
    let lock = Lock::new();
    let started = Event::new();
    let (mut acquired, mut timed_out) = (0, 0);
    // The host releases the lock the task waits for as the task's limit
    // fires, half a millisecond later each round: the grant crosses the
    // limit on the way.
    for round in 0..60u32 {
        started.clear();
        let held = lock.acquire();
        let result = pool
            .apply_async::<(), _>("announce_then_take_lock", (started.clone(), lock.clone()))
            .unwrap();
        assert!(started.wait_timeout(OUTCOME_WAIT), "round {round} started");
        std::thread::sleep(limit - Duration::from_millis(15) + Duration::from_micros(500) * round);
        drop(held);
        match outcome(&result, "an acquire crossing its time limit") {
            Ok(()) => acquired += 1,
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
                timed_out += 1;
            }
        }
        // Whatever the task got is let go of, or given back: the lock comes
        // free, and its next holder holds it alone, whatever comes back late
        // from the worker.
        let next = lock
            .acquire_timeout(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("round {round}: the lock never came free"));
        for _ in 0..20 {
            assert!(
                lock.try_acquire().is_none(),
                "round {round}: a second holder while the first holds the lock"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(next);
    }
    eprintln!("{acquired} acquired, {timed_out} timed out");
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

#[test]
fn a_forged_or_stale_handle_is_refused() {
    let _deadline = deadline("forged and stale handles", DEADLINE);
    let pool = pool(1);
    let lock = Lock::new();
    // The task stashes the handle; the next task, on the same worker, was
    // not handed it.
    pool.apply::<(), _>("stash_lock", (lock.clone(),)).unwrap();
    let stale: Result<bool, _> = pool.apply("use_stashed_lock", ());
    let err = stale.unwrap_err();
    assert!(err.message().contains("was not handed"), "{err}");
    assert!(
        lock.try_acquire().is_some(),
        "the stale handle took nothing"
    );
    // Ids the task was never handed, of any kind; and a kind byte that is
    // not a lock's does not even decode.
    for id in [0, 1, 2, 1000, u64::MAX] {
        let forged: Result<bool, _> = pool.apply("forge_lock", (1u8, id));
        let err = forged.unwrap_err();
        assert!(err.message().contains("was not handed"), "id {id}: {err}");
    }
    let forged: Result<bool, _> = pool.apply("forge_lock", (6u8, 1u64));
    assert!(forged.unwrap_err().message().contains("another kind"));
}

/// A task may use the objects handed to it, not those of the other tasks
/// of its batch, although a worker runs the batch in one call and the task
/// can read every task's arguments: the module written from the WIT (`grab`)
/// finds every lock handle in its batch and tries to take each.
#[test]
fn a_task_cannot_take_a_lock_handed_to_another_task_of_its_batch() {
    let _deadline = deadline("a module grabbing its batch's locks", DEADLINE);
    let pool = builder(1)
        .module_file(wasmpool_artifacts::HOSTILE)
        .env("HOSTILE", "tasks")
        .build()
        .unwrap();
    let lock = Lock::new();
    let other = Lock::new();
    // One batch: a task handed nothing ahead of the task handed `lock`, one
    // handed nothing behind it, and one handed `other`.
    let handed = [None, Some(lock.clone()), None, Some(other.clone())];
    let taken: Vec<u8> = pool.map("grab", handed, 4).unwrap();
    assert_eq!(
        taken,
        [0, 1, 0, 1],
        "each task took its own lock, and only it"
    );
    // Their tasks ended holding them: the worker lets go of both once its
    // slot has seen the batch end (after the results came back).
    for lock in [&lock, &other] {
        let again = lock.acquire_timeout(OUTCOME_WAIT).expect("let go of");
        assert!(again.previous_holder_died());
    }
}

#[test]
fn an_item_too_large_for_a_task_stays_in_its_queue() {
    let _deadline = deadline("an item over the pool's payload limit", DEADLINE);
    let pool = builder(1).max_payload(1024).build().unwrap();
    let queue: Queue<String> = Queue::new();
    let big = "x".repeat(4096);
    queue.put(&big).unwrap();
    let taken: Result<i64, _> = pool.apply("take_one", (queue.clone(), None::<u64>));
    let err = taken.unwrap_err();
    assert!(err.message().contains("payload limit"), "{err}");
    assert_eq!(queue.get_nowait(), Ok(big), "the item stayed in the queue");
}

#[test]
fn a_task_stopped_while_it_waits_in_acquire_takes_nothing() {
    let _deadline = deadline("an acquire given up by a time limit", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(300))
        .retries(0)
        .build()
        .unwrap();
    let lock = Lock::new();
    let held = lock.acquire();
    let err = pool
        .apply::<bool, _>("take_lock", (lock.clone(),))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    // Had the given-up wait taken the lock, it would have been let go of
    // as a dead holder's.
    let again = lock.try_acquire().expect("the lock is free");
    assert!(!again.previous_holder_died());
}
