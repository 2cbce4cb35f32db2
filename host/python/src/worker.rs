//! The worker program the package ships, embedded in the extension: written
//! out once, under its hash, to a directory only this user can write, and
//! run as every pool's workers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `wasmpool-worker`, as `build.rs` built it.
static WORKER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasmpool-worker"));

/// Where the worker program is written out, once per process.
static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of the worker program, written out on first use under
/// `cache/bin/` (`cache` is the pool's cache directory).
pub(crate) fn program(cache: &Path) -> Result<PathBuf, String> {
    PROGRAM.get_or_init(|| write_out(cache)).clone()
}

fn write_out(cache: &Path) -> Result<PathBuf, String> {
    let name = env!("WASMPOOL_WORKER_NAME");
    let dir = cache.join("bin");
    let path = dir.join(name);
    let failed = |what: &str, err: std::io::Error| {
        format!(
            "cannot write the worker program to {} ({what}): {err}",
            dir.display()
        )
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|err| failed("making the directory", err))?;
    if fs::metadata(&path).is_ok_and(|meta| meta.len() == WORKER.len() as u64) {
        return Ok(path);
    }
    // Written whole under another name, then renamed: a worker never runs
    // from a half-written file.
    let partial = dir.join(format!(".{name}.{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(WORKER)?;
            file.sync_all()
        })
        .map_err(|err| failed("writing", err))?;
    fs::rename(&partial, &path).map_err(|err| failed("renaming", err))?;
    Ok(path)
}
