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

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Stat};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::channel::ArtifactFile;
use crate::error::{Error, ErrorKind};

/// Mode bits that let others change a file or a directory's entries.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Set once the pool has said that a cache directory was not private.
static WARNED: AtomicBool = AtomicBool::new(false);

/// A private directory that artifacts are read from and written to.
#[derive(Debug)]
pub(crate) struct CacheDir {
    path: PathBuf,
    dir: OwnedFd,
    /// The temporary directory used instead of a cache that was not
    /// private; removed when the pool is done with it.
    _scratch: Option<tempfile::TempDir>,
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
        })
    }

    /// The artifact cached as `name`, if there is one that this user wrote.
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
        Some(self.artifact(name, &stat))
    }

    /// Writes `bytes` as the artifact `name`, whole or not at all.
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
            Ok(stat) => Ok(self.artifact(name, &stat)),
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

    /// The artifact `name`, as the file `stat` describes.
    fn artifact(&self, name: &str, stat: &Stat) -> ArtifactFile {
        ArtifactFile {
            path: self.path.join(name),
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
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
