//! Running a program with its stderr on a terminal (a pseudo-terminal this
//! test reads), to see what a user's terminal would be sent.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// What the fixtures' `say` task is given to print in these tests: it
/// retitles the terminal, clears it, and forges a line of another task over
/// its own prefix.
pub const FORGERY: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\r[worker 1 task 9 out] forged\u{9b}0m";

/// [`FORGERY`] as a terminal should be shown it: escaped.
pub const ESCAPED: &str = r"\x1b]0;owned\x07\x1b[2J\x0d[worker 1 task 9 out] forged\u{9b}0m";

/// Checks that what a terminal was `shown` (see [`stderr_on_a_terminal`])
/// has [`FORGERY`] escaped as every one of the lines `prefixes` start, and
/// nothing that acts on a terminal: the terminal's own line ends are the
/// only controls.
pub fn assert_shown_escaped(shown: &str, prefixes: &[&str]) {
    for prefix in prefixes {
        assert!(
            shown.contains(&format!("{prefix}{ESCAPED}\r\n")),
            "{prefix:?} in {shown:?}"
        );
    }
    let acting: Vec<char> = shown
        .replace("\r\n", "\n")
        .chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect();
    assert!(acting.is_empty(), "{acting:?} in {shown:?}");
}

/// Runs `command` with its stderr on a new pseudo-terminal, at most
/// `limit`, and returns how it exited and every byte the terminal was sent.
/// (The terminal turns each `\n` into `\r\n`, as terminals do.)
pub fn stderr_on_a_terminal(mut command: Command, limit: Duration) -> (ExitStatus, Vec<u8>) {
    let (mut leader, mut follower) = (-1, -1);
    // SAFETY: openpty fills in two descriptors, which are owned from here.
    let opened = unsafe {
        libc::openpty(
            &mut leader,
            &mut follower,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened, and nothing else owns them.
    let (leader, follower) =
        unsafe { (OwnedFd::from_raw_fd(leader), OwnedFd::from_raw_fd(follower)) };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(follower))
        .spawn()
        .unwrap();
    // The command (and its workers) hold the terminal now; this process's
    // copy goes with the `Command`, so that reading ends (EIO) once they
    // have all exited.
    let what = format!("{command:?}");
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut sent = Vec::new();
        let mut leader = File::from(leader);
        let mut buffer = [0; 4096];
        while let Ok(n @ 1..) = leader.read(&mut buffer) {
            sent.extend_from_slice(&buffer[..n]);
        }
        sent
    });
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let pid = child.id();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done.recv_timeout(limit) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on this test's child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{what} did not exit within {limit:?}; killed it");
        }
    };
    (status, reader.join().unwrap())
}
