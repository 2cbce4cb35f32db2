//! Shared objects a host hands to a task: [`Lock`], [`RLock`],
//! [`Semaphore`], [`Event`], [`Queue`], [`JoinableQueue`], [`Connection`]
//! (a pipe's end), and a manager's [`Dict`], [`List`] and [`Value`].
//!
//! Take one as a task parameter; its methods are requests to the host, which
//! owns the object and which other tasks (and host threads) share:
//!
//! ```no_run
//! use wasmpool_guest::{Lock, task};
//!
//! #[task]
//! fn work(lock: Lock) -> Result<u32, wasmpool_guest::ObjectError> {
//!     let _held = lock.acquire()?;
//!     Ok(wasmpool_guest::worker_pid())
//! }
//! ```
//!
//! A handle is only usable by the task it was handed to, while it runs.
//! Whatever the task holds when it ends (or its worker dies) is let go of by
//! the host: a lock is released, and its next holder learns that its
//! previous holder died.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;

use crate::bindings::wasmpool::task::objects::{self as host, ObjectError as HostError};

/// The MessagePack `ext` type of a handle.
const EXT_TYPE: i8 = 87;

/// Why an operation on a shared object did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// The host refused it: a handle this task was not handed, a misuse
    /// (releasing a lock not held, ...), an object over its limit. The
    /// message says which.
    Refused(String),
    /// A wait ran out of time, or a non-blocking call found nothing to do:
    /// Python's `queue.Empty` or `queue.Full`.
    TimedOut,
    /// The other end of a pipe is closed and nothing is left to read
    /// (Python's `EOFError`), or the queue is closed.
    Closed(String),
    /// An argument did not encode, or a result did not decode to the type
    /// asked for.
    Data(String),
}

impl ObjectError {
    /// Whether it is the end of a pipe: Python's `EOFError`.
    pub fn is_eof(&self) -> bool {
        matches!(self, ObjectError::Closed(_))
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Refused(why) | ObjectError::Data(why) => f.write_str(why),
            ObjectError::TimedOut => f.write_str("timed out"),
            ObjectError::Closed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ObjectError {}

/// A handle as it travels: `ext` 87 holding the kind and the id.
#[derive(Deserialize)]
#[serde(rename = "_ExtStruct")]
struct Ext((i8, ByteBuf));

/// The id of a handle of one of `kinds`, named `what` in errors.
fn handle<'de, D: Deserializer<'de>>(
    deserializer: D,
    kinds: &[u8],
    what: &str,
) -> Result<u64, D::Error> {
    use serde::de::Error;
    let Ext((ext, bytes)) = Ext::deserialize(deserializer)
        .map_err(|err| D::Error::custom(format!("expected a {what} handle: {err}")))?;
    if ext != EXT_TYPE || bytes.len() != 9 {
        return Err(D::Error::custom(format!(
            "expected a {what} handle, got another MessagePack extension"
        )));
    }
    if !kinds.contains(&bytes[0]) {
        return Err(D::Error::custom(format!(
            "expected a {what} handle, got a handle of another kind ({})",
            bytes[0]
        )));
    }
    Ok(u64::from_be_bytes(bytes[1..].try_into().expect("9 bytes")))
}

/// Runs `op` of object `id` with `args` (a tuple), and decodes its result.
fn invoke<R: DeserializeOwned>(id: u64, op: &str, args: impl Serialize) -> Result<R, ObjectError> {
    let mut encoded = rmp_serde::encode::to_vec_named(&args)
        .map_err(|err| ObjectError::Data(format!("the arguments of `{op}`: {err}")))?;
    if encoded == [0xc0] {
        encoded = vec![0x90];
    }
    let reply = host::invoke(id, op, &encoded).map_err(|err| match err {
        HostError::Refused(why) => ObjectError::Refused(why),
        HostError::TimedOut => ObjectError::TimedOut,
        HostError::Closed(why) => ObjectError::Closed(why),
    })?;
    rmp_serde::from_slice(&reply)
        .map_err(|err| ObjectError::Data(format!("the result of `{op}`: {err}")))
}

fn packed<T: Serialize + ?Sized>(value: &T) -> Result<ByteBuf, ObjectError> {
    rmp_serde::encode::to_vec_named(value)
        .map(ByteBuf::from)
        .map_err(|err| ObjectError::Data(format!("a value does not encode: {err}")))
}

fn unpacked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ObjectError> {
    rmp_serde::from_slice(bytes).map_err(|err| {
        ObjectError::Data(format!(
            "a value does not decode to {}: {err}",
            std::any::type_name::<T>()
        ))
    })
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

macro_rules! handle_type {
    ($name:ident, [$($kind:literal),+], $what:literal $(, $param:ident)*) => {
        impl<'de $(, $param)*> Deserialize<'de> for $name<$($param),*> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let id = handle(deserializer, &[$($kind),+], $what)?;
                Ok($name { id, types: PhantomData })
            }
        }

        impl<$($param),*> fmt::Debug for $name<$($param),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("id", &self.id).finish()
            }
        }
    };
}

/// Acquires with Python's `(block, timeout)`: whether it did, and whether
/// the previous holder died holding it.
fn acquire(id: u64, block: bool, timeout: Option<Duration>) -> Result<Option<bool>, ObjectError> {
    let state: u8 = invoke(id, "acquire", (block, timeout.map(millis)))?;
    Ok(match state {
        0 => None,
        died => Some(died == 2),
    })
}

/// The three ways to acquire a lock or a semaphore's permit: waiting,
/// without waiting, or waiting at most a while.
macro_rules! acquire_methods {
    ($what:literal) => {
        #[doc = concat!("Waits for ", $what, " and takes it.")]
        ///
        /// # Errors
        ///
        /// [`ObjectError::Refused`] if this task may not use it.
        pub fn acquire(&self) -> Result<Held<'_>, ObjectError> {
            let died = acquire(self.id, true, None)?.unwrap_or(false);
            Ok(Held::new(self.id, died))
        }

        #[doc = concat!("Takes ", $what, " if it is free.")]
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn try_acquire(&self) -> Result<Option<Held<'_>>, ObjectError> {
            Ok(acquire(self.id, false, None)?.map(|died| Held::new(self.id, died)))
        }

        #[doc = concat!("Waits at most `timeout` for ", $what, ".")]
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Held<'_>>, ObjectError> {
            Ok(acquire(self.id, true, Some(timeout))?.map(|died| Held::new(self.id, died)))
        }
    };
}

/// A lock the host owns: Python's `multiprocessing.Lock` (kind 1), or an
/// [`RLock`] (kind 2).
pub struct Lock {
    id: u64,
    types: PhantomData<()>,
}

handle_type!(Lock, [1, 2], "lock");

/// A reentrant lock: the task that holds it may acquire it again.
pub type RLock = Lock;

impl Lock {
    acquire_methods!("the lock");
}

/// A held lock or semaphore permit: released when dropped (or with
/// [`release`](Self::release), which reports an error).
#[must_use = "the lock is released when this is dropped"]
pub struct Held<'a> {
    id: u64,
    previous_holder_died: bool,
    released: bool,
    handle: PhantomData<&'a ()>,
}

impl Held<'_> {
    fn new(id: u64, previous_holder_died: bool) -> Self {
        Held {
            id,
            previous_holder_died,
            released: false,
            handle: PhantomData,
        }
    }

    /// Whether the previous holder died (or its task ended) holding it: what
    /// it protected may be half-updated.
    pub fn previous_holder_died(&self) -> bool {
        self.previous_holder_died
    }

    /// Releases it now.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if the host refuses (a bounded semaphore
    /// released too often, ...).
    pub fn release(mut self) -> Result<(), ObjectError> {
        self.released = true;
        invoke(self.id, "release", ())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _: Result<(), _> = invoke(self.id, "release", ());
        }
    }
}

/// A counting semaphore the host owns: Python's `Semaphore` (kind 3) or
/// `BoundedSemaphore` (kind 4).
pub struct Semaphore {
    id: u64,
    types: PhantomData<()>,
}

handle_type!(Semaphore, [3, 4], "semaphore");

/// A semaphore whose permits never exceed their initial number.
pub type BoundedSemaphore = Semaphore;

impl Semaphore {
    acquire_methods!("a permit");

    /// The permits free now.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn value(&self) -> Result<usize, ObjectError> {
        invoke(self.id, "value", ())
    }
}

/// A flag the host owns: Python's `multiprocessing.Event`.
pub struct Event {
    id: u64,
    types: PhantomData<()>,
}

handle_type!(Event, [5], "event");

impl Event {
    /// Sets the flag, waking every waiter.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the event.
    pub fn set(&self) -> Result<(), ObjectError> {
        invoke(self.id, "set", ())
    }

    /// Clears the flag.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn clear(&self) -> Result<(), ObjectError> {
        invoke(self.id, "clear", ())
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn is_set(&self) -> Result<bool, ObjectError> {
        invoke(self.id, "is-set", ())
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn wait(&self) -> Result<(), ObjectError> {
        invoke::<bool>(self.id, "wait", (None::<u64>,)).map(drop)
    }

    /// Waits at most `timeout` for the flag; whether it is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ObjectError> {
        invoke(self.id, "wait", (Some(millis(timeout)),))
    }
}

/// A queue the host owns: Python's `multiprocessing.Queue` (kind 6; a
/// [`JoinableQueue`] handle is one too). Items are `T`s, as MessagePack.
pub struct Queue<T> {
    id: u64,
    types: PhantomData<fn(T) -> T>,
}

handle_type!(Queue, [6, 7], "queue", T);

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_with(
        &self,
        item: &T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), ObjectError> {
        invoke(self.id, "put", (packed(item)?, block, timeout.map(millis)))
    }

    fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T, ObjectError> {
        let item: ByteBuf = invoke(self.id, "get", (block, timeout.map(millis)))?;
        unpacked(&item)
    }

    /// Puts `item`, waiting for room.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Closed`] if the queue is closed.
    pub fn put(&self, item: &T) -> Result<(), ObjectError> {
        self.put_with(item, true, None)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`ObjectError::TimedOut`] if the queue stayed full (Python's
    /// `queue.Full`), as [`put`](Self::put) else.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), ObjectError> {
        self.put_with(item, true, Some(timeout))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// [`ObjectError::TimedOut`] if the queue is full.
    pub fn put_nowait(&self, item: &T) -> Result<(), ObjectError> {
        self.put_with(item, false, None)
    }

    /// Takes the first item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Closed`] once the queue is closed and empty.
    pub fn get(&self) -> Result<T, ObjectError> {
        self.get_with(true, None)
    }

    /// Takes the first item, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ObjectError::TimedOut`] if none came (Python's `queue.Empty`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, ObjectError> {
        self.get_with(true, Some(timeout))
    }

    /// Takes the first item if there is one.
    ///
    /// # Errors
    ///
    /// [`ObjectError::TimedOut`] if the queue is empty.
    pub fn get_nowait(&self) -> Result<T, ObjectError> {
        self.get_with(false, None)
    }

    /// How many items it holds now.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the queue.
    pub fn qsize(&self) -> Result<usize, ObjectError> {
        invoke(self.id, "qsize", ())
    }

    /// Whether it is empty now.
    ///
    /// # Errors
    ///
    /// As [`qsize`](Self::qsize).
    pub fn empty(&self) -> Result<bool, ObjectError> {
        invoke(self.id, "empty", ())
    }

    /// Whether a put would wait now.
    ///
    /// # Errors
    ///
    /// As [`qsize`](Self::qsize).
    pub fn full(&self) -> Result<bool, ObjectError> {
        invoke(self.id, "full", ())
    }

    /// Closes the queue to puts.
    ///
    /// # Errors
    ///
    /// As [`qsize`](Self::qsize).
    pub fn close(&self) -> Result<(), ObjectError> {
        invoke(self.id, "close", ())
    }
}

/// A queue whose consumers mark items done: Python's `JoinableQueue`. It
/// is a [`Queue`] too.
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = handle(deserializer, &[7], "joinable queue")?;
        Ok(JoinableQueue {
            queue: Queue {
                id,
                types: PhantomData,
            },
        })
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("id", &self.queue.id)
            .finish()
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if called more times than items were taken.
    pub fn task_done(&self) -> Result<(), ObjectError> {
        invoke(self.queue.id, "task-done", ())
    }

    /// Waits until every item put was taken and marked processed.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the queue.
    pub fn join(&self) -> Result<(), ObjectError> {
        invoke::<bool>(self.queue.id, "join", (None::<u64>,)).map(drop)
    }

    /// Waits at most `timeout` for [`join`](Self::join); whether every item
    /// was processed.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ObjectError> {
        invoke(self.queue.id, "join", (Some(millis(timeout)),))
    }
}

/// One end of a pipe the host owns: Python's `Connection`. Messages are any
/// serde values (as MessagePack) or raw bytes.
pub struct Connection {
    id: u64,
    types: PhantomData<()>,
}

handle_type!(Connection, [8], "pipe connection");

impl Connection {
    /// Sends `message`.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Closed`] if the other end is closed (Python's
    /// `BrokenPipeError`); [`ObjectError::Refused`] if this end only
    /// receives.
    pub fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), ObjectError> {
        self.send_bytes(&packed(message)?)
    }

    /// Sends `bytes` as one message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), ObjectError> {
        invoke(self.id, "send", (serde_bytes::Bytes::new(bytes),))
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Closed`] once the other end is closed and every
    /// message was read (Python's `EOFError`: see
    /// [`ObjectError::is_eof`]); [`ObjectError::Data`] if the message is not
    /// a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, ObjectError> {
        unpacked(&self.recv_bytes()?)
    }

    /// Receives the next message as bytes.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, ObjectError> {
        invoke::<ByteBuf>(self.id, "recv", ()).map(ByteBuf::into_vec)
    }

    /// Whether a message (or end-of-file) can be received, waiting at most
    /// `timeout` (`None`: without end).
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the connection.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, ObjectError> {
        invoke(self.id, "poll", (timeout.map(millis),))
    }

    /// Closes this task's hold on the end; the task may not use it again.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if it was closed already.
    pub fn close(self) -> Result<(), ObjectError> {
        invoke(self.id, "close", ())
    }
}

/// A dict the host owns: a `Manager().dict()`.
pub struct Dict<K, V> {
    id: u64,
    types: PhantomData<Entries<K, V>>,
}

/// What a dict's type parameters mark: it takes and gives keys and values.
type Entries<K, V> = fn(K, V) -> (K, V);

handle_type!(Dict, [9], "dict", K, V);

impl<K, V> Dict<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The value of `key`, if any.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the dict;
    /// [`ObjectError::Data`] if the value is not a `V`.
    pub fn get(&self, key: &K) -> Result<Option<V>, ObjectError> {
        let value: Option<ByteBuf> = invoke(self.id, "get", (packed(key)?,))?;
        value.map(|bytes| unpacked(&bytes)).transpose()
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), or the dict over its limit.
    pub fn set(&self, key: &K, value: &V) -> Result<(), ObjectError> {
        invoke(self.id, "set", (packed(key)?, packed(value)?))
    }

    /// Removes `key`; whether it was there.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn delete(&self, key: &K) -> Result<bool, ObjectError> {
        invoke(self.id, "delete", (packed(key)?,))
    }

    /// How many entries it holds.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn len(&self) -> Result<usize, ObjectError> {
        invoke(self.id, "len", ())
    }

    /// Whether it is empty.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool, ObjectError> {
        Ok(self.len()? == 0)
    }

    /// Its entries now, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn items(&self) -> Result<Vec<(K, V)>, ObjectError> {
        let items: Vec<(ByteBuf, ByteBuf)> = invoke(self.id, "items", ())?;
        items
            .iter()
            .map(|(k, v)| Ok((unpacked(k)?, unpacked(v)?)))
            .collect()
    }

    /// Sets every entry of `entries`.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn update<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) -> Result<(), ObjectError>
    where
        K: 'a,
        V: 'a,
    {
        let entries = entries
            .into_iter()
            .map(|(k, v)| Ok((packed(k)?, packed(v)?)))
            .collect::<Result<Vec<_>, ObjectError>>()?;
        invoke(self.id, "update", (entries,))
    }

    /// Adds `delta` to the number at `key` in one step, so that no other
    /// task's update comes in between (the correct spelling of Python's
    /// racy `d['count'] -= 1`); the new number.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if there is no such key or it holds no
    /// number.
    pub fn add<N: Serialize + DeserializeOwned>(
        &self,
        key: &K,
        delta: N,
    ) -> Result<N, ObjectError> {
        invoke(self.id, "add", (packed(key)?, packed(&delta)?))
    }

    /// Sets `key` to `new` if it holds `expected` now (`None`: if it is
    /// absent); whether it did.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<&V>,
        new: &V,
    ) -> Result<bool, ObjectError> {
        let expected = expected.map(packed).transpose()?;
        invoke(
            self.id,
            "compare-and-set",
            (packed(key)?, expected, packed(new)?),
        )
    }
}

/// A list the host owns: a `Manager().list()`.
pub struct List<T> {
    id: u64,
    types: PhantomData<fn(T) -> T>,
}

handle_type!(List, [10], "list", T);

impl<T: Serialize + DeserializeOwned> List<T> {
    /// Appends `item`.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the list, or the
    /// list is over its limit.
    pub fn append(&self, item: &T) -> Result<(), ObjectError> {
        invoke(self.id, "append", (packed(item)?,))
    }

    /// The item at `index` (negative: from the end).
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if out of range.
    pub fn get(&self, index: i64) -> Result<T, ObjectError> {
        let item: ByteBuf = invoke(self.id, "get", (index,))?;
        unpacked(&item)
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn set(&self, index: i64, item: &T) -> Result<(), ObjectError> {
        invoke(self.id, "set", (index, packed(item)?))
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if the list is empty.
    pub fn pop(&self) -> Result<T, ObjectError> {
        let item: ByteBuf = invoke(self.id, "pop", ())?;
        unpacked(&item)
    }

    /// How many items it holds.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    pub fn len(&self) -> Result<usize, ObjectError> {
        invoke(self.id, "len", ())
    }

    /// Whether it is empty.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool, ObjectError> {
        Ok(self.len()? == 0)
    }

    /// Its items now.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    pub fn items(&self) -> Result<Vec<T>, ObjectError> {
        let items: Vec<ByteBuf> = invoke(self.id, "items", ())?;
        items.iter().map(|item| unpacked(item)).collect()
    }
}

/// One value the host owns: Python's `Value`.
pub struct Value<T> {
    id: u64,
    types: PhantomData<fn(T) -> T>,
}

handle_type!(Value, [11], "value", T);

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// The value now.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if this task may not use the value.
    pub fn get(&self) -> Result<T, ObjectError> {
        let value: ByteBuf = invoke(self.id, "get", ())?;
        unpacked(&value)
    }

    /// Sets the value.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn set(&self, value: &T) -> Result<(), ObjectError> {
        invoke(self.id, "set", (packed(value)?,))
    }

    /// Adds `delta` to the number in one step; the new number.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Refused`] if it is not a number.
    pub fn add(&self, delta: T) -> Result<T, ObjectError> {
        invoke(self.id, "add", (packed(&delta)?,))
    }

    /// Sets the value to `new` if it is `expected` now; whether it did.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn compare_and_set(&self, expected: &T, new: &T) -> Result<bool, ObjectError> {
        invoke(
            self.id,
            "compare-and-set",
            (packed(expected)?, packed(new)?),
        )
    }
}
