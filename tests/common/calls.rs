//! What tasks ask of the host — its functions, and the shared objects
//! (locks, semaphores, events, queues, pipes, managed data) handed to them —
//! tested wherever tasks run: each case takes the [`Pools`] it runs on, and
//! [`tests_of_calls`] declares a test of each for one place (a local pool in
//! `tests/all/`, agents on a NATS server in `tests/nats.rs`). Their promises
//! across processes and host threads, and what happens when a holder ends,
//! dies, times out or presents a handle it was not handed.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, OUTCOME_WAIT, deadline, outcome};
use wasmpool::{
    ErrorKind, Event, JoinableQueue, Lock, Manager, Pipe, Pool, PoolBuilder, Queue, QueueError,
    RecvError, Semaphore,
};

/// Where a case's pools run their tasks.
pub trait Pools {
    /// A builder of a pool of `processes` workers on the fixtures module
    /// (their module may be changed), its tasks run here.
    fn builder(&self, processes: usize) -> PoolBuilder;

    /// The processes running `pool`'s tasks now.
    fn worker_pids(&self, pool: &Pool) -> Vec<u32>;

    /// The process whose children the workers are: this one, or an agent.
    fn parent_of_workers(&self) -> u32;

    /// How many of `default` randomized histories to run here.
    fn histories(&self, default: u64) -> u64 {
        default
    }

    /// A pool of `processes` workers.
    fn pool(&self, processes: usize) -> Pool {
        self.builder(processes).build().expect("the pool starts")
    }

    /// SIGKILLs every process running `pool`'s tasks.
    fn kill_workers(&self, pool: &Pool) {
        let pids = self.worker_pids(pool);
        assert!(!pids.is_empty(), "no worker to kill");
        for pid in pids {
            // SAFETY: kill(2) of a worker of this pool.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Declares a `#[test]` of each case, run on the [`Pools`] `$place` makes.
macro_rules! tests_of_calls {
    ($place:expr) => {
        tests_of_calls!(@each $place;
            a_counter_under_a_lock_ends_exact_across_processes_and_host_threads,
            a_semaphore_never_admits_more_than_its_permits,
            setting_an_event_wakes_every_waiter,
            a_queue_keeps_order_and_a_bounded_one_holds_its_producer_back,
            joinable_queue_join_returns_when_every_item_is_done,
            a_pipe_reads_end_of_file_once_the_pool_task_holding_the_other_end_ends,
            a_lock_held_by_a_task_that_ends_or_dies_is_released_and_the_next_holder_told,
            a_task_stopped_while_it_waits_in_get_takes_nothing,
            an_item_put_as_its_takers_time_limit_fires_is_taken_once_or_stays,
            a_lock_whose_acquire_crosses_its_time_limit_has_one_holder_at_a_time,
            a_forged_or_stale_handle_is_refused,
            a_task_cannot_take_a_lock_handed_to_another_task_of_its_batch,
            an_item_too_large_for_a_task_stays_in_its_queue,
            a_task_stopped_while_it_waits_in_acquire_takes_nothing,
            a_task_calls_a_host_function_and_gets_its_answer,
            the_pool_goes_on_while_a_task_waits_in_a_host_call,
            a_task_blocked_in_a_host_call_still_obeys_its_time_limit,
        );
    };
    (@each $place:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::calls::$case(&$place);
            }
        )*
    };
}
pub(crate) use tests_of_calls;

/// A pool of `processes` at `at` whose tasks have the time limit `limit`,
/// and what its tasks write, a piece each.
pub fn pool_hearing_its_tasks(
    at: &dyn Pools,
    processes: usize,
    limit: Duration,
) -> (Pool, Arc<Mutex<Vec<String>>>) {
    let said = Arc::new(Mutex::new(Vec::new()));
    let hearing = said.clone();
    let pool = at
        .builder(processes)
        .task_timeout(limit)
        .on_output(move |output| {
            let line = String::from_utf8_lossy(&output.bytes).into_owned();
            hearing.lock().unwrap().push(line);
        })
        .build()
        .unwrap();
    (pool, said)
}

/// A pool of one worker at `at` whose tasks stop after 300 ms, and do not
/// run again if their worker dies.
fn stopped_at_300_ms(at: &dyn Pools) -> Pool {
    at.builder(1)
        .task_timeout(Duration::from_millis(300))
        .retries(0)
        .build()
        .unwrap()
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

pub fn a_counter_under_a_lock_ends_exact_across_processes_and_host_threads(at: &dyn Pools) {
    let _deadline = deadline("tasks and host threads counting under a lock", DEADLINE);
    let pool = at.pool(4);
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

pub fn a_semaphore_never_admits_more_than_its_permits(at: &dyn Pools) {
    let _deadline = deadline("ten tasks through a semaphore of two", DEADLINE);
    let pool = at.pool(4);
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

pub fn setting_an_event_wakes_every_waiter(at: &dyn Pools) {
    let _deadline = deadline("three tasks waiting for an event", DEADLINE);
    let pool = at.pool(3);
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

pub fn a_queue_keeps_order_and_a_bounded_one_holds_its_producer_back(at: &dyn Pools) {
    let _deadline = deadline("a producer and a consumer on a queue of 2", DEADLINE);
    let pool = at.pool(2);
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

pub fn joinable_queue_join_returns_when_every_item_is_done(at: &dyn Pools) {
    let _deadline = deadline("two workers working off a joinable queue", DEADLINE);
    let pool = at.pool(2);
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

pub fn a_pipe_reads_end_of_file_once_the_pool_task_holding_the_other_end_ends(at: &dyn Pools) {
    let _deadline = deadline("a pool task sending on a pipe", DEADLINE);
    // One worker: the end the task held must not outlive the task in what
    // the worker's grants remember of answered operations.
    let pool = at.pool(1);
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

pub fn a_lock_held_by_a_task_that_ends_or_dies_is_released_and_the_next_holder_told(
    at: &dyn Pools,
) {
    let _deadline = deadline("locks held by tasks that end or die", DEADLINE);
    let pool = at.builder(2).retries(0).build().unwrap();
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
    let holding = Event::new();
    let holder = pool
        .apply_async::<(), _>("hold_lock", (lock.clone(), holding.clone(), "hang"))
        .unwrap();
    assert!(holding.wait_timeout(OUTCOME_WAIT), "the task took the lock");
    assert!(lock.try_acquire().is_none());
    at.kill_workers(&pool);
    let err = outcome(&holder, "the killed holder").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
    let guard = lock
        .acquire_timeout(OUTCOME_WAIT)
        .expect("the lock of a dead holder is released");
    assert!(guard.previous_holder_died());
}

pub fn a_task_stopped_while_it_waits_in_get_takes_nothing(at: &dyn Pools) {
    let _deadline = deadline("gets given up by a time limit and a kill", DEADLINE);
    let queue: Queue<i64> = Queue::new();
    // Its time limit stops the task in its wait.
    let pool = stopped_at_300_ms(at);
    let err = pool
        .apply::<i64, _>("take_one", (queue.clone(), None::<u64>))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    queue.put(&1).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(queue.qsize(), 1, "the given-up wait took the item");
    assert_eq!(queue.get_nowait(), Ok(1));
    // Its worker is killed while the task waits.
    let started = Event::new();
    let taker = pool
        .apply_async::<i64, _>("announce_then_take", (started.clone(), queue.clone()))
        .unwrap();
    assert!(started.wait_timeout(OUTCOME_WAIT), "the task started");
    std::thread::sleep(Duration::from_millis(200));
    at.kill_workers(&pool);
    let err = outcome(&taker, "the killed taker").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
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

pub fn an_item_put_as_its_takers_time_limit_fires_is_taken_once_or_stays(at: &dyn Pools) {
    let _deadline = deadline("gets crossing their time limit", Duration::from_secs(120));
    let limit = Duration::from_millis(100);
    // What each task said it took.
    let (pool, said) = pool_hearing_its_tasks(at, 1, limit);
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

pub fn a_lock_whose_acquire_crosses_its_time_limit_has_one_holder_at_a_time(at: &dyn Pools) {
    let _deadline = deadline(
        "acquires crossing their time limit",
        Duration::from_secs(120),
    );
    let limit = Duration::from_millis(100);
    let pool = at.builder(1).task_timeout(limit).build().unwrap();
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

pub fn a_forged_or_stale_handle_is_refused(at: &dyn Pools) {
    let _deadline = deadline("forged and stale handles", DEADLINE);
    let pool = at.pool(1);
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
pub fn a_task_cannot_take_a_lock_handed_to_another_task_of_its_batch(at: &dyn Pools) {
    let _deadline = deadline("a module grabbing its batch's locks", DEADLINE);
    let pool = at
        .builder(1)
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

pub fn an_item_too_large_for_a_task_stays_in_its_queue(at: &dyn Pools) {
    let _deadline = deadline("an item over the pool's payload limit", DEADLINE);
    let pool = at.builder(1).max_payload(1024).build().unwrap();
    let queue: Queue<String> = Queue::new();
    let big = "x".repeat(4096);
    queue.put(&big).unwrap();
    let taken: Result<i64, _> = pool.apply("take_one", (queue.clone(), None::<u64>));
    let err = taken.unwrap_err();
    assert!(err.message().contains("payload limit"), "{err}");
    assert_eq!(queue.get_nowait(), Ok(big), "the item stayed in the queue");
}

pub fn a_task_stopped_while_it_waits_in_acquire_takes_nothing(at: &dyn Pools) {
    let _deadline = deadline("an acquire given up by a time limit", DEADLINE);
    let pool = stopped_at_300_ms(at);
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

pub fn a_task_calls_a_host_function_and_gets_its_answer(at: &dyn Pools) {
    let _deadline = deadline("tasks calling host functions", DEADLINE);
    let pool = at
        .builder(2)
        .host_fn("lookup", |(key,): (String,)| -> Result<i64, String> {
            if key == "missing" {
                return Err(format!("no entry for {key}"));
            }
            Ok(key.len() as i64 * 10)
        })
        .host_fn("explode", |(): ()| -> Result<String, String> {
            panic!("the host function blew up")
        })
        .build()
        .unwrap();
    assert_eq!(pool.apply::<i64, _>("ask_host", ("abc",)).unwrap(), 30);
    let keys: Vec<String> = (0..200).map(|i| "k".repeat(i % 7 + 1)).collect();
    let answers: Vec<i64> = pool.map("ask_host", keys.clone(), 8).unwrap();
    let expected: Vec<i64> = keys.iter().map(|k| k.len() as i64 * 10).collect();
    assert_eq!(answers, expected);
    // Its error, a panic, an unknown name and bad arguments reach the task,
    // never the pool.
    let err = pool.apply::<i64, _>("ask_host", ("missing",)).unwrap_err();
    assert!(
        err.is_failed() && err.message().contains("no entry for missing"),
        "{err}"
    );
    let err = pool
        .apply::<String, _>("call_host_fn", ("explode",))
        .unwrap_err();
    assert!(err.message().contains("`explode` panicked"), "{err}");
    let err = pool
        .apply::<String, _>("call_host_fn", ("nope",))
        .unwrap_err();
    assert!(
        err.message().contains("no host function named `nope`"),
        "{err}"
    );
    assert!(err.message().contains("explode, lookup"), "{err}");
    let err = pool
        .apply::<String, _>("call_host_fn", ("lookup",))
        .unwrap_err();
    assert!(err.message().contains("do not decode"), "{err}");
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
}

pub fn the_pool_goes_on_while_a_task_waits_in_a_host_call(at: &dyn Pools) {
    let _deadline = deadline("work beside a task blocked in a host call", DEADLINE);
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let waiting = gate.clone();
    let pool = at
        .builder(2)
        .host_fn("wait", move |(): ()| -> Result<String, String> {
            drop(waiting.lock().unwrap());
            Ok("released".into())
        })
        .build()
        .unwrap();
    let blocked = pool
        .apply_async::<String, _>("call_host_fn", ("wait",))
        .unwrap();
    // The other worker, and the pool, go on.
    let squares: Vec<i64> = pool.map("square", 0..100i64, 10).unwrap();
    assert_eq!(squares[99], 9801);
    assert!(!blocked.ready());
    drop(held);
    assert_eq!(
        outcome(&blocked, "the released host call").unwrap(),
        "released"
    );
}

pub fn a_task_blocked_in_a_host_call_still_obeys_its_time_limit(at: &dyn Pools) {
    let _deadline = deadline("a host call past the task's time limit", DEADLINE);
    let pool = at
        .builder(1)
        .task_timeout(Duration::from_millis(500))
        .host_fn("stall", |(): ()| -> Result<String, String> {
            std::thread::sleep(Duration::from_millis(1500));
            Ok("too late".into())
        })
        .host_fn("lookup", |(key,): (String,)| -> Result<i64, String> {
            Ok(key.len() as i64)
        })
        .build()
        .unwrap();
    assert_eq!(pool.apply::<i64, _>("ask_host", ("x",)).unwrap(), 1);
    let worker = at.worker_pids(&pool);
    let err = pool
        .apply::<String, _>("call_host_fn", ("stall",))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The worker stopped the task itself and goes on; the late reply, when
    // it comes, is nobody's answer.
    let until = Instant::now() + Duration::from_secs(2);
    let mut calls = 0;
    while Instant::now() < until {
        let key = "x".repeat(calls % 5 + 1);
        assert_eq!(
            pool.apply::<i64, _>("ask_host", (key.clone(),)).unwrap(),
            key.len() as i64
        );
        calls += 1;
    }
    assert_eq!(at.worker_pids(&pool), worker, "the worker was not replaced");
}
