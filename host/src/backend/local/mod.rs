//! The local backend: worker processes on this machine, supervised and
//! scheduled by the pool.
//!
//! - [`slot`]: one thread per worker, which hands it work, routes what it
//!   sends back, and replaces it when it dies;
//! - [`in_flight`]: the work a worker holds, which its slot, its reader
//!   thread and a caller handing work to an idle worker share;
//! - [`schedule`]: the policy of how much work a worker holds (pure);
//! - [`child`]: the handle on a worker process (exec, handshake, kill,
//!   reap); [`inbound`]: the thread that reads its channel; [`outbound`]:
//!   the end that writes to it, never blocking; [`event`]: what they tell
//!   the slot;
//! - [`capacity`]: how many workers this machine can hold;
//! - [`starting`]: a pool's first workers start in turn, and stop at
//!   the first that cannot.
//!
//! What tasks ask of the host (host functions, shared objects) is served in
//! [`backend::calls`](crate::backend::calls), or, on an agent, passed on to
//! the job's host (see [`Forward`]).

pub(crate) mod capacity;
mod child;
mod event;
mod in_flight;
mod inbound;
mod outbound;
mod schedule;
mod slot;
mod starting;

use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::Backend;
use crate::backend::HostFns;
use crate::backend::calls::Forward;
use crate::backend::output::OutputHandler;
use crate::backend::{KillHandle, Settings, SpawnConfig};
use crate::cache::CacheDir;
use crate::channel::TaskInfo;
use crate::chunk::{Chunk, Withdrawals};
use crate::error::{Error, ErrorKind};
use crate::settled::Settled;
use in_flight::InFlight;
use starting::Starting;

/// The local backend of a pool: its slots, and what they share.
pub(crate) struct Local {
    shared: Arc<Shared>,
    /// Dropped to terminate: disconnects `Shared::stop`.
    stop: Mutex<Option<Sender<()>>>,
    slots: Mutex<Vec<JoinHandle<()>>>,
}

impl Local {
    /// Starts `processes` slots, built from `settings`, each of which starts
    /// its worker, and waits until every worker is ready; the slots take
    /// their chunks from `queue`. With `exit`, the backend is a
    /// [`Process`](crate::Process)'s: its one worker runs tasks until it
    /// ends, which `exit` hears of; it is never replaced, recycled, nor its
    /// task retried. Returns the backend, the slots' news of withdrawn submissions,
    /// and the module's tasks or why a worker could not start (the backend
    /// must then be terminated).
    pub(crate) fn start(
        settings: &Settings,
        processes: usize,
        exit: Option<Arc<Settled<Option<ExitStatus>>>>,
        queue: Receiver<Chunk>,
    ) -> (Arc<Local>, Arc<Withdrawals>, Result<Vec<TaskInfo>, Error>) {
        let one_worker = exit.is_some();
        let max_tasks_per_child = settings.max_tasks_per_child.filter(|_| !one_worker);
        let (stop, stop_rx) = bounded(0);
        let (withdrawals, withdrawals_rx): (Vec<_>, Vec<_>) =
            (0..processes).map(|_| bounded(1)).unzip();
        let shared = Shared {
            spawn: settings.spawn.clone(),
            _cache: settings.cache.clone(),
            max_tasks_per_child,
            watchdog_per_task: settings.watchdog_per_task,
            retries: if one_worker { 0 } else { settings.retries },
            queue,
            requeue: unbounded(),
            handing: Mutex::new(()),
            stop: stop_rx,
            terminating: AtomicBool::new(false),
            starting: Starting::default(),
            idle: AtomicUsize::new(0),
            workers: Mutex::new((0..processes).map(|_| None).collect()),
            hand_directly: max_tasks_per_child.is_none() && !settings.timed,
            on_output: settings.on_output.clone(),
            withdrawals: withdrawals_rx,
            host_fns: settings.host_fns.clone(),
            forward: settings.forward.clone(),
            max_payload: settings.max_payload,
            initializer_objects: settings.initializer_objects.clone(),
            exit,
        };
        let local = Arc::new(Local {
            shared: Arc::new(shared),
            stop: Mutex::new(Some(stop)),
            slots: Mutex::new(Vec::with_capacity(processes)),
        });
        // Each slot starts its own worker from its own thread: Linux delivers
        // a worker's parent-death signal when the thread that started it
        // exits, and a slot's thread lives as long as the slot.
        let (started_tx, started_rx) = unbounded();
        let mut first_error = None;
        for index in 0..processes {
            if local.shared.starting.failed() {
                break;
            }
            let (shared, started) = (local.shared.clone(), started_tx.clone());
            let spawned = thread::Builder::new()
                .name(format!("wasmpool-slot-{index}"))
                .spawn(move || slot::run(index, shared, started));
            match spawned {
                Ok(handle) => local
                    .slots
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handle),
                Err(err) => {
                    first_error = Some(Error::new(
                        ErrorKind::Spawn,
                        format!("cannot start a slot thread: {err}"),
                    ));
                    break;
                }
            }
        }
        drop(started_tx);
        let mut tasks = None;
        for started in started_rx.iter() {
            match started {
                Ok(offered) => tasks = tasks.or(Some(offered)),
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        let started = match first_error {
            Some(err) => Err(err),
            None => Ok(tasks.unwrap_or_default()),
        };
        (local, Withdrawals::new(withdrawals), started)
    }
}

impl Backend for Local {
    fn hand_to_idle(&self, chunk: Chunk) -> Option<Chunk> {
        self.shared.hand_to_idle(chunk)
    }

    fn drop_if_terminating(&self) {
        self.shared.drop_if_terminating();
    }

    fn stopped(&self) -> &Receiver<()> {
        &self.shared.stop
    }

    fn terminate(&self) {
        let shared = &self.shared;
        shared.terminating.store(true, Ordering::SeqCst);
        self.stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for worker in shared.workers() {
            // Through its pidfd: a worker its slot reaped in the meantime is
            // not signalled, nor a process that took its pid.
            let _ = worker.kill();
        }
        // Tasks still queued will never run: dropping them fails them. (A
        // chunk sent from now on is dropped by its sender: see
        // `Shared::drop_if_terminating`, whose fence pairs with this one.)
        fence(Ordering::SeqCst);
        shared.drop_queued();
    }

    fn join(&self) {
        let slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(PoisonError::into_inner));
        for slot in slots {
            let _ = slot.join();
        }
    }

    fn workers(&self) -> Vec<KillHandle> {
        self.shared.workers()
    }
}

/// What every slot of a pool shares.
pub(crate) struct Shared {
    pub(crate) spawn: SpawnConfig,
    /// Where the workers' artifact is: kept as long as workers may start.
    pub(crate) _cache: Arc<CacheDir>,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// The longest a worker may take per task of a chunk, a renewal of its
    /// instance included, if tasks have a time limit; arms the watchdog.
    pub(crate) watchdog_per_task: Option<Duration>,
    /// How many times a chunk whose worker died is run again.
    pub(crate) retries: u32,
    /// Chunks submitted by callers; disconnected when the pool closes.
    pub(crate) queue: Receiver<Chunk>,
    /// Chunks put back: the rest of chunks split to respect a worker's task
    /// quota, those of a worker that died, and those a stalled worker gave
    /// back; taken before the queue.
    pub(crate) requeue: (Sender<Chunk>, Receiver<Chunk>),
    /// Held while a chunk goes from a queue to a worker, and while a caller
    /// hands one straight to an idle worker: a chunk taken from a queue is
    /// handed before any submitted after it.
    handing: Mutex<()>,
    /// Disconnected when the pool is terminated.
    pub(crate) stop: Receiver<()>,
    pub(crate) terminating: AtomicBool,
    /// The first workers' start, which stops at the first failure.
    pub(crate) starting: Starting,
    /// How many slots have a worker with nothing to do.
    pub(crate) idle: AtomicUsize,
    /// Each slot's current worker, so `terminate` can kill them all at once,
    /// even while their slots are busy — and never a process that merely
    /// reused a worker's pid — and so a caller can hand work to an idle one.
    pub(crate) workers: Mutex<Vec<Option<Serving>>>,
    /// Callers may hand a chunk to an idle worker themselves: its slot then
    /// has nothing to do for it (no watchdog to arm, no quota to charge).
    pub(crate) hand_directly: bool,
    pub(crate) on_output: OutputHandler,
    /// Each slot's news of withdrawn submissions.
    pub(crate) withdrawals: Vec<Receiver<()>>,
    /// The functions tasks may call on the host.
    pub(crate) host_fns: HostFns,
    /// Where the tasks' calls go when they are not served here (an agent's
    /// pool passes them to its job's host).
    pub(crate) forward: Option<Arc<dyn Forward>>,
    /// The most bytes of a host call's arguments or result.
    pub(crate) max_payload: usize,
    /// The shared objects in the initializer's arguments, which every
    /// worker may use for as long as it lives.
    pub(crate) initializer_objects: Vec<crate::objects::ObjectRef>,
    /// A [`Process`](crate::Process)'s pool: its one worker's exit status
    /// goes here once it is reaped, and its slot ends with it rather than
    /// replace it.
    pub(crate) exit: Option<Arc<Settled<Option<ExitStatus>>>>,
}

/// A worker serving its slot.
pub(crate) struct Serving {
    pub(crate) kill: KillHandle,
    pub(crate) in_flight: Arc<InFlight>,
}

impl Shared {
    pub(crate) fn set_worker(&self, slot: usize, worker: Option<Serving>) {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)[slot] = worker;
    }

    /// The workers running now.
    pub(crate) fn workers(&self) -> Vec<KillHandle> {
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        workers
            .iter()
            .flatten()
            .map(|serving| serving.kill.clone())
            .collect()
    }

    /// Hands `chunk` to an idle worker, from the caller's thread: the chunk
    /// reaches the worker without waking its slot. Gives the chunk back if
    /// no worker is idle, chunks wait in the queues (or the pool does not
    /// allow it).
    pub(crate) fn hand_to_idle(&self, chunk: Chunk) -> Option<Chunk> {
        if !self.hand_directly || self.idle.load(Ordering::SeqCst) == 0 || self.terminating() {
            return Some(chunk);
        }
        // Never ahead of a chunk queued before it, nor of one put back (a
        // worker's that died or stalled, or the rest of a split one), even
        // one a slot took and is handing: with one worker, tasks run in the
        // order they were submitted.
        let _handing = self.handing();
        if !self.queue.is_empty() || !self.requeue.1.is_empty() {
            return Some(chunk);
        }
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        for serving in workers.iter().flatten() {
            let mut held = serving.in_flight.lock();
            if held.is_idle() {
                serving.in_flight.hand(&mut held, chunk, self);
                return None;
            }
        }
        Some(chunk)
    }

    /// Held from taking a chunk off a queue until it is handed to a worker.
    pub(crate) fn handing(&self) -> MutexGuard<'_, ()> {
        self.handing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn terminating(&self) -> bool {
        self.terminating.load(Ordering::SeqCst)
    }

    /// Puts a chunk back for any slot to take first.
    pub(crate) fn put_back(&self, chunk: Chunk) {
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
