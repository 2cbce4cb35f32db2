//! Holders that come and go under time limits: tasks (and a host thread)
//! take a lock or a semaphore's permits round after round, each task until
//! its time limit stops it — waiting, holding, or letting go — while a
//! worker may be SIGKILLed or the pool terminated at a random moment.
//! Never two holders of the lock at once (each holder checks, on a shared
//! `Value`, that nobody else entered while it held it, unless the lock says
//! its previous holder died); never more permits free than the semaphore
//! has; and once every task has its outcome, the lock is free and every
//! permit back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Chaos, Rng, run};
use crate::calls::{Pools, pool_hearing_its_tasks};
use crate::common::{OUTCOME_WAIT, outcome};
use wasmpool::{AsyncResult, ErrorKind, Event, Lock, Manager, Pool, Semaphore, Value};

pub fn lock_histories_never_have_two_holders_and_end_with_the_lock_free(at: &dyn Pools) {
    run(at, "lock", 100, Duration::from_millis(300), |seed| {
        lock_history(at, seed)
    });
}

pub fn a_lock_left_held_by_a_task_that_ended_is_free_for_the_next_task_on_any_worker(
    at: &dyn Pools,
) {
    run(at, "ended holder", 40, Duration::from_millis(150), |seed| {
        ended_holder_history(at, seed)
    });
}

pub fn semaphore_histories_neither_lose_nor_make_up_a_permit(at: &dyn Pools) {
    run(at, "semaphore", 100, Duration::from_millis(300), |seed| {
        semaphore_history(at, seed)
    });
}

/// Rounds enough that only a task's time limit ends it.
const ROUNDS: u64 = 100_000;

/// A history's pool, where it runs, how many tasks it runs, and when its
/// chaos strikes.
struct Setting<'a> {
    at: &'a dyn Pools,
    pool: Pool,
    tasks: u64,
    chaos: Chaos,
    rng: Rng,
}

impl<'a> Setting<'a> {
    fn new(at: &'a dyn Pools, seed: u64) -> Setting<'a> {
        let mut rng = Rng::new(seed);
        let limit = Duration::from_millis(20 + rng.below(40));
        let processes = 1 + rng.below(2);
        let tasks = 2 + rng.below(4);
        // Tasks run in waves, one wave a time limit: the chaos strikes
        // anywhere in them.
        let span = limit * u32::try_from(tasks.div_ceil(processes)).unwrap();
        let strike = Duration::from_micros(rng.below(span.as_micros() as u64));
        let chaos = Chaos::pick(&mut rng, strike);
        let (pool, _said) = pool_hearing_its_tasks(at, processes as usize, limit);
        Setting {
            at,
            pool,
            tasks,
            chaos,
            rng,
        }
    }

    /// How long a task holds what it took, in microseconds.
    fn hold_us(&mut self) -> u64 {
        self.rng.below(2000)
    }

    /// How long a task waits to take it: without end, or a few ms.
    fn wait_ms(&mut self) -> Option<u64> {
        (self.rng.below(2) == 0).then(|| 1 + self.rng.below(10))
    }

    /// Strikes at the chaos's moment, then waits for every task's outcome:
    /// each ends by its time limit, its worker's death or the pool's
    /// termination.
    fn finish(self, seed: u64, tasks: Vec<AsyncResult<u64>>, begun: Instant) -> String {
        if let Some(at) = self.chaos.at() {
            thread::sleep(at.saturating_sub(begun.elapsed()));
            self.chaos.strike(self.at, &self.pool);
        }
        for task in tasks {
            let err =
                outcome(&task, "a holder of a history").expect_err("only a time limit ends it");
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::Timeout | ErrorKind::WorkerLost | ErrorKind::Terminated
                ),
                "history {seed}: {err}"
            );
        }
        self.chaos.name().to_string()
    }
}

/// A host thread that takes `lock` now and then until `stop`, checking
/// `owner` as the tasks do; what it found broken.
fn host_holder(
    lock: Lock,
    owner: Value<i64>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut broken = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if let Some(held) = lock.acquire_timeout(Duration::from_millis(rng.below(10))) {
                let before = owner.get().unwrap();
                if before != 0 && !held.previous_holder_died() {
                    broken.push(format!("the host took the lock while {before} held it"));
                }
                owner.set(&-1).unwrap();
                thread::sleep(Duration::from_micros(rng.below(1000)));
                let now = owner.get().unwrap();
                if now != -1 {
                    broken.push(format!("{now} took the lock while the host held it"));
                }
                owner.set(&0).unwrap();
            }
            thread::sleep(Duration::from_micros(rng.below(2000)));
        }
        broken
    })
}

fn lock_history(at: &dyn Pools, seed: u64) -> String {
    let mut setting = Setting::new(at, seed);
    let lock = Lock::new();
    let manager = Manager::new();
    let owner = manager.value(&0i64).unwrap();
    let broken = manager.list::<String>([]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let host = host_holder(lock.clone(), owner.clone(), stop.clone(), seed);
    let begun = Instant::now();
    let tasks = (1..=setting.tasks as i64)
        .map(|me| {
            let (hold_us, wait_ms) = (setting.hold_us(), setting.wait_ms());
            let args = (&lock, &owner, me, hold_us, wait_ms, ROUNDS, &broken);
            setting.pool.apply_async("guard_lock", args).unwrap()
        })
        .collect();
    let chaos = setting.chaos;
    let done = setting.finish(seed, tasks, begun);
    stop.store(true, Ordering::SeqCst);
    let mut found = host.join().unwrap();
    found.extend(broken.items().unwrap());
    assert!(found.is_empty(), "history {seed} ({chaos:?}): {found:?}");
    // Whatever a task held was let go of with its outcome.
    assert!(
        lock.acquire_timeout(OUTCOME_WAIT).is_some(),
        "history {seed} ({chaos:?}): the lock stays held after every task ended"
    );
    done
}

fn semaphore_history(at: &dyn Pools, seed: u64) -> String {
    let mut setting = Setting::new(at, seed);
    let permits = 1 + setting.rng.below(3) as usize;
    let semaphore = Semaphore::new(permits);
    let stop = Arc::new(AtomicBool::new(false));
    // The host takes permits too, and watches that no more are ever free
    // than the semaphore has.
    let host = {
        let (semaphore, stop) = (semaphore.clone(), stop.clone());
        let mut rng = Rng::new(seed ^ 0x5eed);
        thread::spawn(move || {
            let mut most = 0;
            while !stop.load(Ordering::SeqCst) {
                most = most.max(semaphore.value());
                if let Some(held) = semaphore.acquire_timeout(Duration::from_millis(rng.below(5))) {
                    thread::sleep(Duration::from_micros(rng.below(1000)));
                    drop(held);
                }
                most = most.max(semaphore.value());
                thread::sleep(Duration::from_micros(rng.below(500)));
            }
            most
        })
    };
    let begun = Instant::now();
    let tasks = (0..setting.tasks)
        .map(|_| {
            let (hold_us, wait_ms) = (setting.hold_us(), setting.wait_ms());
            let args = (&semaphore, hold_us, wait_ms, ROUNDS);
            setting.pool.apply_async("hold_permits", args).unwrap()
        })
        .collect();
    let chaos = setting.chaos;
    let done = setting.finish(seed, tasks, begun);
    stop.store(true, Ordering::SeqCst);
    let most = host.join().unwrap();
    assert!(
        most <= permits,
        "history {seed} ({chaos:?}): {most} permits free of a semaphore of {permits}"
    );
    // Every permit comes back with the outcomes (an answer given back may
    // take a moment more).
    let end = Instant::now() + OUTCOME_WAIT;
    while semaphore.value() < permits && Instant::now() < end {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        semaphore.value(),
        permits,
        "history {seed} ({chaos:?}): permits free once every task ended"
    );
    done
}

/// How an ended-holder history hands its tasks to the pool.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// Each once the one before it ended: the next task may go to the
    /// worker that ran it, or to the other, as its outcome comes in.
    AfterEach,
    /// All at once, a few microseconds apart: they queue on one worker.
    AtOnce,
    /// The holders as one chunk, one worker running them back to back,
    /// then a taker.
    OneChunk,
}

/// Tasks that end holding a lock (returning without releasing it) and
/// tasks that take it after them, on one worker or two. Every task ends —
/// none waits for a holder that has ended, on the same worker or another;
/// a task taking the lock after one that ended holding it is told that
/// its previous holder died (where the order is known); and the lock is
/// free once every task ended.
fn ended_holder_history(at: &dyn Pools, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let processes = 1 + rng.below(2) as usize;
    let pace = [Pace::AfterEach, Pace::AtOnce, Pace::OneChunk][rng.below(3) as usize];
    let pool = at.builder(processes).retries(0).build().unwrap();
    let (lock, holding) = (Lock::new(), Event::new());
    let hold = |lock: &Lock| (lock.clone(), holding.clone(), "return");
    let steps = 2 + rng.below(7) as usize;
    // Which steps hold (and end holding); the others take and release.
    let holds: Vec<bool> = match pace {
        Pace::OneChunk => (0..steps).map(|step| step + 1 < steps).collect(),
        _ => (0..steps).map(|_| rng.below(2) == 0).collect(),
    };
    let mut told = Vec::new();
    let what =
        |step| format!("history {seed}: step {step} of {holds:?} ({pace:?}, {processes} workers)");
    match pace {
        Pace::OneChunk => {
            let items = vec![hold(&lock); steps - 1];
            let done = pool
                .starmap_async::<(), _, _>("hold_lock", items, steps - 1)
                .unwrap();
            outcome(&done, &what(0)).unwrap();
            let taker = pool
                .apply_async::<bool, _>("take_lock", (lock.clone(),))
                .unwrap();
            told.push(outcome(&taker, &what(steps - 1)).unwrap());
        }
        Pace::AfterEach | Pace::AtOnce => {
            // Outcomes not yet taken, to take once all are submitted.
            let (mut holders, mut takers) = (Vec::new(), Vec::new());
            for (step, &holds) in holds.iter().enumerate() {
                let after_each = matches!(pace, Pace::AfterEach);
                if holds {
                    let holder = pool.apply_async::<(), _>("hold_lock", hold(&lock)).unwrap();
                    if after_each {
                        outcome(&holder, &what(step)).unwrap();
                    } else {
                        holders.push((step, holder));
                    }
                } else {
                    let taker = pool
                        .apply_async::<bool, _>("take_lock", (lock.clone(),))
                        .unwrap();
                    if after_each {
                        told.push(outcome(&taker, &what(step)).unwrap());
                    } else {
                        takers.push((step, taker));
                    }
                }
                thread::sleep(Duration::from_micros(rng.below(300)));
            }
            for (step, holder) in holders {
                outcome(&holder, &what(step)).unwrap();
            }
            for (step, taker) in takers {
                told.push(outcome(&taker, &what(step)).unwrap());
            }
        }
    }
    // Where the order is known, each taker hears whether the task before
    // it ended holding the lock.
    let ordered = matches!(pace, Pace::AfterEach | Pace::OneChunk) || processes == 1;
    if ordered {
        let expected: Vec<bool> = (0..steps)
            .filter(|&step| !holds[step])
            .map(|step| step > 0 && holds[step - 1])
            .collect();
        assert_eq!(told, expected, "{}: who was told", what(steps));
    }
    let last = lock.acquire_timeout(OUTCOME_WAIT).unwrap_or_else(|| {
        panic!(
            "{}: the lock stays held after every task ended",
            what(steps)
        )
    });
    // Which task ended last is known only where the order is: on two
    // workers at once, the last submitted may run before a taker.
    if ordered {
        assert_eq!(
            last.previous_holder_died(),
            holds[steps - 1],
            "{}",
            what(steps)
        );
    }
    format!("{pace:?}, {processes} workers")
}
