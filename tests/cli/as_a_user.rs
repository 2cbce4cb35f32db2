//! The `wasmpool` command, run as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::command::{COMMAND_LIMIT, records, wait_with_deadline, wasmpool};
use crate::common::{DEADLINE, deadline};
use serde_json::{Value, json};
use wasmpool_artifacts::FIXTURES;

/// The deadline of a test whose steps each have a bound of 60 s of their
/// own: above it, so that the step's bound, which kills the command and says
/// what it waited for, comes first.
const OVER_STEP_LIMITS: Duration = Duration::from_secs(90);

/// How long a command may take to stop once interrupted (it takes well under
/// a second): one that does not fails its test in seconds.
const STOP_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn map_writes_one_record_per_line_in_order() {
    let _deadline = deadline("`wasmpool map` of seven squares", DEADLINE);
    let out = wasmpool(
        &["map", FIXTURES, "square", "-j", "2", "--chunksize", "3"],
        "1\n2\n3\n4\n5\n6\n7\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<Value> = (1..=7i64)
        .map(|i| json!({"index": i - 1, "ok": i * i}))
        .collect();
    assert_eq!(records(&out), expected);
    // Keys in the documented order.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("{\"index\":0,\"ok\":1}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("7 ok, 0 failed"), "{stderr}");
}

#[test]
fn a_malformed_line_fails_alone_and_the_status_says_so() {
    let _deadline = deadline("`wasmpool map` over malformed lines", DEADLINE);
    let out = wasmpool(&["map", FIXTURES, "square"], "1\n{oops\n\"seven\"\n4\n");
    assert_eq!(out.status.code(), Some(1));
    let records = records(&out);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0], json!({"index": 0, "ok": 1}));
    assert_eq!(records[1]["index"], 1);
    assert_eq!(records[1]["error"]["kind"], "bad-arguments");
    let message = records[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("input line 2 is not valid JSON"),
        "{message}"
    );
    assert_eq!(records[2]["error"]["kind"], "bad-arguments");
    assert_eq!(records[3], json!({"index": 3, "ok": 16}));
}

#[test]
fn star_passes_positional_arguments_and_a_failing_task_exits_1() {
    let _deadline = deadline("`wasmpool map --star`", DEADLINE);
    let out = wasmpool(
        &["map", FIXTURES, "divide", "--star"],
        "[7, 2]\n[1, 0]\n5\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let records = records(&out);
    assert_eq!(records[0], json!({"index": 0, "ok": 3}));
    assert_eq!(
        records[1],
        json!({"index": 1, "error": {"kind": "failed", "message": "division by zero"}})
    );
    assert!(
        records[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--star")
    );
}

#[test]
fn kwargs_lines_are_keyword_arguments_and_bad_ones_fail_alone() {
    let _deadline = deadline("`wasmpool map --kwargs`", DEADLINE);
    let out = wasmpool(
        &["map", FIXTURES, "greet", "--kwargs"],
        "{\"name\": \"Ada\"}\n{\"name\": \"Bo\", \"greeting\": \"Hi\"}\n[\"Cy\"]\n\
         {\"nom\": \"Di\"}\n{\"greeting\": \"Yo\"}\n{oops\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let records = records(&out);
    assert_eq!(records.len(), 6);
    assert_eq!(records[0], json!({"index": 0, "ok": "Hello, Ada!"}));
    assert_eq!(records[1], json!({"index": 1, "ok": "Hi, Bo!"}));
    let messages: Vec<&str> = records[2..]
        .iter()
        .map(|r| {
            assert_eq!(r["error"]["kind"], "bad-arguments", "{r}");
            r["error"]["message"].as_str().unwrap()
        })
        .collect();
    assert!(
        messages[0].contains("input line 3: with --kwargs"),
        "{messages:?}"
    );
    assert!(
        messages[1]
            .contains("unexpected keyword argument `nom`; the task's parameters are: `name`"),
        "{messages:?}"
    );
    assert!(
        messages[2].contains("missing required argument: `name`"),
        "{messages:?}"
    );
    assert!(
        messages[3].contains("input line 6 is not valid JSON"),
        "{messages:?}"
    );
    // Without --kwargs an object is one positional argument, as before.
    let out = wasmpool(&["map", FIXTURES, "echo"], "{\"name\": \"Ada\"}\n");
    let records = self::records(&out);
    assert_eq!(records[0]["error"]["kind"], "bad-arguments", "{records:?}");
    let out = wasmpool(&["map", FIXTURES, "greet", "--kwargs", "--star"], "");
    assert_eq!(out.status.code(), Some(2), "--kwargs and --star conflict");
}

#[test]
fn fresh_instance_runs_each_line_on_an_instance_of_its_own() {
    let _deadline = deadline("`wasmpool map --fresh-instance`", DEADLINE);
    let found = |more: &[&str]| {
        let mut args = vec!["map", FIXTURES, "swap_secret", "-j", "1"];
        args.extend_from_slice(more);
        let out = wasmpool(&args, "1\n2\n3\n");
        assert_eq!(out.status.code(), Some(0));
        records(&out)
            .iter()
            .map(|record| record["ok"].clone())
            .collect::<Vec<_>>()
    };
    // Without the flag, the second line finds what the first left.
    assert_eq!(
        found(&[])[1],
        json!(["global 1", "buffer 1", "environment 1"])
    );
    assert_eq!(
        found(&["--fresh-instance"]),
        [json!([]), json!([]), json!([])]
    );
}

#[test]
fn unordered_writes_every_line_once() {
    let _deadline = deadline("`wasmpool map --unordered` of 60 sleeps", DEADLINE);
    let input: String = (0..60).map(|i| format!("{}\n", (i * 7) % 5)).collect();
    let out = wasmpool(
        &[
            "map",
            FIXTURES,
            "sleep_ms",
            "--unordered",
            "--chunksize",
            "1",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(0));
    let mut indices: Vec<u64> = records(&out)
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    indices.sort();
    assert_eq!(indices, (0..60).collect::<Vec<_>>());
}

#[test]
fn unknown_task_and_bad_module_are_set_up_errors() {
    let _deadline = deadline("five `wasmpool` commands that fail to set up", DEADLINE);
    let out = wasmpool(&["map", FIXTURES, "no_such_task"], "1\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no task named `no_such_task`"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = wasmpool(&["map", "/etc/hostname", "square"], "1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly binary"));

    let out = wasmpool(&["map", "/no/such.wasm", "square"], "1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.wasm"));

    let out = wasmpool(
        &["map", FIXTURES, "square", "--input", "/no/such/input"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/input"));

    let out = wasmpool(&["map", FIXTURES], "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing argument is a usage error"
    );
}

#[test]
fn guest_output_goes_to_stderr_attributed_never_into_the_results() {
    let _deadline = deadline("`wasmpool map` of chatty tasks", DEADLINE);
    let out = wasmpool(&["map", FIXTURES, "chatty", "-j", "1"], "1\n2\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(records(&out).len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("task 1 out] hello from task 1"), "{stderr}");
    assert!(stderr.contains("task 0 err] x is 1"), "{stderr}");
}

#[test]
fn tasks_lists_what_a_module_exports() {
    let _deadline = deadline("`wasmpool tasks`", DEADLINE);
    let out = wasmpool(&["tasks", FIXTURES], "");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "divide\t2\ta, b"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "noop\t0\t"), "{stdout}");
    let greet = "greet\t3\tname, greeting=\"Hello\", times=1";
    assert!(stdout.lines().any(|l| l == greet), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "scale\t2\t#1, in=1"),
        "{stdout}"
    );
}

#[test]
fn a_module_whose_describe_never_returns_is_a_set_up_error_naming_it() {
    let _deadline = deadline(
        "`wasmpool tasks` of a module whose describe never returns",
        DEADLINE,
    );
    // With the default limits: the command does not wait 30 s for a
    // handshake, and blames the module, not the worker.
    let started = Instant::now();
    let out = wasmpool(&["tasks", wasmpool_artifacts::HOSTILE], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(wasmpool_artifacts::HOSTILE), "{stderr}");
    assert!(
        stderr.contains("`describe` did not return within 5s"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn a_cache_others_may_write_is_not_used_and_the_command_says_so() {
    let _deadline = deadline("`wasmpool tasks` on a shared cache", DEADLINE);
    // XDG_CACHE_HOME/wasmpool made by someone else, writable by all, with
    // the fixtures' native code planted under every name the seeds' artifact
    // could have.
    let base = scratch("shared-cache");
    let shared = base.join("wasmpool");
    std::fs::create_dir_all(&shared).unwrap();
    let run = |module: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
            .args(["tasks", module])
            .env("XDG_CACHE_HOME", &base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_with_deadline(child, COMMAND_LIMIT, &format!("wasmpool tasks {module}"))
    };
    // Compile the fixtures while the directory is still private, then
    // share it and put that artifact under the seeds' artifact's name.
    assert_eq!(run(FIXTURES).status.code(), Some(0));
    let planted = std::fs::read_dir(&shared)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(run(wasmpool_artifacts::SEEDS).status.code(), Some(0));
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        if path != planted {
            std::fs::copy(&planted, &path).unwrap();
        }
    }
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();

    let out = run(wasmpool_artifacts::SEEDS);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The seeds' own tasks, not the fixtures' planted code.
    assert!(stdout.lines().any(|l| l == "sieve\t1\tn"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("divide\t")),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("not using the artifact cache").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("others may write to it"), "{stderr}");
    std::fs::remove_dir_all(&base).unwrap();
}

/// `wasmpool map FIXTURES echo` with `more` arguments, fed and read through
/// pipes, its stderr dropped.
fn echo_through_pipes(more: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "echo"])
        .args(more)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_large_input_streams_through_in_bounded_memory() {
    let _deadline = deadline(
        "20,000 lines of 10 kB through `wasmpool map echo`",
        Duration::from_secs(120),
    );
    // 200 MB of input (20,000 lines of 10 kB) through a pool, read and
    // written as a stream: the peak memory of the command and its workers
    // stays far below the size of the input.
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4, which tells its peak memory"
    )]
    let mut child = echo_through_pipes(&["-j", "2", "--no-progress"]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = format!("\"{}\"\n", "x".repeat(10_000));
        for _ in 0..20_000 {
            stdin.write_all(line.as_bytes()).unwrap();
        }
    });
    let mut lines = 0u64;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        assert!(line.len() > 10_000);
        lines += 1;
    }
    writer.join().unwrap();
    // wait4 reports the peak memory of this child (and of the workers it
    // reaped), whatever other tests run at the same time: getrusage's
    // RUSAGE_CHILDREN would count the workers of this binary's own pools.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: wait4 on this test's own child, filling the two it is given.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(lines, 20_000);
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 120, "peak RSS {peak_mb} MB for 200 MB of input");
}

#[test]
fn limits_and_grants_from_the_command_line() {
    let _deadline = deadline("`wasmpool map` with limits and grants", DEADLINE);
    let out = wasmpool(
        &["map", FIXTURES, "sleep_ms", "--timeout", "200ms"],
        "10\n5000\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let got = records(&out);
    assert_eq!(got[0], json!({"index": 0, "ok": 10}));
    assert_eq!(got[1]["error"]["kind"], "timeout");

    let out = wasmpool(
        &["map", FIXTURES, "burn", "--fuel", "100000"],
        "10\n100000000\n",
    );
    let got = records(&out);
    assert_eq!(got[0]["ok"], 45);
    assert_eq!(got[1]["error"]["kind"], "out-of-fuel");

    let out = wasmpool(&["map", FIXTURES, "hog", "--memory", "32M"], "4\n");
    assert_eq!(records(&out)[0]["error"]["kind"], "memory-limit");

    // Below what the module needs to start: a set-up error, before any task.
    let out = wasmpool(&["map", FIXTURES, "square", "--memory", "512K"], "4\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("memory-limit"), "{stderr}");
    assert!(
        stderr.contains("over the memory limit of 524288 bytes (0.5 MiB)"),
        "{stderr}"
    );

    let dir = std::env::temp_dir().join(format!("wasmpool-cli-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "granted").unwrap();
    let grant = format!("{}:/in:ro", dir.display());
    let out = wasmpool(
        &["map", FIXTURES, "read_file", "--dir", &grant],
        "\"/in/in.txt\"\n\"/etc/passwd\"\n",
    );
    let got = records(&out);
    assert_eq!(got[0]["ok"], "granted");
    assert_eq!(got[1]["error"]["kind"], "failed");
    std::fs::remove_dir_all(&dir).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "read_env", "--env", "WASMPOOL_TEST_VAR"])
        .env("WASMPOOL_TEST_VAR", "passed through")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\"WASMPOOL_TEST_VAR\"\n\"PATH\"\n")
        .unwrap();
    let out = wait_with_deadline(child, COMMAND_LIMIT, "wasmpool map read_env --env");
    let got = records(&out);
    assert_eq!(got[0]["ok"], "passed through");
    assert_eq!(got[1]["ok"], Value::Null);
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpool-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `wasmpool map FIXTURES sleep_ms` over the lines `lines` (each a
/// sleep in milliseconds) in `dir`, with `more` arguments and in a process
/// group of its own, and waits until it has written records: its input, its
/// output and the process.
fn start_sleepy_run(dir: &Path, lines: &str, more: &[&str]) -> (PathBuf, PathBuf, Child) {
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    std::fs::write(&input, lines).unwrap();
    let mut child = map_files("sleep_ms", &input, &output, more)
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for_records(&output, &mut child);
    (input, output, child)
}

/// `wasmpool map FIXTURES TASK --input INPUT --output OUTPUT` and `more`
/// arguments, its stderr piped.
fn map_files(task: &str, input: &Path, output: &Path, more: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmpool"));
    command
        .args(["map", FIXTURES, task, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child` to exit, at most `limit` (then kills it and fails,
/// naming `what` command it is), and returns its status and stderr.
fn finish(child: Child, limit: Duration, what: &str) -> (ExitStatus, String) {
    let out = wait_with_deadline(child, limit, what);
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the file at `path` holds a record while `child` still runs.
fn wait_for_records(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("wasmpool exited ({status}) before a record reached {path:?}: {stderr}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no record reached {path:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the process `pid` handles SIGINT (its signal handling is set
/// up), as /proc tells.
fn wait_for_sigint_handler(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
            .unwrap();
        if caught & (1 << (libc::SIGINT - 1)) != 0 {
            return;
        }
        assert!(Instant::now() < deadline, "wasmpool never handled SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records of an output file; fails on a line that is not one.
fn file_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a partial record: {text}"
    );
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            assert!(record["index"].is_u64(), "{line}");
            assert!(
                record.get("ok").is_some() != record.get("error").is_some(),
                "{line}"
            );
            record
        })
        .collect()
}

fn indices(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect()
}

fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process (or process group) this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// The numbers before `ok`, `failed` and `not run` in the summary line.
fn interrupted_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("wasmpool: interrupted: ") && line.contains("not run"))
        .unwrap_or_else(|| panic!("no summary of the interruption: {stderr}"));
    let count = |what: &str| -> u64 {
        let before = &line[..line.find(what).unwrap()];
        before
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (count(" ok"), count(" failed"), count(" not run"))
}

#[test]
fn an_interrupted_run_keeps_its_finished_records_and_resume_finishes_it() {
    let _deadline = deadline(
        "an interrupted `wasmpool map` and its resumption",
        Duration::from_secs(180),
    );
    let dir = scratch("interrupt");
    let (input, output, child) = start_sleepy_run(&dir, &"20\n".repeat(500), &["-j", "2"]);
    // As Ctrl-C on a terminal does: to the whole process group, the
    // workers included.
    signal(-(child.id() as i32), libc::SIGINT);
    let (status, stderr) = finish(child, STOP_LIMIT, "wasmpool map after SIGINT");
    assert_eq!(status.code(), Some(130), "{stderr}");

    let records = file_records(&output);
    assert!(!records.is_empty());
    let wrong: Vec<&Value> = records.iter().filter(|r| r["ok"] != 20).take(3).collect();
    assert!(
        wrong.is_empty(),
        "tasks that did not finish got records: {wrong:?}"
    );
    let mut done = indices(&records);
    done.sort();
    done.dedup();
    assert_eq!(done.len(), records.len(), "an index twice");
    assert!(done.iter().all(|&i| i < 500));
    let (ok, failed, not_run) = interrupted_counts(&stderr);
    assert_eq!((ok, failed), (records.len() as u64, 0), "{stderr}");
    assert_eq!(ok + not_run, 500, "{stderr}");
    assert!(not_run > 0, "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");

    let resumed = map_files("sleep_ms", &input, &output, &["-j", "2", "--resume"])
        .spawn()
        .unwrap();
    let (status, stderr) = finish(resumed, Duration::from_secs(120), "wasmpool map --resume");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{not_run} ok, 0 failed, {ok} skipped as done already"
        )),
        "{stderr}"
    );
    let records = file_records(&output);
    let mut all = indices(&records);
    all.sort();
    assert_eq!(all, (0..500).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_a_run_with_status_143() {
    let _deadline = deadline("`wasmpool map` to stop on SIGTERM", OVER_STEP_LIMITS);
    let dir = scratch("sigterm");
    let (_, output, child) = start_sleepy_run(&dir, &"20\n".repeat(500), &["-j", "2"]);
    signal(child.id() as i32, libc::SIGTERM);
    let (status, stderr) = finish(child, STOP_LIMIT, "wasmpool map after SIGTERM");
    assert_eq!(status.code(), Some(143), "{stderr}");
    let records = file_records(&output);
    let (ok, _, not_run) = interrupted_counts(&stderr);
    assert_eq!(ok, records.len() as u64, "{stderr}");
    assert!(not_run > 0, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupt_stops_long_tasks_at_once_and_keeps_the_records_whole() {
    let _deadline = deadline(
        "`wasmpool map` of long tasks to stop on SIGINT",
        OVER_STEP_LIMITS,
    );
    // Four quick lines, then tasks far longer than the test waits.
    let dir = scratch("long-tasks");
    let lines = format!("{}{}", "10\n".repeat(4), "60000\n".repeat(20));
    let (_, output, child) = start_sleepy_run(&dir, &lines, &["-j", "2", "--chunksize", "1"]);
    signal(child.id() as i32, libc::SIGINT);
    // The second may come while the first is handled, or after the process
    // ended; either way the status and the file must be the same.
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: kill(2) on the child, which is not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (status, stderr) = finish(
        child,
        STOP_LIMIT,
        "wasmpool map of long tasks after two SIGINTs",
    );
    assert_eq!(status.code(), Some(130), "{stderr}");
    let records = file_records(&output);
    assert!(!records.is_empty());
    let wrong: Vec<&Value> = records
        .iter()
        .filter(|r| r["ok"] != 10 || r["index"].as_u64() >= Some(4))
        .collect();
    assert!(
        wrong.is_empty(),
        "records of tasks that did not finish: {wrong:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_interrupt_exits_at_once_even_when_the_first_cannot_finish() {
    let _deadline = deadline(
        "`wasmpool map` to exit on a second SIGINT",
        OVER_STEP_LIMITS,
    );
    // Records of 100 kB to a pipe nobody reads: the command blocks writing
    // the first, so the first interrupt cannot finish; the second must not
    // wait for it.
    let dir = scratch("second-interrupt");
    let input = dir.join("in.jsonl");
    std::fs::write(&input, format!("\"{}\"\n", "x".repeat(100_000)).repeat(50)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "echo", "-j", "1", "--input"])
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD stores the bytes waiting in the pipe in `waiting`.
        assert_eq!(
            unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut waiting) },
            0
        );
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no output came");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (line_tx, lines) = crossbeam_channel::unbounded();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = line_tx.send(line.unwrap());
        }
    });
    signal(child.id() as i32, libc::SIGINT);
    // The second once the first was seen, so that the two are not taken
    // for one.
    let first = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first.starts_with("wasmpool: interrupted"), "{first}");
    signal(child.id() as i32, libc::SIGINT);
    let (status, _) = finish(child, STOP_LIMIT, "wasmpool map echo after a second SIGINT");
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|line| line.contains("interrupted again")),
        "{rest:?}"
    );
    drop(stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupt_does_not_wait_for_input_that_does_not_come() {
    let _deadline = deadline(
        "`wasmpool map` waiting for stdin to stop on SIGINT",
        OVER_STEP_LIMITS,
    );
    // Three lines on stdin, which then stays open with nothing more.
    let dir = scratch("stdin");
    let output = dir.join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "sleep_ms", "-j", "1", "--chunksize", "1"])
        .arg("--output")
        .arg(&output)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"10\n10\n10\n").unwrap();
    wait_for_sigint_handler(child.id());
    signal(child.id() as i32, libc::SIGINT);
    let (status, stderr) = finish(
        child,
        STOP_LIMIT,
        "wasmpool map on an open stdin after SIGINT",
    );
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("and the rest of the input unread"),
        "{stderr}"
    );
    let records = file_records(&output);
    assert!(records.iter().all(|r| r["ok"] == 10), "{records:?}");
    drop(stdin);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn records_reach_the_file_while_the_run_goes_on() {
    let _deadline = deadline("the records of a running `wasmpool map`", OVER_STEP_LIMITS);
    let dir = scratch("flush");
    let (_, output, mut child) = start_sleepy_run(&dir, &"20\n".repeat(200), &["-j", "1"]);
    let written = std::fs::read_to_string(&output)
        .unwrap()
        .matches('\n')
        .count();
    assert!(written < 200, "every record came at once, at the end");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run of 4 s is over already"
    );
    let (status, stderr) = finish(child, Duration::from_secs(60), "wasmpool map of 200 sleeps");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(file_records(&output).len(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `wasmpool map FIXTURES square --resume` in `dir` over the lines
/// `input`, with `existing` in the output file already: the input and output
/// files, and how the run ended.
fn resume_square(
    dir: &Path,
    input: &str,
    existing: &str,
) -> (PathBuf, PathBuf, ExitStatus, String) {
    let (input_file, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    std::fs::write(&input_file, input).unwrap();
    std::fs::write(&output, existing).unwrap();
    let child = map_files("square", &input_file, &output, &["--resume"])
        .spawn()
        .unwrap();
    let (status, stderr) = finish(
        child,
        Duration::from_secs(60),
        "wasmpool map square --resume",
    );
    (input_file, output, status, stderr)
}

#[test]
fn records_of_a_trickling_pipe_come_before_its_next_line() {
    let _deadline = deadline("the records of a trickling pipe", OVER_STEP_LIMITS);
    // Lockstep: the next line goes in only once the record of the last one
    // came out; holding results back until more input arrives (or the input
    // ends) would stall this for ever.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "square", "-j", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (records_tx, records_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = records_tx.send(line.unwrap());
        }
    });
    for i in 0..10i64 {
        stdin.write_all(format!("{i}\n").as_bytes()).unwrap();
        let record = records_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!("the record of line {i} did not come before line {}", i + 1)
            });
        assert_eq!(
            serde_json::from_str::<Value>(&record).unwrap(),
            json!({"index": i, "ok": i * i})
        );
    }
    drop(stdin);
    let (status, stderr) = finish(
        child,
        Duration::from_secs(30),
        "wasmpool map square after its input ended",
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("10 ok, 0 failed"), "{stderr}");
}

#[test]
fn resume_cuts_a_partial_last_line_and_runs_only_what_is_not_done() {
    let _deadline = deadline(
        "`wasmpool map --resume` and a run without it",
        OVER_STEP_LIMITS,
    );
    let dir = scratch("resume");
    let before = "{\"index\":0,\"ok\":1}\n\
                  {\"index\":2,\"error\":{\"kind\":\"failed\",\"message\":\"earlier\"}}\n";
    let partial = format!("{before}{{\"index\":3,\"o");
    let (input, output, status, stderr) = resume_square(&dir, "1\n2\n3\n4\n5\n", &partial);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cut off line 3"), "{stderr}");
    assert!(
        stderr.contains("3 ok, 0 failed, 2 skipped as done already"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(text.starts_with(before), "{text}");
    let records = file_records(&output);
    assert_eq!(
        records[2..],
        [
            json!({"index": 1, "ok": 4}),
            json!({"index": 3, "ok": 16}),
            json!({"index": 4, "ok": 25}),
        ]
    );

    // Without --resume, the output starts anew.
    let child = map_files("square", &input, &output, &[]).spawn().unwrap();
    let (status, _) = finish(child, Duration::from_secs(60), "wasmpool map square");
    assert_eq!(status.code(), Some(0));
    assert_eq!(indices(&file_records(&output)), [0, 1, 2, 3, 4]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_refuses_a_file_that_is_not_records_and_needs_an_output_file() {
    let _deadline = deadline("`wasmpool map --resume` to refuse", OVER_STEP_LIMITS);
    let dir = scratch("resume-refused");
    let foreign = "{\"index\":0,\"ok\":1}\nsomething else\n";
    let (_, output, status, stderr) = resume_square(&dir, "1\n2\n", foreign);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} line 2 is not a wasmpool record",
            output.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), foreign);

    let out = wasmpool(&["map", FIXTURES, "square", "--resume"], "1\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--resume needs --output FILE"), "{stderr}");
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_input_line_over_the_payload_limit_fails_alone_in_bounded_memory() {
    let _deadline = deadline("two lines of 100 MB through `wasmpool map echo`", DEADLINE);
    // Two lines of 100 MB, the last without a newline, among short ones,
    // with a payload limit of 1 MiB: neither is held in memory.
    const BIG: usize = 100_000_000;
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4, which tells its peak memory"
    )]
    let mut child = echo_through_pipes(&["-j", "1", "--max-payload", "1M"]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let piece = vec![b'x'; 1 << 20];
        let big_line = |stdin: &mut std::process::ChildStdin| {
            stdin.write_all(b"\"")?;
            for _ in 0..BIG / piece.len() {
                stdin.write_all(&piece)?;
            }
            stdin.write_all(&piece[..BIG % piece.len()])?;
            stdin.write_all(b"\"")
        };
        stdin.write_all(b"\"a\"\n")?;
        big_line(&mut stdin)?;
        stdin.write_all(b"\n\"b\"\n")?;
        big_line(&mut stdin)
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    writer.join().unwrap().unwrap();
    // wait4 reports the peak memory of this child (and of the workers it
    // reaped), whatever other tests run at the same time.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: wait4 on this test's own child, filling the two it is given.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1);
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{stdout}");
    assert_eq!(records[0], json!({"index": 0, "ok": "a"}));
    assert_eq!(records[2], json!({"index": 2, "ok": "b"}));
    for (record, number) in [(&records[1], 2), (&records[3], 4)] {
        assert_eq!(record["error"]["kind"], "bad-arguments");
        let message = record["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "input line {number} is {} bytes, over the payload limit of 1048576 bytes",
                BIG + 2
            )),
            "{message}"
        );
    }
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 50, "peak RSS {peak_mb} MB for lines of 100 MB");
}

#[test]
fn a_lost_worker_is_reported_on_stderr_as_a_warning() {
    let _deadline = deadline(
        "`wasmpool map` after its worker is killed",
        OVER_STEP_LIMITS,
    );
    let dir = scratch("warning");
    let (_, output, child) =
        start_sleepy_run(&dir, "10\n60000\n", &["-j", "1", "--chunksize", "1"]);
    // The workers are the children of the command's threads.
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let children = std::fs::read_to_string(task.unwrap().path().join("children"));
        for worker in children.unwrap_or_default().split_whitespace() {
            signal(worker.parse().unwrap(), libc::SIGKILL);
        }
    }
    let (status, stderr) = finish(
        child,
        Duration::from_secs(60),
        "wasmpool map after its worker was killed",
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("wasmpool: warning: ")
                && line.contains("worker")
                && line.contains("SIGKILL")),
        "{stderr}"
    );
    let records = file_records(&output);
    assert_eq!(records[1]["error"]["kind"], "worker-lost");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cache_limit_evicts_the_artifacts_a_run_does_not_use() {
    let _deadline = deadline("`wasmpool map --cache-limit 0`", DEADLINE);
    let base = scratch("cache-limit");
    let run = |module: &str, more: &[&str]| {
        let mut args = vec!["map", module, "square"];
        args.extend_from_slice(more);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
            .args(&args)
            .env("XDG_CACHE_HOME", &base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"3\n").unwrap();
        let out = wait_with_deadline(child, COMMAND_LIMIT, "wasmpool map");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(records(&out), [json!({"index": 0, "ok": 9})]);
    };
    let artifacts = || -> Vec<PathBuf> {
        std::fs::read_dir(base.join("wasmpool"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
            .collect()
    };
    run(FIXTURES, &[]);
    run(wasmpool_artifacts::SEEDS, &[]);
    assert_eq!(artifacts().len(), 2);
    // Under a limit of 0, only the artifact the run uses stays.
    run(FIXTURES, &["--cache-limit", "0"]);
    let left = artifacts();
    assert_eq!(left.len(), 1, "{left:?}");
    run(FIXTURES, &[]);
    assert_eq!(artifacts(), left, "the kept artifact is the one in use");
    std::fs::remove_dir_all(&base).unwrap();
}
