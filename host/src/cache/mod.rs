//! The artifact cache: a directory only this user can write, and the
//! compiled modules in it.
//!
//! Loading an artifact maps native code into the pool and every worker, so
//! an artifact is trusted only if nobody else could have put it there. The
//! cache directory is used only while it is private — owned by this user and
//! writable by nobody else (created with mode 0700 if missing) — and every
//! file in it is opened through the directory the pool checked, never by a
//! path someone could redirect. Otherwise the pool compiles into a fresh
//! private temporary directory that lives as long as the pool, and says so
//! once. A worker loads the very file the pool checked (same device and
//! inode) or refuses to start.
//!
//! The cache is kept under a size limit, least recently used artifacts
//! first. Each pool holds a shared lock (`flock`) on the artifact it uses
//! for as long as its workers may start; a pool evicts only what it can
//! lock exclusively, so no pool — in this process or another — removes an
//! artifact a live pool uses. A pool that finds an artifact locks it, then
//! checks that its name still leads to it (it may have been evicted just
//! before), and marks it used: its access time, set explicitly (mount
//! options such as `noatime` only stop implicit updates), while its
//! modification time stays when it was written.
//!
//! Beside the artifacts, the cache keeps the functions compilers compiled
//! ([`functions`]), by the same rules: private, least recently used first
//! out, never out while a pool holds them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, RenameFlags, Stat, Timestamps};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::channel::ArtifactFile;
use crate::error::{Error, ErrorKind};

mod functions;

pub(crate) use functions::FunctionCache;

/// Mode bits that let others change a file or a directory's entries.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Set once the pool has said that a cache directory was not private.
static WARNED: AtomicBool = AtomicBool::new(false);

/// How old the temporary file of a write must be before the cache removes
/// it as left over by a writer that died: a write takes seconds.
const STALE_WRITE: Duration = Duration::from_secs(600);

/// A private directory that artifacts are read from and written to.
#[derive(Debug)]
pub(crate) struct CacheDir {
    path: PathBuf,
    dir: OwnedFd,
    /// The temporary directory used instead of a cache that was not
    /// private; removed when the pool is done with it.
    _scratch: Option<tempfile::TempDir>,
    /// The artifacts in use, open with a shared lock for as long as the
    /// cache is, which keeps them from eviction.
    held: Mutex<Vec<Held>>,
}

/// An artifact in use, and the shared lock on it.
#[derive(Debug)]
struct Held {
    _lock: OwnedFd,
    dev: u64,
    ino: u64,
}

/// What an eviction removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

impl CacheDir {
    /// The cache in `dir` if it is private (made if missing), else a fresh
    /// private temporary directory.
    pub(crate) fn open(dir: &Path) -> Result<CacheDir, Error> {
        match open_private(dir) {
            Ok(fd) => Ok(CacheDir {
                path: dir.to_path_buf(),
                dir: fd,
                _scratch: None,
                held: Mutex::default(),
            }),
            Err(why) => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "not using the artifact cache {}: {why}; compiling into a private \
                         temporary directory instead (set a private cache directory to \
                         compile once)",
                        dir.display()
                    );
                }
                CacheDir::scratch()
            }
        }
    }

    fn scratch() -> Result<CacheDir, Error> {
        let scratch = tempfile::Builder::new()
            .prefix("wasmpool-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|err| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot create a private temporary directory: {err}"),
                )
            })?;
        let fd = open_private(scratch.path()).map_err(|why| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "the temporary directory {} is not private: {why}",
                    scratch.path().display()
                ),
            )
        })?;
        Ok(CacheDir {
            path: scratch.path().to_path_buf(),
            dir: fd,
            _scratch: Some(scratch),
            held: Mutex::default(),
        })
    }

    /// The artifact cached as `name`, if there is one that this user wrote;
    /// held from now on, and marked used.
    pub(crate) fn find(&self, name: &str) -> Option<ArtifactFile> {
        let fd = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        if let Err(why) = check_file(&stat) {
            tracing::warn!(
                "ignoring the cached artifact {}: {why}",
                self.path.join(name).display()
            );
            return None;
        }
        // Held before its name is trusted: an evictor that locked it first
        // may have removed it.
        rustix::fs::flock(&fd, FlockOperation::LockShared).ok()?;
        if !self.names(name, &stat) {
            return None;
        }
        // The least recently used go first. Not being able to say so only
        // makes this one go sooner.
        let time = |nanos| rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: nanos,
        };
        let _ = rustix::fs::futimens(
            &fd,
            &Timestamps {
                last_access: time(rustix::fs::UTIME_NOW),
                last_modification: time(rustix::fs::UTIME_OMIT),
            },
        );
        let artifact = self.artifact(name, &stat);
        self.hold(fd, &stat);
        Some(artifact)
    }

    /// Whether `name` in the cache is the file `stat` describes.
    fn names(&self, name: &str, stat: &Stat) -> bool {
        rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|named| (named.st_dev, named.st_ino) == (stat.st_dev, stat.st_ino))
    }

    /// Keeps `lock`, a shared lock on the file `stat` describes, as long as
    /// the cache.
    fn hold(&self, lock: OwnedFd, stat: &Stat) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Held {
                _lock: lock,
                dev: stat.st_dev,
                ino: stat.st_ino,
            });
    }

    /// Whether this cache holds the file `stat` describes.
    fn holds(&self, stat: &Stat) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|held| (held.dev, held.ino) == (stat.st_dev, stat.st_ino))
    }

    /// Writes `bytes` as the artifact `name`, whole or not at all; held from
    /// now on.
    pub(crate) fn store(&self, name: &str, bytes: &[u8]) -> Result<ArtifactFile, Error> {
        // Write under a unique name, then rename: a reader never sees half a
        // file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        );
        let io_error = |what: &str, err: std::io::Error| {
            Error::new(
                ErrorKind::Io,
                format!("cannot {what} {}: {err}", self.path.join(name).display()),
            )
        };
        let fd = rustix::fs::openat(
            &self.dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|err| io_error("create", err.into()))?;
        let mut file = File::from(fd);
        let written = file.write_all(bytes).and_then(|()| {
            // Held before it is named: no evictor can take it from then on.
            rustix::fs::flock(&file, FlockOperation::LockShared)?;
            let stat = rustix::fs::fstat(&file)?;
            // Never over another's: a pool that compiled the same module at
            // the same time may have checked that file for its workers.
            rustix::fs::renameat_with(
                &self.dir,
                tmp.as_str(),
                &self.dir,
                name,
                RenameFlags::NOREPLACE,
            )?;
            Ok(stat)
        });
        match written {
            Ok(stat) => {
                let artifact = self.artifact(name, &stat);
                self.hold(file.into(), &stat);
                Ok(artifact)
            }
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                // It was stored meanwhile, whole (under the same content
                // hash): use that one.
                let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
                self.find(name).ok_or_else(|| io_error("write", err))
            }
            Err(err) => {
                let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
                Err(io_error("write", err))
            }
        }
    }

    /// Removes the least recently used artifacts until those left take at
    /// most `limit` bytes, or only artifacts in use (by any pool) are left;
    /// and the temporary files of writers that died. Best effort: a file
    /// that cannot be removed is left.
    pub(crate) fn evict(&self, limit: u64) -> Evicted {
        let Ok(entries) = rustix::fs::Dir::read_from(&self.dir) else {
            return Evicted::default();
        };
        let mut total = 0u64;
        let mut candidates = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            let Ok(stat) = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if check_file(&stat).is_err() {
                continue;
            }
            let size = stat.st_size as u64;
            if is_artifact(name) {
                total = total.saturating_add(size);
                if !self.holds(&stat) {
                    let used = (stat.st_atime, stat.st_atime_nsec);
                    candidates.push((used, size, name.to_string()));
                }
            } else if is_write(name) && older_than((stat.st_mtime, stat.st_mtime_nsec), STALE_WRITE)
            {
                // A writer holds its file until it is named; one that died
                // holds nothing.
                self.remove_unused(name);
            }
        }
        candidates.sort();
        let mut evicted = Evicted::default();
        for (_, size, name) in candidates {
            if total <= limit {
                break;
            }
            if self.remove_unused(&name) {
                total -= size;
                evicted.files += 1;
                evicted.bytes += size;
            }
        }
        if evicted.files > 0 {
            tracing::debug!(
                "removed {} least recently used artifacts ({} bytes) from {} to keep it \
                 under {limit} bytes",
                evicted.files,
                evicted.bytes,
                self.path.display()
            );
        }
        evicted
    }

    /// Removes the file `name` unless someone holds it.
    fn remove_unused(&self, name: &str) -> bool {
        let Ok(fd) = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        // Fails while any pool holds it; once it succeeds, no pool can take
        // hold of the file before it is gone (they check its name after
        // locking it).
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        let Ok(stat) = rustix::fs::fstat(&fd) else {
            return false;
        };
        self.names(name, &stat) && rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()).is_ok()
    }

    /// The artifact `name`, as the file `stat` describes.
    fn artifact(&self, name: &str, stat: &Stat) -> ArtifactFile {
        ArtifactFile {
            path: self.path.join(name),
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// Whether `name` is that of an artifact or of a pack of compiled
/// functions (not of a write in progress).
fn is_artifact(name: &str) -> bool {
    (name.ends_with(".cwasm") || name.ends_with(functions::PACK_SUFFIX)) && !name.starts_with('.')
}

/// Whether `name` is that of the temporary file of a write.
fn is_write(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Whether the time `(seconds, nanoseconds)` since the epoch is more than
/// `age` ago.
fn older_than((secs, nanos): (i64, u64), age: Duration) -> bool {
    let Ok(secs) = u64::try_from(secs) else {
        return true;
    };
    let modified = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos);
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|elapsed| elapsed > age)
}

/// Opens `dir`, made with mode 0700 if missing, if it is private: a
/// directory owned by this user that nobody else may write. Says why not
/// otherwise.
fn open_private(dir: &Path) -> Result<OwnedFd, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| format!("it cannot be created: {err}"))?;
    // The checks below are on the directory opened here, and every file is
    // then reached through it: swapping the path afterwards changes nothing.
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| format!("it cannot be opened: {err}"))?;
    let stat = rustix::fs::fstat(&fd).map_err(|err| format!("cannot stat it: {err}"))?;
    check_private(&stat)?;
    Ok(fd)
}

/// Whether an artifact file can only have been written by this user.
fn check_file(stat: &Stat) -> Result<(), String> {
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("it is not a regular file".into());
    }
    check_private(stat)
}

/// Whether a file or directory belongs to this user and nobody else may
/// write to it.
fn check_private(stat: &Stat) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(format!(
            "it belongs to user {}, not to this user ({me})",
            stat.st_uid
        ));
    }
    if stat.st_mode & WRITABLE_BY_OTHERS != 0 {
        return Err(format!(
            "others may write to it (mode {:o})",
            stat.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// Loads `artifact`, refusing any file but the one the pool checked.
///
/// # Safety
///
/// `artifact` must have been checked by [`CacheDir::find`] or written by
/// [`CacheDir::store`] for an engine with the same settings as `engine`:
/// loading it maps native code.
pub(crate) unsafe fn load(engine: &Engine, artifact: &ArtifactFile) -> Result<Component, Error> {
    let path = artifact.path.display();
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&artifact.path)
        .map_err(|err| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open the compiled module {path}: {err}"),
            )
        })?;
    let meta = file.metadata().map_err(|err| {
        Error::new(
            ErrorKind::Io,
            format!("cannot stat the compiled module {path}: {err}"),
        )
    })?;
    if (meta.dev(), meta.ino()) != (artifact.dev, artifact.ino) || !meta.is_file() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "the compiled module {path} is not the file the pool checked (it was \
                 replaced); refusing to load it"
            ),
        ));
    }
    // Through the descriptor just checked, so no other file can be mapped.
    let checked = format!("/proc/self/fd/{}", file.as_raw_fd());
    // SAFETY: the caller vouches for the file, and this is that file.
    unsafe { Component::deserialize_file(engine, &checked) }.map_err(|err| {
        Error::new(
            ErrorKind::BadModule,
            format!("cannot load the compiled module {path}: {err:#}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wasmpool-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_missing_cache_is_made_private() {
        let base = fresh_dir("missing");
        let dir = base.join("a/b");
        let cache = CacheDir::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let stored = cache.store("x.cwasm", b"bytes").unwrap();
        assert_eq!(stored.path, dir.join("x.cwasm"));
        assert_eq!(cache.find("x.cwasm"), Some(stored));
        assert_eq!(cache.find("y.cwasm"), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_cache_others_may_write_is_not_used() {
        let dir = fresh_dir("shared");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.join("planted.cwasm"), b"not ours").unwrap();
        let why = open_private(&dir).unwrap_err();
        assert!(why.contains("others may write to it (mode 777)"), "{why}");
        let cache = CacheDir::open(&dir).unwrap();
        assert_eq!(cache.find("planted.cwasm"), None);
        let stored = cache.store("mine.cwasm", b"bytes").unwrap();
        let scratch = stored.path.parent().unwrap().to_path_buf();
        assert_ne!(scratch, dir);
        let mode = std::fs::metadata(&scratch).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(cache);
        assert!(!scratch.exists(), "the scratch directory is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cache_of_another_user_is_not_used() {
        if !rustix::process::geteuid().is_root() {
            // Only root can give a directory away; the mode test above covers
            // the rest for other users.
            return;
        }
        let dir = fresh_dir("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let why = open_private(&dir).unwrap_err();
        assert!(why.contains("belongs to user 65534"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_in_the_cache_that_others_may_write_are_ignored() {
        let dir = fresh_dir("file-mode");
        let cache = CacheDir::open(&dir).unwrap();
        cache.store("a.cwasm", b"bytes").unwrap();
        std::fs::set_permissions(dir.join("a.cwasm"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        assert_eq!(cache.find("a.cwasm"), None);
        std::os::unix::fs::symlink(dir.join("a.cwasm"), dir.join("link.cwasm")).unwrap();
        assert_eq!(cache.find("link.cwasm"), None, "symlinks are not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Makes `dir/name` look last used, and written, `age` ago.
    fn age(dir: &Path, name: &str, age: Duration) {
        let file = File::options().write(true).open(dir.join(name)).unwrap();
        let then = SystemTime::now() - age;
        let times = std::fs::FileTimes::new()
            .set_accessed(then)
            .set_modified(then);
        file.set_times(times).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn eviction_removes_the_least_recently_used_beyond_the_limit() {
        let dir = fresh_dir("evict-lru");
        {
            // A pool that used these and is gone.
            let earlier = CacheDir::open(&dir).unwrap();
            for name in ["a.cwasm", "b.cwasm", "c.cwasm", "d.cwasm"] {
                earlier.store(name, &[0; 100]).unwrap();
            }
        }
        age(&dir, "a.cwasm", 2 * HOUR);
        age(&dir, "b.cwasm", 4 * HOUR);
        age(&dir, "c.cwasm", 3 * HOUR);
        age(&dir, "d.cwasm", HOUR);
        let cache = CacheDir::open(&dir).unwrap();
        // Finding marks it used: the oldest, a moment ago the least
        // recently used, is the newest now.
        cache.find("b.cwasm").unwrap();
        let live = cache.store("live.cwasm", &[0; 100]).unwrap();
        // 500 bytes: c and a, the least recently used, go.
        let evicted = cache.evict(300);
        assert_eq!(
            evicted,
            Evicted {
                files: 2,
                bytes: 200
            }
        );
        assert_eq!(names(&dir), ["b.cwasm", "d.cwasm", "live.cwasm"]);
        // Under the limit: nothing goes.
        assert_eq!(cache.evict(300), Evicted::default());
        // At 0, all but those in use.
        assert_eq!(
            cache.evict(0),
            Evicted {
                files: 1,
                bytes: 100
            }
        );
        assert_eq!(names(&dir), ["b.cwasm", "live.cwasm"]);
        assert_eq!(cache.find("live.cwasm"), Some(live));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_artifact_another_pool_holds_is_not_evicted() {
        let dir = fresh_dir("evict-held");
        // Two caches on one directory hold their locks as two processes do.
        let other = CacheDir::open(&dir).unwrap();
        other.store("held.cwasm", b"in use").unwrap();
        age(&dir, "held.cwasm", 5 * HOUR);
        let cache = CacheDir::open(&dir).unwrap();
        cache.store("mine.cwasm", b"mine").unwrap();
        assert_eq!(cache.evict(0), Evicted::default());
        assert_eq!(names(&dir), ["held.cwasm", "mine.cwasm"]);
        drop(other);
        assert_eq!(cache.evict(0), Evicted { files: 1, bytes: 6 });
        assert_eq!(names(&dir), ["mine.cwasm"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_found_artifact_evicted_before_it_was_held_is_not_found() {
        let dir = fresh_dir("evict-race");
        let cache = CacheDir::open(&dir).unwrap();
        cache.store("a.cwasm", b"first").unwrap();
        // What `find` sees when an evictor removed the file it opened, and
        // another was stored under the name since.
        let fd = rustix::fs::openat(&cache.dir, "a.cwasm", OFlags::RDONLY, Mode::empty()).unwrap();
        let opened = rustix::fs::fstat(&fd).unwrap();
        std::fs::remove_file(dir.join("a.cwasm")).unwrap();
        assert!(!cache.names("a.cwasm", &opened));
        std::fs::write(dir.join("a.cwasm"), b"second").unwrap();
        assert!(!cache.names("a.cwasm", &opened));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_left_by_dead_writers_are_removed() {
        let dir = fresh_dir("evict-writes");
        let cache = CacheDir::open(&dir).unwrap();
        std::fs::write(dir.join(".a.cwasm.1.0.tmp"), b"dead").unwrap();
        age(&dir, ".a.cwasm.1.0.tmp", HOUR);
        // Too young to tell from a write in progress.
        std::fs::write(dir.join(".b.cwasm.1.1.tmp"), b"young").unwrap();
        // Not the cache's: left alone.
        std::fs::write(dir.join("notes.txt"), b"notes").unwrap();
        age(&dir, "notes.txt", HOUR);
        cache.evict(0);
        assert_eq!(names(&dir), [".b.cwasm.1.1.tmp", "notes.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_replaced_artifact_is_refused() {
        let dir = fresh_dir("replaced");
        let cache = CacheDir::open(&dir).unwrap();
        let stored = cache.store("a.cwasm", b"first").unwrap();
        // Made while the first exists, so it cannot reuse its inode.
        std::fs::write(dir.join("other"), b"second").unwrap();
        std::fs::rename(dir.join("other"), dir.join("a.cwasm")).unwrap();
        let engine = Engine::default();
        // SAFETY: nothing is mapped: the file is refused before loading.
        let err = unsafe { load(&engine, &stored) }.unwrap_err();
        assert!(
            err.message().contains("is not the file the pool checked"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
