//! Cranelift's cache of compiled functions, kept in the artifact cache: a
//! module compiles only the functions no module compiled before it.
//!
//! Every Python module carries the same CPython (libc, libpython and their
//! shims, identical byte for byte), which is most of what compiling it
//! takes; a Rust module its standard library. Cranelift keys each function
//! by a SHA-256 of its code after translation and of the compiler's settings
//! and version, so a function is found only where it would compile to the
//! same machine code.
//!
//! The functions live in packs, files of the artifact cache named after
//! their artifact, `<artifact>.functions`: what compiling it had to compile,
//! whole or not at all. Packs are read, through the private directory the
//! pool checked and only if this user wrote them, the first time a compile
//! looks a function up; a pool whose module is already compiled never reads
//! them. They are evicted with the artifacts, least recently used first (a
//! pack that served a compile counts as used), and held while the pool that
//! wrote them lives.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use serde_bytes::ByteBuf;
use wasmtime::CacheStore;

use super::{CacheDir, check_file};
use crate::error::Error;

/// What a pack's name ends with.
pub(super) const PACK_SUFFIX: &str = ".functions";

/// The most bytes of packs a compile reads. A cache full of packs (up to its
/// limit, 1 GiB by default) is not read whole at every compile: the most
/// recently used packs, where the functions of modules in use are, come first.
/// A Python module's pack takes 26 MB, a Rust module's a few.
const READ_LIMIT: u64 = 256 << 20;

/// The first bytes of a pack: its format, changed whenever the layout is.
const PACK_MAGIC: &[u8] = b"wasmpool functions 1\n";

/// The compiled functions of the packs in a cache, and those compiled since.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    cache: Arc<CacheDir>,
    /// The most bytes of packs to read.
    read_limit: u64,
    /// The packs' functions, read at the first lookup.
    packs: OnceLock<Packs>,
    /// Functions compiled by this cache's engine and not yet saved.
    compiled: Mutex<Vec<(ByteBuf, ByteBuf)>>,
}

/// The functions of the packs a cache held when they were read.
#[derive(Debug, Default)]
struct Packs {
    /// Each function, by key.
    functions: HashMap<Box<[u8]>, Found>,
    /// Each pack's file, and whether a compile took a function from it.
    files: Vec<(OwnedFd, AtomicBool)>,
}

/// A compiled function, and the index of the pack it came from.
type Found = (usize, Box<[u8]>);

impl FunctionCache {
    /// The functions kept in `cache`.
    pub(crate) fn new(cache: Arc<CacheDir>) -> FunctionCache {
        FunctionCache {
            cache,
            read_limit: READ_LIMIT,
            packs: OnceLock::new(),
            compiled: Mutex::default(),
        }
    }

    /// Saves the functions compiled since the last save as the pack of the
    /// artifact named `artifact`, and marks the packs a compile took
    /// functions from as used.
    pub(crate) fn save(&self, artifact: &str) -> Result<(), Error> {
        if let Some(packs) = self.packs.get() {
            packs.mark_used();
        }
        let compiled =
            std::mem::take(&mut *self.compiled.lock().unwrap_or_else(PoisonError::into_inner));
        if compiled.is_empty() {
            return Ok(());
        }
        let mut bytes = PACK_MAGIC.to_vec();
        postcard::to_io(&compiled, &mut bytes).map_err(|err| {
            Error::new(
                crate::error::ErrorKind::Io,
                format!("cannot encode the compiled functions of {artifact}: {err}"),
            )
        })?;
        let stem = artifact.strip_suffix(".cwasm").unwrap_or(artifact);
        self.cache
            .store(&format!("{stem}{PACK_SUFFIX}"), &bytes)
            .map(drop)
    }

    fn packs(&self) -> &Packs {
        self.packs
            .get_or_init(|| Packs::read(&self.cache, self.read_limit))
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let packs = self.packs();
        let (pack, function) = packs.functions.get(key)?;
        packs.files[*pack].1.store(true, Ordering::Relaxed);
        Some(Cow::Borrowed(function))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((ByteBuf::from(key), ByteBuf::from(value)));
        true
    }
}

impl Packs {
    /// The packs in `cache` that this user wrote. Best effort: a pack that
    /// cannot be read is skipped, and its functions compiled again.
    /// The most recently used first, up to `limit` bytes of them.
    fn read(cache: &CacheDir, limit: u64) -> Packs {
        let mut packs = Packs::default();
        let Ok(entries) = rustix::fs::Dir::read_from(&cache.dir) else {
            return packs;
        };
        let mut found: Vec<_> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str().ok()?;
                if !name.ends_with(PACK_SUFFIX) || name.starts_with('.') {
                    return None;
                }
                let stat = rustix::fs::statat(&cache.dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
                let used = (stat.st_atime, stat.st_atime_nsec);
                Some((
                    std::cmp::Reverse(used),
                    stat.st_size as u64,
                    name.to_string(),
                ))
            })
            .collect();
        found.sort();
        let mut budget = limit;
        for (_, size, name) in found {
            let Some(left) = budget.checked_sub(size) else {
                break;
            };
            budget = left;
            match read_pack(cache, &name) {
                Ok((fd, functions)) => {
                    let pack = packs.files.len();
                    packs.files.push((fd, AtomicBool::new(false)));
                    for (key, function) in functions {
                        packs
                            .functions
                            .entry(key.into_vec().into_boxed_slice())
                            .or_insert((pack, function.into_vec().into_boxed_slice()));
                    }
                }
                Err(why) => tracing::warn!(
                    "ignoring the compiled functions {}: {why}",
                    cache.path.join(&name).display()
                ),
            }
        }
        packs
    }

    /// Marks the packs a compile took functions from as used now, so that
    /// eviction keeps them longest.
    fn mark_used(&self) {
        let time = |nanos| rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: nanos,
        };
        for (fd, used) in &self.files {
            if used.swap(false, Ordering::Relaxed) {
                let _ = rustix::fs::futimens(
                    fd,
                    &Timestamps {
                        last_access: time(rustix::fs::UTIME_NOW),
                        last_modification: time(rustix::fs::UTIME_OMIT),
                    },
                );
            }
        }
    }
}

/// The pack `name` of `cache`, open, and its functions; or why not.
fn read_pack(cache: &CacheDir, name: &str) -> Result<(OwnedFd, Vec<(ByteBuf, ByteBuf)>), String> {
    // Not marked accessed by reading it: only a pack that served a compile
    // is (`mark_used`).
    let fd = rustix::fs::openat(
        &cache.dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOATIME,
        Mode::empty(),
    )
    .map_err(|err| format!("cannot open it: {err}"))?;
    let stat = rustix::fs::fstat(&fd).map_err(|err| format!("cannot stat it: {err}"))?;
    check_file(&stat)?;
    let mut bytes = Vec::new();
    File::from(fd.try_clone().map_err(|err| err.to_string())?)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read it: {err}"))?;
    let body = bytes
        .strip_prefix(PACK_MAGIC)
        .ok_or("it is not a pack of this version")?;
    let functions = postcard::from_bytes(body).map_err(|err| format!("it is damaged: {err}"))?;
    Ok((fd, functions))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn fresh_cache(name: &str) -> (PathBuf, Arc<CacheDir>) {
        let dir =
            std::env::temp_dir().join(format!("wasmpool-functions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Arc::new(CacheDir::open(&dir).unwrap());
        (dir, cache)
    }

    fn compiled(cache: &Arc<CacheDir>, functions: &[(&[u8], &[u8])], artifact: &str) {
        let compiling = FunctionCache::new(Arc::clone(cache));
        for (key, function) in functions {
            assert!(compiling.insert(key, function.to_vec()));
        }
        compiling.save(artifact).unwrap();
    }

    #[test]
    fn functions_saved_by_one_compile_are_found_by_the_next() {
        let (dir, cache) = fresh_cache("found");
        compiled(
            &cache,
            &[(b"one", b"first"), (b"two", b"second")],
            "a.cwasm",
        );
        compiled(&cache, &[(b"three", b"third")], "b.cwasm");
        assert!(dir.join("a.functions").is_file());
        assert!(dir.join("b.functions").is_file());

        let next = FunctionCache::new(Arc::new(CacheDir::open(&dir).unwrap()));
        assert_eq!(next.get(b"one").as_deref(), Some(&b"first"[..]));
        assert_eq!(next.get(b"three").as_deref(), Some(&b"third"[..]));
        assert_eq!(next.get(b"four"), None);
        // Nothing compiled, nothing saved.
        next.save("c.cwasm").unwrap();
        assert!(!dir.join("c.functions").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pack_others_may_write_or_a_damaged_one_is_not_read() {
        let (dir, cache) = fresh_cache("refused");
        compiled(&cache, &[(b"planted", b"code")], "a.cwasm");
        std::fs::set_permissions(
            dir.join("a.functions"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        compiled(&cache, &[(b"cut", b"code")], "b.cwasm");
        let whole = std::fs::read(dir.join("b.functions")).unwrap();
        std::fs::write(dir.join("b.functions"), &whole[..whole.len() - 2]).unwrap();
        std::fs::write(dir.join("c.functions"), b"not a pack").unwrap();

        let next = FunctionCache::new(Arc::new(CacheDir::open(&dir).unwrap()));
        assert_eq!(next.get(b"planted"), None);
        assert_eq!(next.get(b"cut"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pack_that_served_a_compile_is_marked_used() {
        let (dir, cache) = fresh_cache("used");
        compiled(&cache, &[(b"one", b"first")], "a.cwasm");
        compiled(&cache, &[(b"two", b"second")], "b.cwasm");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        for pack in ["a.functions", "b.functions"] {
            let file = File::options().write(true).open(dir.join(pack)).unwrap();
            file.set_times(std::fs::FileTimes::new().set_accessed(long_ago))
                .unwrap();
        }
        let used = |pack: &str| {
            std::fs::metadata(dir.join(pack))
                .unwrap()
                .accessed()
                .unwrap()
                > long_ago + Duration::from_secs(60)
        };

        let next = FunctionCache::new(Arc::new(CacheDir::open(&dir).unwrap()));
        assert!(next.get(b"two").is_some());
        next.save("c.cwasm").unwrap();
        assert!(used("b.functions"));
        assert!(!used("a.functions"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_compile_reads_the_most_recently_used_packs_up_to_its_limit() {
        let (dir, cache) = fresh_cache("limit");
        compiled(&cache, &[(b"old", &[0; 1000])], "a.cwasm");
        compiled(&cache, &[(b"new", &[0; 1000])], "b.cwasm");
        let day_ago = SystemTime::now() - Duration::from_secs(86_400);
        File::options()
            .write(true)
            .open(dir.join("a.functions"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(day_ago))
            .unwrap();

        let mut next = FunctionCache::new(Arc::new(CacheDir::open(&dir).unwrap()));
        next.read_limit = 1500;
        assert!(next.get(b"new").is_some());
        assert_eq!(next.get(b"old"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
