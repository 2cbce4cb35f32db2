//! Randomized histories of shared objects used by tasks and host threads
//! while time limits fire, workers are SIGKILLed and pools terminate at
//! random moments, each checked for the promise its object makes:
//! - [`takers`]: items put on a queue, or sent on a pipe, as their takers'
//!   time limits fire: each taken at most once, and, where no worker was
//!   killed, exactly once; a pipe reads end-of-file once nothing holds its
//!   other end;
//! - [`holders`]: a lock taken by tasks and a host thread, a semaphore's
//!   permits held by tasks: never two holders of the lock at once, and no
//!   permit lost or made up;
//! - [`order`]: tasks submitted to one worker, which may stall: they run in
//!   the order submitted.
//!
//! Each history comes from a seed, which a failure names: set
//! `WASMPOOL_HISTORY_SEED` to replay it, and `WASMPOOL_HISTORIES` to run
//! that many of each kind (a release run: thousands).

#![allow(unreachable_pub)]

pub mod holders;
pub mod order;
pub mod takers;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::calls::Pools;
use crate::common::{DEADLINE, deadline};
use wasmpool::Pool;

/// Declares a `#[test]` of each kind of history, run on the [`Pools`]
/// `$place` makes.
macro_rules! tests_of_histories {
    ($place:expr) => {
        tests_of_histories!(@each $place;
            holders::lock_histories_never_have_two_holders_and_end_with_the_lock_free,
            holders::a_lock_left_held_by_a_task_that_ended_is_free_for_the_next_task_on_any_worker,
            holders::semaphore_histories_neither_lose_nor_make_up_a_permit,
            order::one_worker_runs_tasks_in_the_order_they_were_submitted,
            takers::queue_histories_take_each_item_at_most_once_and_lose_none_to_time_limits,
            takers::pipe_histories_take_each_message_at_most_once_and_end_with_end_of_file,
        );
    };
    (@each $place:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::histories::$module::$case(&$place);
            }
        )*
    };
}
pub(crate) use tests_of_histories;

/// A small generator of its own (xorshift64*), so that a history is its
/// seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A moment within 3 ms either side of `at`, to the microsecond.
    fn near(&mut self, at: Duration) -> Duration {
        at.saturating_sub(Duration::from_millis(3)) + Duration::from_micros(self.below(6000))
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

impl Chaos {
    /// One chaos in two, striking near `at`.
    fn pick(rng: &mut Rng, at: Duration) -> Chaos {
        match rng.below(4) {
            0 => Chaos::Kill(rng.near(at)),
            1 => Chaos::Terminate(rng.near(at)),
            _ => Chaos::None,
        }
    }

    /// When it strikes, if it does.
    fn at(self) -> Option<Duration> {
        match self {
            Chaos::Kill(at) | Chaos::Terminate(at) => Some(at),
            Chaos::None => None,
        }
    }

    /// Strikes `pool`, which runs at `at`.
    fn strike(self, at: &dyn Pools, pool: &Pool) {
        match self {
            Chaos::Kill(_) => {
                for pid in at.worker_pids(pool) {
                    // SAFETY: kill(2) of a worker of this pool.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            Chaos::Terminate(_) => pool.terminate(),
            Chaos::None => {}
        }
    }

    fn name(self) -> &'static str {
        match self {
            Chaos::None => "no chaos",
            Chaos::Kill(_) => "a worker killed",
            Chaos::Terminate(_) => "terminated",
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Runs `default` histories of one kind at `at` (or `WASMPOOL_HISTORIES`;
/// as many as `at` runs of that: [`Pools::histories`]), from seed 1 (or
/// `WASMPOOL_HISTORY_SEED`), each taking about `each`; prints the tally of
/// what `history` says each did.
fn run(at: &dyn Pools, kind: &str, default: u64, each: Duration, history: impl Fn(u64) -> String) {
    let histories = at.histories(env_number("WASMPOOL_HISTORIES").unwrap_or(default));
    let _deadline = deadline(
        &format!("{kind} histories"),
        DEADLINE + each * u32::try_from(histories).unwrap_or(u32::MAX),
    );
    let first = env_number("WASMPOOL_HISTORY_SEED").unwrap_or(1);
    let mut tally = BTreeMap::new();
    for seed in first..first + histories {
        *tally.entry(history(seed)).or_insert(0) += 1;
    }
    eprintln!("{histories} {kind} histories: {tally:?}");
}
