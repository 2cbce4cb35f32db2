//! The command's bounds on what a user may ask: module files read only
//! within their limit, memory limits up to what wasm addresses, process
//! counts within what the machine holds, and what a task prints shown on
//! a terminal only with its control characters escaped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use crate::command::{COMMAND_LIMIT, wait_with_deadline, wasmpool};
use crate::common::{DEADLINE, deadline};
use crate::terminal::{FORGERY, assert_shown_escaped};
use wasmpool_artifacts::FIXTURES;

/// The status and stderr of `wasmpool ARGS`.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = wasmpool(args, "1\n");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_module_past_its_limit_or_not_a_file_is_refused_before_it_is_read() {
    let _deadline = deadline("`wasmpool` on modules that are not files", DEADLINE);
    for args in [&["tasks", "/dev/zero"][..], &["map", "/dev/zero", "square"]] {
        let (status, stderr) = refused(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the module /dev/zero is not a regular file but a character device"),
            "{args:?}: {stderr}"
        );
    }
    let size = std::fs::metadata(FIXTURES).unwrap().len();
    let said = format!("takes {size} bytes, over the module limit of 1024 bytes");
    for args in [
        &["tasks", "--module-limit", "1K", FIXTURES][..],
        &["map", "--module-limit", "1K", FIXTURES, "square"],
    ] {
        let (status, stderr) = refused(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&said), "{args:?}: {stderr}");
        assert!(stderr.contains("--module-limit"), "{args:?}: {stderr}");
    }
}

#[test]
fn memory_sizes_up_to_4g_work_and_more_is_refused_naming_the_largest() {
    let _deadline = deadline("`wasmpool map --memory` around 4G", DEADLINE);
    let out = wasmpool(&["map", "--memory", "4G", FIXTURES, "square"], "3\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"index\":0,\"ok\":9}\n"
    );
    let (status, stderr) = refused(&["map", "--memory", "5G", FIXTURES, "square"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("4 GiB (4294967296 bytes, 4G) is the largest"),
        "{stderr}"
    );
}

/// Runs `wasmpool ARGS` on `stdin` as [`wasmpool`] does, on one CPU (the first
/// this test may use) and with at most `descriptors` open files, when given.
fn wasmpool_confined(args: &[&str], stdin: &str, descriptors: Option<u64>) -> Output {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: this thread's affinity, into a set of the size given.
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut allowed) }, 0);
    let first = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: reads a bit of the set, within its size.
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
        .unwrap();
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sets a bit of the set, within its size.
    unsafe { libc::CPU_SET(first, &mut one) };
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmpool"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: sched_setaffinity and setrlimit are system calls on the child
    // alone, safe between fork and exec; nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, size, &one) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(descriptors) = descriptors {
                let limit = libc::rlimit {
                    rlim_cur: descriptors,
                    rlim_max: descriptors,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
    let mut child = command.spawn().unwrap();
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(err) = written {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    let what = format!("wasmpool {} (on one CPU)", args.join(" "));
    wait_with_deadline(child, COMMAND_LIMIT, &what)
}

/// The bound a refusal names: "N processes is past what this machine can
/// hold, BOUND (…)".
fn bound_named(stderr: &str) -> usize {
    let (_, rest) = stderr
        .split_once("is past what this machine can hold, ")
        .unwrap_or_else(|| panic!("no bound named: {stderr}"));
    rest.split_once(' ').unwrap().0.parse().unwrap()
}

#[test]
fn a_process_count_past_the_machine_is_refused_before_any_worker_starts() {
    let _deadline = deadline("`wasmpool map -j 100000`", DEADLINE);
    let (status, stderr) = refused(&["map", "-j", "100000", FIXTURES, "square"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("100000 processes is past what this machine can hold"),
        "{stderr}"
    );
    assert!(stderr.contains(" per CPU on "), "{stderr}");
    assert!(stderr.contains("--force-jobs"), "{stderr}");
    // Refused before any worker started: none said it could not start.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn on_one_cpu_the_bound_is_64_at_most_and_forcing_passes_it() {
    let _deadline = deadline("`wasmpool map` past the bound, forced", DEADLINE);
    let out = wasmpool_confined(&["map", "-j", "65", FIXTURES, "square"], "1\n", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let bound = bound_named(&stderr);
    assert!(bound <= 64, "{stderr}");
    assert!(stderr.contains("64 per CPU on 1 CPU;"), "{stderr}");

    // One past the bound, forced: every worker starts and works.
    let processes = (bound + 1).to_string();
    let input: String = (1..=bound + 1).map(|n| format!("{n}\n")).collect();
    let args = [
        "map",
        "-j",
        &processes,
        "--force-jobs",
        "--chunksize",
        "1",
        FIXTURES,
        "square",
    ];
    let out = wasmpool_confined(&args, &input, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let squares: Vec<_> = crate::command::records(&out)
        .iter()
        .map(|record| record["ok"].as_u64().unwrap())
        .collect();
    let expected: Vec<_> = (1..=bound as u64 + 1).map(|n| n * n).collect();
    assert_eq!(squares, expected);
}

/// Out of descriptors after a few workers: the pool stops starting them at
/// the first that cannot start, and says why, once. Under a low limit that
/// leaves room enough, workers start (they lower their limits, never raise
/// them).
#[test]
fn starting_stops_at_the_first_worker_that_cannot_start() {
    let _deadline = deadline("`wasmpool map` out of descriptors", DEADLINE);
    let out = wasmpool_confined(&["map", "-j", "40", FIXTURES, "square"], "1\n2\n", Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot start the worker program")
            && stderr.contains("Too many open files"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = wasmpool_confined(&["map", "-j", "2", FIXTURES, "square"], "1\n2\n", Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(crate::command::records(&out).len(), 2);
}

#[test]
fn a_task_cannot_act_on_the_terminal_but_a_file_gets_its_bytes() {
    let _deadline = deadline("`wasmpool map` of output with escapes", DEADLINE);
    let line = format!("{}\n", serde_json::to_string(FORGERY).unwrap());

    let mut on_terminal = Command::new(env!("CARGO_BIN_EXE_wasmpool"));
    on_terminal.args(["map", "-j", "1", "--no-progress", FIXTURES, "say"]);
    // The input through a file, as the terminal is stderr only.
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), &line).unwrap();
    on_terminal.args(["--input", input.path().to_str().unwrap()]);
    let (status, shown) = crate::terminal::stderr_on_a_terminal(on_terminal, COMMAND_LIMIT);
    let shown = String::from_utf8(shown).unwrap();
    assert!(status.success(), "{shown}");
    assert_shown_escaped(&shown, &["task 0 out] ", "task 0 err] "]);

    // Stderr to a file (a pipe here): the bytes as the task wrote them.
    let out = wasmpool(&["map", "-j", "1", FIXTURES, "say"], &line);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for stream in ["out", "err"] {
        assert!(
            stderr.contains(&format!("task 0 {stream}] {FORGERY}\n")),
            "{stderr:?}"
        );
    }
}
