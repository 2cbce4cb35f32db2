//! A `Manager`'s `dict`, `list` and `Value`: data the host holds
//! (`wasmpool::Dict`, ...), which tasks reach through handles, with the
//! methods of `multiprocessing`'s proxies. Each operation is atomic on its
//! own; a read then a write (`d[k] += 1`) is not, as with CPython's proxies.

use pyo3::exceptions::{PyIndexError, PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rmpv::Value;

use crate::values::{to_item, to_python};

/// A managed object's failure (an item over its size, one that does not
/// decode) as Python's `ValueError`.
fn failure(err: wasmpool::Error) -> PyErr {
    PyValueError::new_err(err.message().to_string())
}

/// A dict shared by the program and its tasks: `Manager().dict()`.
#[pyclass(module = "wasmpool._native", name = "DictProxy", frozen, subclass)]
pub(crate) struct Dict {
    pub(crate) inner: wasmpool::Dict<Value, Value>,
}

impl Dict {
    fn entries(&self) -> PyResult<Vec<(Value, Value)>> {
        self.inner.items().map_err(failure)
    }

    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
        self.inner.get(&to_item(key, "the key")?).map_err(failure)
    }
}

#[pymethods]
impl Dict {
    /// An empty dict: `Manager().dict()` makes them.
    #[new]
    fn new() -> PyResult<Self> {
        let inner = wasmpool::Manager::new()
            .dict(Vec::<(Value, Value)>::new())
            .map_err(failure)?;
        Ok(Dict { inner })
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.lookup(key)? {
            Some(value) => to_python(py, &value),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = to_item(key, "the key")?;
        let value = to_item(value, "the value")?;
        self.inner.set(&key, &value).map_err(failure)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self
            .inner
            .delete(&to_item(key, "the key")?)
            .map_err(failure)?
        {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.lookup(key)?.is_some())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.keys(py)?.bind(py).try_iter()?.into_any().unbind())
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match self.lookup(key)? {
            Some(value) => to_python(py, &value),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Removes `key` and returns its value; `default` if it has none, else
    /// `KeyError`.
    #[pyo3(signature = (key, *default))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let item = to_item(key, "the key")?;
        match self.inner.get(&item).map_err(failure)? {
            Some(value) => {
                self.inner.delete(&item).map_err(failure)?;
                to_python(py, &value)
            }
            None if !default.is_empty() => Ok(default.get_item(0)?.unbind()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// The value of `key`, set to `default` first if it has none (in one
    /// step).
    #[pyo3(signature = (key, default=None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let item = to_item(key, "the key")?;
        let default = match default {
            Some(default) => to_item(default, "the default")?,
            None => Value::Nil,
        };
        self.inner
            .compare_and_set(&item, None, &default)
            .map_err(failure)?;
        match self.inner.get(&item).map_err(failure)? {
            Some(value) => to_python(py, &value),
            None => to_python(py, &default),
        }
    }

    /// Sets each key of `other` (a mapping, or pairs) and of `kwargs`.
    #[pyo3(signature = (other=None, **kwargs))]
    fn update(
        &self,
        py: Python<'_>,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let merged = PyDict::new(py);
        if let Some(other) = other {
            merged.call_method1("update", (other,))?;
        }
        if let Some(kwargs) = kwargs {
            merged.update(kwargs.as_mapping())?;
        }
        for (key, value) in merged.iter() {
            self.__setitem__(&key, &value)?;
        }
        Ok(())
    }

    /// Removes every key.
    fn clear(&self) -> PyResult<()> {
        for (key, _) in self.entries()? {
            self.inner.delete(&key).map_err(failure)?;
        }
        Ok(())
    }

    /// Its keys, as a list.
    fn keys(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let keys = self
            .entries()?
            .iter()
            .map(|(key, _)| to_python(py, key))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, keys)?.unbind())
    }

    /// Its values, as a list.
    fn values(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let values = self
            .entries()?
            .iter()
            .map(|(_, value)| to_python(py, value))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, values)?.unbind())
    }

    /// Its `(key, value)` pairs, as a list.
    fn items(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let pairs = self
            .entries()?
            .iter()
            .map(|(key, value)| Ok((to_python(py, key)?, to_python(py, value)?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, pairs)?.unbind())
    }

    /// A plain dict of what it holds now.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in self.entries()? {
            dict.set_item(to_python(py, &key)?, to_python(py, &value)?)?;
        }
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.copy(py)?.repr()?.to_string())
    }
}

/// A list shared by the program and its tasks: `Manager().list()`.
#[pyclass(module = "wasmpool._native", name = "ListProxy", frozen, subclass)]
pub(crate) struct List {
    pub(crate) inner: wasmpool::List<Value>,
}

impl List {
    fn all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .inner
            .items()
            .map_err(failure)?
            .iter()
            .map(|item| to_python(py, item))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

#[pymethods]
impl List {
    /// An empty list: `Manager().list()` makes them.
    #[new]
    fn new() -> PyResult<Self> {
        let inner = wasmpool::Manager::new()
            .list(Vec::<Value>::new())
            .map_err(failure)?;
        Ok(List { inner })
    }

    /// Appends `item`.
    fn append(&self, item: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .append(&to_item(item, "the item")?)
            .map_err(failure)
    }

    /// Appends each item of `items`.
    fn extend(&self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in items.try_iter()? {
            self.append(&item?)?;
        }
        Ok(())
    }

    fn __getitem__(&self, py: Python<'_>, index: i64) -> PyResult<Py<PyAny>> {
        let item = self
            .inner
            .get(index)
            .map_err(|_| PyIndexError::new_err("list index out of range"))?;
        to_python(py, &item)
    }

    fn __setitem__(&self, index: i64, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let item = to_item(item, "the item")?;
        self.inner
            .set(index, &item)
            .map_err(|_| PyIndexError::new_err("list assignment index out of range"))
    }

    /// Removes the last item and returns it.
    fn pop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let item = self
            .inner
            .pop()
            .map_err(|_| PyIndexError::new_err("pop from empty list"))?;
        to_python(py, &item)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.all(py)?.try_iter()?.into_any().unbind())
    }

    fn __contains__(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.all(py)?.contains(item)
    }

    /// A plain list of what it holds now.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.all(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.all(py)?.repr()?.to_string())
    }
}

/// A value shared by the program and its tasks: `Manager().Value(typecode,
/// value)`. The typecode is kept for its repr; any value fits.
#[pyclass(module = "wasmpool._native", name = "ValueProxy", frozen, subclass)]
pub(crate) struct ManagedValue {
    pub(crate) inner: wasmpool::Value<Value>,
    typecode: String,
}

#[pymethods]
impl ManagedValue {
    /// A value holding `value`.
    #[new]
    #[pyo3(signature = (typecode, value=None))]
    fn new(typecode: &Bound<'_, PyAny>, value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let initial = match value {
            Some(value) => to_item(value, "the value")?,
            None => Value::Nil,
        };
        let inner = wasmpool::Manager::new().value(&initial).map_err(failure)?;
        Ok(ManagedValue {
            inner,
            typecode: typecode.str()?.to_string(),
        })
    }

    /// What it holds.
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner.get().map_err(failure)?)
    }

    /// Sets it to `value`.
    fn set(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .set(&to_item(value, "the value")?)
            .map_err(failure)
    }

    /// What it holds.
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py)
    }

    #[setter(value)]
    fn set_value(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set(value)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let value = self.get(py)?;
        Ok(format!(
            "Value('{}', {})",
            self.typecode,
            value.bind(py).repr()?
        ))
    }
}
