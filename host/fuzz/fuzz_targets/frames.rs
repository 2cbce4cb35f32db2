//! The IPC frame decoder on arbitrary bytes: never panics, never allocates
//! from a length it was not allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small limit, so that lengths beyond it are refused, not allocated.
    wasmpool::internals::decode_frames(data, 1 << 16);
});
