//! The linker every task module is instantiated with, and the check that
//! a module fits it.

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::error::{Error, ErrorKind};

use super::bindings;
use super::bindings::TaskModulePre;
use super::imports::{HostState, finish};

/// The linker every task module is instantiated with: WASI 0.2 and the
/// wasmpool imports (`context`, `host`, `objects` and `outcomes`).
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::wasmpool::task::context::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    bindings::wasmpool::task::host::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    bindings::wasmpool::task::objects::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    // `finish` needs the store itself, to restart the clock and the fuel.
    linker
        .instance("wasmpool:task/outcomes@0.2.0")?
        .func_wrap("finish", finish)?;
    Ok(linker)
}

/// Checks that `component` implements the wasmpool world, without running it.
pub(crate) fn check(engine: &Engine, component: &Component) -> Result<(), Error> {
    let linker = linker(engine).map_err(|err| Error::new(ErrorKind::Config, format!("{err:#}")))?;
    let pre = linker.instantiate_pre(component).map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("the module needs imports wasmpool does not provide: {err:#}"),
        )
    })?;
    TaskModulePre::new(pre).map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("the module does not implement the wasmpool task-module world: {err:#}"),
        )
    })?;
    Ok(())
}
