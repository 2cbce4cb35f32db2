//! [`KillHandle`]: how the pool, a [`Process`](crate::Process) and
//! `terminate` reach a worker process, whatever backend started it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::process::{Pid, PidfdFlags, Signal};

/// A handle that kills one worker process and never another: it holds a
/// pidfd, which refers to the process itself, so a signal sent after the
/// process was reaped fails instead of reaching whatever process reused its
/// pid. Cheap to clone; usable from any thread.
#[derive(Clone, Debug)]
pub(crate) struct KillHandle {
    pid: u32,
    pidfd: Arc<OwnedFd>,
}

impl KillHandle {
    /// A handle on `pid`, which must be a child of this process that was not
    /// reaped yet (so that the pid is still its own).
    pub(crate) fn open(pid: u32) -> std::io::Result<Self> {
        let raw = i32::try_from(pid).map_err(std::io::Error::other)?;
        let target = Pid::from_raw(raw).ok_or_else(|| std::io::Error::other("pid 0"))?;
        let pidfd = rustix::process::pidfd_open(target, PidfdFlags::empty())?;
        Ok(KillHandle {
            pid,
            pidfd: Arc::new(pidfd),
        })
    }

    /// The process's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGKILL to the process, unless it was reaped already.
    pub(crate) fn kill(&self) -> std::io::Result<()> {
        self.signal(Signal::KILL)
    }

    /// Sends `signal` to the process, unless it was reaped already.
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        rustix::process::pidfd_send_signal(&*self.pidfd, signal)?;
        Ok(())
    }
}
