//! Entry points for the fuzz targets in `host/fuzz/`, behind the `fuzzing`
//! feature: the pieces that take untrusted bytes.

use crate::engine::{self, Role};
use crate::ipc::FrameReader;
use crate::protocol::{EngineSettings, FromWorker, ToWorker};

/// Decodes frames from `bytes` as a pool reads a worker's answers and as a
/// worker reads its pool's requests, until the bytes run out or do not
/// decode. Must never panic, and never allocate more than `limit` for a
/// frame whatever its header claims.
pub fn decode_frames(bytes: &[u8], limit: usize) {
    let mut from_worker = FrameReader::new(bytes, limit);
    while let Ok(Some(_)) = from_worker.read::<FromWorker>() {}
    let mut to_worker = FrameReader::new(bytes, limit);
    while let Ok(Some(_)) = to_worker.read::<ToWorker>() {}
}

/// Runs the module loader on `bytes`: the checks of the pool, compiling,
/// and checking the result against the wasmpool world (without running
/// it). Returns whether the module was accepted; must never panic.
pub fn load_module(bytes: &[u8]) -> bool {
    let settings = EngineSettings {
        max_memory: 1 << 30,
        epochs: false,
        fuel: false,
    };
    let Ok(engine) = engine::engine(&settings, Role::Compile) else {
        return false;
    };
    crate::module::validate(&engine, bytes, "the input").is_ok()
}
