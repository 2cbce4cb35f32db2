//! One thread per worker slot: it owns the slot's worker process, hands it
//! chunks from the queue as the [schedule](super::schedule) allows, routes
//! host calls to their functions, asks back withdrawn work, recycles the
//! worker after `max_tasks_per_child` tasks, and replaces it when it dies,
//! settling the work it held. Outcomes go from the worker's reader thread
//! straight to their chunks ([`in_flight`](super::in_flight)), and output
//! to the handler, without this thread. It never blocks on the worker's
//! pipe, so its stop signal and its watchdog always fire.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Select, Sender, TryRecvError};

use crate::backend::calls::host_fns::{self, Request};
use crate::backend::local::child::{WorkerChild, describe_status};
use crate::backend::local::event::Event;
use crate::backend::local::in_flight::{Handed, Held};
use crate::backend::local::schedule::{self, Load};
use crate::backend::local::{Serving, Shared};
use crate::channel::{FromWorker, TaskInfo, ToWorker};
use crate::chunk::{Chunk, withdrawn_error};
use crate::error::{Error, ErrorKind};

/// The state of one slot.
struct Slot {
    index: usize,
    shared: Arc<Shared>,
    /// The worker serving the slot; what it holds is its
    /// [`InFlight`](super::in_flight::InFlight).
    worker: Option<WorkerChild>,
    queue_open: bool,
    /// The next worker, started while the current one runs its last tasks.
    spare: Option<WorkerChild>,
    /// Threads waiting for retired workers to exit.
    reapers: Vec<thread::JoinHandle<()>>,
}

/// Runs slot `index`: starts its first worker, reports the handshake on
/// `started`, then serves until the pool closes or is terminated.
pub(crate) fn run(
    index: usize,
    shared: Arc<Shared>,
    started: Sender<Result<Vec<TaskInfo>, Error>>,
) {
    let mut slot = Slot {
        index,
        shared,
        worker: None,
        queue_open: true,
        spare: None,
        reapers: Vec::new(),
    };
    // The first worker starts in turn with the other slots' (see
    // `Starting`), and becomes the spare its first `spawn` takes.
    match slot
        .shared
        .starting
        .start(|| WorkerChild::start(&slot.shared))
    {
        None => return,
        Some(Ok(worker)) => slot.spare = Some(worker),
        Some(Err(err)) => {
            let _ = started.send(Err(err));
            return;
        }
    }
    match slot.spawn() {
        Ok(tasks) => {
            let _ = started.send(Ok(tasks));
        }
        Err(err) => {
            slot.shared.starting.fail();
            let _ = started.send(Err(err));
            return;
        }
    }
    drop(started);
    slot.supervise();
    // The workers this thread started die with it (their parent-death signal
    // follows the thread that spawned them): it ends only after those it
    // retired have exited on their own.
    for reaper in slot.reapers {
        let _ = reaper.join();
    }
}

impl Slot {
    fn spawn(&mut self) -> Result<Vec<TaskInfo>, Error> {
        let mut worker = match self.spare.take() {
            Some(spare) => spare,
            None => WorkerChild::start(&self.shared)?,
        };
        let tasks = worker.handshake(&self.shared.spawn)?;
        self.shared.set_worker(
            self.index,
            Some(Serving {
                kill: worker.kill_handle(),
                in_flight: worker.in_flight.clone(),
            }),
        );
        worker.in_flight.enlist(&self.shared);
        self.worker = Some(worker);
        Ok(tasks)
    }

    /// What the worker holds, if there is one.
    fn held(&self) -> Option<std::sync::MutexGuard<'_, Held>> {
        self.worker.as_ref().map(|worker| worker.in_flight.lock())
    }

    /// Whether the worker holds nothing (or there is none).
    fn holds_nothing(&self) -> bool {
        self.held().is_none_or(|held| held.chunks.is_empty())
    }

    fn can_take(&self) -> bool {
        let others_idle = self.shared.idle.load(Ordering::SeqCst) > 0;
        schedule::may_take(&load(self.held().as_deref(), others_idle))
    }

    fn supervise(&mut self) {
        self.run_until_done();
        // Dropping the worker kills it; dropping the chunks it held fails
        // their tasks as terminated.
        drop(self.take_worker());
    }

    fn run_until_done(&mut self) {
        loop {
            if self.shared.terminating() {
                return self.terminate();
            }
            let used_up = self.held().is_some_and(|held| held.quota == Some(0));
            if used_up && self.holds_nothing() {
                // Recycle: the worker did its share.
                self.retire();
            }
            if self.worker.is_none() {
                if !self.queue_open && self.requeue_is_empty() {
                    return;
                }
                if self.shared.exit.is_some() {
                    // A process's worker is the process: it is not replaced,
                    // and nothing submitted from now on can run.
                    self.shared.terminating.store(true, Ordering::SeqCst);
                    return self.terminate();
                }
                if let Err(err) = self.spawn() {
                    if !self.fail_next_chunk(&err) {
                        return;
                    }
                    continue;
                }
            }
            if !self.queue_open && self.holds_nothing() && self.requeue_is_empty() {
                self.retire();
                return;
            }
            if self.can_take() {
                let shared = self.shared.clone();
                let handing = shared.handing();
                if let Ok(chunk) = shared.requeue.1.try_recv() {
                    self.hand(chunk, handing);
                    continue;
                }
            }
            self.wait_for_something();
        }
    }

    fn requeue_is_empty(&self) -> bool {
        self.shared.requeue.1.is_empty()
    }

    /// Waits for a message of the worker, a chunk to take, a withdrawal, or
    /// the stop signal — or for the watchdog.
    fn wait_for_something(&mut self) {
        let shared = self.shared.clone();
        let others_idle = shared.idle.load(Ordering::SeqCst) > 0;
        let (can_take, watchdog, reclaim) = match self.held() {
            Some(mut held) => {
                // Decided under the lock the reader thread delivers under,
                // so that no progress slips in between unheard.
                let can_take = schedule::may_take(&load(Some(&held), others_idle));
                let used_up = held.quota == Some(0);
                if held.chunks.is_empty() && (used_up || !self.queue_open) {
                    // What it would wait for happened: the loop retires the
                    // worker.
                    return;
                }
                // Unless it is free to take work, the slot waits for the
                // worker to get on with what it holds.
                held.slot_waits = !can_take || used_up || !self.queue_open;
                let watchdog = self.watchdog_deadline(&held);
                // Reclaimed work is for other workers: a pool of one has
                // none, and its chunks stay in the order they came.
                let reclaim = (shared.withdrawals.len() > 1)
                    .then(|| reclaim_deadline(&held))
                    .flatten();
                (can_take, watchdog, reclaim)
            }
            None => (false, None, None),
        };
        let wake = match (watchdog, reclaim) {
            (Some(watchdog), Some(reclaim)) => Some(watchdog.min(reclaim)),
            (watchdog, reclaim) => watchdog.or(reclaim),
        };
        // A handle of its own, so that the select borrows nothing of `self`.
        let worker_events = self.worker.as_ref().map(|worker| worker.events.clone());
        let withdrawals = &shared.withdrawals[self.index];
        // Biased: of the chunks ready, one put back (the rest of a split
        // chunk, one reclaimed or retried) goes before those queued after it.
        let mut select = Select::new_biased();
        let stop = select.recv(&shared.stop);
        let events = worker_events.as_ref().map(|events| select.recv(events));
        let withdrawn = select.recv(withdrawals);
        let requeue = can_take.then(|| select.recv(&shared.requeue.1));
        let queue = (can_take && self.queue_open).then(|| select.recv(&shared.queue));
        let selected = match wake {
            None => Some(select.select()),
            Some(deadline) => select.select_deadline(deadline).ok(),
        };
        let Some(op) = selected else {
            if watchdog.is_some_and(|watchdog| watchdog <= Instant::now()) {
                return self.on_watchdog();
            }
            return self.reclaim();
        };
        let index = op.index();
        if index == stop {
            let _ = op.recv(&shared.stop);
        } else if Some(index) == events {
            let event = op.recv(worker_events.as_ref().expect("selected"));
            match event {
                Ok(event) => self.on_event(event),
                Err(_) => self.on_lost(Some("its reader thread ended".into())),
            }
        } else if index == withdrawn {
            let _ = op.recv(withdrawals);
            self.withdraw();
        } else if Some(index) == requeue {
            let handing = shared.handing();
            if let Ok(chunk) = op.recv(&shared.requeue.1) {
                self.hand(chunk, handing);
            }
        } else if Some(index) == queue {
            let handing = shared.handing();
            match op.recv(&shared.queue) {
                Ok(chunk) => self.hand(chunk, handing),
                Err(_) => self.queue_open = false,
            }
        }
    }

    /// When the watchdog fires if the worker makes no progress: one task's
    /// time limit (and a renewal) after its last, plus a grace period.
    /// `None` without a limit, without work, or too far away to reach.
    fn watchdog_deadline(&self, held: &Held) -> Option<Instant> {
        let per_task = self.shared.watchdog_per_task?;
        if held.chunks.is_empty() {
            return None;
        }
        schedule::watchdog_deadline(held.progress, per_task)
    }

    /// The worker stalled: asks it for the chunks it holds beyond the
    /// running one, for other workers to run.
    fn reclaim(&mut self) {
        self.ask_back(|at, _| at > 0);
    }

    /// Asks the worker to give back the chunks it holds that `which` picks
    /// (by position and chunk) and that were not asked for already; it gives
    /// back those it has not started.
    fn ask_back(&mut self, which: impl Fn(usize, &Handed) -> bool) {
        let Some(worker) = &self.worker else {
            return;
        };
        let mut held = worker.in_flight.lock();
        for (at, handed) in held.chunks.iter_mut().enumerate() {
            if !handed.withdrawing && which(at, handed) {
                handed.withdrawing = true;
                worker.send(&ToWorker::Withdraw { seq: handed.seq });
            }
        }
    }

    /// Takes the worker out of the slot, and out of the pool's list of
    /// workers (to kill on terminate, to hand work to), before anything
    /// reaps it; with it, the chunks it held, for the slot to settle.
    fn take_worker(&mut self) -> Option<(WorkerChild, VecDeque<Handed>)> {
        let worker = self.worker.take()?;
        self.shared.set_worker(self.index, None);
        let held = worker.in_flight.retire(&self.shared);
        Some((worker, held))
    }

    /// The worker made no progress in time, though it should have stopped
    /// the task itself: kill it, fail the task it ran, start a new one.
    fn on_watchdog(&mut self) {
        let Some(progress) = self.held().map(|held| held.progress) else {
            return;
        };
        let Some((mut worker, held)) = self.take_worker() else {
            return;
        };
        let waited = progress.elapsed();
        worker.kill();
        let error = Error::new(
            ErrorKind::Timeout,
            format!(
                "worker {} reported nothing for {waited:.1?}, past its tasks' time limit; \
                 it was killed and replaced",
                worker.pid()
            ),
        );
        tracing::warn!("{error}");
        self.drop_in_flight(held, &error, false);
    }

    /// Hands `chunk`, just taken from a queue under `handing`, to the
    /// worker, keeping within its quota; a withdrawn chunk fails instead.
    fn hand(&mut self, mut chunk: Chunk, handing: MutexGuard<'_, ()>) {
        if chunk.is_withdrawn() {
            drop(handing);
            return chunk.fail(&withdrawn_error());
        }
        let worker = self.worker.as_ref().expect("can_take");
        let mut held = worker.in_flight.lock();
        if let Some(quota) = held.quota {
            if chunk.len() > quota {
                let rest = chunk.split_off(quota);
                self.shared.put_back(rest);
            }
            held.quota = Some(quota - chunk.len());
        }
        worker.in_flight.hand(&mut held, chunk, &self.shared);
        let used_up = held.quota == Some(0);
        drop(held);
        drop(handing);
        if used_up && self.spare.is_none() {
            // The worker was just handed its last tasks: start the next one,
            // so that it loads while these run.
            self.spare = WorkerChild::start(&self.shared).ok();
        }
    }

    /// Asks the worker for the withdrawn chunks it holds back, unless it has
    /// started on them.
    fn withdraw(&mut self) {
        self.ask_back(|_, handed| handed.chunk.done() == 0 && handed.chunk.is_withdrawn());
    }

    fn on_event(&mut self, event: Event) {
        match event {
            // The loop looks again at what the worker holds.
            Event::Progress => {}
            Event::Message(FromWorker::Request {
                call,
                index: _,
                name,
                args,
            }) => {
                if let Some(worker) = &self.worker {
                    let request = Request { call, name, args };
                    let shared = &self.shared;
                    host_fns::call(
                        &shared.host_fns,
                        request,
                        shared.max_payload,
                        worker.replies(),
                    );
                }
            }
            Event::Message(FromWorker::Stuck { error }) => self.on_stuck(error),
            Event::Message(other) => {
                self.on_lost(Some(format!(
                    "it broke the protocol: unexpected {}",
                    other.name()
                )));
            }
            Event::Closed(reason) => self.on_lost(reason),
        }
    }

    /// The worker is gone (or must go): the task it ran fails, the rest run
    /// elsewhere, a new worker will start.
    fn on_lost(&mut self, reason: Option<String>) {
        let Some((mut worker, held)) = self.take_worker() else {
            return;
        };
        let pid = worker.pid();
        let status = worker.kill();
        let error = if self.shared.terminating() {
            terminated()
        } else {
            let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
            Error::new(
                ErrorKind::WorkerLost,
                format!("worker {pid} {}{reason}", describe_status(status)),
            )
        };
        if !self.shared.terminating() {
            tracing::warn!("{error}");
        }
        let retry = !self.shared.terminating();
        self.drop_in_flight(held, &error, retry);
    }

    /// The module got stuck outside a task (renewing its instance) and the
    /// worker is ending: the task that waited for it fails with why, the
    /// rest run elsewhere.
    fn on_stuck(&mut self, error: Error) {
        let Some((mut worker, held)) = self.take_worker() else {
            return;
        };
        worker.kill();
        tracing::warn!("worker {}: {error}", worker.pid());
        self.drop_in_flight(held, &error, false);
    }

    /// Settles the chunks of a worker that is gone. Its finished tasks have
    /// their outcomes already. The task it was running — the first without
    /// an outcome — runs again if `retry` and retries are left, else fails
    /// with `error`; the tasks it had not started go back to the queue,
    /// unless the pool is terminating.
    fn drop_in_flight(&mut self, mut held: VecDeque<Handed>, error: &Error, retry: bool) {
        if self.shared.terminating() {
            for lost in held {
                lost.chunk.fail(error);
            }
            return;
        }
        if let Some(Handed { mut chunk, .. }) = held.pop_front() {
            if retry && chunk.retries < self.shared.retries {
                chunk.retries += 1;
            } else {
                chunk.fail_next(error);
            }
            if let Some(rest) = chunk.rest() {
                self.shared.put_back(rest);
            }
        }
        for unstarted in held {
            self.shared.put_back(unstarted.chunk);
        }
    }

    /// Shuts the current worker down gracefully.
    fn retire(&mut self) {
        if let Some((worker, _nothing)) = self.take_worker() {
            // It has nothing left to do: let it exit, and reap it, off this
            // slot's path.
            let reaper = thread::Builder::new()
                .name("wasmpool-reaper".into())
                .spawn(move || worker.shutdown());
            self.reapers.retain(|reaper| !reaper.is_finished());
            match reaper {
                Ok(reaper) => self.reapers.push(reaper),
                Err(err) => tracing::warn!("cannot start a reaper thread: {err}"),
            }
        }
    }

    /// No worker can be started: fail the next chunk with why, so that callers
    /// hear of it rather than wait. Returns false when there is nothing left.
    fn fail_next_chunk(&mut self, error: &Error) -> bool {
        tracing::error!("{error}");
        let chunk = match self.shared.requeue.1.try_recv() {
            Ok(chunk) => Ok(chunk),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) if self.queue_open => {
                let mut select = Select::new();
                let stop = select.recv(&self.shared.stop);
                let queue = select.recv(&self.shared.queue);
                let op = select.select();
                if op.index() == stop {
                    let _ = op.recv(&self.shared.stop);
                    return true;
                }
                debug_assert_eq!(op.index(), queue);
                op.recv(&self.shared.queue).map_err(|_| ())
            }
            Err(_) => Err(()),
        };
        match chunk {
            Ok(chunk) => {
                chunk.fail(error);
                true
            }
            Err(()) => {
                self.queue_open = false;
                !self.requeue_is_empty()
            }
        }
    }

    fn terminate(&mut self) {
        let error = terminated();
        if let Some((mut worker, held)) = self.take_worker() {
            worker.kill();
            for lost in held {
                lost.chunk.fail(&error);
            }
        }
        // Chunks requeued by any slot after terminate drained the queues.
        while let Ok(chunk) = self.shared.requeue.1.try_recv() {
            chunk.fail(&error);
        }
        while let Ok(chunk) = self.shared.queue.try_recv() {
            chunk.fail(&error);
        }
    }
}

/// The error of a task the pool was terminated under.
fn terminated() -> Error {
    Error::new(
        ErrorKind::Terminated,
        "the pool was terminated before this task finished",
    )
}

/// What the schedule needs to know of a slot's load: what its worker
/// holds, if it has one.
fn load(held: Option<&Held>, others_idle: bool) -> Load {
    let Some(held) = held else {
        return Load::default();
    };
    Load {
        has_worker: true,
        chunks: held.chunks.len(),
        tasks: held.tasks,
        others_idle,
        quota: held.quota,
        per_task: held.pace.per_task(),
        since_progress: held.progress.elapsed(),
    }
}

/// When the chunks the worker holds beyond the running one are reclaimed
/// if it makes no progress; `None` if there are none to reclaim.
fn reclaim_deadline(held: &Held) -> Option<Instant> {
    let reclaimable = held.chunks.iter().skip(1).any(|handed| !handed.withdrawing);
    if !reclaimable {
        return None;
    }
    held.progress
        .checked_add(schedule::stall_limit(held.pace.per_task()))
}
