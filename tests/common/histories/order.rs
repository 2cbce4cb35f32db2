//! One worker, tasks submitted one after another: they run in the order
//! they were submitted, as in Python's pool of one process — whether the
//! worker is idle when a task comes (the caller may hand it straight to the
//! worker) or busy (it waits in the queue), and whether the worker stalls
//! (it is stopped for longer than the pool waits before it reclaims what a
//! stalled worker holds for other workers).

use std::thread;
use std::time::{Duration, Instant};

use super::{Rng, run};
use crate::calls::Pools;
use crate::common::{OUTCOME_WAIT, outcome};
use wasmpool::{AsyncResult, Pool, Queue};

pub fn one_worker_runs_tasks_in_the_order_they_were_submitted(at: &dyn Pools) {
    run(at, "order", 40, Duration::from_millis(100), |seed| {
        order_history(at, seed)
    });
}

/// What a history submits, in order.
#[derive(Debug)]
enum Step {
    /// A task that puts its number on the history's queue.
    Put(i64),
    /// A task that sleeps this many milliseconds.
    Sleep(u64),
}

/// Tasks that say their number and tasks that sleep, submitted a few
/// microseconds apart or at once, to a pool of one worker that may be
/// stopped for a while: the numbers come in the order submitted.
fn order_history(at: &dyn Pools, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let pool = at.pool(1);
    let order: Queue<i64> = Queue::new();
    let mut next = 0;
    let steps: Vec<Step> = (0..4 + rng.below(16))
        .map(|_| match rng.below(4) {
            0 => Step::Sleep(rng.below(30)),
            _ => {
                next += 1;
                Step::Put(next - 1)
            }
        })
        .collect();
    // The worker stopped, in one history in two, for up to 80 ms: past the
    // 50 ms after which a stalled worker's chunks are reclaimed.
    let stop = (rng.below(2) == 0).then(|| {
        (
            Duration::from_micros(rng.below(3000)),
            Duration::from_millis(rng.below(80)),
        )
    });
    let gaps: Vec<u64> = steps
        .iter()
        .map(|_| match rng.below(3) {
            0 => 0,
            _ => rng.below(300),
        })
        .collect();
    let what = format!("history {seed}: the tasks of {steps:?}, the worker stopped {stop:?}");
    thread::scope(|scope| {
        let submitter = scope.spawn(|| submit_and_check(&pool, &order, &steps, &gaps, next, &what));
        if let Some((after, pause)) = stop {
            stop_the_worker(at, &pool, after, pause);
        }
        if let Err(panic) = submitter.join() {
            std::panic::resume_unwind(panic);
        }
    });
    match stop {
        Some(_) => "stopped".into(),
        None => "not stopped".into(),
    }
}

/// Stops the worker of `pool`, `after` it started, for `pause`.
fn stop_the_worker(at: &dyn Pools, pool: &Pool, after: Duration, pause: Duration) {
    // An agent starts its worker once the job's first chunk reaches it.
    let end = Instant::now() + OUTCOME_WAIT;
    let pid = loop {
        if let Some(&pid) = at.worker_pids(pool).first() {
            break pid as i32;
        }
        assert!(Instant::now() < end, "the pool's worker did not start");
        thread::sleep(Duration::from_micros(100));
    };
    thread::sleep(after);
    // SAFETY: kill(2) of this pool's worker, stopped, then resumed.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    thread::sleep(pause);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
}

/// Submits `steps` to `pool`, `gaps` microseconds apart, and checks that
/// the numbers `0..puts` came to `order` in order.
fn submit_and_check(
    pool: &Pool,
    order: &Queue<i64>,
    steps: &[Step],
    gaps: &[u64],
    puts: i64,
    what: &str,
) {
    let begun = Instant::now();
    let (mut put, mut slept): (Vec<AsyncResult<()>>, Vec<AsyncResult<u64>>) = Default::default();
    for (step, &gap) in steps.iter().zip(gaps) {
        match *step {
            Step::Put(n) => put.push(pool.apply_async("produce", (order.clone(), n, 1)).unwrap()),
            Step::Sleep(ms) => slept.push(pool.apply_async("sleep_ms", (ms,)).unwrap()),
        }
        thread::sleep(Duration::from_micros(gap));
    }
    for done in &put {
        outcome(done, what).unwrap();
    }
    for done in &slept {
        outcome(done, what).unwrap();
    }
    let ran: Vec<i64> = std::iter::from_fn(|| order.get_nowait().ok()).collect();
    assert_eq!(
        ran,
        (0..puts).collect::<Vec<_>>(),
        "{what}, after {:?}",
        begun.elapsed()
    );
}
