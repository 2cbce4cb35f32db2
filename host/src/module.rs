//! Turning a task module into the precompiled artifact workers load: checked
//! and compiled once by the pool, cached on disk by content and engine.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, ErrorKind};
use crate::runtime;

/// The 8 bytes every WebAssembly binary starts with, after the magic number,
/// tell a core module (version 1, layer 0) from a component (layer 1).
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_LAYER: [u8; 2] = [0, 0];
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// Refuses bytes that are not a component, with a message that says what
/// they are instead.
fn check_kind(bytes: &[u8], name: &str) -> Result<(), Error> {
    let bad = |message: String| Err(Error::new(ErrorKind::BadModule, message));
    if Engine::detect_precompiled(bytes).is_some() {
        return bad(format!(
            "{name} is a precompiled wasmtime artifact; give the pool the .wasm component instead"
        ));
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return bad(format!("{name} is not a WebAssembly binary"));
    }
    match [bytes[6], bytes[7]] {
        COMPONENT_LAYER => Ok(()),
        CORE_LAYER => bad(format!(
            "{name} is a core WebAssembly module, not a component: build the guest for \
             wasm32-wasip2 (or turn the module into a component with wasm-tools)"
        )),
        layer => bad(format!("{name} has an unknown WebAssembly layer {layer:?}")),
    }
}

/// The file an artifact is cached in: named by the module's content and
/// everything about the engine that makes an artifact loadable.
fn artifact_path(cache_dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    let mut digest = Sha256::new();
    digest.update(bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    digest.update(hasher.finish().to_le_bytes());
    let hex: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    cache_dir.join(format!("{hex}.cwasm"))
}

/// Compiles `bytes` and checks the component against the wasmpool world.
pub(crate) fn validate(engine: &Engine, bytes: &[u8], name: &str) -> Result<Component, Error> {
    check_kind(bytes, name)?;
    let component = Component::new(engine, bytes).map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("{name} does not compile: {err:#}"),
        )
    })?;
    runtime::check(engine, &component)
        .map_err(|err| Error::new(err.kind(), format!("{name}: {}", err.message())))?;
    Ok(component)
}

fn io_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {err}", path.display()),
    )
}

/// Makes sure the compiled artifact of `bytes` is in `cache_dir` and returns
/// its path. Compiles only if no earlier run left it there.
pub(crate) fn prepare(
    engine: &Engine,
    bytes: &[u8],
    name: &str,
    cache_dir: &Path,
) -> Result<PathBuf, Error> {
    // An artifact is cached only after `validate` accepted its module, which
    // is where the kind of the bytes is checked.
    let path = artifact_path(cache_dir, engine, bytes);
    if path.exists() {
        // SAFETY: the cache directory is private to this user and files in it
        // are written only by this function, complete, under their content hash.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            runtime::check(engine, &component)?;
            return Ok(path);
        }
        // Unloadable (from another wasmtime, or damaged): compile again.
    }
    let component = validate(engine, bytes, name)?;
    let artifact = component.serialize().map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("cannot serialise the compiled {name}: {err:#}"),
        )
    })?;
    create_private_dir(cache_dir)?;
    // Write under a unique name, then rename: a reader never sees half a file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = cache_dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, &artifact).map_err(|err| io_error("write", &tmp, err))?;
    std::fs::rename(&tmp, &path).map_err(|err| io_error("rename into place", &path, err))?;
    Ok(path)
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| io_error("create the cache directory", dir, err))
}

/// Where artifacts are cached when the pool is not told: `$XDG_CACHE_HOME` or
/// `~/.cache`, else the temporary directory, under `wasmpool/`.
pub(crate) fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmpool")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_what_a_non_component_is() {
        let not_wasm = check_kind(b"hello world", "x").unwrap_err();
        assert!(not_wasm.message().contains("not a WebAssembly binary"));
        let core = check_kind(b"\0asm\x01\0\0\0", "x").unwrap_err();
        assert!(core.message().contains("core WebAssembly module"));
        assert_eq!(core.kind(), ErrorKind::BadModule);
        assert!(check_kind(b"\0asm\x0d\0\x01\0", "x").is_ok());
    }
}
