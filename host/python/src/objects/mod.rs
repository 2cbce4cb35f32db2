//! The shared objects a Python host makes and hands to its tasks (and its
//! processes), with `multiprocessing`'s names and methods: the host's
//! objects (`wasmpool::Lock`, `wasmpool::Queue`, ...), whose tasks use them
//! through handles.
//!
//! - [`sync`]: `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`;
//! - [`queues`]: `Queue`, `JoinableQueue`, and `Pipe`'s `Connection`s;
//! - [`managed`]: a `Manager`'s `dict`, `list` and `Value`.

pub(crate) mod managed;
pub(crate) mod queues;
pub(crate) mod sync;

use std::sync::Arc;

use pyo3::prelude::*;
use rmpv::Value;
use serde::{Serialize, Serializer};

/// A shared object in a task's arguments: encoded as its handle, which
/// grants the task its use.
#[derive(Clone)]
pub(crate) enum Shared {
    Lock(wasmpool::Lock),
    RLock(wasmpool::RLock),
    Semaphore(wasmpool::Semaphore),
    BoundedSemaphore(wasmpool::BoundedSemaphore),
    Event(wasmpool::Event),
    Queue(wasmpool::Queue<Value>),
    JoinableQueue(wasmpool::JoinableQueue<Value>),
    Connection(Arc<wasmpool::Connection>),
    Dict(wasmpool::Dict<Value, Value>),
    List(wasmpool::List<Value>),
    Value(wasmpool::Value<Value>),
}

impl Shared {
    /// The shared object `value` is, if it is one.
    pub(crate) fn of(value: &Bound<'_, PyAny>) -> PyResult<Option<Shared>> {
        macro_rules! try_each {
            ($($class:ty => $variant:ident),+ $(,)?) => {
                $(
                    if let Ok(object) = value.cast::<$class>() {
                        return Ok(Some(Shared::$variant(object.get().inner.clone())));
                    }
                )+
            };
        }
        try_each!(
            sync::Lock => Lock,
            sync::RLock => RLock,
            sync::Semaphore => Semaphore,
            sync::BoundedSemaphore => BoundedSemaphore,
            sync::Event => Event,
            queues::Queue => Queue,
            queues::JoinableQueue => JoinableQueue,
            managed::Dict => Dict,
            managed::List => List,
            managed::ManagedValue => Value,
        );
        if let Ok(connection) = value.cast::<queues::Connection>() {
            return connection
                .get()
                .end()
                .map(|end| Some(Shared::Connection(end)));
        }
        Ok(None)
    }

    /// What it is, in a message.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Shared::Lock(_) => "Lock",
            Shared::RLock(_) => "RLock",
            Shared::Semaphore(_) => "Semaphore",
            Shared::BoundedSemaphore(_) => "BoundedSemaphore",
            Shared::Event(_) => "Event",
            Shared::Queue(_) => "Queue",
            Shared::JoinableQueue(_) => "JoinableQueue",
            Shared::Connection(_) => "Connection",
            Shared::Dict(_) => "managed dict",
            Shared::List(_) => "managed list",
            Shared::Value(_) => "managed Value",
        }
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shared::Lock(object) => object.serialize(serializer),
            Shared::RLock(object) => object.serialize(serializer),
            Shared::Semaphore(object) => object.serialize(serializer),
            Shared::BoundedSemaphore(object) => object.serialize(serializer),
            Shared::Event(object) => object.serialize(serializer),
            Shared::Queue(object) => object.serialize(serializer),
            Shared::JoinableQueue(object) => object.serialize(serializer),
            Shared::Connection(object) => object.serialize(serializer),
            Shared::Dict(object) => object.serialize(serializer),
            Shared::List(object) => object.serialize(serializer),
            Shared::Value(object) => object.serialize(serializer),
        }
    }
}

/// Registers the classes.
pub(crate) fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<sync::Lock>()?;
    module.add_class::<sync::RLock>()?;
    module.add_class::<sync::Semaphore>()?;
    module.add_class::<sync::BoundedSemaphore>()?;
    module.add_class::<sync::Event>()?;
    module.add_class::<queues::Queue>()?;
    module.add_class::<queues::JoinableQueue>()?;
    module.add_class::<queues::Connection>()?;
    module.add_function(pyo3::wrap_pyfunction!(queues::pipe, module)?)?;
    module.add_class::<managed::Dict>()?;
    module.add_class::<managed::List>()?;
    module.add_class::<managed::ManagedValue>()?;
    Ok(())
}
