//! The `wasmpool` command, run as a user would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use wasmpool_artifacts::FIXTURES;

fn wasmpool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn records(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn map_writes_one_record_per_line_in_order() {
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
fn unordered_writes_every_line_once() {
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
    let out = wasmpool(&["map", FIXTURES, "chatty", "-j", "1"], "1\n2\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(records(&out).len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("task 1 out] hello from task 1"), "{stderr}");
    assert!(stderr.contains("task 0 err] x is 1"), "{stderr}");
}

#[test]
fn tasks_lists_what_a_module_exports() {
    let out = wasmpool(&["tasks", FIXTURES], "");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "divide\t2"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "noop\t0"), "{stdout}");
}

#[test]
fn a_large_input_streams_through_in_bounded_memory() {
    // 200 MB of input (20,000 lines of 10 kB) through a pool, read and
    // written as a stream: the peak memory of the command and its workers
    // stays far below the size of the input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "echo", "-j", "2", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    assert!(child.wait().unwrap().success());
    assert_eq!(lines, 20_000);
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 120, "peak RSS {peak_mb} MB for 200 MB of input");
}

#[test]
fn limits_and_grants_from_the_command_line() {
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

    let out = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "read_env", "--env", "WASMPOOL_TEST_VAR"])
        .env("WASMPOOL_TEST_VAR", "passed through")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"\"WASMPOOL_TEST_VAR\"\n\"PATH\"\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let got = records(&out);
    assert_eq!(got[0]["ok"], "passed through");
    assert_eq!(got[1]["ok"], Value::Null);
}
