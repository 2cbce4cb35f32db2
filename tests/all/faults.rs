//! Tasks that fail: each gets its own outcome, and the pool goes on.

use std::sync::{Arc, Mutex};

use crate::common::{DEADLINE, builder, deadline, pool};
use wasmpool::{Callbacks, ErrorKind};

#[test]
fn a_trap_fails_its_task_and_the_rest_of_the_map_completes() {
    let _deadline = deadline("a map with a trapping task", DEADLINE);
    let pool = pool(2);
    let input: Vec<i64> = (0..40).map(|i| if i == 17 { -1 } else { i }).collect();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let r = pool
        .map_async_with::<i64, _, _>(
            "trap_if_negative",
            input.clone(),
            8,
            Callbacks::new().error_callback(move |e| seen.lock().unwrap().push(e.clone())),
        )
        .unwrap();
    let err = r.get().unwrap_err();
    assert!(err.is_trap(), "{err}");
    assert_eq!(err.task_index(), Some(17));
    let errors = errors.lock().unwrap().clone();
    assert_eq!(
        errors.len(),
        1,
        "error_callback once for the one failed task"
    );
    assert_eq!(errors[0], err);
    assert!(err.message().contains("unreachable"), "{err}");
    crate::common::assert_unreachable_in(&err, "trap_if_negative");
    // Each task's own outcome: all but the trapping one succeed.
    let outcomes: Vec<Result<i64, wasmpool::Error>> = pool
        .imap("trap_if_negative", input.clone(), 8)
        .unwrap()
        .collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(v) => assert_eq!(*v, input[i]),
            Err(e) => assert!(i == 17 && e.is_trap(), "task {i}: {e}"),
        }
    }
    let after: i64 = pool.apply("square", (6,)).unwrap();
    assert_eq!(after, 36);
}

#[test]
fn a_trap_renews_the_instance() {
    let _deadline = deadline("count tasks around a trap", DEADLINE);
    let pool = pool(1);
    assert_eq!(pool.apply::<u64, _>("count", ()).unwrap(), 1);
    assert_eq!(pool.apply::<u64, _>("count", ()).unwrap(), 2);
    assert!(
        pool.apply::<i64, _>("trap_if_negative", (-1,))
            .unwrap_err()
            .is_trap()
    );
    // A fresh instance: the state of the one that trapped is gone.
    assert_eq!(pool.apply::<u64, _>("count", ()).unwrap(), 1);
}

#[test]
fn a_trap_renews_the_instance_and_reruns_the_initializer() {
    let _deadline = deadline("a task after a trap and the initializer again", DEADLINE);
    let pool = builder(1).initializer("set_base", (7u64,)).build().unwrap();
    assert!(
        pool.apply::<i64, _>("trap_if_negative", (-5,))
            .unwrap_err()
            .is_trap()
    );
    assert_eq!(pool.apply::<u64, _>("get_base", ()).unwrap(), 7);
}

#[test]
fn a_panic_fails_its_task_with_the_message() {
    let _deadline = deadline("imap with a panicking task", DEADLINE);
    let pool = pool(1);
    let outcomes: Vec<_> = pool
        .imap::<i64, _, _>("panic_if_negative", [1i64, -2, 3], 3)
        .unwrap()
        .collect();
    assert_eq!(outcomes[0].as_ref().unwrap(), &1);
    let err = outcomes[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.message().starts_with("negative input: -2"), "{err}");
    assert_eq!(err.task_index(), Some(1));
    assert_eq!(outcomes[2].as_ref().unwrap(), &3);
}

#[test]
fn an_err_fails_its_task_with_the_message() {
    let _deadline = deadline("a task that returns an error", DEADLINE);
    let pool = pool(1);
    let err = pool.apply::<i64, _>("divide", (1, 0)).unwrap_err();
    assert!(err.is_failed());
    assert_eq!(err.message(), "division by zero");
    assert_eq!(err.to_string(), "task 0: failed: division by zero");
}

#[test]
fn a_killed_worker_fails_only_its_tasks_and_is_replaced() {
    let _deadline = deadline("the tasks of a killed worker and of the others", DEADLINE);
    let pool = pool(2);
    // Each worker takes a long task first, the rest queue behind: the kill
    // lands while the victim runs its long one, whatever the machine's load
    // (a kill between two tasks would fail none).
    let mut lengths = vec![1500u64, 1500];
    lengths.extend([200u64; 10]);
    let results = pool
        .imap::<u64, u64, _>("sleep_ms", lengths, 1)
        .unwrap()
        .indexed();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let victim = pool.worker_pids()[0];
    // SAFETY: kill(2) on a worker of this test's pool.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    let rest: Vec<(u64, Result<u64, wasmpool::Error>)> = results.collect();
    assert_eq!(rest.len(), 12);
    let lost: Vec<&wasmpool::Error> = rest.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        !lost.is_empty() && lost.len() <= 2,
        "only the victim's tasks fail: {lost:?}"
    );
    for err in &lost {
        assert!(err.is_worker_lost(), "{err}");
        assert!(err.message().contains(&victim.to_string()), "{err}");
        assert!(err.message().contains("SIGKILL"), "{err}");
    }
    assert!(rest.iter().filter(|(_, r)| r.is_ok()).count() >= 10);
    // The pool goes on with a replacement.
    assert_eq!(pool.apply::<i64, _>("square", (9,)).unwrap(), 81);
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    assert!(!pids.contains(&victim));
}

#[test]
fn a_failing_initializer_is_reported_at_build() {
    let _deadline = deadline("a build with a failing initializer", DEADLINE);
    let err = builder(1)
        .initializer("failing_init", ())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Initializer);
    assert!(err.message().contains("the initializer refuses"), "{err}");
}

#[test]
fn modules_that_are_not_task_modules_are_refused_at_build() {
    let _deadline = deadline("builds of modules that are not task modules", DEADLINE);
    let cases: [(&[u8], &str); 3] = [
        (b"not wasm at all", "not a WebAssembly binary"),
        (
            b"\0asm\x01\0\0\0",
            "core WebAssembly module, not a component",
        ),
        (
            b"\0asm\x0d\0\x01\0",
            "does not implement the wasmpool task-module world",
        ),
    ];
    for (bytes, expected) in cases {
        let err = builder(1).module_bytes(bytes).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadModule, "{err}");
        assert!(err.message().contains(expected), "{err}");
    }
    let err = builder(1)
        .module_file("/no/such/module.wasm")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.message().contains("/no/such/module.wasm"), "{err}");
}
