//! The worker's second thread. While a batch runs it ticks every [`LINGER`]:
//! it writes out the outcomes that finished since its last tick, so that a
//! finished task's outcome is never held back by the next task, and it reads
//! what the pool sent meanwhile, so that a withdraw is seen while a task
//! runs. It goes on ticking for [`IDLE`] after a batch, so that batches in
//! quick succession do not each pay for waking it, then sleeps until the
//! next one.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::worker::inbox::Inbox;
use crate::worker::outbox::Outbox;

/// The longest a finished task's outcome waits before it is written while
/// its batch runs on: at most a thousand writes a second, whatever the tasks.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// How long the ticker goes on ticking after the last batch ended before it
/// sleeps until the next one.
const IDLE: Duration = Duration::from_millis(100);

struct State {
    /// A batch runs.
    busy: bool,
    /// When the last batch ended.
    idle_since: Instant,
    /// The ticker sleeps until woken.
    parked: bool,
}

/// The handle on the ticker thread.
pub(crate) struct Ticker {
    state: Mutex<State>,
    wake: Condvar,
}

impl Ticker {
    /// Starts the thread, which flushes `outbox` and reads `inbox`.
    pub(crate) fn start(outbox: Arc<Outbox>, inbox: Arc<Inbox>) -> io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker {
            state: Mutex::new(State {
                busy: false,
                idle_since: Instant::now(),
                parked: false,
            }),
            wake: Condvar::new(),
        });
        let ticking = ticker.clone();
        thread::Builder::new()
            .name("wasmpool-ticker".into())
            .spawn(move || ticking.tick(&outbox, &inbox))?;
        Ok(ticker)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A batch starts.
    pub(crate) fn begin(&self) {
        let mut state = self.state();
        state.busy = true;
        if state.parked {
            self.wake.notify_one();
        }
    }

    /// The batch ended.
    pub(crate) fn end(&self) {
        let mut state = self.state();
        state.busy = false;
        state.idle_since = Instant::now();
    }

    /// The thread: every [`LINGER`] while batches run, writes what waits and
    /// reads what came. It ends with the process.
    fn tick(&self, outbox: &Outbox, inbox: &Inbox) {
        let mut state = self.state();
        loop {
            let ticking = state.busy || state.idle_since.elapsed() < IDLE;
            if !ticking {
                state.parked = true;
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.parked = false;
                continue;
            }
            state = self
                .wake
                .wait_timeout(state, LINGER)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            drop(state);
            // A broken pipe ends the worker through its main thread, which
            // sees the same error on its next write.
            let _ = outbox.flush();
            inbox.read_while_busy();
            state = self.state();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{FromWorker, ToWorker};
    use crate::worker::inbox::Next;
    use crate::worker::inbox::tests::{batch, on_pipe, runtime, send};
    use crate::worker::outbox::tests::Kept;

    /// Waits (a bounded time) until `kept` holds a message `wanted` picks.
    fn wait_for(kept: &Kept, what: &str, wanted: impl Fn(&FromWorker) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kept.messages().iter().any(&wanted) {
            assert!(Instant::now() < deadline, "never sent: {what}");
            thread::sleep(LINGER);
        }
    }

    #[test]
    fn a_finished_task_is_not_held_back_by_the_next_one() {
        let kept = Kept::default();
        let outbox = Arc::new(Outbox::new(Box::new(kept.clone())));
        let runtime = runtime();
        let (inbox, _pipe) = on_pipe(&outbox, &runtime);
        let ticker = Ticker::start(outbox.clone(), inbox).unwrap();
        outbox.begin(0);
        ticker.begin();
        outbox.ok(b"done").unwrap();
        // The next task runs on; nobody flushes but the ticker.
        wait_for(&kept, "the outcome", |message| {
            matches!(message, FromWorker::Outcomes { .. })
        });
    }

    #[test]
    fn a_withdraw_is_answered_while_a_batch_runs() {
        let kept = Kept::default();
        let outbox = Arc::new(Outbox::new(Box::new(kept.clone())));
        let runtime = runtime();
        let (inbox, mut pipe) = on_pipe(&outbox, &runtime);
        let ticker = Ticker::start(outbox.clone(), inbox.clone()).unwrap();
        send(&mut pipe, &batch(0));
        let Next::Run(first) = runtime.block_on(inbox.next()) else {
            panic!("no batch");
        };
        assert_eq!(first.seq, 0);
        ticker.begin();
        // While batch 0 runs, two more come and the second is withdrawn.
        send(&mut pipe, &batch(1));
        send(&mut pipe, &batch(2));
        send(&mut pipe, &ToWorker::Withdraw { seq: 2 });
        wait_for(&kept, "the withdrawal", |message| {
            matches!(message, FromWorker::Withdrawn { seq: 2 })
        });
        ticker.end();
        drop(pipe);
        let Next::Run(next) = runtime.block_on(inbox.next()) else {
            panic!("batch 1 was lost");
        };
        assert_eq!(next.seq, 1);
        assert!(matches!(runtime.block_on(inbox.next()), Next::Shutdown));
    }
}
