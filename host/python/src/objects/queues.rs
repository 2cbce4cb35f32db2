//! `Queue`, `JoinableQueue` and `Pipe`'s `Connection`s: the host's
//! (`wasmpool::Queue`, `wasmpool::Connection`) with Python's methods and
//! exceptions (`queue.Empty`, `queue.Full`, `EOFError`). Items are values
//! (as a task's arguments, without shared objects); a tuple stays a tuple.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rmpv::Value;
use wasmpool::{QueueError, RecvError};

use crate::values::{to_item, to_python};
use crate::wait::waiting;

/// Python's exception `name` of the module `queue` (`Empty`, `Full`).
fn queue_exception(py: Python<'_>, name: &str) -> PyErr {
    match py
        .import("queue")
        .and_then(|queue| queue.getattr(name))
        .and_then(|class| class.call0())
    {
        Ok(exception) => PyErr::from_value(exception),
        Err(err) => err,
    }
}

/// A queue's failure other than finding it empty or full.
fn queue_failure(err: QueueError) -> PyErr {
    match err {
        QueueError::Closed => PyValueError::new_err("Queue is closed"),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A queue's bound, from Python's `maxsize` (0 or less: none).
fn bound(maxsize: i64) -> Option<usize> {
    usize::try_from(maxsize).ok().filter(|&maxsize| maxsize > 0)
}

/// The methods of `Queue` and `JoinableQueue`, over `self.inner`.
macro_rules! queue_methods {
    ($type:ident) => {
        #[pymethods]
        impl $type {
            /// Puts `obj` in, waiting for room as `block` and `timeout`
            /// (seconds) say; `queue.Full` if none came.
            #[pyo3(signature = (obj, block=true, timeout=None))]
            fn put(
                &self,
                py: Python<'_>,
                obj: &Bound<'_, PyAny>,
                block: bool,
                timeout: Option<f64>,
            ) -> PyResult<()> {
                let item = to_item(obj, "the item")?;
                let inner = &self.inner;
                let put = waiting(py, block, timeout, |slice: Option<Duration>| {
                    let put = match slice {
                        Some(slice) => inner.put_timeout(&item, slice),
                        None => inner.put_nowait(&item),
                    };
                    match put {
                        Err(QueueError::Full) => None,
                        done => Some(done),
                    }
                })?;
                match put {
                    None => Err(queue_exception(py, "Full")),
                    Some(done) => done.map_err(queue_failure),
                }
            }

            /// Puts `obj` in if there is room, else `queue.Full`.
            fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
                self.put(py, obj, false, None)
            }

            /// Takes the next item, waiting as `block` and `timeout`
            /// (seconds) say; `queue.Empty` if none came.
            #[pyo3(signature = (block=true, timeout=None))]
            fn get(
                &self,
                py: Python<'_>,
                block: bool,
                timeout: Option<f64>,
            ) -> PyResult<Py<PyAny>> {
                let inner = &self.inner;
                let got = waiting(py, block, timeout, |slice: Option<Duration>| {
                    let got = match slice {
                        Some(slice) => inner.get_timeout(slice),
                        None => inner.get_nowait(),
                    };
                    match got {
                        Err(QueueError::Empty) => None,
                        done => Some(done),
                    }
                })?;
                match got {
                    None => Err(queue_exception(py, "Empty")),
                    Some(Err(QueueError::Closed)) => Err(queue_exception(py, "Empty")),
                    Some(done) => to_python(py, &done.map_err(queue_failure)?),
                }
            }

            /// Takes the next item if there is one, else `queue.Empty`.
            fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                self.get(py, false, None)
            }

            /// How many items it holds now.
            fn qsize(&self) -> usize {
                self.inner.qsize()
            }

            /// Whether it holds no item now.
            fn empty(&self) -> bool {
                self.inner.empty()
            }

            /// Whether it holds as many items as it may now.
            fn full(&self) -> bool {
                self.inner.full()
            }

            /// Takes no more items from this program; those in it can still
            /// be taken.
            fn close(&self) {
                self.inner.close();
            }

            /// Returns at once: the queue has no feeder thread to wait for
            /// (an item is in the queue when `put` returns).
            fn join_thread(&self) {}

            /// Does nothing, as there is no feeder thread.
            fn cancel_join_thread(&self) {}
        }
    };
}

/// A queue shared by the program and its tasks: `multiprocessing.Queue`.
#[pyclass(module = "wasmpool._native", name = "Queue", frozen, subclass)]
pub(crate) struct Queue {
    pub(crate) inner: wasmpool::Queue<Value>,
}

#[pymethods]
impl Queue {
    /// A queue of at most `maxsize` items (0 or less: no bound).
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: i64) -> Self {
        Queue {
            inner: match bound(maxsize) {
                Some(maxsize) => wasmpool::Queue::bounded(maxsize),
                None => wasmpool::Queue::new(),
            },
        }
    }
}

queue_methods!(Queue);

/// A queue whose consumers say when each item is done, so that a producer
/// can wait for all of them: `multiprocessing.JoinableQueue`.
#[pyclass(module = "wasmpool._native", name = "JoinableQueue", frozen, subclass)]
pub(crate) struct JoinableQueue {
    pub(crate) inner: wasmpool::JoinableQueue<Value>,
}

#[pymethods]
impl JoinableQueue {
    /// A queue of at most `maxsize` items (0 or less: no bound).
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: i64) -> Self {
        JoinableQueue {
            inner: match bound(maxsize) {
                Some(maxsize) => wasmpool::JoinableQueue::bounded(maxsize),
                None => wasmpool::JoinableQueue::new(),
            },
        }
    }

    /// An item taken is done; `ValueError` if called more times than
    /// items were put.
    fn task_done(&self) -> PyResult<()> {
        self.inner
            .task_done()
            .map_err(|_| PyValueError::new_err("task_done() called too many times"))
    }

    /// Waits until every item put is done.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        waiting(py, true, None, |slice: Option<Duration>| {
            inner
                .join_timeout(slice.unwrap_or(Duration::ZERO))
                .then_some(())
        })?;
        Ok(())
    }
}

queue_methods!(JoinableQueue);

/// One end of a pipe: `multiprocessing.connection.Connection`.
#[pyclass(module = "wasmpool._native", name = "Connection", frozen, subclass)]
pub(crate) struct Connection {
    end: Mutex<Option<Arc<wasmpool::Connection>>>,
}

impl Connection {
    /// The end, unless this handle was closed.
    pub(crate) fn end(&self) -> PyResult<Arc<wasmpool::Connection>> {
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PyOSError::new_err("handle is closed"))
    }

    /// Receives the next message's bytes, waiting for one.
    fn recv_raw(&self, py: Python<'_>) -> PyResult<Vec<u8>> {
        let end = self.end()?;
        let got = waiting(py, true, None, |slice: Option<Duration>| {
            match end.recv_bytes_timeout(slice.unwrap_or(Duration::ZERO)) {
                Err(RecvError::TimedOut) => None,
                done => Some(done),
            }
        })?;
        // A wait without end ends with a message, or end-of-file.
        match got.unwrap_or(Err(RecvError::Eof)) {
            Ok(bytes) => Ok(bytes),
            Err(RecvError::Eof) => Err(PyEOFError::new_err("")),
            Err(err) => Err(PyValueError::new_err(err.to_string())),
        }
    }
}

#[pymethods]
impl Connection {
    /// Sends `obj` (a value, as a task's argument) to the other end.
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let message = to_item(obj, "the message")?;
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &message).expect("writes to memory");
        self.send_bytes(py, &bytes)
    }

    /// Sends `buf` as one message.
    fn send_bytes(&self, py: Python<'_>, buf: &[u8]) -> PyResult<()> {
        let end = self.end()?;
        py.detach(|| end.send_bytes(buf)).map_err(|err| {
            if err.message().starts_with("closed") {
                PyBrokenPipeError::new_err(err.message().to_string())
            } else {
                PyValueError::new_err(err.message().to_string())
            }
        })
    }

    /// Receives the next message, waiting for one; `EOFError` once the
    /// other end is closed and every message was read.
    fn recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let bytes = self.recv_raw(py)?;
        let value = rmpv::decode::read_value(&mut bytes.as_slice())
            .map_err(|err| PyValueError::new_err(format!("a message does not decode: {err}")))?;
        to_python(py, &value)
    }

    /// Receives the next message as bytes.
    fn recv_bytes(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let bytes = self.recv_raw(py)?;
        Ok(PyBytes::new(py, &bytes).unbind())
    }

    /// Whether a message (or end-of-file) can be received, waiting at most
    /// `timeout` seconds (`None`: until one can).
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let end = self.end()?;
        let ready = waiting(py, true, timeout, |slice: Option<Duration>| {
            end.poll(Some(slice.unwrap_or(Duration::ZERO)))
                .then_some(())
        })?;
        Ok(ready.is_some())
    }

    /// Closes this end's handle: once no task holds it either, the other
    /// end reads end-of-file.
    fn close(&self) {
        let closed = self
            .end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(closed);
    }

    /// Whether this handle is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

/// A pipe's two ends: `multiprocessing.Pipe(duplex)`. With `duplex` false,
/// the first only receives and the second only sends.
#[pyfunction]
#[pyo3(signature = (duplex=true))]
pub(crate) fn pipe(duplex: bool) -> (Connection, Connection) {
    let (first, second) = wasmpool::Pipe::new(duplex);
    let end = |connection| Connection {
        end: Mutex::new(Some(Arc::new(connection))),
    };
    (end(first), end(second))
}
