//! The native module of the `wasmpool` Python package (`wasmpool._native`):
//! a wasmpool pool for the Python layer in `python/wasmpool/`, which gives
//! it `multiprocessing`'s names.
//!
//! - [`pool`]: `Pool` and `AsyncResult`;
//! - [`process`]: `Process`, one call in a worker process of its own;
//! - [`objects`]: the shared objects (`Lock`, `Queue`, `Pipe`, a manager's
//!   `dict`, ...);
//! - [`values`]: Python values to and from MessagePack;
//! - [`wait`]: blocking calls that release the interpreter and heed Ctrl-C;
//! - [`errors`]: wasmpool errors as Python exceptions;
//! - [`interpreter`]: the pool's threads calling into Python, until exit;
//! - [`worker`]: the worker program the package ships.

mod errors;
mod interpreter;
mod objects;
mod pool;
mod process;
mod values;
mod wait;
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
    module.add_class::<process::NativeProcess>()?;
    objects::add_to(module)?;
    module.add_function(wrap_pyfunction!(cache_dir, module)?)?;
    module.add_function(wrap_pyfunction!(interpreter::shutdown, module)?)?;
    module.add_function(wrap_pyfunction!(process::prepare, module)?)?;
    Ok(())
}
