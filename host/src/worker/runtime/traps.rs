//! What a trap becomes: the error of the task it stopped, with its code,
//! message and wasm backtrace, or the limit it hit.

use wasmtime::{Trap, WasmBacktrace};

use crate::channel::Limits;
use crate::error::{Error, ErrorKind, TrapDetails};

use super::limits::MemoryLimitExceeded;

/// A short, stable name for a trap code.
fn trap_code(trap: Trap) -> &'static str {
    match trap {
        Trap::UnreachableCodeReached => "unreachable",
        Trap::StackOverflow => "stack overflow",
        Trap::MemoryOutOfBounds => "out-of-bounds memory access",
        Trap::HeapMisaligned => "misaligned memory access",
        Trap::TableOutOfBounds => "out-of-bounds table access",
        Trap::IndirectCallToNull => "indirect call to null",
        Trap::BadSignature => "indirect call type mismatch",
        Trap::IntegerOverflow => "integer overflow",
        Trap::IntegerDivisionByZero => "integer division by zero",
        Trap::BadConversionToInteger => "invalid conversion to integer",
        Trap::Interrupt => "interrupt",
        Trap::OutOfFuel => "out of fuel",
        Trap::NullReference => "null reference",
        Trap::AllocationTooLarge => "allocation too large",
        _ => "other",
    }
}

/// Turns a failed guest call into the error of the task that was running.
pub(super) fn trap_error(err: wasmtime::Error, limits: &Limits) -> Error {
    if let Some(exceeded) = err.downcast_ref::<MemoryLimitExceeded>() {
        return Error::new(ErrorKind::MemoryLimit, exceeded.to_string());
    }
    let trap = err.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        let fuel = limits.fuel.unwrap_or_default();
        return Error::new(
            ErrorKind::OutOfFuel,
            format!("the task used up its fuel budget of {fuel}"),
        );
    }
    let backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .map(|trace| {
            trace
                .frames()
                .iter()
                .map(|frame| match frame.func_name() {
                    Some(name) => name.to_string(),
                    None => format!(
                        "{}!<wasm function {}>",
                        frame.module().name().unwrap_or("<module>"),
                        frame.func_index()
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    let message = match trap {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    Error::trap(
        message,
        TrapDetails {
            code: trap.map(|trap| trap_code(trap).to_string()),
            backtrace,
        },
    )
}
