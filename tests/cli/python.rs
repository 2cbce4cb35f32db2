//! Tasks written in Python (the `wasmpool_guest` Python SDK), built from
//! `tests/guests/python/pyfixtures.py` by the build and run through real
//! worker processes: results, failures, limits, output, keyword arguments,
//! shared objects and the command line.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{DEADLINE, deadline, outcome};
use serde_json::{Value, json};
use wasmpool::{ErrorKind, GuestOutput, Lock, Manager, Pool, PoolBuilder, Queue, Stream};
use wasmpool_artifacts::PYFIXTURES;

fn builder(processes: usize) -> PoolBuilder {
    Pool::builder()
        .module_file(PYFIXTURES)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(processes)
}

fn pool(processes: usize) -> Pool {
    builder(processes).build().expect("the Python pool starts")
}

#[test]
fn results_come_back_in_order_from_several_workers() {
    let _deadline = deadline("a map of squares through Python", DEADLINE);
    let pool = pool(2);
    let squares: Vec<i64> = pool.map("square", 0..40i64, 3).unwrap();
    assert_eq!(squares, (0..40i64).map(|x| x * x).collect::<Vec<_>>());
    let value = json!({"a": [1, 2.5, "x", null, true], "b": {"nested": [[]]}});
    let echoed: Value = pool.apply("echo", (value.clone(),)).unwrap();
    assert_eq!(echoed, value, "MessagePack round trip through Python");
    let big: u64 = pool.apply("echo", (u64::MAX,)).unwrap();
    assert_eq!(big, u64::MAX);
    // Every width of integer MessagePack has, of both signs, each side of
    // its bounds: as arguments, as items of an argument, and as results.
    let edges: Vec<i64> = vec![
        0,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u32::MAX.into(),
        1 << 32,
        i64::MAX,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i32::MIN.into(),
        i64::from(i32::MIN) - 1,
        i64::MIN,
    ];
    let echoed: Vec<i64> = pool.map("echo", edges.clone(), 4).unwrap();
    assert_eq!(echoed, edges);
    let echoed: Vec<i64> = pool.apply("echo", (edges.clone(),)).unwrap();
    assert_eq!(echoed, edges);
    for scalar in [
        json!(null),
        json!(true),
        json!(false),
        json!(-1.5),
        json!("é"),
    ] {
        let echoed: Value = pool.apply("echo", (scalar.clone(),)).unwrap();
        assert_eq!(echoed, scalar);
    }
    let bytes: serde_bytes::ByteBuf = pool
        .apply("echo", (serde_bytes::Bytes::new(b"\x00\xffbin"),))
        .unwrap();
    assert_eq!(bytes.as_ref(), b"\x00\xffbin");
    let places: Vec<Value> = pool.map("place", [10, 11, 12], 1).unwrap();
    let indices: Vec<u64> = places
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indices,
        [0, 1, 2],
        "task_index() is the position in the map"
    );
    assert!(places.iter().all(|p| p["pid"].as_u64().unwrap() > 0));
}

#[test]
fn exceptions_fail_their_task_alone_with_type_message_and_traceback() {
    let _deadline = deadline("failing Python tasks", DEADLINE);
    let pool = pool(1);
    let err = pool.apply::<i64, _>("divide", (1, 0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert_eq!(
        err.message(),
        "division by zero",
        "TaskError: just its message"
    );
    assert_eq!(pool.apply::<i64, _>("divide", (7, 2)).unwrap(), 3);

    let err = pool
        .apply::<(), _>("raise_value_error", ("bad input",))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    let message = err.message();
    assert!(message.starts_with("ValueError: bad input\n"), "{message}");
    assert!(
        message.contains("Traceback (most recent call last)"),
        "{message}"
    );
    assert!(message.contains("in raise_value_error"), "{message}");
    assert!(
        !message.contains("_runtime.py"),
        "the SDK's frames are left out: {message}"
    );

    let err = pool.apply::<Value, _>("bad_result", ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadResult, "{err}");
    let err = pool.apply::<Value, _>("lazy_import", ()).unwrap_err();
    assert!(
        err.message().contains("import it at the top level"),
        "{err}"
    );
    // The worker survived all of it.
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
}

#[test]
fn sys_exit_and_keyboard_interrupt_fail_only_their_task() {
    let _deadline = deadline("Python tasks that exit", DEADLINE);
    let pool = pool(1);
    let pid_before: Value = pool.apply("place", (0,)).unwrap();
    let each: Vec<_> = [json!(3), json!("bye")]
        .into_iter()
        .map(|code| pool.apply::<Value, _>("exit_with", (code,)).unwrap_err())
        .collect();
    assert!(each.iter().all(|err| err.kind() == ErrorKind::Failed));
    assert!(
        each[0].message().starts_with("SystemExit: 3"),
        "{}",
        each[0]
    );
    assert!(
        each[1].message().starts_with("SystemExit: bye"),
        "{}",
        each[1]
    );
    let err = pool.apply::<Value, _>("interrupt", ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().starts_with("KeyboardInterrupt"), "{err}");
    let pid_after: Value = pool.apply("place", (0,)).unwrap();
    assert_eq!(pid_before["pid"], pid_after["pid"], "the worker lived on");
}

#[test]
fn a_looping_or_sleeping_task_is_stopped_at_its_time_limit() {
    let _deadline = deadline("Python tasks past their time limit", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = pool.apply::<(), _>("spin", ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let err = pool.apply::<f64, _>("sleep", (30.0,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(pool.apply::<f64, _>("sleep", (0.01,)).unwrap(), 0.01);
}

#[test]
fn a_task_allocating_past_the_memory_limit_fails_alone() {
    let _deadline = deadline("a Python task over its memory limit", DEADLINE);
    let pool = builder(1).memory_limit(64 << 20).build().unwrap();
    assert_eq!(pool.apply::<u64, _>("allocate", (8,)).unwrap(), 8);
    let err = pool.apply::<u64, _>("allocate", (200,)).unwrap_err();
    // CPython turns the refused growth into MemoryError, or the host's limit
    // traps first: either way that task fails, and the next one runs.
    assert!(
        err.kind() == ErrorKind::MemoryLimit
            || (err.kind() == ErrorKind::Failed && err.message().starts_with("MemoryError")),
        "{err}"
    );
    assert_eq!(pool.apply::<u64, _>("allocate", (8,)).unwrap(), 8);
}

#[test]
fn a_python_task_on_a_fresh_instance_finds_nothing_an_earlier_task_left() {
    let _deadline = deadline("secrets left in Python instances", DEADLINE);
    let found = |fresh: bool| -> Vec<Vec<String>> {
        let pool = builder(1).fresh_instance(fresh).build().unwrap();
        let mut found: Vec<Vec<String>> = (1..=2u64)
            .map(|secret| pool.apply("swap_secret", (secret,)).unwrap())
            .collect();
        let chunk: Vec<Vec<String>> = pool.map("swap_secret", 3..=5u64, 3).unwrap();
        found.extend(chunk);
        found
    };
    let kept = found(false);
    assert_eq!(kept[1], ["global 1", "buffer 1", "environment 1"]);
    assert_eq!(kept[4], ["global 4", "buffer 4", "environment 4"]);
    let fresh = found(true);
    assert!(
        fresh.iter().all(Vec::is_empty),
        "a task found a secret: {fresh:?}"
    );
}

#[test]
fn print_output_is_captured_and_attributed_to_its_task() {
    let _deadline = deadline("Python tasks that print", DEADLINE);
    let seen: Arc<Mutex<Vec<(u64, Stream, String)>>> = Arc::default();
    let sink = seen.clone();
    let pool = builder(1)
        .on_output(move |out: &GuestOutput| {
            let text = String::from_utf8_lossy(&out.bytes).into_owned();
            sink.lock()
                .unwrap()
                .push((out.task_index, out.stream, text));
        })
        .build()
        .unwrap();
    let text = |index: u64, stream: Stream| -> String {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(i, s, _)| *i == index && *s == stream)
            .map(|(_, _, t)| t.clone())
            .collect()
    };
    let lengths: Vec<usize> = pool.map("shout", ["a", "bb", "ccc"], 3).unwrap();
    assert_eq!(lengths, [1, 2, 3]);
    for (index, line) in ["a", "bb", "ccc"].iter().enumerate() {
        let index = index as u64;
        let seen = &seen;
        assert_eq!(
            text(index, Stream::Stdout),
            format!("out: {line}\n"),
            "{seen:?}"
        );
        assert_eq!(
            text(index, Stream::Stderr),
            format!("err: {line}\n"),
            "{seen:?}"
        );
    }
    // Lines not ended, held back by a stream set to buffer, are their
    // task's too.
    seen.lock().unwrap().clear();
    let written: Vec<usize> = pool.map("write_parts", ["x", "yy"], 2).unwrap();
    assert_eq!(written, [1, 2]);
    assert_eq!(text(0, Stream::Stdout), "x!", "{seen:?}");
    assert_eq!(text(1, Stream::Stdout), "yy!", "{seen:?}");
}

#[test]
fn keyword_arguments_bind_to_python_parameters_and_defaults() {
    let _deadline = deadline("keyword calls of a Python task", DEADLINE);
    let pool = pool(1);
    let greet = pool.tasks().iter().find(|t| t.name == "greet").unwrap();
    let names: Vec<Option<&str>> = greet.params.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(names, [Some("name"), Some("greeting"), Some("times")]);
    let s: String = pool
        .apply_kw("greet", (), BTreeMap::from([("name", "Ada")]))
        .unwrap();
    assert_eq!(s, "Hello, Ada!");
    let s: String = pool
        .apply_kw("greet", ("Bo",), json!({"times": 2, "greeting": "Hi"}))
        .unwrap();
    assert_eq!(s, "Hi, Bo! Hi, Bo!");
    let err = pool
        .apply_kw::<String, _, _>("greet", (), BTreeMap::from([("nom", "Cy")]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments, "{err}");
}

#[test]
fn a_host_function_is_called_from_python() {
    let _deadline = deadline("Python tasks calling the host", DEADLINE);
    let pool = builder(1)
        .host_fn("length", |(s,): (String,)| -> Result<usize, String> {
            Ok(s.len())
        })
        .build()
        .unwrap();
    let n: usize = pool
        .apply_kw("ask_host", ("length",), json!({"arg": "four"}))
        .unwrap();
    assert_eq!(n, 4);
    let err = pool
        .apply::<Value, _>("ask_host", ("nothing", "x"))
        .unwrap_err();
    assert!(err.message().starts_with("HostCallError"), "{err}");
}

#[test]
fn a_counter_under_a_lock_ends_exact_across_python_workers() {
    let _deadline = deadline("Python tasks counting under a lock", DEADLINE);
    let pool = pool(2);
    let lock = Lock::new();
    let counter = Manager::new().value(&0i64).unwrap();
    let items: Vec<_> = (0..4)
        .map(|_| (lock.clone(), counter.clone(), 20))
        .collect();
    let died: Vec<u64> = pool.starmap("locked_increments", items, 1).unwrap();
    assert_eq!(died, [0, 0, 0, 0]);
    assert_eq!(counter.get().unwrap(), 4 * 20);
}

#[test]
fn a_python_task_takes_items_from_a_queue_and_puts_its_answer() {
    let _deadline = deadline("a Python task draining a queue", DEADLINE);
    let pool = pool(1);
    let queue: Queue<Value> = Queue::new();
    let pending = pool
        .apply_async::<i64, _>("drain", (queue.clone(), 5))
        .unwrap();
    for i in 1..=5 {
        queue.put(&json!(i)).unwrap();
    }
    assert_eq!(outcome(&pending, "the draining task").unwrap(), 15);
    assert_eq!(queue.get().unwrap(), json!({"total": 15}));
}

/// Runs `wasmpool map` over the Python fixtures with `args` and `stdin` as
/// input: its exit code and its records.
fn cli(args: &[&str], stdin: &str) -> (Option<i32>, Vec<Value>) {
    let out = crate::command::wasmpool(&[&["map", PYFIXTURES], args].concat(), stdin);
    (out.status.code(), crate::command::records(&out))
}

#[test]
fn the_command_line_runs_python_tasks_with_star_and_kwargs() {
    let _deadline = deadline("`wasmpool map` over Python tasks", DEADLINE);
    let (status, records) = cli(&["square"], "1\n2\n3\n");
    assert_eq!(status, Some(0));
    assert_eq!(
        records,
        [
            json!({"index": 0, "ok": 1}),
            json!({"index": 1, "ok": 4}),
            json!({"index": 2, "ok": 9})
        ]
    );
    let (status, records) = cli(&["divide", "--star"], "[7, 2]\n[1, 0]\n");
    assert_eq!(status, Some(1));
    assert_eq!(records[0], json!({"index": 0, "ok": 3}));
    assert_eq!(
        records[1],
        json!({"index": 1, "error": {"kind": "failed", "message": "division by zero"}})
    );
    let (status, records) = cli(
        &["greet", "--kwargs"],
        "{\"name\": \"Ada\"}\n{\"name\": \"Bo\", \"times\": 2}\n{\"times\": 2}\n",
    );
    assert_eq!(status, Some(1));
    assert_eq!(records[0], json!({"index": 0, "ok": "Hello, Ada!"}));
    assert_eq!(
        records[1],
        json!({"index": 1, "ok": "Hello, Bo! Hello, Bo!"})
    );
    assert_eq!(records[2]["error"]["kind"], "bad-arguments", "{records:?}");
}

/// Runs `python3 -m wasmpool_guest build` on `source` in `dir`; its exit
/// code and what it wrote to stderr.
fn build_module(dir: &std::path::Path, source: &str) -> (Option<i32>, String) {
    let out = Command::new("python3")
        .args(["-m", "wasmpool_guest", "build", source, "-o", "out.wasm"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_build_refuses_native_code_and_explains_a_missing_module() {
    let _deadline = deadline("building modules that cannot work", DEADLINE);
    let dir = tempfile::tempdir().unwrap();
    // A package with native code next to the task module.
    std::fs::create_dir(dir.path().join("fastlib")).unwrap();
    std::fs::write(dir.path().join("fastlib/__init__.py"), "").unwrap();
    std::fs::write(dir.path().join("fastlib/_speedups.so"), b"\x7fELF").unwrap();
    std::fs::write(
        dir.path().join("native.py"),
        "import fastlib\nfrom wasmpool_guest import task\n\n@task\ndef f(x):\n    return x\n",
    )
    .unwrap();
    let (code, stderr) = build_module(dir.path(), "native.py");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("native code"), "{stderr}");
    assert!(stderr.contains("_speedups.so"), "{stderr}");
    assert!(!dir.path().join("out.wasm").exists());
    // A module that is not installed at all.
    std::fs::write(
        dir.path().join("missing.py"),
        "import no_such_module_anywhere\nfrom wasmpool_guest import task\n\n@task\ndef f(x):\n    return x\n",
    )
    .unwrap();
    let (code, stderr) = build_module(dir.path(), "missing.py");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("no_such_module_anywhere"), "{stderr}");
    assert!(stderr.contains("not installed"), "{stderr}");
}
