//! Limits and the sandbox: every way a task can overrun or overreach is a
//! clean outcome for that task, and the worker goes on.

use std::time::{Duration, Instant};

use crate::common::{DEADLINE, builder, deadline, pool};
use wasmpool::ErrorKind;

#[test]
fn a_task_that_loops_for_ever_times_out() {
    let _deadline = deadline("a spinning task to time out", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.apply::<u64, _>("spin", (1u64,)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.message().contains("300ms"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // The worker goes on, on a fresh instance.
    assert_eq!(pool.apply::<i64, _>("square", (3,)).unwrap(), 9);
}

#[test]
fn a_task_that_sleeps_past_its_limit_times_out() {
    let _deadline = deadline("a sleep past its limit to time out", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    let started = Instant::now();
    let outcomes: Vec<Result<u64, wasmpool::Error>> = pool
        .imap("sleep_ms", [10u64, 60_000, 10], 3)
        .unwrap()
        .collect();
    assert_eq!(outcomes[0].as_ref().unwrap(), &10);
    let err = outcomes[1].as_ref().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.task_index(), Some(1));
    assert_eq!(outcomes[2].as_ref().unwrap(), &10);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // Stopped inside the worker: the same process goes on.
    assert_eq!(pool.worker_pids(), pids);
}

#[test]
fn the_time_limit_is_per_task_not_per_chunk() {
    let _deadline = deadline("ten 100 ms tasks in one chunk", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // Ten tasks of 100 ms in one chunk: a second in all, each within its limit.
    let out: Vec<u64> = pool.map("sleep_ms", vec![100u64; 10], 10).unwrap();
    assert_eq!(out, vec![100; 10]);
}

#[test]
fn a_worker_that_stops_answering_is_killed_by_the_watchdog() {
    let _deadline = deadline("the pool to replace a frozen worker", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let victim = pool.worker_pids()[0];
    let pending = pool.apply_async::<u64, _>("sleep_ms", (100u64,)).unwrap();
    // A frozen worker cannot stop its own task: only the watchdog can.
    // SAFETY: kill(2) on this pool's worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGSTOP);
    }
    let err = pending.get().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.message().contains("killed and replaced"), "{err}");
    assert_eq!(pool.apply::<i64, _>("square", (4,)).unwrap(), 16);
    assert!(!pool.worker_pids().contains(&victim));
}

/// The bytes of linear memory a build refused with `err` says the module
/// needs to start.
fn needed_to_start(err: &wasmpool::Error) -> u64 {
    let message = err.message();
    let after = message
        .split_once(" needs ")
        .unwrap_or_else(|| panic!("no need named: {err}"))
        .1;
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_memory_limit_below_the_modules_start_fails_the_build_naming_both() {
    let _deadline = deadline("builds with a memory limit below the module's", DEADLINE);
    // The fixtures' memory starts at about 1 MiB: 1 MiB is just under it,
    // within the allocator's slack; 64 KiB is far under.
    for (limit, shown) in [(1u64 << 20, "1.0 MiB"), (64 << 10, "0.1 MiB")] {
        let err = builder(1).memory_limit(limit).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{err}");
        let needed = needed_to_start(&err);
        assert!(needed > limit && needed.is_multiple_of(64 << 10), "{err}");
        let message = err.message();
        assert!(message.contains("fixtures.wasm"), "names the module: {err}");
        assert!(
            message.contains(&format!("over the memory limit of {limit} bytes ({shown})")),
            "{err}"
        );
        assert!(message.contains(" MiB) of linear memory to start"), "{err}");
        assert!(
            message.contains(&format!("at least {needed} bytes")),
            "{err}"
        );
    }
    // What it says is enough is.
    let err = builder(1).memory_limit(1 << 20).build().unwrap_err();
    let pool = builder(1)
        .memory_limit(needed_to_start(&err) + (1 << 20))
        .build()
        .unwrap();
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
}

#[test]
fn memory_growth_past_the_limit_is_a_memory_limit_error() {
    let _deadline = deadline("tasks growing memory past the limit", DEADLINE);
    let pool = builder(1).memory_limit(64 << 20).build().unwrap();
    let err = pool.apply::<u64, _>("hog", (4u64,)).unwrap_err();
    assert!(err.is_memory_limit(), "{err}");
    assert!(
        err.message().contains("over the limit of 67108864 bytes"),
        "{err}"
    );
    // Within the limit is fine, on a fresh instance.
    assert_eq!(pool.apply::<u64, _>("allocate", (16u64,)).unwrap(), 16);
    assert!(
        pool.apply::<u64, _>("allocate", (100u64,))
            .unwrap_err()
            .is_memory_limit()
    );
}

#[test]
fn endless_recursion_is_a_stack_overflow_trap() {
    let _deadline = deadline("a task recursing without end", DEADLINE);
    let pool = pool(1);
    let err = pool.apply::<u64, _>("recurse", (u64::MAX,)).unwrap_err();
    assert!(err.is_trap(), "{err}");
    assert_eq!(
        err.trap_details().unwrap().code.as_deref(),
        Some("stack overflow")
    );
    assert_eq!(pool.apply::<u64, _>("recurse", (100u64,)).unwrap(), 100);
}

#[test]
fn fuel_is_a_deterministic_budget_per_task() {
    let _deadline = deadline("tasks burning fuel", DEADLINE);
    let pool = builder(2).fuel(1_000_000).build().unwrap();
    // Each task gets the whole budget: many small tasks all fit.
    let sums: Vec<u64> = pool.map("burn", vec![1_000u64; 50], 50).unwrap();
    assert!(sums.iter().all(|s| *s == 499_500));
    let err = pool.apply::<u64, _>("burn", (10_000_000u64,)).unwrap_err();
    assert!(err.is_out_of_fuel(), "{err}");
    assert!(err.message().contains("1000000"), "{err}");
    // Deterministic: the same task fails the same way every time.
    let again = pool.apply::<u64, _>("burn", (10_000_000u64,)).unwrap_err();
    assert_eq!(again.kind(), err.kind());
    assert_eq!(pool.apply::<u64, _>("burn", (10u64,)).unwrap(), 45);
}

#[test]
fn payloads_over_the_limit_are_refused() {
    let _deadline = deadline("calls with payloads over the limit", DEADLINE);
    let pool = builder(1).max_payload(1000).build().unwrap();
    let err = pool
        .apply::<String, _>("echo", ("x".repeat(2000),))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments);
    assert!(
        err.message()
            .contains("over the payload limit of 1000 bytes"),
        "{err}"
    );
    let err = pool
        .apply::<Vec<u8>, _>("big_result", (5000u64,))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadResult);
    assert!(err.message().contains("over the payload limit"), "{err}");
    assert_eq!(
        pool.apply::<Vec<u8>, _>("big_result", (10u64,)).unwrap(),
        vec![7; 10]
    );
}

#[test]
fn a_guest_has_no_files_and_no_environment_unless_granted() {
    let _deadline = deadline("a guest reading files and variables", DEADLINE);
    let pool = pool(1);
    let err = pool
        .apply::<String, _>("read_file", ("/etc/passwd",))
        .unwrap_err();
    assert!(err.is_failed(), "{err}");
    assert!(
        err.message().starts_with("cannot read /etc/passwd"),
        "{err}"
    );
    // The host's own environment is not the guest's.
    assert_eq!(
        pool.apply::<Option<String>, _>("read_env", ("PATH",))
            .unwrap(),
        None
    );
    assert_eq!(
        pool.apply::<Option<String>, _>("read_env", ("HOME",))
            .unwrap(),
        None
    );
}

#[test]
fn granted_directories_and_variables_are_usable() {
    let _deadline = deadline("a guest using granted directories and variables", DEADLINE);
    let dir = std::env::temp_dir().join(format!("wasmpool-grant-{}", std::process::id()));
    let ro = dir.join("ro");
    let rw = dir.join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("hello.txt"), "hello from the host").unwrap();
    let pool = builder(1)
        .preopen_dir(&ro, "/data", true)
        .preopen_dir(&rw, "/out", false)
        .env("GREETING", "hi")
        .build()
        .unwrap();
    assert_eq!(
        pool.apply::<String, _>("read_file", ("/data/hello.txt",))
            .unwrap(),
        "hello from the host"
    );
    let err = pool
        .apply::<(), _>("write_file", ("/data/nope.txt", "x"))
        .unwrap_err();
    assert!(err.is_failed(), "read-only means read-only: {err}");
    pool.apply::<(), _>("write_file", ("/out/result.txt", "written by a guest"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(rw.join("result.txt")).unwrap(),
        "written by a guest"
    );
    // Outside the grants nothing changes.
    assert!(
        pool.apply::<String, _>("read_file", ("/etc/passwd",))
            .is_err()
    );
    assert_eq!(
        pool.apply::<Option<String>, _>("read_env", ("GREETING",))
            .unwrap()
            .as_deref(),
        Some("hi")
    );
    assert_eq!(
        pool.apply::<Option<String>, _>("read_env", ("PATH",))
            .unwrap(),
        None
    );
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_worker_cannot_exec_fork_open_sockets_or_files() {
    let _deadline = deadline("two pools probing their sandbox", DEADLINE);
    // The workers probe their own sandbox; build fails if any of it works.
    let pool = builder(2).verify_sandbox(true).build().unwrap();
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
    let pool = builder(1)
        .preopen_dir(std::env::temp_dir(), "/tmp", true)
        .verify_sandbox(true)
        .build()
        .unwrap();
    assert_eq!(pool.apply::<i64, _>("square", (6,)).unwrap(), 36);
}

#[test]
fn retries_run_the_tasks_of_a_dead_worker_again() {
    let _deadline = deadline("the retried tasks of a killed worker", DEADLINE);
    let pool = builder(2).retries(2).build().unwrap();
    let mut results = pool
        .imap::<u64, u64, _>("sleep_ms", vec![150u64; 10], 1)
        .unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 150);
    let victim = pool.worker_pids()[0];
    // SAFETY: kill(2) on this pool's worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    let rest: Vec<Result<u64, wasmpool::Error>> = results.collect();
    assert_eq!(rest.len(), 9);
    assert!(
        rest.iter().all(|r| r.as_ref().is_ok_and(|v| *v == 150)),
        "{rest:?}"
    );
}

/// Pools with a task time limit stop a module's code cleanly at any limit
/// (epoch checks are compiled in); pools without one have the worker's
/// backstop end it. Both must say the same thing.
fn with_and_without_task_timeout(check: impl Fn(wasmpool::PoolBuilder)) {
    check(builder(1));
    check(builder(1).task_timeout(Duration::from_secs(60)));
}

#[test]
fn a_module_whose_describe_never_returns_is_refused_at_build() {
    let _deadline = deadline("builds of a module whose describe never returns", DEADLINE);
    with_and_without_task_timeout(|builder| {
        let started = Instant::now();
        let err = builder
            .module_file(wasmpool_artifacts::HOSTILE)
            .processes(2)
            .startup_timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadModule, "{err}");
        // Said of the module and of what it did, not of the worker.
        assert!(err.message().contains(wasmpool_artifacts::HOSTILE), "{err}");
        assert!(
            err.message()
                .contains("`describe` did not return within 1s"),
            "{err}"
        );
        // Generous: the limit is 1 s, the old handshake wait was 30 s.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn an_initializer_that_never_returns_fails_the_build() {
    let _deadline = deadline("builds with an initializer that never returns", DEADLINE);
    with_and_without_task_timeout(|builder| {
        let started = Instant::now();
        let err = builder
            .initializer("spin", (1u64,))
            .initializer_timeout(Duration::from_millis(500))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Initializer, "{err}");
        assert!(
            err.message().contains(wasmpool_artifacts::FIXTURES),
            "{err}"
        );
        assert!(
            err.message()
                .contains("initializer `spin` did not return within 500ms"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    });
}

#[test]
fn an_initializer_that_hangs_on_a_renewed_instance_fails_the_waiting_tasks() {
    let _deadline = deadline(
        "tasks behind an initializer that hangs on renewal",
        DEADLINE,
    );
    let dir = std::env::temp_dir().join(format!("wasmpool-renew-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("hang");
    with_and_without_task_timeout(|builder| {
        let _ = std::fs::remove_file(&flag);
        let pool = builder
            .preopen_dir(&dir, "/flags", true)
            .initializer("spin_if_exists", ("/flags/hang",))
            .initializer_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        assert_eq!(pool.apply::<i64, _>("square", (3,)).unwrap(), 9);
        // From now on a fresh instance's initializer spins; a trap forces one.
        std::fs::write(&flag, b"").unwrap();
        assert!(
            pool.apply::<i64, _>("trap_if_negative", (-1,))
                .unwrap_err()
                .is_trap()
        );
        let late = "initializer `spin_if_exists` did not return within 500ms";
        let err = pool.apply::<i64, _>("square", (4,)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Initializer, "{err}");
        assert!(err.message().contains(late), "{err}");
        // The pool recovers once the initializer passes again. (A worker
        // that the backstop ended is replaced; a replacement that hangs too
        // fails the next task with why, so a few may fail first.)
        std::fs::remove_file(&flag).unwrap();
        let recovered = (0..20).any(|_| match pool.apply::<i64, _>("square", (5,)) {
            Ok(value) => {
                assert_eq!(value, 25);
                true
            }
            Err(err) => {
                assert!(err.message().contains(late), "{err}");
                false
            }
        });
        assert!(recovered);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duration_max_is_no_limit_anywhere() {
    let _deadline = deadline("tasks and waits without limits", DEADLINE);
    // Each is a natural spelling of "no limit"; none may overflow.
    let pool = builder(2)
        .task_timeout(Duration::MAX)
        .startup_timeout(Duration::MAX)
        .initializer_timeout(Duration::MAX)
        .initializer("set_base", (1u64,))
        .build()
        .unwrap();
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
    // A renewed instance (after a trap) runs under the same limits.
    assert!(
        pool.apply::<i64, _>("trap_if_negative", (-1,))
            .unwrap_err()
            .is_trap()
    );
    assert_eq!(pool.apply::<u64, _>("get_base", ()).unwrap(), 1);
    let pending = pool.apply_async::<i64, _>("square", (6,)).unwrap();
    assert_eq!(pending.get_timeout(Duration::MAX).unwrap(), 36);
    let pending = pool.apply_async::<i64, _>("square", (7,)).unwrap();
    assert!(wasmpool::AsyncResult::wait_all(
        std::slice::from_ref(&pending),
        Some(Duration::MAX)
    ));
    assert_eq!(
        wasmpool::AsyncResult::wait_any(std::slice::from_ref(&pending), Some(Duration::MAX)),
        Some(0)
    );
    let mut squares = pool.imap::<i64, _, _>("square", 0..3i64, None).unwrap();
    assert_eq!(
        squares
            .next_timeout(Duration::MAX)
            .unwrap()
            .unwrap()
            .unwrap(),
        0
    );
    let mut indexed = pool
        .imap::<i64, _, _>("square", 0..3i64, None)
        .unwrap()
        .indexed();
    assert_eq!(indexed.next_timeout(Duration::MAX).unwrap().unwrap().0, 0);
    pool.close();
    pool.join().unwrap();
}
