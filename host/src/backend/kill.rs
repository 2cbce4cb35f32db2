//! [`KillHandle`]: how the pool, a [`Process`](crate::Process) and
//! `terminate` reach a worker process, whatever backend started it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags, Timespec};
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

    /// Whether the process has ended (its pidfd is readable then), at
    /// this instant.
    pub(crate) fn has_ended(&self) -> bool {
        let mut fds = [PollFd::new(&*self.pidfd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(ready) if ready > 0)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    use super::*;

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    /// Starts a process that gets `pid`, by setting the pid the kernel hands
    /// out next; `None` where that is not allowed (it takes root).
    fn process_with_pid(pid: u32) -> Option<Child> {
        for _ in 0..100 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
            let mut child = sleeper();
            if child.id() == pid {
                return Some(child);
            }
            // Another process took it first: try again.
            let _ = child.kill();
            let _ = child.wait();
        }
        None
    }

    #[test]
    fn a_kill_handle_never_reaches_a_process_that_reused_the_pid() {
        let mut first = sleeper();
        let handle = KillHandle::open(first.id()).unwrap();
        assert_eq!(handle.pid(), first.id());
        first.kill().unwrap();
        first.wait().unwrap();
        let reused = process_with_pid(handle.pid());
        let err = handle.kill().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
        match reused {
            Some(mut second) => {
                // The pid names a live process again, which a kill by pid
                // would have hit; the handle left it alone.
                assert!(
                    second.try_wait().unwrap().is_none(),
                    "the new process was killed"
                );
                second.kill().unwrap();
                second.wait().unwrap();
            }
            None => {
                eprintln!("pid reuse could not be forced here (needs root); checked ESRCH only")
            }
        }
    }

    #[test]
    fn a_kill_handle_kills_its_live_process_and_sees_it_ended() {
        let mut child = sleeper();
        let handle = KillHandle::open(child.id()).unwrap();
        assert!(!handle.has_ended());
        handle.clone().kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(handle.has_ended());
    }
}
