//! The module loader on arbitrary bytes: refuses what is not a wasmpool task
//! module with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wasmpool::internals::load_module(data);
});
