//! Randomized histories of a queue shared by tasks and a host thread, while
//! time limits fire, workers are SIGKILLed and pools terminate at random
//! moments: every history is checked for its promise, each item taken at
//! most once, and, where no worker was killed, exactly once (returned by a
//! task, seen by a task its time limit stopped, or still in the queue).
//!
//! Each history comes from a seed, which a failure names: set
//! `WASMPOOL_HISTORY_SEED` to replay it, and `WASMPOOL_HISTORIES` to run
//! more (a release run: thousands).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, OUTCOME_WAIT, deadline, outcome};
use crate::objects::pool_hearing_its_tasks;
use wasmpool::{ErrorKind, Event, Queue};

/// A small generator of its own (xorshift64*), so that a history is its
/// seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What disturbs a history, besides its time limits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Chaos {
    None,
    /// A worker is SIGKILLed at this moment.
    Kill(Duration),
    /// The pool is terminated at this moment.
    Terminate(Duration),
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn queue_histories_take_each_item_at_most_once_and_lose_none_to_time_limits() {
    let histories = env_number("WASMPOOL_HISTORIES").unwrap_or(30);
    // About half a second a history.
    let _deadline = deadline("queue histories", DEADLINE + Duration::from_secs(histories));
    let first = env_number("WASMPOOL_HISTORY_SEED").unwrap_or(1);
    let mut tally = BTreeMap::new();
    for seed in first..first + histories {
        let outcome = history(seed);
        *tally.entry(outcome).or_insert(0) += 1;
    }
    eprintln!("{histories} histories: {tally:?}");
}

/// Runs history `seed`; what its tasks did, for the tally.
fn history(seed: u64) -> &'static str {
    let mut rng = Rng::new(seed);
    let limit = Duration::from_millis(40 + rng.below(30));
    let items = 2 + rng.below(4) as i64;
    // The chaos strikes, if at all, near the last taker's time limit.
    let near =
        |rng: &mut Rng| limit - Duration::from_millis(3) + Duration::from_micros(rng.below(6000));
    let chaos = match rng.below(4) {
        0 => Chaos::Kill(near(&mut rng)),
        1 => Chaos::Terminate(near(&mut rng)),
        _ => Chaos::None,
    };
    let (pool, said) = pool_hearing_its_tasks(1 + rng.below(2) as usize, limit);
    let queue: Queue<i64> = Queue::new();
    let started = Event::new();
    let mut returned = Vec::new();
    let mut failed = 0;
    let mut puts = Vec::new();
    for item in 0..items {
        started.clear();
        let taker = pool
            .apply_async::<i64, _>("announce_take_and_say", (started.clone(), queue.clone()))
            .unwrap();
        assert!(
            started.wait_timeout(OUTCOME_WAIT),
            "history {seed}: task {item} started"
        );
        // The put lands within a few milliseconds of the taker's time
        // limit, at a random microsecond: its answer crosses the limit.
        let at = limit - Duration::from_millis(3) + Duration::from_micros(rng.below(6000));
        puts.push(at);
        let strike = match chaos {
            Chaos::Kill(when) | Chaos::Terminate(when) if item == items - 1 => Some(when),
            _ => None,
        };
        let begun = Instant::now();
        let mut events = vec![(at, true)];
        if let Some(when) = strike {
            events.push((when, false));
        }
        events.sort_by_key(|(at, _)| *at);
        for (at, put) in events {
            std::thread::sleep(at.saturating_sub(begun.elapsed()));
            if put {
                queue.put(&item).unwrap();
            } else {
                match chaos {
                    Chaos::Kill(_) => {
                        for pid in pool.worker_pids() {
                            // SAFETY: kill(2) of a worker of this pool.
                            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        }
                    }
                    Chaos::Terminate(_) => pool.terminate(),
                    Chaos::None => unreachable!(),
                }
            }
        }
        match outcome(&taker, "a taker of a history") {
            Ok(item) => returned.push(item),
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Timeout | ErrorKind::WorkerLost | ErrorKind::Terminated
                    ),
                    "history {seed}: {err}"
                );
                failed += 1;
            }
        }
        if matches!(chaos, Chaos::Terminate(_)) && strike.is_some() {
            break;
        }
    }
    // What comes back late (an answer that reached a stopped task after
    // its outcome) comes within a moment.
    let settle = Instant::now() + Duration::from_millis(300);
    let mut left = Vec::new();
    while Instant::now() < settle {
        if let Ok(item) = queue.get_timeout(Duration::from_millis(20)) {
            left.push(item);
        }
    }
    let seen: Vec<i64> = said
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| line.trim().strip_prefix("took ")?.parse().ok())
        .filter(|item| !returned.contains(item))
        .collect();
    let mut accounted: Vec<i64> = returned.iter().chain(&seen).chain(&left).copied().collect();
    accounted.sort_unstable();
    let mut unique = accounted.clone();
    unique.dedup();
    assert_eq!(
        accounted, unique,
        "history {seed} ({chaos:?}, limit {limit:?}): an item taken twice: returned {returned:?}, \
         seen {seen:?}, left {left:?}"
    );
    if chaos == Chaos::None {
        assert_eq!(
            accounted,
            (0..items).collect::<Vec<_>>(),
            "history {seed} (limit {limit:?}, puts {puts:?}): an item lost: returned {returned:?}, \
             seen {seen:?}, left {left:?}"
        );
    }
    match (chaos, failed) {
        (Chaos::None, 0) => "no chaos, every task took one",
        (Chaos::None, _) => "no chaos, some timed out",
        (Chaos::Kill(_), _) => "a worker killed",
        (Chaos::Terminate(_), _) => "terminated",
    }
}
