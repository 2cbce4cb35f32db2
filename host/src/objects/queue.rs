//! [`Queue`] and [`JoinableQueue`]: items passed between tasks and host
//! threads, first in, first out, bounded in count and in bytes.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::channel::Failure;
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::{Monitor, Patience, Wait};
use crate::objects::{Holder, Kind, Object, args, encode, next_id, unknown_op};

/// The most bytes of items a queue holds: a put waits (or fails, if it
/// may not wait) beyond it, whatever the queue's size.
pub const QUEUE_BYTES: usize = 64 << 20;

/// Why a queue operation did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// No item came in time (Python's `queue.Empty`).
    Empty,
    /// No room came in time (Python's `queue.Full`).
    Full,
    /// The queue was closed: no more puts, and a get finds it empty.
    Closed,
    /// An item did not encode, or did not decode to the type asked for; or
    /// `task_done` was called more times than items were taken.
    Item(String),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Empty => f.write_str("the queue is empty"),
            QueueError::Full => f.write_str("the queue is full"),
            QueueError::Closed => f.write_str("the queue is closed"),
            QueueError::Item(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for QueueError {}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Vec<u8>>,
    bytes: usize,
    closed: bool,
    /// Items put and not yet marked done (a joinable queue's).
    unfinished: usize,
}

#[derive(Debug)]
pub(crate) struct QueueCore {
    id: u64,
    joinable: bool,
    /// The most items it holds; 0 for no limit but [`QUEUE_BYTES`].
    maxsize: usize,
    state: Monitor<State>,
}

impl QueueCore {
    fn new(maxsize: usize, joinable: bool) -> Arc<Self> {
        Arc::new(QueueCore {
            id: next_id(),
            joinable,
            maxsize,
            state: Monitor::new(State::default()),
        })
    }

    fn full(&self, state: &State, more: usize) -> bool {
        let count = self.maxsize > 0 && state.items.len() >= self.maxsize;
        // One item always fits an empty queue, so that no item waits forever.
        let bytes = !state.items.is_empty() && state.bytes + more > QUEUE_BYTES;
        count || bytes
    }

    fn put(&self, item: Vec<u8>, patience: Patience, wait: &Wait) -> Result<(), Failure> {
        if item.len() > QUEUE_BYTES {
            return Err(Failure::Refused(format!(
                "the item takes {} bytes, over a queue's limit of {QUEUE_BYTES} bytes",
                item.len()
            )));
        }
        let mut item = Some(item);
        self.state.wait_for(patience, wait, |state| {
            if state.closed {
                return Some(Err(Failure::Closed("the queue is closed".into())));
            }
            let size = item.as_ref().map_or(0, Vec::len);
            if self.full(state, size) {
                return None;
            }
            state.bytes += size;
            state.items.extend(item.take());
            state.unfinished += 1;
            Some(Ok(()))
        })??;
        self.state.notify();
        Ok(())
    }

    fn get(&self, patience: Patience, wait: &Wait) -> Result<Vec<u8>, Failure> {
        let item = self.state.wait_for(patience, wait, |state| {
            if let Some(next) = state.items.front() {
                if let Err(failure) = wait.fits(next.len()) {
                    return Some(Err(failure));
                }
                let item = state.items.pop_front()?;
                state.bytes -= item.len();
                return Some(Ok(item));
            }
            state
                .closed
                .then(|| Err(Failure::Closed("the queue is closed and empty".into())))
        })??;
        self.state.notify();
        Ok(item)
    }

    fn task_done(&self) -> Result<(), Failure> {
        let mut state = self.state.lock();
        if state.unfinished <= state.items.len() {
            return Err(Failure::Refused(
                "task_done() was called more times than items were taken".into(),
            ));
        }
        state.unfinished -= 1;
        let all_done = state.unfinished == 0;
        drop(state);
        if all_done {
            self.state.notify();
        }
        Ok(())
    }

    fn join(&self, patience: Patience, wait: &Wait) -> Result<bool, Failure> {
        self.state
            .wait_until(patience, wait, |state| state.unfinished == 0)
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.state.notify();
    }
}

impl Object for QueueCore {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        if self.joinable {
            Kind::JoinableQueue
        } else {
            Kind::Queue
        }
    }

    fn may_wait(&self, op: &str) -> bool {
        matches!(op, "put" | "get" | "join")
    }

    fn invoke(
        &self,
        _holder: Holder,
        op: &str,
        bytes: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure> {
        let kind = self.kind();
        match op {
            "put" => {
                let (item, block, timeout): (ByteBuf, bool, Option<u64>) = args(kind, op, bytes)?;
                self.put(item.into_vec(), Patience::from_millis(block, timeout), wait)?;
                encode(&())
            }
            "get" => {
                let (block, timeout): (bool, Option<u64>) = args(kind, op, bytes)?;
                let item = self.get(Patience::from_millis(block, timeout), wait)?;
                encode(&ByteBuf::from(item))
            }
            "qsize" | "empty" | "full" => {
                let () = args(kind, op, bytes)?;
                let state = self.state.lock();
                match op {
                    "qsize" => encode(&state.items.len()),
                    "empty" => encode(&state.items.is_empty()),
                    _ => encode(&self.full(&state, 0)),
                }
            }
            "close" => {
                let () = args(kind, op, bytes)?;
                self.close();
                encode(&())
            }
            "task-done" if self.joinable => {
                let () = args(kind, op, bytes)?;
                self.task_done()?;
                encode(&())
            }
            "join" if self.joinable => {
                let (timeout,): (Option<u64>,) = args(kind, op, bytes)?;
                encode(&self.join(Patience::from_millis(true, timeout), wait)?)
            }
            _ => Err(unknown_op(kind, op)),
        }
    }

    fn give_back(&self, _holder: Holder, op: &str, result: &[u8], _took: u64) {
        if op != "get" {
            return;
        }
        if let Ok(item) = rmp_serde::from_slice::<ByteBuf>(result) {
            let mut state = self.state.lock();
            state.bytes += item.len();
            state.items.push_front(item.into_vec());
            drop(state);
            self.state.notify();
        }
    }
}

fn queue_error(failure: Failure, timed_out: QueueError) -> QueueError {
    match failure {
        Failure::TimedOut => timed_out,
        Failure::Closed(_) => QueueError::Closed,
        Failure::Refused(why) => QueueError::Item(why),
    }
}

/// A first-in, first-out queue shared by tasks and host threads: Python's
/// `multiprocessing.Queue`. Items are any serde values (`T`), as
/// MessagePack; a queue holds at most its `maxsize` items (if bounded) and
/// at most [`QUEUE_BYTES`].
///
/// Shared objects inside items are not handed over: pass them to tasks as
/// arguments.
pub struct Queue<T> {
    core: Arc<QueueCore>,
    items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("id", &self.core.id).finish()
    }
}

serialize_as_handle!(Queue<T>, core);

impl<T: Serialize + DeserializeOwned> Default for Queue<T> {
    fn default() -> Self {
        Queue::new()
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue without a limit on its number of items.
    pub fn new() -> Self {
        Queue::bounded(0)
    }

    /// A queue of at most `maxsize` items (0: no limit), as Python's
    /// `Queue(maxsize)`.
    pub fn bounded(maxsize: usize) -> Self {
        Queue {
            core: QueueCore::new(maxsize, false),
            items: PhantomData,
        }
    }

    fn put_with(&self, item: &T, patience: Patience) -> Result<(), QueueError> {
        let bytes = rmp_serde::to_vec_named(item)
            .map_err(|err| QueueError::Item(format!("the item does not encode: {err}")))?;
        self.core
            .put(bytes, patience, &Wait::forever())
            .map_err(|failure| queue_error(failure, QueueError::Full))
    }

    fn get_with(&self, patience: Patience) -> Result<T, QueueError> {
        let bytes = self
            .core
            .get(patience, &Wait::forever())
            .map_err(|failure| queue_error(failure, QueueError::Empty))?;
        rmp_serde::from_slice(&bytes).map_err(|err| {
            QueueError::Item(format!(
                "an item does not decode to {}: {err}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Puts `item`, waiting for room.
    ///
    /// # Errors
    ///
    /// [`QueueError::Closed`], or an item that does not encode.
    pub fn put(&self, item: &T) -> Result<(), QueueError> {
        self.put_with(item, Patience::Forever)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`QueueError::Full`] if no room came, as [`put`](Self::put) else.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), QueueError> {
        self.put_with(item, Patience::new(true, Some(timeout)))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// [`QueueError::Full`] if there is none, as [`put`](Self::put) else.
    pub fn put_nowait(&self, item: &T) -> Result<(), QueueError> {
        self.put_with(item, Patience::None)
    }

    /// Takes the first item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`QueueError::Closed`] once the queue is closed and empty, or an item
    /// that does not decode to `T`.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_with(Patience::Forever)
    }

    /// Takes the first item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`QueueError::Empty`] if none came, as [`get`](Self::get) else.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_with(Patience::new(true, Some(timeout)))
    }

    /// Takes the first item if there is one.
    ///
    /// # Errors
    ///
    /// [`QueueError::Empty`] if there is none, as [`get`](Self::get) else.
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.get_with(Patience::None)
    }

    /// How many items it holds now.
    pub fn qsize(&self) -> usize {
        self.core.state.lock().items.len()
    }

    /// Whether it holds no item now.
    pub fn empty(&self) -> bool {
        self.core.state.lock().items.is_empty()
    }

    /// Whether a put would wait now.
    pub fn full(&self) -> bool {
        self.core.full(&self.core.state.lock(), 0)
    }

    /// Takes no more items: puts fail with [`QueueError::Closed`], gets take
    /// what is left and then fail the same way (rather than wait forever).
    pub fn close(&self) {
        self.core.close();
    }
}

/// A [`Queue`] whose consumers say when each item is processed, so that a
/// producer can wait for all of them: Python's
/// `multiprocessing.JoinableQueue`.
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("id", &self.queue.core.id)
            .finish()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<T: Serialize + DeserializeOwned> Default for JoinableQueue<T> {
    fn default() -> Self {
        JoinableQueue::new()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A joinable queue without a limit on its number of items.
    pub fn new() -> Self {
        JoinableQueue::bounded(0)
    }

    /// A joinable queue of at most `maxsize` items (0: no limit).
    pub fn bounded(maxsize: usize) -> Self {
        JoinableQueue {
            queue: Queue {
                core: QueueCore::new(maxsize, true),
                items: PhantomData,
            },
        }
    }

    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`QueueError::Item`] if called more times than items were taken.
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.queue
            .core
            .task_done()
            .map_err(|failure| queue_error(failure, QueueError::Empty))
    }

    /// Waits until every item put was taken and marked processed.
    pub fn join(&self) {
        let _ = self.queue.core.join(Patience::Forever, &Wait::forever());
    }

    /// Waits at most `timeout` for [`join`](Self::join); whether every item
    /// was processed.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue
            .core
            .join(Patience::new(true, Some(timeout)), &Wait::forever())
            .unwrap_or(false)
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_queue_refuses_a_put_when_full_and_keeps_order() {
        let queue = Queue::bounded(3);
        for item in 0..3 {
            queue.put(&item).unwrap();
        }
        assert_eq!(queue.put_nowait(&3), Err(QueueError::Full));
        assert!(queue.full());
        assert_eq!(
            (0..3).map(|_| queue.get().unwrap()).collect::<Vec<i32>>(),
            [0, 1, 2]
        );
        assert_eq!(queue.get_nowait(), Err(QueueError::Empty));
        assert!(queue.empty());
        queue.close();
        assert_eq!(queue.put(&4), Err(QueueError::Closed));
        assert_eq!(queue.get(), Err(QueueError::Closed));
    }

    #[test]
    fn an_item_taken_for_a_task_that_stopped_waiting_goes_back_first() {
        let queue = Queue::new();
        queue.put(&1).unwrap();
        queue.put(&2).unwrap();
        let worker = Holder::Task { worker: 3, nth: 1 };
        let answer = queue
            .core
            .invoke(worker, "get", &[0x92, 0xc3, 0xc0], &Wait::forever())
            .unwrap();
        assert_eq!(queue.qsize(), 1);
        queue.core.give_back(worker, "get", &answer, 0);
        assert_eq!(queue.get(), Ok(1));
        assert_eq!(queue.get(), Ok(2));
    }

    #[test]
    fn join_waits_for_every_item_to_be_done() {
        let queue = JoinableQueue::new();
        queue.put(&"apple".to_string()).unwrap();
        assert!(!queue.join_timeout(Duration::from_millis(5)));
        assert!(matches!(queue.task_done(), Err(QueueError::Item(_))));
        let _: String = queue.get().unwrap();
        assert!(!queue.join_timeout(Duration::from_millis(5)));
        queue.task_done().unwrap();
        queue.join();
    }
}
