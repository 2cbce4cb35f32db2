//! The progress bar: lines done, their rate and the time left (from
//! [`Estimator`], not indicatif's own estimate, which bursts of outcomes
//! throw off).
//!
//! The run only bumps a count per task (an atomic add, about 2 ns); a thread
//! of its own reads it every [`TICK`] and moves the bar. Moving the bar per
//! task would read the clock each time (`ProgressBar::inc`: about 35 ns,
//! several percent of a line at a million lines a second).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::estimate::Estimator;

/// How often the bar is brought up to date (and redrawn, at most).
const TICK: Duration = Duration::from_millis(100);

/// The progress bar of a run, and the count it shows.
pub(crate) struct Progress {
    /// Hidden when stderr is not a terminal or `--no-progress`.
    bar: ProgressBar,
    /// The lines to run, when known.
    total: Option<u64>,
    /// What the run counts.
    counts: Arc<Counts>,
    /// The rate and time left the bar shows, as its template keys read them.
    shown: Arc<Mutex<Shown>>,
}

/// The tasks done so far, bumped by the run.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Tasks done, failed or not.
    done: AtomicU64,
    /// Tasks failed.
    failed: AtomicU64,
}

impl Counts {
    /// Counts a task done; `failed` if it failed.
    pub(crate) fn task_done(&self, failed: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            // Released, so that whoever reads this count sees the tasks done
            // as high.
            self.failed.fetch_add(1, Ordering::Release);
        }
    }

    /// The tasks done and the tasks failed, as many of these as of those.
    fn read(&self) -> (u64, u64) {
        let failed = self.failed.load(Ordering::Acquire);
        (self.done.load(Ordering::Relaxed), failed)
    }
}

/// The rate, time left and failures, as shown.
#[derive(Debug)]
struct Shown {
    /// E.g. `50.0/s`.
    rate: String,
    /// E.g. `4s`.
    time_left: String,
    /// E.g. `, 3 failed` (empty when none did).
    failed: String,
}

impl Shown {
    /// What is shown at `now` (time since the start), `failed` tasks
    /// failed.
    fn at(estimator: &Estimator, now: Duration, failed: u64) -> Self {
        Shown {
            rate: rate_text(estimator.rate(now)),
            time_left: time_left_text(estimator.time_left(now)),
            failed: match failed {
                0 => String::new(),
                failed => format!(", {failed} failed"),
            },
        }
    }
}

impl Progress {
    /// A bar for `total` lines (`None`: not known, a spinner), or a hidden
    /// one if `hidden`.
    pub(crate) fn new(total: Option<u64>, hidden: bool) -> Self {
        let shown = Arc::new(Mutex::new(Shown::at(
            &Estimator::new(None),
            Duration::ZERO,
            0,
        )));
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            let (bar, template) = match total {
                Some(total) => (
                    ProgressBar::new(total),
                    "{bar:30} {pos}/{len} lines, {rate}, ETA {time_left}{failed}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{spinner} {pos} lines, {rate}{failed}",
                ),
            };
            bar.set_style(style(template, &shown));
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            bar
        };
        Progress {
            bar,
            total,
            counts: Arc::default(),
            shown,
        }
    }

    /// The bar, for whatever writes to stderr to keep out of its way.
    pub(crate) fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// The count the run bumps.
    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Starts moving the bar, with the rate measured from now, until the
    /// [`Ticker`] is dropped. A hidden bar needs no thread.
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub(crate) fn start(&self) -> io::Result<Ticker> {
        if self.bar.is_hidden() {
            return Ok(Ticker(None));
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let (bar, counts, shown) = (self.bar.clone(), self.counts.clone(), self.shown.clone());
        let mut estimator = Estimator::new(self.total);
        let started = Instant::now();
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                // Ends when the ticker's sender is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let now = started.elapsed();
                    let (done, failed) = counts.read();
                    estimator.record(now, done);
                    let fresh = Shown::at(&estimator, now, failed);
                    *shown.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                    // One redraw, of all of it.
                    bar.set_position(done);
                }
            })?;
        Ok(Ticker(Some((stop, thread))))
    }
}

/// Moves the bar while it lives; dropping it stops the thread that does.
pub(crate) struct Ticker(Option<(Sender<()>, JoinHandle<()>)>);

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.0.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// The bar's look: `template`, whose keys `{rate}`, `{time_left}` and
/// `{failed}` show what `shown` holds at each draw.
fn style(template: &str, shown: &Arc<Mutex<Shown>>) -> ProgressStyle {
    let key = |text: fn(&Shown) -> &str| {
        let shown = shown.clone();
        move |_: &ProgressState, out: &mut dyn fmt::Write| {
            let shown = shown.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = out.write_str(text(&shown));
        }
    };
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .with_key("rate", key(|shown| &shown.rate))
        .with_key("time_left", key(|shown| &shown.time_left))
        .with_key("failed", key(|shown| &shown.failed))
}

/// A rate as shown: three digits or so, `?/s` when not known yet.
fn rate_text(rate: Option<f64>) -> String {
    match rate {
        None => "?/s".into(),
        Some(rate) if rate < 10.0 => format!("{rate:.2}/s"),
        Some(rate) if rate < 100.0 => format!("{rate:.1}/s"),
        Some(rate) => format!("{}/s", HumanCount(rate.round() as u64)),
    }
}

/// A time left as shown, in whole seconds rounded up (`0s` only when
/// nothing is left): `45s`, `4m05s`, `2h03m`; `?` when not known.
fn time_left_text(left: Option<Duration>) -> String {
    let Some(left) = left else {
        return "?".into();
    };
    let seconds = left
        .as_secs()
        .saturating_add(u64::from(left.subsec_nanos() > 0));
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_show_about_three_digits() {
        assert_eq!(rate_text(None), "?/s");
        assert_eq!(rate_text(Some(0.004)), "0.00/s");
        assert_eq!(rate_text(Some(1.2449)), "1.24/s");
        assert_eq!(rate_text(Some(50.0)), "50.0/s");
        assert_eq!(rate_text(Some(123.4)), "123/s");
        assert_eq!(rate_text(Some(1_234_567.8)), "1,234,568/s");
    }

    #[test]
    fn times_left_show_whole_seconds_rounded_up() {
        assert_eq!(time_left_text(None), "?");
        assert_eq!(time_left_text(Some(Duration::ZERO)), "0s");
        assert_eq!(time_left_text(Some(Duration::from_millis(100))), "1s");
        assert_eq!(time_left_text(Some(Duration::from_millis(58_500))), "59s");
        assert_eq!(time_left_text(Some(Duration::from_millis(59_500))), "1m00s");
        assert_eq!(time_left_text(Some(Duration::from_secs(60))), "1m00s");
        assert_eq!(time_left_text(Some(Duration::from_secs(245))), "4m05s");
        assert_eq!(time_left_text(Some(Duration::from_secs(7380))), "2h03m");
        let forever = time_left_text(Some(Duration::MAX));
        assert_eq!(
            forever,
            format!("{}h{:02}m", u64::MAX / 3600, u64::MAX % 3600 / 60)
        );
    }

    #[test]
    fn the_run_counts_tasks_and_failures() {
        let counts = Counts::default();
        counts.task_done(false);
        counts.task_done(true);
        assert_eq!(counts.read(), (2, 1));
    }

    #[test]
    fn failures_show_only_when_some_tasks_failed() {
        let estimator = Estimator::new(Some(10));
        assert_eq!(Shown::at(&estimator, Duration::ZERO, 0).failed, "");
        assert_eq!(
            Shown::at(&estimator, Duration::ZERO, 3).failed,
            ", 3 failed"
        );
    }

    #[test]
    fn a_hidden_bar_starts_no_thread() {
        let progress = Progress::new(Some(10), true);
        progress.counts().task_done(false);
        assert!(progress.start().unwrap().0.is_none());
    }
}
