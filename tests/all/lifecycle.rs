//! Starting, recycling, closing, terminating and dropping pools.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    DEADLINE, OUTCOME_WAIT, Place, WORKER_PROGRAM, builder, deadline, outcome, pool,
};
use wasmpool::{AsyncResult, Callbacks, ErrorKind, GetTimeoutError, Pool};

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still have one.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn max_tasks_per_child_one_gives_a_new_pid_per_task() {
    let _deadline = deadline("12 tasks, each in a fresh worker", DEADLINE);
    let pool = builder(2).max_tasks_per_child(1).build().unwrap();
    let pids: Vec<u32> = pool.map("pid", 0..12i64, 4).unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        12,
        "every task ran in a fresh worker: {pids:?}"
    );
}

#[test]
fn max_tasks_per_child_counts_tasks_not_chunks() {
    let _deadline = deadline("a chunk of 10 tasks split over fresh workers", DEADLINE);
    let pool = builder(1).max_tasks_per_child(3).build().unwrap();
    // One chunk of 10 tasks: split to fit each worker's quota of 3.
    let places: Vec<Place> = pool.map("place", 0..10i64, 10).unwrap();
    let pids: Vec<u32> = places.iter().map(|p| p.pid).collect();
    for run in pids.chunks(3) {
        assert!(run.iter().all(|pid| *pid == run[0]), "{pids:?}");
    }
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "{pids:?}");
    let values: Vec<i64> = places.iter().map(|p| p.value).collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
}

#[test]
fn close_then_join_finishes_submitted_work() {
    let _deadline = deadline("close, join and six sleeping tasks", DEADLINE);
    let pool = pool(2);
    let results: Vec<AsyncResult<u64>> = (0..6)
        .map(|_| pool.apply_async("sleep_ms", (50u64,)).unwrap())
        .collect();
    let pids = pool.worker_pids();
    pool.close();
    pool.join().unwrap();
    for result in &results {
        assert_eq!(
            outcome(result, "a task submitted before close").unwrap(),
            50
        );
    }
    for pid in pids {
        assert!(!alive(pid), "worker {pid} was not reaped");
    }
}

#[test]
fn join_needs_close_first() {
    let _deadline = deadline("a pool to start and refuse join", DEADLINE);
    let pool = pool(1);
    assert_eq!(pool.join().unwrap_err().kind(), ErrorKind::Usage);
}

#[test]
fn submit_after_close_is_an_error() {
    let _deadline = deadline("a closed pool's refusals and its join", DEADLINE);
    let pool = pool(1);
    pool.close();
    let err = pool.apply::<i64, _>("square", (2,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolClosed);
    assert_eq!(
        pool.map::<i64, i64, _>("square", 0..3, None)
            .unwrap_err()
            .kind(),
        ErrorKind::PoolClosed
    );
    assert_eq!(
        pool.imap::<i64, i64, _>("square", 0..3, None)
            .unwrap_err()
            .kind(),
        ErrorKind::PoolClosed
    );
    pool.join().unwrap();
}

#[test]
fn terminate_with_tasks_in_flight() {
    let _deadline = deadline(
        "terminate, join and the outcomes of ten tasks in flight",
        DEADLINE,
    );
    let pool = pool(2);
    let results: Vec<AsyncResult<u64>> = (0..10)
        .map(|_| pool.apply_async("sleep_ms", (5_000u64,)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let pids = pool.worker_pids();
    let started = Instant::now();
    pool.terminate();
    pool.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "terminate waited for the tasks"
    );
    for result in &results {
        let err = outcome(result, "a task in flight at terminate").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Terminated, "{err}");
    }
    for pid in pids {
        assert!(!alive(pid), "worker {pid} survived terminate");
    }
}

#[test]
fn terminate_while_another_thread_submits_leaves_no_task_without_an_outcome() {
    let _deadline = deadline("terminate during a submission, and the outcomes", DEADLINE);
    // A submitting thread holds a handle on the queue while it sends chunk
    // after chunk; a terminate in the middle must still end every task.
    let mut raced = 0;
    for round in 0..40u64 {
        let pool = &pool(2);
        let submitted = std::thread::scope(|scope| {
            let (go_tx, go_rx) = std::sync::mpsc::channel();
            let submitter = scope.spawn(move || {
                go_tx.send(()).unwrap();
                pool.map_async::<i64, _, _>("square", 0..100_000i64, 1)
            });
            go_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(1 + round % 8));
            pool.terminate();
            submitter.join().unwrap()
        });
        // Terminated before the submission began: nothing raced.
        let Ok(results) = submitted else { continue };
        raced += 1;
        match results.get_timeout(OUTCOME_WAIT) {
            Ok(_) => {}
            Err(GetTimeoutError::Failed(err)) => {
                assert_eq!(err.kind(), ErrorKind::Terminated, "{err}")
            }
            Err(GetTimeoutError::Timeout) => {
                panic!("round {round}: tasks were left without an outcome")
            }
        }
        if raced == 5 {
            return;
        }
    }
    panic!("terminate never came during a submission ({raced} of 5 rounds)");
}

#[test]
fn dropping_a_pool_with_tasks_in_flight_does_not_hang() {
    let _deadline = deadline(
        "the drop of a pool with tasks in flight, and their outcomes",
        DEADLINE,
    );
    let pool = pool(2);
    let pids = pool.worker_pids();
    let pending: AsyncResult<Vec<u64>> = pool.map_async("sleep_ms", vec![3_000u64; 8], 1).unwrap();
    let mut imap = pool
        .imap::<u64, u64, _>("sleep_ms", vec![3_000u64; 8], None)
        .unwrap();
    assert!(imap.next_timeout(Duration::from_millis(100)).is_err());
    drop(imap);
    let started = Instant::now();
    drop(pool);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop waited for the tasks"
    );
    let err = outcome(&pending, "a map in flight as its pool was dropped").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Terminated);
    for pid in pids {
        assert!(!alive(pid), "worker {pid} survived the pool");
    }
}

#[test]
fn close_and_join_from_a_callback_do_not_deadlock() {
    let _deadline = deadline("close and join called from a callback", DEADLINE);
    let pool = Arc::new(pool(1));
    let done = Arc::new(Mutex::new(None));
    let (inner, flag) = (pool.clone(), done.clone());
    let r = pool
        .apply_async_with(
            "square",
            (4,),
            Callbacks::new().callback(move |v: &i64| {
                inner.close();
                *flag.lock().unwrap() = Some((*v, inner.join()));
            }),
        )
        .unwrap();
    assert_eq!(r.get().unwrap(), 16);
    let done = done.lock().unwrap().take();
    assert_eq!(done, Some((16, Ok(()))));
}

#[test]
fn a_program_that_did_not_call_init_gets_told_how_to_fix_it() {
    let _deadline = deadline("a build refused for want of init()", DEADLINE);
    // This test binary never called wasmpool::init().
    let err = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("wasmpool::init()"), "{err}");
}

#[test]
fn a_worker_program_that_is_not_a_worker_is_refused() {
    let _deadline = deadline("builds with worker programs that are not workers", DEADLINE);
    let err = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program("/bin/true")
        .processes(1)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Spawn);
    assert!(err.message().contains("exited with status 0"), "{err}");
    assert!(err.message().contains("wasmpool::init()"), "{err}");
    let err = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program("/no/such/program")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Spawn);
    assert!(err.message().contains("/no/such/program"), "{err}");
}

#[test]
fn invalid_configurations_are_refused() {
    let _deadline = deadline("builds refused for their configuration", DEADLINE);
    assert_eq!(builder(0).build().unwrap_err().kind(), ErrorKind::Config);
    let err = builder(1).max_tasks_per_child(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = Pool::builder()
        .worker_program(WORKER_PROGRAM)
        .build()
        .unwrap_err();
    assert!(err.message().contains("no module"), "{err}");
}

#[test]
fn the_compiled_module_is_cached_on_disk() {
    let _deadline = deadline("two pools sharing a cache directory", DEADLINE);
    let dir = std::env::temp_dir().join(format!("wasmpool-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = builder(1).cache_dir(&dir).build().unwrap();
    let entries = || -> Vec<_> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let cached = entries();
    assert_eq!(cached.len(), 1);
    let modified = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    drop(first);
    let second = builder(1).cache_dir(&dir).build().unwrap();
    assert_eq!(second.apply::<i64, _>("square", (3,)).unwrap(), 9);
    assert_eq!(entries(), cached);
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        modified,
        "compiled again"
    );
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
}
