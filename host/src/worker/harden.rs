//! The first wall, put up before anything else runs in a worker: the process
//! dies with its pool, never gains privileges, dumps no core, holds few
//! descriptors, and keeps its channel to the pool to itself.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::MARKER;

/// The most descriptors a worker may have open.
const MAX_DESCRIPTORS: libc::rlim_t = 256;

/// The first wall, before anything else runs: die with the pool, never gain
/// privileges, no core dumps, few descriptors, and none but the standard
/// three inherited.
pub(super) fn harden(marker: &std::ffi::OsStr) -> std::io::Result<()> {
    let parent: libc::pid_t = marker
        .to_str()
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("{MARKER} is not a pid")))?;
    let check = |status: libc::c_int| {
        if status != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: prctl, getppid, getrlimit, setrlimit and close_range on this process.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        // The pool may have died before prctl took effect.
        if libc::getppid() != parent {
            std::process::exit(1);
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        for (resource, value) in [
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_NOFILE, MAX_DESCRIPTORS),
        ] {
            // Lowered, never raised: a pool run under a lower limit (`ulimit
            // -n 40`) keeps it for its workers.
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            check(libc::getrlimit(resource, &mut limit))?;
            let value = value.min(limit.rlim_max);
            limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            check(libc::setrlimit(resource, &limit))?;
        }
        // Descriptors the host left open (without close-on-exec) end here.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes stdin and stdout for the protocol, and points descriptors 0 and 1 at
/// /dev/null and stderr so that nothing else can write into the channel.
pub(super) fn take_stdio() -> std::io::Result<(File, File)> {
    // SAFETY: dup and dup2 on the standard descriptors, which this process owns;
    // the duplicates are owned by the Files made from them.
    unsafe {
        let input = libc::dup(0);
        let output = libc::dup(1);
        if input < 0 || output < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let null = File::open("/dev/null")?;
        if libc::dup2(null.as_raw_fd(), 0) < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((
            File::from(OwnedFd::from_raw_fd(input)),
            File::from(OwnedFd::from_raw_fd(output)),
        ))
    }
}
