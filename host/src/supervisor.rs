//! One thread per worker slot: it owns the slot's worker process, feeds it
//! chunks from the pool's queue a step ahead of what it runs, routes the
//! outcomes back, recycles the process after `max_tasks_per_child` tasks, and
//! replaces it when it dies.
//!
//! Scheduling: all slots take from one shared queue. A slot whose worker is
//! idle takes the next chunk; a slot whose worker is busy takes one more, to
//! have it waiting when the current one finishes (no idle round trip), but
//! only while no other worker is idle, and never more than [`AHEAD`] in all —
//! or, while its chunks finish within [`QUICK`], up to [`AHEAD_QUICK`], so
//! that tiny chunks (an `imap` with chunksize 1) are not paced by round trips
//! while the imbalance stays within a few milliseconds.
//! So no worker idles while another holds a backlog.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};
use serde_bytes::ByteBuf;

use crate::cache::CacheDir;
use crate::error::{Error, ErrorKind};
use crate::job::Chunk;
use crate::output::{GuestOutput, OutputHandler};
use crate::process::{Event, KillHandle, SpawnConfig, WorkerProcess, describe_status};
use crate::protocol::{Batch, FromWorker, TaskInfo, ToWorker};

/// How many chunks a worker holds at most: the one it runs and the next.
const AHEAD: usize = 2;

/// How many chunks a worker holds at most while its chunks are quick.
const AHEAD_QUICK: usize = 16;

/// A chunk served faster than this, on average, is quick.
const QUICK: Duration = Duration::from_micros(250);

/// How much longer than its tasks' time limits a worker may take to answer
/// before the watchdog kills it.
const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// What every slot of a pool shares.
pub(crate) struct Shared {
    pub(crate) spawn: SpawnConfig,
    /// Where the workers' artifact is: kept as long as workers may start.
    pub(crate) _cache: CacheDir,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// The longest a worker may take per task of a chunk, a renewal of its
    /// instance included, if tasks have a time limit; arms the watchdog.
    pub(crate) watchdog_per_task: Option<Duration>,
    /// How many times a chunk whose worker died is run again.
    pub(crate) retries: u32,
    /// Chunks submitted by callers; disconnected when the pool closes.
    pub(crate) queue: Receiver<Chunk>,
    /// The rest of chunks split to respect a worker's task quota; taken first.
    pub(crate) requeue: (Sender<Chunk>, Receiver<Chunk>),
    /// Disconnected when the pool is terminated.
    pub(crate) stop: Receiver<()>,
    pub(crate) terminating: AtomicBool,
    /// How many slots have a worker with nothing to do.
    pub(crate) idle: AtomicUsize,
    /// Each slot's current worker, so `terminate` can kill them all at once,
    /// even while their slots are busy — and never a process that merely
    /// reused a worker's pid.
    pub(crate) workers: Mutex<Vec<Option<KillHandle>>>,
    pub(crate) on_output: OutputHandler,
    /// Threads reaping retired workers; joined by `Pool::join`.
    pub(crate) reapers: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Shared {
    fn set_worker(&self, slot: usize, worker: Option<KillHandle>) {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)[slot] = worker;
    }

    /// The workers running now.
    pub(crate) fn workers(&self) -> Vec<KillHandle> {
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        workers.iter().flatten().cloned().collect()
    }

    fn terminating(&self) -> bool {
        self.terminating.load(Ordering::SeqCst)
    }

    /// Puts a chunk back for any slot to take first.
    fn put_back(&self, chunk: Chunk) {
        // Cannot fail: this slot holds a receiver. Were it to, the dropped
        // chunk would fail its tasks rather than lose them.
        let _ = self.requeue.0.send(chunk);
        self.drop_if_terminating();
    }

    /// Called after a chunk was queued. `Pool::terminate` marks the pool,
    /// then empties the queues; a chunk queued after that emptying is seen
    /// here (the mark is set by then: the fences pair up) and dropped, which
    /// fails its tasks as terminated, rather than left in a queue no slot
    /// reads any more.
    pub(crate) fn drop_if_terminating(&self) {
        fence(Ordering::SeqCst);
        if self.terminating() {
            self.drop_queued();
        }
    }

    /// Drops every chunk waiting in the queues, which fails their tasks.
    pub(crate) fn drop_queued(&self) {
        while self.queue.try_recv().is_ok() {}
        while self.requeue.1.try_recv().is_ok() {}
    }
}

/// A chunk handed to the worker, waiting for its outcomes.
struct InFlight {
    seq: u64,
    chunk: Chunk,
}

/// The state of one slot.
struct Slot {
    index: usize,
    shared: Arc<Shared>,
    worker: Option<WorkerProcess>,
    in_flight: VecDeque<InFlight>,
    /// Tasks handed to the current worker and not yet answered.
    in_flight_tasks: usize,
    /// Tasks the current worker may still be handed, if limited.
    quota: Option<usize>,
    next_seq: u64,
    queue_open: bool,
    /// Whether this slot is counted in [`Shared::idle`].
    counted_idle: bool,
    /// When the worker started on the chunk at the front of `in_flight`.
    front_started: Instant,
    /// The next worker, started while the current one runs its last tasks.
    spare: Option<WorkerProcess>,
    /// A moving average of how long the worker takes per chunk.
    service: Duration,
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
        in_flight_tasks: 0,
        quota: None,
        next_seq: 0,
        queue_open: true,
        counted_idle: false,
        front_started: Instant::now(),
        spare: None,
        service: Duration::MAX,
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
        Ok(tasks)
    }

    fn can_take(&self) -> bool {
        self.worker.is_some()
            && self.in_flight.len() < self.ahead()
            && (self.in_flight.is_empty() || self.shared.idle.load(Ordering::SeqCst) == 0)
            && self.quota.is_none_or(|quota| quota > self.in_flight_tasks)
    }

    /// How many chunks the worker may hold now.
    fn ahead(&self) -> usize {
        if self.service < QUICK {
            AHEAD_QUICK
        } else {
            AHEAD
        }
    }

    /// Keeps [`Shared::idle`] in step with this slot.
    fn update_idle(&mut self) {
        let idle = self.worker.is_some() && self.in_flight.is_empty();
        if idle != self.counted_idle {
            self.counted_idle = idle;
            if idle {
                self.shared.idle.fetch_add(1, Ordering::SeqCst);
            } else {
                self.shared.idle.fetch_sub(1, Ordering::SeqCst);
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

    /// Waits for an answer of the worker, a chunk to take, or the stop signal.
    fn wait_for_something(&mut self) {
        let shared = self.shared.clone();
        let can_take = self.can_take();
        let watchdog = self.watchdog_deadline();
        // A handle of its own, so that the select borrows nothing of `self`.
        let worker_events = self.worker.as_ref().map(|worker| worker.events.clone());
        let mut select = Select::new();
        let stop = select.recv(&shared.stop);
        let events = worker_events.as_ref().map(|events| select.recv(events));
        let requeue = can_take.then(|| select.recv(&shared.requeue.1));
        let queue = (can_take && self.queue_open).then(|| select.recv(&shared.queue));
        let selected = match watchdog {
            None => Some(select.select()),
            Some(deadline) => select.select_deadline(deadline).ok(),
        };
        let Some(op) = selected else {
            return self.on_watchdog();
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

    /// When the watchdog fires if the worker has not answered the chunk it
    /// runs: its tasks' time limits plus a grace period. `None` without a
    /// limit, or with one too far away to reach.
    fn watchdog_deadline(&self) -> Option<Instant> {
        let per_task = self.shared.watchdog_per_task?;
        let front = self.in_flight.front()?;
        let tasks = u32::try_from(front.chunk.len()).unwrap_or(u32::MAX);
        let allowed = per_task
            .saturating_mul(tasks)
            .saturating_add(WATCHDOG_GRACE);
        self.front_started.checked_add(allowed)
    }

    /// Takes the worker out of the slot, and out of the pool's list of
    /// workers to kill on terminate, before anything reaps it.
    fn take_worker(&mut self) -> Option<WorkerProcess> {
        let worker = self.worker.take()?;
        self.shared.set_worker(self.index, None);
        Some(worker)
    }

    /// The worker did not answer in time, though it should have stopped the
    /// task itself: kill it, fail the chunk it ran, start a new one.
    fn on_watchdog(&mut self) {
        let Some(mut worker) = self.take_worker() else {
            return;
        };
        let waited = self.front_started.elapsed();
        worker.kill();
        let error = Error::new(
            ErrorKind::Timeout,
            format!(
                "worker {} did not answer within {waited:.1?}, past its tasks' time limit; \
                 it was killed and replaced",
                worker.pid()
            ),
        );
        tracing::warn!("{error}");
        self.drop_in_flight(&error, false);
    }

    /// Hands `chunk` to the worker, keeping within its quota.
    fn hand(&mut self, mut chunk: Chunk) {
        if let Some(quota) = self.quota {
            let room = quota - self.in_flight_tasks;
            if chunk.len() > room {
                let rest = chunk.split_off(room);
                self.shared.put_back(rest);
            }
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
            self.front_started = Instant::now();
        }
        if self.quota == Some(self.in_flight_tasks + chunk.len()) && self.spare.is_none() {
            // The worker was just handed its last tasks: start the next one,
            // so that it loads while these run.
            self.spare = WorkerProcess::start(&self.shared.spawn).ok();
        }
        self.in_flight_tasks += chunk.len();
        self.in_flight.push_back(InFlight { seq, chunk });
        self.update_idle();
        let sent = self.worker.as_mut().expect("can_take").send(&batch);
        if let Err(err) = sent {
            self.on_lost(Some(format!("cannot send it work: {err}")));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(FromWorker::Done { seq, outcomes }) => {
                let expected = self.in_flight.front().map(|f| (f.seq, f.chunk.len()));
                if expected != Some((seq, outcomes.len())) {
                    return self.on_lost(Some(format!(
                        "it broke the protocol: answered batch {seq} with {} outcomes, \
                         expected {expected:?}",
                        outcomes.len()
                    )));
                }
                let done = self.in_flight.pop_front().expect("checked");
                let took = self.front_started.elapsed();
                self.service = if self.service == Duration::MAX {
                    took
                } else {
                    (self.service * 7 + took) / 8
                };
                self.front_started = Instant::now();
                let tasks = done.chunk.len();
                self.in_flight_tasks -= tasks;
                if let Some(quota) = &mut self.quota {
                    *quota -= tasks;
                }
                done.chunk.complete(outcomes);
            }
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
            Event::Message(FromWorker::Stuck { error }) => self.on_stuck(error),
            Event::Message(other) => {
                self.on_lost(Some(format!("it broke the protocol: unexpected {other:?}")));
            }
            Event::Closed(reason) => self.on_lost(reason),
        }
    }

    /// The worker is gone (or must go): its chunks fail, a new one will start.
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
    /// worker is ending: the chunk it ran fails with why, the rest run
    /// elsewhere.
    fn on_stuck(&mut self, error: Error) {
        let Some(mut worker) = self.take_worker() else {
            return;
        };
        worker.kill();
        tracing::warn!("worker {}: {error}", worker.pid());
        self.drop_in_flight(&error, false);
    }

    /// Settles the chunks of a worker that is gone. The one it was running
    /// runs again if `retry` and retries are left, else fails with `error`;
    /// the ones it had not started go back to the queue, unless the pool is
    /// terminating.
    fn drop_in_flight(&mut self, error: &Error, retry: bool) {
        let mut in_flight = std::mem::take(&mut self.in_flight);
        self.in_flight_tasks = 0;
        if self.shared.terminating() {
            for lost in in_flight {
                lost.chunk.fail(error);
            }
            return;
        }
        if let Some(InFlight { mut chunk, .. }) = in_flight.pop_front() {
            if retry && chunk.retries < self.shared.retries {
                chunk.retries += 1;
                self.shared.put_back(chunk);
            } else {
                chunk.fail(error);
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
        self.in_flight_tasks = 0;
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
