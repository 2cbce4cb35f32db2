//! The native module of the `wasmpool` Python package (`wasmpool._native`):
//! a wasmpool pool for the Python layer in `python/wasmpool/`, which gives
//! it `multiprocessing`'s names.
//!
//! - [`pool`]: `Pool` and `AsyncResult`;
//! - [`values`]: Python values to and from MessagePack;
//! - [`errors`]: wasmpool errors as Python exceptions;
//! - [`worker`]: the worker program the package ships.

mod errors;
mod pool;
mod values;
mod worker;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<pool::NativePool>()?;
    module.add_class::<pool::NativeResult>()?;
    Ok(())
}
