//! The native module of the `wasmpool` Python package (`wasmpool._native`):
//! a wasmpool pool for the Python layer in `python/wasmpool/`, which gives
//! it `multiprocessing`'s names.
//!
//! - [`pool`]: `Pool` and `AsyncResult`;
//! - [`values`]: Python values to and from MessagePack;
//! - [`errors`]: wasmpool errors as Python exceptions;
//! - [`interpreter`]: the pool's threads calling into Python, until exit;
//! - [`worker`]: the worker program the package ships.

mod errors;
mod interpreter;
mod pool;
mod values;
mod worker;

use std::path::PathBuf;

use pyo3::prelude::*;

/// Where wasmpool keeps what it builds and compiles, as a pool does unless
/// told.
#[pyfunction]
fn cache_dir() -> PathBuf {
    wasmpool::default_cache_dir()
}

/// The native module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<pool::NativePool>()?;
    module.add_class::<pool::NativeResult>()?;
    module.add_function(wrap_pyfunction!(cache_dir, module)?)?;
    module.add_function(wrap_pyfunction!(interpreter::shutdown, module)?)?;
    Ok(())
}
