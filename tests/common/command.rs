//! Helpers of the tests that run the `wasmpool` command: tests of the
//! `wasmpool-cli` package, the only one whose tests have its binary.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// How long a short command (a few lines of input) may run.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// Waits for `child` to exit and collects its output, at most `limit`: then
/// kills it and fails, naming `what` command it is.
pub fn wait_with_deadline(child: Child, limit: Duration, what: &str) -> Output {
    let pid = child.id();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on this test's child. Only the waiting thread
            // reaps it, which it had not when the wait timed out: the pid is
            // still the child's (unless it exited in the microseconds since).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("`{what}` did not exit within {limit:?}; killed it");
        }
    }
}

/// Runs `wasmpool ARGS` with `stdin` as its input, at most [`COMMAND_LIMIT`].
pub fn wasmpool(args: &[&str], stdin: &str) -> Output {
    wasmpool_with_env(args, stdin, &[])
}

/// A signing key made with `wasmpool keygen` in `dir` (`agent.nk`): its
/// file.
pub fn keygen_in(dir: &Path) -> PathBuf {
    let file = dir.join("agent.nk");
    let made = wasmpool(&["keygen", file.to_str().unwrap()], "");
    assert!(made.status.success(), "{made:?}");
    file
}

/// [`wasmpool`], with these environment variables set besides.
pub fn wasmpool_with_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that fails at once (a usage error) may exit before it reads.
    if let Err(err) = written {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    let what = format!("wasmpool {}", args.join(" "));
    wait_with_deadline(child, COMMAND_LIMIT, &what)
}

/// The JSON records `wasmpool map` wrote to stdout.
pub fn records(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
