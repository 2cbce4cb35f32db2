//! Python values to and from MessagePack, as tasks take and give them:
//! `None`, `bool`, `int` (64 bits), `float`, `str`, `bytes`, `list`,
//! `tuple` (as a list), `dict`. Anything else is a `TypeError` naming what
//! it was given for, before anything runs.

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use rmpv::Value;

/// How deep a value may nest: past it, a `TypeError` rather than a stack
/// overflow (a list that holds itself, say).
const MOST_DEPTH: usize = 512;

/// `value` as MessagePack; `what` names it in an error (`"argument 2"`).
pub(crate) fn to_value(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    convert(value, what, 0)
}

fn convert(value: &Bound<'_, PyAny>, what: &str, depth: usize) -> PyResult<Value> {
    if depth > MOST_DEPTH {
        return Err(PyTypeError::new_err(format!(
            "{what} nests deeper than {MOST_DEPTH} levels (does it hold itself?)"
        )));
    }
    if value.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Boolean(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(int) = value.extract::<i64>() {
            return Ok(Value::from(int));
        }
        if let Ok(int) = value.extract::<u64>() {
            return Ok(Value::from(int));
        }
        return Err(PyOverflowError::new_err(format!(
            "{what}: the int {} does not fit in 64 bits, which is what a task can take",
            value.str()?
        )));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        return Ok(Value::F64(float.value()));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::from(text.to_cow()?.as_ref()));
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Value::Binary(bytes.as_bytes().to_vec()));
    }
    if let Ok(bytes) = value.cast::<PyByteArray>() {
        return Ok(Value::Binary(bytes.to_vec()));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .map(|item| convert(&item?, what, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return dict
            .iter()
            .map(|(key, item)| {
                Ok((
                    convert(&key, what, depth + 1)?,
                    convert(&item, what, depth + 1)?,
                ))
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Map);
    }
    Err(PyTypeError::new_err(format!(
        "{what} is of type `{}`, which a task cannot take: give None, bool, int, float, \
         str, bytes, list, tuple or dict",
        value.get_type().qualname()?
    )))
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
