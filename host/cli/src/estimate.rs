//! The rate of a run and the time it has left, estimated from how many tasks
//! were done when. Pure arithmetic: the time is an argument, never read from
//! a clock, so tests drive it along made-up timelines.
//!
//! # Why this estimate
//!
//! The count of tasks done moves in bursts: a chunk's outcomes at once, and
//! a count read ten times a second at best. A rate taken up to *now* (done
//! in the last few seconds, over those seconds) swings with where now falls
//! between two bursts: just before a second burst it is about half the
//! truth, and the time left more than twice too long. So this estimate
//! measures up to the *last change* of the count, where the count is exact:
//!
//! - Between two changes the count is taken to grow in a straight line, as
//!   it does while a worker runs the tasks of a chunk one after the other.
//! - The rate is how much it grew over a sliding window of [`WINDOW`] that
//!   ends at the last change and reaches back at least to the change before
//!   it, so that bursts further apart than the window still give a rate.
//! - After the last change, silence is expected for up to the mean time
//!   between changes in the window; silence beyond that counts as time
//!   with nothing done, so a stall brings the rate down instead of freezing
//!   it.
//! - The time left is counted from the last change, less the silence since
//!   (up to that mean time), so between bursts it counts down instead of
//!   standing still.
//! - The start counts as a change, at time zero: the time before the first
//!   task is done (workers starting) weighs on the rate until the window
//!   has passed it.
//!
//! Five seconds of window smooth tasks of uneven length over several
//! workers, and after a stall the rate is back within 2× of the new pace
//! once more than half the window lies past it.

use std::collections::VecDeque;
use std::time::Duration;

/// How far back the rate looks (more if the last two changes of the count
/// are further apart).
pub(crate) const WINDOW: Duration = Duration::from_secs(5);

/// Changes of the count closer than this to the one before are merged into
/// it, which bounds the changes kept to about `WINDOW / MERGE`.
const MERGE: f64 = 0.01;

/// Rate and time left of a run, from samples of (time since it started,
/// tasks done).
#[derive(Debug, Clone)]
pub(crate) struct Estimator {
    /// The tasks of the run, when known.
    total: Option<u64>,
    /// [`WINDOW`] in seconds.
    window: f64,
    /// The start (0 s, 0 done) and each change of the count since, oldest
    /// first, trimmed to those the window still needs; never empty.
    changes: VecDeque<Point>,
}

/// The count of tasks done at a time.
#[derive(Debug, Clone, Copy)]
struct Point {
    /// Seconds since the start.
    at: f64,
    /// Tasks done by then.
    done: u64,
}

/// The changes of the count after some time.
#[derive(Debug, Clone, Copy)]
struct Since {
    /// When the count last changed at or before that time.
    before: f64,
    /// How many times it changed after.
    changes: usize,
}

/// What the rate and the time left are made of at some moment.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Tasks per second.
    rate: f64,
    /// The silence since the last change that was to be expected (at most
    /// the mean time between changes): the time left counts it as spent.
    expected_silence: f64,
}

impl Estimator {
    /// An estimator for a run of `total` tasks (`None`: not known, so no
    /// time left either), started at time zero with nothing done.
    pub(crate) fn new(total: Option<u64>) -> Self {
        Estimator {
            total,
            window: WINDOW.as_secs_f64(),
            changes: VecDeque::from([Point { at: 0.0, done: 0 }]),
        }
    }

    /// Records that `done` tasks were done `elapsed` after the start.
    ///
    /// Samples come in time order; one from before the latest counts as the
    /// latest's time, and a count lower than the latest is ignored.
    pub(crate) fn record(&mut self, elapsed: Duration, done: u64) {
        let last = self.last();
        if done <= last.done {
            return;
        }
        let at = elapsed.as_secs_f64().max(last.at);
        // The start stays as it is: it anchors the first rate.
        if self.changes.len() > 1 && at - last.at < MERGE {
            self.last_mut().done = done;
        } else {
            self.changes.push_back(Point { at, done });
        }
        // A query is never earlier than `at`, so it reaches back to
        // `at - window` at least, or to the change before the last: the
        // changes before those are not needed to place the count there.
        while self.changes.len() > 2 && self.changes[1].at <= at - self.window {
            self.changes.pop_front();
        }
    }

    /// Tasks done per second at `now` (time since the start), or `None`
    /// before anything was done.
    pub(crate) fn rate(&self, now: Duration) -> Option<f64> {
        self.pace(now).map(|pace| pace.rate)
    }

    /// How long the rest of the run should take from `now` (time since the
    /// start): zero once every task is done, `None` if the total is not
    /// known or the rate not yet.
    pub(crate) fn time_left(&self, now: Duration) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.last().done);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let pace = self.pace(now)?;
        let seconds = left as f64 / pace.rate - pace.expected_silence;
        Duration::try_from_secs_f64(seconds.max(0.0)).ok()
    }

    /// The rate at `now`, and how much of the silence since the last change
    /// was to be expected.
    fn pace(&self, now: Duration) -> Option<Pace> {
        let count = self.changes.len();
        if count < 2 {
            return None;
        }
        let (last, before) = (self.changes[count - 1], self.changes[count - 2]);
        let now = now.as_secs_f64().max(last.at);
        let from = (now - self.window).min(before.at).max(self.changes[0].at);
        let (done_then, since) = self.done_at(from);
        let span = last.at - from;
        // Over whole gaps: from the change at or before `from`.
        let mean_gap = match since.changes {
            0 => 0.0,
            changes => (last.at - since.before) / changes as f64,
        };
        let silence = now - last.at;
        let busy = span + (silence - mean_gap).max(0.0);
        let rate = (last.done as f64 - done_then) / busy;
        (busy > 0.0 && rate.is_finite() && rate > 0.0).then_some(Pace {
            rate,
            expected_silence: silence.min(mean_gap),
        })
    }

    /// The count at `at` (placed on the line between the changes around
    /// it), and what changed since.
    fn done_at(&self, at: f64) -> (f64, Since) {
        let after = self.changes.partition_point(|point| point.at <= at);
        let before = self.changes[after.saturating_sub(1)];
        let since = Since {
            before: before.at,
            changes: self.changes.len() - after,
        };
        let done = match self.changes.get(after) {
            Some(next) if after > 0 => {
                let share = (at - before.at) / (next.at - before.at);
                before.done as f64 + (next.done - before.done) as f64 * share
            }
            _ => before.done as f64,
        };
        (done, since)
    }

    /// The latest change (or the start).
    fn last(&self) -> Point {
        *self
            .changes
            .back()
            .expect("never empty: the last two changes are kept")
    }

    /// The latest change, to merge a close one into.
    fn last_mut(&mut self) -> &mut Point {
        self.changes
            .back_mut()
            .expect("never empty: the last two changes are kept")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// How often the bar reads the count, as the CLI does.
    const TICK_MS: u64 = 100;
    /// The estimator knows the time no finer than the samples it gets: times
    /// left this close to the truth pass whatever their ratio.
    const SLACK: f64 = 0.1;

    /// Tasks of `task_ms` each, `total` of them, run one after the other and
    /// seen done `chunk` at a time (the last chunk may be short): how many
    /// are seen done at `t_ms`.
    fn chunked(chunk: u64, task_ms: u64, total: u64) -> impl Fn(u64) -> u64 {
        move |t_ms| {
            let finished = (t_ms / task_ms).min(total);
            if finished == total {
                total
            } else {
                finished / chunk * chunk
            }
        }
    }

    /// How far `estimate` is from `truth`, as a factor (1 when within
    /// `slack` of it, infinite when there is no estimate).
    fn factor(estimate: Option<f64>, truth: f64, slack: f64) -> f64 {
        match estimate {
            None => f64::INFINITY,
            Some(estimate) if (estimate - truth).abs() <= slack => 1.0,
            Some(estimate) => estimate.max(truth) / estimate.min(truth),
        }
    }

    /// The worst factors seen over a stretch of a timeline.
    #[derive(Debug, Default)]
    struct Worst {
        rate: f64,
        time_left: f64,
    }

    /// Feeds `estimator` the count `done_at` gives every [`TICK_MS`] up to
    /// `end_ms`; from `check_from_ms` on (and before `check_until_ms`),
    /// compares its rate with `true_rate` and its time left with the time
    /// to `end_ms`, and returns the worst factors.
    fn replay(
        estimator: &mut Estimator,
        done_at: impl Fn(u64) -> u64,
        end_ms: u64,
        true_rate: f64,
        (check_from_ms, check_until_ms): (u64, u64),
    ) -> Worst {
        let mut worst = Worst::default();
        for t_ms in (0..=end_ms).step_by(TICK_MS as usize) {
            let now = Duration::from_millis(t_ms);
            estimator.record(now, done_at(t_ms));
            if !(check_from_ms..check_until_ms).contains(&t_ms) {
                continue;
            }
            let rate = factor(estimator.rate(now), true_rate, 0.0);
            let left = (end_ms - t_ms) as f64 / 1000.0;
            let estimate = estimator.time_left(now).map(|left| left.as_secs_f64());
            let time_left = factor(estimate, left, SLACK);
            worst.rate = worst.rate.max(rate);
            worst.time_left = worst.time_left.max(time_left);
        }
        worst
    }

    /// Asserts both worst factors are within 2×, and prints them (`cargo
    /// test -- --nocapture` shows the numbers).
    fn assert_within_two_times(case: &str, worst: &Worst) {
        println!(
            "{case}: worst rate {:.2}×, worst time left {:.2}×",
            worst.rate, worst.time_left
        );
        assert!(worst.rate <= 2.0, "{case}: rate off by {:.2}×", worst.rate);
        assert!(
            worst.time_left <= 2.0,
            "{case}: time left off by {:.2}×",
            worst.time_left
        );
    }

    #[test]
    fn steady_tasks_are_right_after_the_first_second() {
        // 300 lines of a 20 ms task on one worker, each seen as it ends:
        // 50 tasks/s, 6 s in all.
        let mut estimator = Estimator::new(Some(300));
        let worst = replay(
            &mut estimator,
            chunked(1, 20, 300),
            6000,
            50.0,
            (1000, 6000),
        );
        assert_within_two_times("steady", &worst);
        assert_eq!(
            estimator.time_left(Duration::from_secs(6)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn bursts_are_right_after_the_first_second() {
        // The same run with its outcomes delivered 32 at once, every 0.64 s.
        let mut estimator = Estimator::new(Some(300));
        let worst = replay(
            &mut estimator,
            chunked(32, 20, 300),
            6000,
            50.0,
            (1000, 6000),
        );
        assert_within_two_times("bursts of 32", &worst);
    }

    #[test]
    fn coarse_chunks_are_right_once_the_first_is_in() {
        // The chunk size the CLI picked for 300 lines on one worker (75):
        // nothing is seen before 1.5 s, so nothing is claimed either.
        let mut estimator = Estimator::new(Some(300));
        let before = replay(&mut estimator, chunked(75, 20, 300), 1400, 50.0, (0, 1500));
        assert!(before.rate.is_infinite() && before.time_left.is_infinite());
        let mut estimator = Estimator::new(Some(300));
        let worst = replay(
            &mut estimator,
            chunked(75, 20, 300),
            6000,
            50.0,
            (1500, 6000),
        );
        assert_within_two_times("chunks of 75", &worst);
    }

    #[test]
    fn many_workers_streaming_are_right_after_the_first_second() {
        // 100 000 tasks of 1 ms on 16 workers: 16 000 tasks/s, read ten
        // times a second.
        let total = 100_000;
        let done_at = move |t_ms: u64| (t_ms * 16).min(total);
        let end_ms = total / 16;
        let mut estimator = Estimator::new(Some(total));
        let worst = replay(&mut estimator, done_at, end_ms, 16_000.0, (1000, end_ms));
        assert_within_two_times("16 workers", &worst);
    }

    #[test]
    fn a_stall_brings_the_rate_down_and_it_recovers_after_half_a_window() {
        // 50 tasks/s for 2 s, nothing for 4 s, then 50 tasks/s again to the
        // end (300 tasks at 10 s).
        let done_at = |t_ms: u64| match t_ms {
            0..2000 => t_ms / 20,
            2000..6000 => 100,
            _ => (100 + (t_ms - 6000) / 20).min(300),
        };
        let mut estimator = Estimator::new(Some(300));
        let mut previous: Option<(f64, Duration)> = None;
        for t_ms in (TICK_MS..=10_000).step_by(TICK_MS as usize) {
            let now = Duration::from_millis(t_ms);
            estimator.record(now, done_at(t_ms));
            let rate = estimator.rate(now).expect("tasks were done");
            let left = estimator.time_left(now).expect("a total and a rate");
            if (2200..=6000).contains(&t_ms) {
                // The silence outlasted the usual gap: the rate falls, the
                // time left grows.
                let (previous_rate, previous_left) = previous.expect("an earlier tick");
                assert!(rate < previous_rate, "{t_ms} ms: {rate} ≥ {previous_rate}");
                assert!(
                    left > previous_left,
                    "{t_ms} ms: {left:?} ≤ {previous_left:?}"
                );
            }
            if t_ms == 6000 {
                // One second of work left in the window of five: a fifth
                // of the pace.
                assert!(rate < 12.5, "after 4 s of nothing: {rate} tasks/s");
            }
            previous = Some((rate, left));
        }
        // Before the stall the rate is right (the time left cannot foresee
        // the stall), and once more than half the window lies past it, both
        // are within 2× again.
        let mut estimator = Estimator::new(Some(300));
        let worst = replay(&mut estimator, done_at, 10_000, 50.0, (1000, 2000));
        println!("before the stall: worst rate {:.2}×", worst.rate);
        assert!(worst.rate <= 2.0, "before the stall: {:.2}×", worst.rate);
        let resumed = 6000 + WINDOW.as_millis() as u64 / 2 + TICK_MS;
        let mut estimator = Estimator::new(Some(300));
        let worst = replay(&mut estimator, done_at, 10_000, 50.0, (resumed, 10_000));
        assert_within_two_times("after the stall", &worst);
    }

    #[test]
    fn without_a_total_there_is_a_rate_and_no_time_left() {
        let mut estimator = Estimator::new(None);
        for t_ms in (0..=3000).step_by(TICK_MS as usize) {
            let now = Duration::from_millis(t_ms);
            estimator.record(now, t_ms / 20);
            assert_eq!(estimator.time_left(now), None);
            if t_ms >= 1000 {
                let rate = estimator.rate(now).unwrap();
                assert!((25.0..=100.0).contains(&rate), "{rate}");
            }
        }
    }

    #[test]
    fn nothing_done_or_no_time_gone_gives_no_estimate() {
        let mut estimator = Estimator::new(Some(10));
        assert_eq!(estimator.rate(Duration::ZERO), None);
        assert_eq!(estimator.time_left(Duration::ZERO), None);
        // Time passes, nothing is done.
        estimator.record(Duration::from_secs(5), 0);
        assert_eq!(estimator.rate(Duration::from_secs(5)), None);
        assert_eq!(estimator.time_left(Duration::from_secs(5)), None);
        // Tasks done in no time at all.
        estimator.record(Duration::ZERO, 4);
        assert_eq!(estimator.rate(Duration::ZERO), None);
        assert_eq!(estimator.time_left(Duration::ZERO), None);
        // A second change in the same instant, then one later.
        estimator.record(Duration::ZERO, 6);
        estimator.record(Duration::from_secs(1), 8);
        let rate = estimator.rate(Duration::from_secs(1)).unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        // Every task done: no time left, whatever the rate.
        estimator.record(Duration::from_secs(2), 10);
        assert_eq!(
            estimator.time_left(Duration::from_secs(2)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            Estimator::new(Some(0)).time_left(Duration::ZERO),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn samples_out_of_order_are_taken_as_late_as_the_latest() {
        let mut estimator = Estimator::new(Some(100));
        estimator.record(Duration::from_secs(2), 20);
        estimator.record(Duration::from_secs(1), 40);
        estimator.record(Duration::from_secs(3), 30);
        let rate = estimator.rate(Duration::from_secs(2)).unwrap();
        assert_eq!(rate, 20.0);
    }

    #[test]
    fn a_long_run_keeps_a_bounded_history() {
        let mut estimator = Estimator::new(None);
        for t_ms in 0..600_000 {
            estimator.record(Duration::from_millis(t_ms), t_ms * 3);
        }
        let kept = estimator.changes.len() as f64;
        assert!(
            kept <= WINDOW.as_secs_f64() / MERGE + 2.0,
            "{kept} changes kept"
        );
        let rate = estimator.rate(Duration::from_secs(600)).unwrap();
        assert!((rate - 3000.0).abs() < 30.0, "{rate}");
    }

    proptest! {
        #[test]
        fn estimates_are_never_nan_infinite_or_negative(
            total in proptest::option::of(0u64..u64::MAX),
            samples in proptest::collection::vec((0u64..10_000_000_000, 0u64..u64::MAX / 4), 0..40),
            query_ns in 0u64..u64::MAX,
        ) {
            let mut estimator = Estimator::new(total);
            for (elapsed_ns, done) in samples {
                estimator.record(Duration::from_nanos(elapsed_ns), done);
                let now = Duration::from_nanos(elapsed_ns);
                for now in [now, Duration::from_nanos(query_ns)] {
                    if let Some(rate) = estimator.rate(now) {
                        prop_assert!(rate.is_finite() && rate > 0.0, "{}", rate);
                    }
                    // A `Duration` is finite and not negative by its type:
                    // this asks only that nothing panics.
                    let _ = estimator.time_left(now);
                }
            }
        }
    }
}
