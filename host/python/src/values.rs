//! Python values to and from MessagePack, as tasks take and give them:
//! `None`, `bool`, `int` (64 bits), `float`, `str`, `bytes`, `list`,
//! `tuple`, `dict`, and the shared objects of [`objects`](crate::objects)
//! (as handles, which grant the task that gets them their use). Anything
//! else is a `TypeError` naming what it was given for, before anything
//! runs.
//!
//! A tuple goes as an array to a task of another language; to a Python
//! function called by name (see `wasmpool_guest._runtime.CALL`) it goes as
//! an ext 88 holding its items, and comes back a tuple, as Python sent it.

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use rmpv::Value;
use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};
use serde_bytes::ByteBuf;

use crate::objects::Shared;

/// How deep a value may nest: past it, a `TypeError` rather than a stack
/// overflow (a list that holds itself, say).
const MOST_DEPTH: usize = 512;

/// The MessagePack ext type of a tuple kept a tuple (`'X'`).
const TUPLE_EXT: i8 = 88;

/// A value handed to a task, as Python gave it.
#[derive(Clone)]
pub(crate) enum Arg {
    /// A value with no parts: nil, bool, number, string, bytes.
    Plain(Value),
    Array(Vec<Arg>),
    /// A tuple kept a tuple: an ext 88 holding its items as an array.
    Tuple(Vec<Arg>),
    Map(Vec<(Arg, Arg)>),
    /// A shared object, as its handle.
    Object(Shared),
}

impl Arg {
    /// The value, for what holds values rather than objects (a queue's
    /// item, a dict's value): `Err` names the object found in it.
    pub(crate) fn into_value(self) -> Result<Value, &'static str> {
        Ok(match self {
            Arg::Plain(value) => value,
            Arg::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(Arg::into_value)
                    .collect::<Result<_, _>>()?,
            ),
            Arg::Tuple(items) => {
                let items = Arg::Array(items).into_value()?;
                let mut bytes = Vec::new();
                rmpv::encode::write_value(&mut bytes, &items).expect("writes to memory");
                Value::Ext(TUPLE_EXT, bytes)
            }
            Arg::Map(pairs) => Value::Map(
                pairs
                    .into_iter()
                    .map(|(key, value)| {
                        Ok::<_, &'static str>((key.into_value()?, value.into_value()?))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Arg::Object(shared) => return Err(shared.kind()),
        })
    }
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Plain(value) => value.serialize(serializer),
            Arg::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Arg::Tuple(items) => {
                // Encoded here, on the thread that encodes the call: a shared
                // object inside is collected with the rest.
                let bytes = rmp_serde::to_vec(&ArgSlice(items)).map_err(S::Error::custom)?;
                serializer.serialize_newtype_struct(
                    rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                    &(TUPLE_EXT, ByteBuf::from(bytes)),
                )
            }
            Arg::Map(pairs) => {
                serializer.collect_map(pairs.iter().map(|(key, value)| (key, value)))
            }
            Arg::Object(shared) => shared.serialize(serializer),
        }
    }
}

/// Items serialized as an array.
struct ArgSlice<'a>(&'a [Arg]);

impl Serialize for ArgSlice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0)
    }
}

/// `value` as a task's argument; `what` names it in an error (`"argument
/// 2"`); `tuples`: whether a tuple stays a tuple (for a Python function).
pub(crate) fn to_arg(value: &Bound<'_, PyAny>, what: &str, tuples: bool) -> PyResult<Arg> {
    convert(value, what, tuples, 0)
}

fn convert(value: &Bound<'_, PyAny>, what: &str, tuples: bool, depth: usize) -> PyResult<Arg> {
    if depth > MOST_DEPTH {
        return Err(PyTypeError::new_err(format!(
            "{what} nests deeper than {MOST_DEPTH} levels (does it hold itself?)"
        )));
    }
    if value.is_none() {
        return Ok(Arg::Plain(Value::Nil));
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Arg::Plain(Value::Boolean(flag.is_true())));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(int) = value.extract::<i64>() {
            return Ok(Arg::Plain(Value::from(int)));
        }
        if let Ok(int) = value.extract::<u64>() {
            return Ok(Arg::Plain(Value::from(int)));
        }
        return Err(PyOverflowError::new_err(format!(
            "{what}: the int {} does not fit in 64 bits, which is what a task can take",
            value.str()?
        )));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        return Ok(Arg::Plain(Value::F64(float.value())));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Arg::Plain(Value::from(text.to_cow()?.as_ref())));
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Arg::Plain(Value::Binary(bytes.as_bytes().to_vec())));
    }
    if let Ok(bytes) = value.cast::<PyByteArray>() {
        return Ok(Arg::Plain(Value::Binary(bytes.to_vec())));
    }
    let tuple = value.is_instance_of::<PyTuple>();
    if tuple || value.is_instance_of::<PyList>() {
        let items = value
            .try_iter()?
            .map(|item| convert(&item?, what, tuples, depth + 1))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(if tuple && tuples {
            Arg::Tuple(items)
        } else {
            Arg::Array(items)
        });
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return dict
            .iter()
            .map(|(key, item)| {
                Ok((
                    convert(&key, what, tuples, depth + 1)?,
                    convert(&item, what, tuples, depth + 1)?,
                ))
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Arg::Map);
    }
    if let Some(shared) = Shared::of(value)? {
        return Ok(Arg::Object(shared));
    }
    Err(PyTypeError::new_err(format!(
        "{what} is of type `{}`, which a task cannot take: give None, bool, int, float, \
         str, bytes, list, tuple, dict or a shared object (Lock, Queue, ...)",
        value.get_type().qualname()?
    )))
}

/// `value` as an item a shared object holds (a queue's, a pipe's message, a
/// managed dict's key or value): a value, tuples kept, no shared object.
pub(crate) fn to_item(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    to_arg(value, what, true)?.into_value().map_err(|kind| {
        PyTypeError::new_err(format!(
            "{what} holds a {kind}, which only a task's arguments can carry: hand it to the \
             task that uses it"
        ))
    })
}

/// The Python value of `value`.
pub(crate) fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Nil => py.None(),
        Value::Boolean(flag) => PyBool::new(py, *flag).to_owned().into_any().unbind(),
        Value::Integer(int) => match int.as_i64() {
            Some(int) => int.into_pyobject(py)?.into_any().unbind(),
            None => int
                .as_u64()
                .unwrap_or(u64::MAX)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::F32(float) => f64::from(*float).into_pyobject(py)?.into_any().unbind(),
        Value::F64(float) => float.into_pyobject(py)?.into_any().unbind(),
        Value::String(text) => match text.as_str() {
            Some(text) => PyString::new(py, text).into_any().unbind(),
            // Not UTF-8: its bytes, rather than nothing.
            None => PyBytes::new(py, text.as_bytes()).into_any().unbind(),
        },
        Value::Ext(TUPLE_EXT, bytes) => match rmpv::decode::read_value(&mut bytes.as_slice()) {
            Ok(Value::Array(items)) => {
                let items = items
                    .iter()
                    .map(|item| to_python(py, item))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, items)?.into_any().unbind()
            }
            _ => PyBytes::new(py, bytes).into_any().unbind(),
        },
        Value::Binary(bytes) | Value::Ext(_, bytes) => PyBytes::new(py, bytes).into_any().unbind(),
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|item| to_python(py, item))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (key, item) in pairs {
                let key = to_python(py, key)?;
                // A list cannot be a dict's key: as a tuple it can.
                let key = match key.bind(py).cast::<PyList>() {
                    Ok(list) => list.to_tuple().into_any().unbind(),
                    Err(_) => key,
                };
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}
