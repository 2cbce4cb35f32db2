//! The scheduling policy, pure: whether a slot hands its worker another
//! chunk, how fast its worker goes, and when the watchdog fires.
//!
//! All slots take from one shared queue. A slot whose worker is idle takes
//! the next chunk. A slot whose worker is busy takes one more only while no
//! other worker is idle, and only as much as keeps its worker fed: up to
//! [`MAX_CHUNKS`] chunks while what it holds is expected to take less than
//! [`SHORT`] (tiny chunks are not paced by round trips), one chunk ahead
//! while it is expected to take less than [`LONG`], and none beyond the
//! running one after that — a round trip is nothing next to a long chunk,
//! while work held ahead is work other callers wait behind and a withdrawal
//! cannot reach once started. Until the worker's pace is known it holds two
//! chunks.
//!
//! A worker that makes no progress for a while ([`stall_limit`]: a task
//! blocked in a host call, or much slower than its peers) takes no more, and
//! the chunks it holds beyond the running one are reclaimed for other
//! workers, so slow work never holds up other callers for long. A pool of
//! one has no other worker: nothing is reclaimed, and its tasks run in the
//! order they were submitted. Chunks put back go before those queued.

use std::time::{Duration, Instant};

/// The most chunks a worker holds.
pub(crate) const MAX_CHUNKS: usize = 16;

/// How many chunks a worker of unknown pace holds: the one it runs and the
/// next.
const UNKNOWN_PACE_CHUNKS: usize = 2;

/// Work held below this is short: the worker may hold up to [`MAX_CHUNKS`].
pub(crate) const SHORT: Duration = Duration::from_millis(1);

/// Work held below this may have one chunk waiting behind it.
pub(crate) const LONG: Duration = Duration::from_millis(20);

/// The shortest a worker may go without progress before the chunks it holds
/// ahead are reclaimed.
pub(crate) const STALL: Duration = Duration::from_millis(50);

/// How much longer than its tasks' time limits a worker may take to report
/// progress before the watchdog kills it.
pub(crate) const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// What a slot knows when it decides whether to take another chunk.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Load {
    /// The slot has a worker ready for work.
    pub(crate) has_worker: bool,
    /// Chunks handed to the worker and not finished.
    pub(crate) chunks: usize,
    /// Tasks handed to the worker without an outcome yet.
    pub(crate) tasks: usize,
    /// Another slot's worker has nothing to do.
    pub(crate) others_idle: bool,
    /// Tasks the worker may still be handed before it is recycled.
    pub(crate) quota: Option<usize>,
    /// How long the worker takes per task, once measured.
    pub(crate) per_task: Option<Duration>,
    /// How long since the worker last made progress.
    pub(crate) since_progress: Duration,
}

/// Whether the slot takes another chunk for its worker now.
pub(crate) fn may_take(load: &Load) -> bool {
    if !load.has_worker || load.quota == Some(0) {
        return false;
    }
    if load.chunks == 0 {
        return true;
    }
    if load.others_idle
        || load.chunks >= MAX_CHUNKS
        || load.since_progress >= stall_limit(load.per_task)
    {
        return false;
    }
    match load.per_task {
        None => load.chunks < UNKNOWN_PACE_CHUNKS,
        Some(per_task) => {
            let expected = per_task.saturating_mul(u32::try_from(load.tasks).unwrap_or(u32::MAX));
            expected < SHORT || (load.chunks < UNKNOWN_PACE_CHUNKS && expected < LONG)
        }
    }
}

/// How long a worker may go without progress before it counts as stalled:
/// [`STALL`], or four tasks at its pace if that is longer.
pub(crate) fn stall_limit(per_task: Option<Duration>) -> Duration {
    per_task.map_or(STALL, |per_task| per_task.saturating_mul(4).max(STALL))
}

/// A moving average of how long a worker takes per task.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pace {
    per_task: Option<Duration>,
}

impl Pace {
    /// The worker reported `tasks` outcomes `took` after its previous
    /// progress.
    pub(crate) fn record(&mut self, tasks: usize, took: Duration) {
        let Ok(tasks) = u32::try_from(tasks) else {
            return;
        };
        if tasks == 0 {
            return;
        }
        let sample = took / tasks;
        self.per_task = Some(match self.per_task {
            None => sample,
            Some(average) => (average * 3 + sample) / 4,
        });
    }

    /// The average, once there is one.
    pub(crate) fn per_task(&self) -> Option<Duration> {
        self.per_task
    }
}

/// When the watchdog fires for a worker that last made progress (started
/// on its work, or reported an outcome) at `progress`, if its tasks have a
/// time limit: one task's allowance (`per_task`, a renewal of the instance
/// included) plus [`WATCHDOG_GRACE`]. `None` if that is too far away to
/// reach.
pub(crate) fn watchdog_deadline(progress: Instant, per_task: Duration) -> Option<Instant> {
    progress.checked_add(per_task.saturating_add(WATCHDOG_GRACE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(chunks: usize, tasks: usize, per_task: Option<Duration>) -> Load {
        Load {
            has_worker: true,
            chunks,
            tasks,
            others_idle: false,
            quota: None,
            per_task,
            since_progress: Duration::ZERO,
        }
    }

    #[test]
    fn an_idle_worker_takes_work_and_a_missing_one_does_not() {
        assert!(may_take(&busy(0, 0, None)));
        assert!(!may_take(&Load {
            has_worker: false,
            ..busy(0, 0, None)
        }));
        assert!(!may_take(&Load {
            quota: Some(0),
            ..busy(0, 0, None)
        }));
    }

    #[test]
    fn no_look_ahead_while_another_worker_idles() {
        let load = busy(1, 1, Some(Duration::from_nanos(100)));
        assert!(may_take(&load));
        assert!(!may_take(&Load {
            others_idle: true,
            ..load
        }));
    }

    #[test]
    fn an_unmeasured_worker_holds_two_chunks() {
        assert!(may_take(&busy(1, 50, None)));
        assert!(!may_take(&busy(2, 50, None)));
    }

    #[test]
    fn tiny_tasks_may_fill_the_window() {
        let tiny = Some(Duration::from_micros(2));
        assert!(may_take(&busy(15, 15, tiny)));
        assert!(!may_take(&busy(MAX_CHUNKS, MAX_CHUNKS, tiny)));
    }

    #[test]
    fn look_ahead_is_bounded_by_expected_time() {
        // Chunks of 4 tasks of 20 ms: 80 ms held is long; nothing more.
        let slow = Some(Duration::from_millis(20));
        assert!(!may_take(&busy(1, 4, slow)));
        // 4 tasks of 1 ms: one chunk ahead, not two.
        let middling = Some(Duration::from_millis(1));
        assert!(may_take(&busy(1, 4, middling)));
        assert!(!may_take(&busy(2, 8, middling)));
    }

    #[test]
    fn a_stalled_worker_takes_no_more() {
        let load = busy(1, 1, None);
        assert!(may_take(&load));
        let stalled = Load {
            since_progress: STALL,
            ..load
        };
        assert!(!may_take(&stalled));
        // Nor does one whose tasks are slow, after four of them.
        let slow = Some(Duration::from_millis(30));
        assert_eq!(stall_limit(slow), Duration::from_millis(120));
        assert_eq!(stall_limit(Some(Duration::from_micros(1))), STALL);
        // An idle worker is never stalled.
        assert!(may_take(&Load {
            chunks: 0,
            tasks: 0,
            ..stalled
        }));
    }

    #[test]
    fn pace_follows_recent_samples_and_ignores_empty_ones() {
        let mut pace = Pace::default();
        assert_eq!(pace.per_task(), None);
        pace.record(0, Duration::from_secs(1));
        assert_eq!(pace.per_task(), None);
        pace.record(10, Duration::from_millis(10));
        assert_eq!(pace.per_task(), Some(Duration::from_millis(1)));
        for _ in 0..20 {
            pace.record(1, Duration::from_millis(20));
        }
        let settled = pace.per_task().unwrap();
        assert!(settled > Duration::from_millis(19), "{settled:?}");
    }

    #[test]
    fn the_watchdog_allows_one_task_and_a_grace_and_saturates() {
        let now = Instant::now();
        assert_eq!(
            watchdog_deadline(now, Duration::from_secs(1)),
            Some(now + Duration::from_secs(1) + WATCHDOG_GRACE)
        );
        assert_eq!(watchdog_deadline(now, Duration::MAX), None);
    }
}
