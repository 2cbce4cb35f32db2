//! The outcomes of a run: each task's from the pool to its record, until the
//! results end or an interrupt has stopped them, and their summary after.

use std::cell::RefCell;
use std::time::Duration;

use serde::Serialize;
use wasmpool::{ErrorKind, Indexed};

use crate::SetupError;
use crate::interrupt::Interrupt;
use crate::progress::Counts;
use crate::records::Records;
use crate::resume::Done;

/// How the lines of a run went.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Tasks that succeeded.
    pub(crate) ok: u64,
    /// Tasks that failed (each with an error record).
    pub(crate) failed: u64,
}

/// Writes the record of every task as its outcome comes (in the order
/// `results` gives them), flushing at least every
/// [`FLUSH_EVERY`](crate::records::FLUSH_EVERY) while results are awaited.
///
/// Each task with a record is counted in `counts`, which the progress bar
/// shows.
///
/// Once `interrupt` has a signal, the tasks the pool refused or terminated
/// did not run: they get no record, so that `--resume` runs them.
pub(crate) fn write_records<T, I>(
    mut results: Indexed<'_, rmpv::Value, T, I>,
    records: &RefCell<Records<'_>>,
    done: &Done,
    interrupt: &Interrupt,
    counts: &Counts,
) -> Result<Tally, SetupError>
where
    T: Serialize,
    I: Iterator<Item = T>,
{
    let cannot_write = |why| SetupError(format!("cannot write the output: {why}"));
    let mut tally = Tally::default();
    loop {
        let due = records.borrow().due_in();
        if due.is_zero() {
            records.borrow_mut().flush().map_err(cannot_write)?;
            continue;
        }
        let next = results.next_timeout(due);
        let interrupted = interrupt.signal().is_some();
        let (task, outcome) = match next {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            // Due: the next round writes the records out.
            Err(wasmpool::NextTimeout) => continue,
        };
        let index = done.line_of(task);
        match &outcome {
            Err(err)
                if interrupted
                    && matches!(err.kind(), ErrorKind::Terminated | ErrorKind::PoolClosed) =>
            {
                continue;
            }
            Ok(_) => tally.ok += 1,
            Err(_) => tally.failed += 1,
        }
        let failed = outcome.is_err();
        records
            .borrow_mut()
            .write(index, outcome)
            .map_err(cannot_write)?;
        counts.task_done(failed);
    }
    records.borrow_mut().flush().map_err(cannot_write)?;
    Ok(tally)
}

/// What the summary line tells.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) tally: Tally,
    /// Lines passed over as done already (`--resume`).
    pub(crate) skipped: u64,
    /// The input lines the run knows of: all of a file, or those read.
    pub(crate) lines: u64,
    /// The signal that interrupted the run.
    pub(crate) signal: Option<libc::c_int>,
    /// Some of the input was left unread, and how much is not known (a
    /// stream cut short by an interrupt).
    pub(crate) rest_unread: bool,
    /// The output is a file, which `--resume` can finish.
    pub(crate) resumable: bool,
    /// Since the command started.
    pub(crate) elapsed: Duration,
}

impl Summary {
    /// Lines of the input that did not run.
    pub(crate) fn not_run(&self) -> u64 {
        self.lines
            .saturating_sub(self.skipped + self.tally.ok + self.tally.failed)
    }

    /// The summary line, for stderr.
    pub(crate) fn line(&self) -> String {
        let Tally { ok, failed } = self.tally;
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(", {n} skipped as done already"),
        };
        let elapsed = self.elapsed;
        if self.signal.is_none() {
            let rate = (ok + failed) as f64 / elapsed.as_secs_f64().max(1e-9);
            return format!(
                "wasmpool: {ok} ok, {failed} failed{skipped} in {elapsed:.2?} ({rate:.0} tasks/s)"
            );
        }
        let unread = if self.rest_unread {
            " and the rest of the input unread"
        } else {
            ""
        };
        let hint = if self.resumable {
            "; rerun with --resume to finish"
        } else {
            ""
        };
        format!(
            "wasmpool: interrupted: {ok} ok, {failed} failed, {} not run{unread}{skipped} \
             in {elapsed:.2?}{hint}",
            self.not_run()
        )
    }
}
