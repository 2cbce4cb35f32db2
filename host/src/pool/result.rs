//! [`AsyncResult`], the handle of a submitted `apply_async` or `map_async`, and
//! the sink that gathers a submission's outcomes into it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender, TryRecvError, bounded};
use serde::de::DeserializeOwned;

use crate::channel::Outcomes;
use crate::chunk::{Sink, Submission, decode};
use crate::error::{Error, ErrorKind, GetTimeoutError, NotReady};
use crate::pool::callbacks::CallbackQueue;

/// Called with a successful result (`callback` in CPython).
pub(crate) type OnSuccess<R> = Box<dyn FnOnce(&R) + Send>;
/// Called with each failure (`error_callback` in CPython).
pub(crate) type OnError = Arc<dyn Fn(&Error) + Send + Sync>;

/// Callbacks of an `apply_async` or `map_async`, run on the pool's callback
/// thread.
///
/// `callback` is called once with the result when the call succeeds; for a
/// `map_async` that is once with the whole list, as in CPython.
/// `error_callback` is called once for each task that fails — for a
/// `map_async`, once per failed item, so no failure goes unseen. Exactly one
/// of them is called for an `apply_async`.
///
/// Both run before the result becomes ready, so a `get` that returns has seen
/// them run. They run one after another on one thread: keep them short. A
/// panic in a callback is caught and logged; the result is delivered anyway.
pub struct Callbacks<R> {
    pub(crate) on_success: Option<OnSuccess<R>>,
    pub(crate) on_error: Option<OnError>,
}

impl<R> Default for Callbacks<R> {
    fn default() -> Self {
        Callbacks {
            on_success: None,
            on_error: None,
        }
    }
}

impl<R> Callbacks<R> {
    /// No callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `f` with the result when the call succeeds.
    pub fn callback(mut self, f: impl FnOnce(&R) + Send + 'static) -> Self {
        self.on_success = Some(Box::new(f));
        self
    }

    /// Calls `f` with each task failure.
    pub fn error_callback(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    fn is_empty(&self) -> bool {
        self.on_success.is_none() && self.on_error.is_none()
    }
}

impl<R> fmt::Debug for Callbacks<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("callback", &self.on_success.is_some())
            .field("error_callback", &self.on_error.is_some())
            .finish()
    }
}

/// Where a result waits until it is taken.
struct Cell<R> {
    value: Mutex<Option<Result<R, Error>>>,
    succeeded: OnceLock<bool>,
    /// Dropped when the result is ready: every receiver then sees the channel
    /// disconnected, which is how waiting works, for one result or many.
    ready_tx: Mutex<Option<Sender<()>>>,
    ready_rx: Receiver<()>,
}

impl<R> Cell<R> {
    fn new() -> Arc<Self> {
        let (tx, rx) = bounded(1);
        Arc::new(Cell {
            value: Mutex::new(None),
            succeeded: OnceLock::new(),
            ready_tx: Mutex::new(Some(tx)),
            ready_rx: rx,
        })
    }

    fn set(&self, result: Result<R, Error>) {
        let _ = self.succeeded.set(result.is_ok());
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        self.ready_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The result of an asynchronous call: [`Pool::apply_async`](crate::Pool::apply_async),
/// [`Pool::map_async`](crate::Pool::map_async) or
/// [`Pool::starmap_async`](crate::Pool::starmap_async).
///
/// Every submitted call gets exactly one outcome, even if its worker dies or
/// the pool is terminated under it, so waiting on an `AsyncResult` always ends.
pub struct AsyncResult<R> {
    cell: Arc<Cell<R>>,
    /// The call's tasks, to withdraw them: weak, since the submission holds the
    /// callbacks, which must go once every task has its outcome.
    submission: Weak<Submission>,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// The same result, able to withdraw the tasks of `submission`.
    pub(crate) fn with_submission(mut self, submission: &Arc<Submission>) -> Self {
        self.submission = Arc::downgrade(submission);
        self
    }

    /// Withdraws the call's tasks that have not started — queued, or handed
    /// to a worker ahead of what it runs: they fail with
    /// [`ErrorKind::Cancelled`] (for a `map_async`, the result is then that
    /// failure). Tasks running finish. The result becomes ready once every
    /// task has its outcome, soon after; waiting on it still works.
    ///
    /// Dropping an `AsyncResult` does not cancel: its tasks run, and its
    /// callbacks are called.
    pub fn cancel(&self) {
        if let Some(submission) = self.submission.upgrade() {
            submission.withdraw();
        }
    }

    /// Whether the call has finished.
    pub fn ready(&self) -> bool {
        matches!(
            self.cell.ready_rx.try_recv(),
            Err(TryRecvError::Disconnected)
        )
    }

    /// Whether the call finished without error; [`NotReady`] before it finished.
    pub fn successful(&self) -> Result<bool, NotReady> {
        if !self.ready() {
            return Err(NotReady);
        }
        Ok(*self.cell.succeeded.get().unwrap_or(&false))
    }

    /// Blocks until the call has finished.
    pub fn wait(&self) {
        let _ = self.cell.ready_rx.recv();
    }

    /// Blocks until the call has finished or `timeout` passed; returns whether
    /// it finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        !matches!(
            self.cell.ready_rx.recv_timeout(timeout),
            Err(RecvTimeoutError::Timeout)
        )
    }

    /// Blocks until the call has finished and takes its result.
    ///
    /// # Errors
    ///
    /// The call's failure; for a `map_async`, the failure of the first task
    /// (by index) that failed. [`ErrorKind::Usage`] if the result was taken
    /// already.
    pub fn get(&self) -> Result<R, Error> {
        self.wait();
        self.take()
    }

    /// Like [`get`](Self::get), but gives up after `timeout`; the call goes on
    /// and its result can be asked for again.
    ///
    /// # Errors
    ///
    /// [`GetTimeoutError::Timeout`] if the result was not ready in time, or
    /// the failure [`get`](Self::get) would return.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, GetTimeoutError> {
        if !self.wait_timeout(timeout) {
            return Err(GetTimeoutError::Timeout);
        }
        Ok(self.take()?)
    }

    fn take(&self) -> Result<R, Error> {
        self.cell
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| Err(Error::new(ErrorKind::Usage, "the result was taken already")))
    }

    /// Blocks until every one of `results` has finished, or `timeout` passed
    /// (`None`: no limit); returns whether all finished.
    pub fn wait_all(results: &[AsyncResult<R>], timeout: Option<Duration>) -> bool {
        // A timeout too far to reach is none (Duration::MAX means no limit).
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        results.iter().all(|result| match deadline {
            None => {
                result.wait();
                true
            }
            Some(deadline) => {
                result.wait_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        })
    }

    /// Blocks until any one of `results` has finished, or `timeout` passed
    /// (`None`: no limit); returns the position of one that finished.
    pub fn wait_any(results: &[AsyncResult<R>], timeout: Option<Duration>) -> Option<usize> {
        if results.is_empty() {
            return None;
        }
        // A timeout too far to reach is none (Duration::MAX means no limit).
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let mut select = Select::new();
        for result in results {
            select.recv(&result.cell.ready_rx);
        }
        loop {
            let index = match deadline {
                None => select.ready(),
                Some(deadline) => select.ready_deadline(deadline).ok()?,
            };
            // `ready` may wake spuriously: check.
            if results[index].ready() {
                return Some(index);
            }
        }
    }
}

/// Makes a call's result out of its tasks' results.
type Combine<T, R> = fn(Vec<Result<T, Error>>) -> Result<R, Error>;

/// Builds the pieces of an asynchronous call: the handle the caller keeps and
/// the sink its tasks' outcomes go to.
///
/// `T` is the type of one task's result; `R` is what the caller gets, built
/// from all of them by `combine`.
pub(crate) fn gather<T, R>(
    tasks: usize,
    combine: Combine<T, R>,
    callbacks: Callbacks<R>,
    queue: Option<CallbackQueue>,
) -> (AsyncResult<R>, Arc<dyn Sink>)
where
    T: DeserializeOwned + Send + 'static,
    R: Send + 'static,
{
    let cell = Cell::new();
    let result = AsyncResult {
        cell: cell.clone(),
        submission: Weak::new(),
    };
    let queue = if callbacks.is_empty() { None } else { queue };
    let sink = Gather {
        state: Mutex::new(GatherState {
            slots: (0..tasks).map(|_| None).collect(),
            remaining: tasks,
            on_success: callbacks.on_success,
        }),
        on_error: callbacks.on_error,
        combine,
        cell,
        queue,
        _task: PhantomData,
    };
    if tasks == 0 {
        sink.finish(Vec::new(), None);
    }
    (result, Arc::new(sink))
}

struct GatherState<T, R> {
    slots: Vec<Option<Result<T, Error>>>,
    remaining: usize,
    on_success: Option<OnSuccess<R>>,
}

struct Gather<T, R> {
    state: Mutex<GatherState<T, R>>,
    on_error: Option<OnError>,
    combine: Combine<T, R>,
    cell: Arc<Cell<R>>,
    queue: Option<CallbackQueue>,
    _task: PhantomData<fn() -> T>,
}

impl<T, R> Gather<T, R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    fn finish(&self, results: Vec<Result<T, Error>>, on_success: Option<OnSuccess<R>>) {
        let result = (self.combine)(results);
        match &self.queue {
            Some(queue) => {
                let cell = self.cell.clone();
                queue.push(move || {
                    if let (Ok(value), Some(on_success)) = (&result, on_success) {
                        // The result is set even if the callback panics.
                        crate::user_code::call_guarded(|| on_success(value));
                    }
                    cell.set(result);
                });
            }
            None => self.cell.set(result),
        }
    }
}

impl<T, R> Sink for Gather<T, R>
where
    T: DeserializeOwned + Send + 'static,
    R: Send + 'static,
{
    fn deliver(&self, first_index: u64, outcomes: Outcomes) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        for (i, outcome) in outcomes.iter().enumerate() {
            let index = first_index + i as u64;
            let decoded = match outcome {
                Ok(bytes) => decode::<T>(index, bytes),
                Err(err) => Err(err.clone()),
            };
            if let (Err(err), Some(on_error), Some(queue)) = (&decoded, &self.on_error, &self.queue)
            {
                let (err, on_error) = (err.clone(), on_error.clone());
                queue.push(move || on_error(&err));
            }
            let slot = &mut state.slots[index as usize];
            debug_assert!(slot.is_none(), "task {index} got two outcomes");
            if slot.is_none() {
                state.remaining -= 1;
            }
            *slot = Some(decoded);
        }
        if state.remaining == 0 && !state.slots.is_empty() {
            let results = std::mem::take(&mut state.slots)
                .into_iter()
                .map(|slot| slot.expect("every task has an outcome"))
                .collect();
            let on_success = state.on_success.take();
            drop(guard);
            self.finish(results, on_success);
        }
    }
}

/// Combines the single result of an `apply_async`.
pub(crate) fn single<T>(results: Vec<Result<T, Error>>) -> Result<T, Error> {
    results.into_iter().next().expect("an apply has one task")
}

/// Combines the results of a `map_async`: all of them, or the first failure.
pub(crate) fn all<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    results.into_iter().collect()
}
