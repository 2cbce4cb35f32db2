//! Turning a task module into the precompiled artifact workers load: checked
//! and compiled once by the pool, cached on disk by content and engine (in
//! the private directory of [`crate::cache`]).

use std::fs::{File, FileType};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::cache::{self, CacheDir, FunctionCache};
use crate::channel::{ArtifactFile, EngineSettings};
use crate::engine;
use crate::error::{Error, ErrorKind};
use crate::worker::runtime;

/// The 8 bytes every WebAssembly binary starts with, after the magic number,
/// tell a core module (version 1, layer 0) from a component (layer 1).
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_LAYER: [u8; 2] = [0, 0];
const COMPONENT_LAYER: [u8; 2] = [1, 0];
/// The unit of a memory's minimum size (the engine enables no custom page
/// sizes).
const WASM_PAGE: u64 = 64 << 10;

/// The most bytes of a module a pool reads unless told otherwise
/// ([`PoolBuilder::module_limit`](crate::PoolBuilder::module_limit)), and
/// the most an agent fetches.
pub const MODULE_BYTES: u64 = 512 << 20;

/// Reads the module file at `path`: a regular file of at most `limit`
/// bytes, refused before it is read otherwise. Opened without blocking, so
/// that a FIFO with no writer is refused rather than waited on.
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let name = path.display();
    let io = |err: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read the module {name}: {err}"),
        )
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    let bad = |why: String| Err(Error::new(ErrorKind::BadModule, why));
    if !metadata.is_file() {
        return bad(format!(
            "the module {name} is not a regular file but {}",
            kind_of(metadata.file_type())
        ));
    }
    let size = metadata.len();
    let over = |size: u64| {
        bad(format!(
            "the module {name} takes {size} bytes, over the module limit of {limit} bytes \
             (PoolBuilder::module_limit, the command's --module-limit)"
        ))
    };
    if size > limit {
        return over(size);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // It may have grown since: read no more than one byte past the limit.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return over(bytes.len() as u64);
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, for a message.
fn kind_of(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

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

/// The name an artifact is cached under: the module's content and
/// everything about the engine that makes an artifact loadable.
fn artifact_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    digest.update(hasher.finish().to_le_bytes());
    format!("{}.cwasm", hex(&digest.finalize()))
}

/// The SHA-256 of a module's bytes, in hex: what names it on a NATS
/// server, and what an agent checks what it fetched against.
#[cfg(feature = "nats")]
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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

/// `bytes` as mebibytes, for people.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Refuses a component whose linear memory starts larger than `max_memory`:
/// no instance of it could ever start. Says how much it needs.
fn check_memory(component: &Component, max_memory: u64, name: &str) -> Result<(), Error> {
    // `None` when the component imports core modules, which the linker
    // cannot provide anyway.
    let Some(resources) = component.resources_required() else {
        return Ok(());
    };
    let Some(pages) = resources.max_initial_memory_size else {
        return Ok(());
    };
    let needed = pages.saturating_mul(WASM_PAGE);
    if needed <= max_memory {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::MemoryLimit,
        format!(
            "{name} needs {needed} bytes ({}) of linear memory to start, over the memory \
             limit of {max_memory} bytes ({}): raise the limit (PoolBuilder::memory_limit, \
             or --memory) to at least {needed} bytes",
            mib(needed),
            mib(max_memory)
        ),
    ))
}

/// What a pool tells while it compiles its module (see
/// [`PoolBuilder::on_compile`](crate::PoolBuilder::on_compile)): a
/// compilation takes seconds, a cached artifact none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compiling<'a> {
    /// No artifact of the module is in the cache: it is being compiled.
    Started {
        /// The module, as messages name it.
        module: &'a str,
    },
    /// It was compiled, in `took`.
    Finished {
        /// The module, as messages name it.
        module: &'a str,
        /// How long it took.
        took: std::time::Duration,
    },
    /// It did not compile (the pool's build fails, saying why).
    Failed {
        /// The module, as messages name it.
        module: &'a str,
    },
}

/// Makes sure the compiled artifact of `bytes`, for an engine of
/// `settings`, is in `cache` and returns it. Compiles only if no earlier run
/// left it there, telling `on_compile` when it does, and then only the
/// functions no earlier compile left there. Refuses a module that cannot
/// start within the settings' memory limit.
pub(crate) fn prepare(
    settings: &EngineSettings,
    bytes: &[u8],
    name: &str,
    cache: &Arc<CacheDir>,
    on_compile: Option<&(dyn Fn(&Compiling<'_>) + Send + Sync)>,
) -> Result<ArtifactFile, Error> {
    let max_memory = settings.max_memory;
    let functions = Arc::new(FunctionCache::new(Arc::clone(cache)));
    let engine = &engine::compiler(settings, Arc::clone(&functions))?;
    // An artifact is cached only after `validate` accepted its module, which
    // is where the kind of the bytes is checked.
    let file_name = artifact_name(engine, bytes);
    if let Some(artifact) = cache.find(&file_name) {
        // SAFETY: `find` checked that this user wrote the file, in a directory
        // only this user can write, where files are written only by `store`,
        // complete, under their module's content hash.
        if let Ok(component) = unsafe { cache::load(engine, &artifact) } {
            runtime::check(engine, &component)?;
            check_memory(&component, max_memory, name)?;
            return Ok(artifact);
        }
        // Unloadable (from another wasmtime, or damaged): compile again.
    }
    let started = std::time::Instant::now();
    if let Some(tell) = on_compile {
        tell(&Compiling::Started { module: name });
    }
    let validated = validate(engine, bytes, name);
    if let Some(tell) = on_compile {
        tell(&match &validated {
            Ok(_) => Compiling::Finished {
                module: name,
                took: started.elapsed(),
            },
            Err(_) => Compiling::Failed { module: name },
        });
    }
    let component = validated?;
    let artifact = component.serialize().map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("cannot serialise the compiled {name}: {err:#}"),
        )
    })?;
    // Cached even when refused for its memory: the artifact does not depend
    // on the limit, so a run with a larger one does not compile again.
    let artifact = cache.store(&file_name, &artifact)?;
    // Only a speed-up for the next compile: the artifact is what counts.
    if let Err(err) = functions.save(&file_name) {
        tracing::warn!("{err}");
    }
    check_memory(&component, max_memory, name)?;
    Ok(artifact)
}

/// Where a pool caches what it compiles unless told
/// ([`PoolBuilder::cache_dir`](crate::PoolBuilder::cache_dir)): under
/// `$XDG_CACHE_HOME` or `~/.cache`, else under a directory of this user's in
/// the temporary directory.
pub fn default_cache_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .map(|home| home.join(".cache"));
    match xdg.or(home) {
        Some(base) => base.join("wasmpool"),
        None => {
            std::env::temp_dir().join(format!("wasmpool-{}", rustix::process::geteuid().as_raw()))
        }
    }
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
