//! One thread per worker slot: it owns the slot's worker process, hands it
//! chunks as the [schedule](super::schedule) allows, routes what the worker
//! sends back — each outcome to its chunk as it comes, output to the
//! handler, host calls to their functions — takes back withdrawn work,
//! recycles the worker after `max_tasks_per_child` tasks, and replaces it
//! when it dies. It never blocks on the worker's pipe (a writer thread
//! does), so its stop signal and its watchdog always fire.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Select, Sender, TryRecvError};
use serde_bytes::ByteBuf;

use crate::channel::{Batch, FromWorker, Outcomes, TaskInfo, ToWorker};
use crate::chunk::{Chunk, withdrawn_error};
use crate::error::{Error, ErrorKind};
use crate::pool::output::GuestOutput;
use crate::supervisor::Shared;
use crate::supervisor::host_calls::Request;
use crate::supervisor::process::{Event, WorkerProcess, describe_status};
use crate::supervisor::schedule::{self, Load, Pace};

/// A chunk handed to the worker, waiting for its outcomes.
struct InFlight {
    seq: u64,
    chunk: Chunk,
    /// A withdraw was sent for it: its job was withdrawn, or it is reclaimed
    /// from a stalled worker.
    withdrawing: bool,
}

/// The state of one slot.
struct Slot {
    index: usize,
    shared: Arc<Shared>,
    worker: Option<WorkerProcess>,
    in_flight: VecDeque<InFlight>,
    /// Tasks handed to the current worker without an outcome yet.
    tasks_held: usize,
    /// Tasks the current worker may still be handed, if limited.
    quota: Option<usize>,
    next_seq: u64,
    queue_open: bool,
    /// Whether this slot is counted in [`Shared::idle`].
    counted_idle: bool,
    /// When the worker last made progress: started on work, or reported.
    progress: Instant,
    /// How fast the worker goes.
    pace: Pace,
    /// The next worker, started while the current one runs its last tasks.
    spare: Option<WorkerProcess>,
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
        in_flight: VecDeque::new(),
        tasks_held: 0,
        quota: None,
        next_seq: 0,
        queue_open: true,
        counted_idle: false,
        progress: Instant::now(),
        pace: Pace::default(),
        spare: None,
    };
    match slot.spawn() {
        Ok(tasks) => {
            let _ = started.send(Ok(tasks));
        }
        Err(err) => {
            let _ = started.send(Err(err));
            return;
        }
    }
    drop(started);
    slot.serve();
}

impl Slot {
    fn spawn(&mut self) -> Result<Vec<TaskInfo>, Error> {
        let mut worker = match self.spare.take() {
            Some(spare) => spare,
            None => WorkerProcess::start(&self.shared.spawn)?,
        };
        let tasks = worker.handshake(&self.shared.spawn)?;
        self.shared
            .set_worker(self.index, Some(worker.kill_handle()));
        self.worker = Some(worker);
        self.quota = self.shared.max_tasks_per_child;
        self.next_seq = 0;
        self.pace = Pace::default();
        Ok(tasks)
    }

    fn load(&self) -> Load {
        Load {
            has_worker: self.worker.is_some(),
            chunks: self.in_flight.len(),
            tasks: self.tasks_held,
            others_idle: self.shared.idle.load(Ordering::SeqCst) > 0,
            quota: self.quota,
            per_task: self.pace.per_task(),
            since_progress: self.progress.elapsed(),
        }
    }

    fn can_take(&self) -> bool {
        schedule::may_take(&self.load())
    }

    /// Keeps [`Shared::idle`] in step with this slot.
    fn update_idle(&mut self) {
        let idle = self.worker.is_some() && self.in_flight.is_empty();
        if idle != self.counted_idle {
            self.counted_idle = idle;
            let idle_count = &self.shared.idle;
            if idle {
                idle_count.fetch_add(1, Ordering::SeqCst);
            } else {
                idle_count.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn serve(&mut self) {
        self.serve_until_done();
        self.worker = None;
        self.in_flight.clear();
        self.update_idle();
    }

    fn serve_until_done(&mut self) {
        loop {
            self.update_idle();
            if self.shared.terminating() {
                return self.terminate();
            }
            if self.quota == Some(0) && self.in_flight.is_empty() {
                // Recycle: the worker did its share.
                self.retire();
            }
            if self.worker.is_none() {
                if !self.queue_open && self.requeue_is_empty() {
                    return;
                }
                if let Err(err) = self.spawn() {
                    if !self.fail_next_chunk(&err) {
                        return;
                    }
                    continue;
                }
            }
            if !self.queue_open && self.in_flight.is_empty() && self.requeue_is_empty() {
                self.retire();
                return;
            }
            if self.can_take()
                && let Ok(chunk) = self.shared.requeue.1.try_recv()
            {
                self.hand(chunk);
                continue;
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
        let can_take = self.can_take();
        let watchdog = self.watchdog_deadline();
        let reclaim = self.reclaim_deadline();
        let wake = match (watchdog, reclaim) {
            (Some(watchdog), Some(reclaim)) => Some(watchdog.min(reclaim)),
            (watchdog, reclaim) => watchdog.or(reclaim),
        };
        // A handle of its own, so that the select borrows nothing of `self`.
        let worker_events = self.worker.as_ref().map(|worker| worker.events.clone());
        let withdrawals = &shared.withdrawals[self.index];
        let mut select = Select::new();
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
            if let Ok(chunk) = op.recv(&shared.requeue.1) {
                self.hand(chunk);
            }
        } else if Some(index) == queue {
            match op.recv(&shared.queue) {
                Ok(chunk) => self.hand(chunk),
                Err(_) => self.queue_open = false,
            }
        }
    }

    /// When the watchdog fires if the worker makes no progress: one task's
    /// time limit (and a renewal) after its last, plus a grace period.
    /// `None` without a limit, without work, or too far away to reach.
    fn watchdog_deadline(&self) -> Option<Instant> {
        let per_task = self.shared.watchdog_per_task?;
        if self.in_flight.is_empty() {
            return None;
        }
        schedule::watchdog_deadline(self.progress, per_task)
    }

    /// When the chunks the worker holds beyond the running one are reclaimed
    /// if it makes no progress; `None` if there are none to reclaim.
    fn reclaim_deadline(&self) -> Option<Instant> {
        let reclaimable = self.in_flight.iter().skip(1).any(|held| !held.withdrawing);
        if !reclaimable {
            return None;
        }
        self.progress
            .checked_add(schedule::stall_limit(self.pace.per_task()))
    }

    /// The worker stalled: asks it for the chunks it holds beyond the
    /// running one, for other workers to run.
    fn reclaim(&mut self) {
        self.ask_back(|at, _| at > 0);
    }

    /// Asks the worker to give back the chunks it holds that `which` picks
    /// (by position and chunk) and that were not asked for already; it gives
    /// back those it has not started.
    fn ask_back(&mut self, which: impl Fn(usize, &InFlight) -> bool) {
        let Some(worker) = &self.worker else {
            return;
        };
        for (at, held) in self.in_flight.iter_mut().enumerate() {
            if !held.withdrawing && which(at, held) {
                held.withdrawing = true;
                worker.send(&ToWorker::Withdraw { seq: held.seq });
            }
        }
    }

    /// Takes the worker out of the slot, and out of the pool's list of
    /// workers to kill on terminate, before anything reaps it.
    fn take_worker(&mut self) -> Option<WorkerProcess> {
        let worker = self.worker.take()?;
        self.shared.set_worker(self.index, None);
        Some(worker)
    }

    /// The worker made no progress in time, though it should have stopped
    /// the task itself: kill it, fail the task it ran, start a new one.
    fn on_watchdog(&mut self) {
        let Some(mut worker) = self.take_worker() else {
            return;
        };
        let waited = self.progress.elapsed();
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
        self.drop_in_flight(&error, false);
    }

    /// Hands `chunk` to the worker, keeping within its quota; a withdrawn
    /// chunk fails instead.
    fn hand(&mut self, mut chunk: Chunk) {
        if chunk.is_withdrawn() {
            return chunk.fail(&withdrawn_error());
        }
        if let Some(quota) = self.quota {
            if chunk.len() > quota {
                let rest = chunk.split_off(quota);
                self.shared.put_back(rest);
            }
            self.quota = Some(quota - chunk.len());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        // The chunk keeps its arguments, to run again elsewhere if this
        // worker dies before it starts on them.
        let batch = ToWorker::Run(Batch {
            seq,
            task: chunk.task.to_string(),
            first_index: chunk.first_index,
            args: ByteBuf::from(chunk.args.clone()),
            ends: chunk.ends.clone(),
        });
        if self.in_flight.is_empty() {
            self.progress = Instant::now();
        }
        self.tasks_held += chunk.len();
        self.in_flight.push_back(InFlight {
            seq,
            chunk,
            withdrawing: false,
        });
        self.update_idle();
        self.worker.as_ref().expect("can_take").send(&batch);
        if self.quota == Some(0) && self.spare.is_none() {
            // The worker was just handed its last tasks: start the next one,
            // so that it loads while these run.
            self.spare = WorkerProcess::start(&self.shared.spawn).ok();
        }
    }

    /// Asks the worker for the withdrawn chunks it holds back, unless it has
    /// started on them.
    fn withdraw(&mut self) {
        self.ask_back(|_, held| held.chunk.done() == 0 && held.chunk.is_withdrawn());
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(FromWorker::Outcomes {
                seq,
                first,
                outcomes,
            }) => self.on_outcomes(seq, first, outcomes),
            Event::Message(FromWorker::Withdrawn { seq }) => self.on_withdrawn(seq),
            Event::Message(FromWorker::Output {
                index,
                stream,
                bytes,
                truncated,
            }) => {
                let pid = self.worker.as_ref().map_or(0, WorkerProcess::pid);
                (self.shared.on_output)(&GuestOutput {
                    pid,
                    task_index: index,
                    stream,
                    bytes: bytes.into_vec(),
                    truncated,
                });
            }
            Event::Message(FromWorker::Request {
                call,
                index: _,
                name,
                args,
            }) => {
                if let Some(worker) = &self.worker {
                    let request = Request { call, name, args };
                    self.shared
                        .host_fns
                        .serve(request, self.shared.max_payload, worker.outbound());
                }
            }
            Event::Message(FromWorker::Stuck { error }) => self.on_stuck(error),
            Event::Message(other) => {
                self.on_lost(Some(format!("it broke the protocol: unexpected {other:?}")));
            }
            Event::Closed(reason) => self.on_lost(reason),
        }
    }

    /// Outcomes of the chunk the worker runs: each goes to its task now.
    fn on_outcomes(&mut self, seq: u64, first: u32, outcomes: Outcomes) {
        let n = outcomes.len();
        let fits = self.in_flight.front().is_some_and(|front| {
            front.seq == seq && front.chunk.done() == first as usize && n <= front.chunk.remaining()
        });
        if !fits {
            let expected = self
                .in_flight
                .front()
                .map(|front| (front.seq, front.chunk.done(), front.chunk.remaining()));
            return self.on_lost(Some(format!(
                "it broke the protocol: sent {n} outcomes of batch {seq} from task {first}, \
                 expected (batch, from, at most) {expected:?}"
            )));
        }
        let now = Instant::now();
        self.pace.record(n, now - self.progress);
        self.progress = now;
        self.tasks_held -= n;
        let front = self.in_flight.front_mut().expect("checked");
        front.chunk.deliver(outcomes);
        if front.chunk.remaining() == 0 {
            self.in_flight.pop_front();
        }
    }

    /// The worker gave back a chunk it had not started: it fails if its job
    /// was withdrawn, else it goes back to the queue for another worker.
    fn on_withdrawn(&mut self, seq: u64) {
        let at = self
            .in_flight
            .iter()
            .position(|held| held.seq == seq && held.withdrawing && held.chunk.done() == 0);
        let Some(at) = at else {
            return self.on_lost(Some(format!(
                "it broke the protocol: gave back batch {seq}, which it was not asked for"
            )));
        };
        let held = self.in_flight.remove(at).expect("found");
        let tasks = held.chunk.len();
        self.tasks_held -= tasks;
        if let Some(quota) = &mut self.quota {
            *quota += tasks;
        }
        if held.chunk.is_withdrawn() {
            held.chunk.fail(&withdrawn_error());
        } else {
            self.shared.put_back(held.chunk);
        }
    }

    /// The worker is gone (or must go): the task it ran fails, the rest run
    /// elsewhere, a new worker will start.
    fn on_lost(&mut self, reason: Option<String>) {
        let Some(mut worker) = self.take_worker() else {
            return;
        };
        let pid = worker.pid();
        let status = worker.kill();
        let error = if self.shared.terminating() {
            Error::new(
                ErrorKind::Terminated,
                "the pool was terminated before this task finished",
            )
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
        self.drop_in_flight(&error, retry);
    }

    /// The module got stuck outside a task (renewing its instance) and the
    /// worker is ending: the task that waited for it fails with why, the
    /// rest run elsewhere.
    fn on_stuck(&mut self, error: Error) {
        let Some(mut worker) = self.take_worker() else {
            return;
        };
        worker.kill();
        tracing::warn!("worker {}: {error}", worker.pid());
        self.drop_in_flight(&error, false);
    }

    /// Settles the chunks of a worker that is gone. Its finished tasks have
    /// their outcomes already. The task it was running — the first without
    /// an outcome — runs again if `retry` and retries are left, else fails
    /// with `error`; the tasks it had not started go back to the queue,
    /// unless the pool is terminating.
    fn drop_in_flight(&mut self, error: &Error, retry: bool) {
        let mut in_flight = std::mem::take(&mut self.in_flight);
        self.tasks_held = 0;
        if self.shared.terminating() {
            for lost in in_flight {
                lost.chunk.fail(error);
            }
            return;
        }
        if let Some(InFlight { mut chunk, .. }) = in_flight.pop_front() {
            if retry && chunk.retries < self.shared.retries {
                chunk.retries += 1;
            } else {
                chunk.fail_next(error);
            }
            if let Some(rest) = chunk.rest() {
                self.shared.put_back(rest);
            }
        }
        for unstarted in in_flight {
            self.shared.put_back(unstarted.chunk);
        }
    }

    fn fail_in_flight(&mut self, error: &Error) {
        for lost in self.in_flight.drain(..) {
            lost.chunk.fail(error);
        }
        self.tasks_held = 0;
    }

    /// Shuts the current worker down gracefully.
    fn retire(&mut self) {
        if let Some(worker) = self.take_worker() {
            // It has nothing left to do: let it exit, and reap it, off this
            // slot's path.
            let reaper = thread::Builder::new()
                .name("wasmpool-reaper".into())
                .spawn(move || worker.shutdown());
            match reaper {
                Ok(reaper) => self
                    .shared
                    .reapers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(reaper),
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
        if let Some(mut worker) = self.take_worker() {
            worker.kill();
        }
        let error = Error::new(
            ErrorKind::Terminated,
            "the pool was terminated before this task finished",
        );
        self.fail_in_flight(&error);
        // Chunks requeued by any slot after terminate drained the queues.
        while let Ok(chunk) = self.shared.requeue.1.try_recv() {
            chunk.fail(&error);
        }
        while let Ok(chunk) = self.shared.queue.try_recv() {
            chunk.fail(&error);
        }
    }
}
