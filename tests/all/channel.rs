//! The worker channel: outcomes stream task by task, a killed worker loses
//! only the task it ran, chunks are bounded by bytes, a slot never blocks on
//! a pipe, abandoned work is withdrawn, and tasks call host functions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, builder, deadline, outcome};
use serde_bytes::ByteBuf;
use wasmpool::{ErrorKind, GuestOutput};

/// A builder whose guests' output is counted, not printed: each
/// `noted_sleep` task says once that it started.
fn counting(processes: usize) -> (wasmpool::PoolBuilder, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let builder = builder(processes).on_output(move |output: &GuestOutput| {
        count.fetch_add(output.text().matches("started").count(), Ordering::SeqCst);
    });
    (builder, started)
}

#[test]
fn outcomes_stream_while_the_rest_of_their_chunk_runs() {
    let _deadline = deadline(
        "the first outcome of a chunk whose last task is slow",
        DEADLINE,
    );
    let pool = builder(1).build().unwrap();
    // One chunk: two quick tasks, then one of seconds.
    let mut results = pool
        .imap::<u64, u64, _>("sleep_ms", [1u64, 1, 4000], 3)
        .unwrap();
    for _ in 0..2 {
        let quick = results
            .next_timeout(Duration::from_secs(2))
            .expect("a quick task's outcome does not wait for the slow one");
        assert_eq!(quick.unwrap().unwrap(), 1);
    }
}

#[test]
fn a_killed_worker_fails_only_the_task_it_ran() {
    let _deadline = deadline("the outcomes of a chunk whose worker was killed", DEADLINE);
    let pool = builder(1).build().unwrap();
    // One worker, two chunks of ten tasks: the first runs, the second waits
    // on the worker, not started.
    let mut results = pool
        .imap::<u64, u64, _>("sleep_ms", vec![100u64; 20], 10)
        .unwrap()
        .indexed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(results.next().expect("three outcomes"));
    }
    let victim = pool.worker_pids()[0];
    // SAFETY: kill(2) on this pool's worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    seen.extend(results);
    assert_eq!(seen.len(), 20);
    let lost: Vec<u64> = seen
        .iter()
        .filter(|(_, result)| result.is_err())
        .map(|(index, _)| *index)
        .collect();
    assert_eq!(lost.len(), 1, "only the running task fails: {seen:?}");
    let (index, result) = &seen[lost[0] as usize];
    let err = result.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
    assert_eq!(err.task_index(), Some(*index));
    assert!(err.message().contains(&victim.to_string()), "{err}");
    // It was the task after the last one reported before the kill, give or
    // take the outcomes in flight; every other task has its own result.
    assert!((3..10).contains(index), "task {index} was lost");
    for (i, result) in &seen {
        if i != index {
            assert_eq!(result.as_ref().unwrap(), &100, "task {i}");
        }
    }
}

#[test]
fn results_larger_than_a_frame_arrive_in_many() {
    let _deadline = deadline(
        "110 results of 10 MiB in one chunk",
        Duration::from_secs(180),
    );
    const TEN_MIB: u64 = 10 << 20;
    let pool = builder(1).build().unwrap();
    // 1.1 GiB of results from one chunk: more than a frame may hold.
    let mut count = 0;
    for result in pool
        .imap::<ByteBuf, u64, _>("blob", vec![TEN_MIB; 110], 110)
        .unwrap()
    {
        let bytes = result.expect("a healthy worker is not killed for its answer");
        assert_eq!(bytes.len() as u64, TEN_MIB);
        count += 1;
    }
    assert_eq!(count, 110);
}

#[test]
fn a_slot_whose_worker_reads_nothing_still_sees_its_watchdog() {
    let _deadline = deadline("the watchdog of a worker that reads nothing", DEADLINE);
    let pool = builder(1)
        .task_timeout(Duration::from_millis(500))
        .startup_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let victim = pool.worker_pids()[0];
    // SAFETY: kill(2) on this pool's worker: frozen, it reads nothing.
    unsafe {
        libc::kill(victim as i32, libc::SIGSTOP);
    }
    // Arguments far larger than a pipe holds: writing them blocks until the
    // worker reads, which it never does.
    let big = "x".repeat(3 << 20);
    let pending = pool.apply_async::<String, _>("echo", (big,)).unwrap();
    let err = match pending.get_timeout(Duration::from_secs(30)) {
        Err(wasmpool::GetTimeoutError::Failed(err)) => err,
        Err(wasmpool::GetTimeoutError::Timeout) => {
            panic!("no outcome in 30 s: the slot is stuck writing to the full pipe")
        }
        Ok(echoed) => panic!("a frozen worker answered with {} bytes", echoed.len()),
    };
    assert!(err.is_timeout(), "{err}");
    assert!(err.message().contains("killed and replaced"), "{err}");
    assert_eq!(pool.apply::<i64, _>("square", (4,)).unwrap(), 16);
    assert!(!pool.worker_pids().contains(&victim));
}

#[test]
fn dropping_an_imap_withdraws_the_work_it_queued() {
    let _deadline = deadline("an apply after an abandoned imap", DEADLINE);
    let (builder, started) = counting(2);
    let pool = builder.build().unwrap();
    let mut abandoned = pool
        .istarmap::<u64, _, _>("noted_sleep", (0..1000).map(|_| (20u64,)), 4, true)
        .unwrap();
    assert_eq!(abandoned.next().unwrap().unwrap(), 20);
    drop(abandoned);
    let since = Instant::now();
    assert_eq!(pool.apply::<i64, _>("square", (7,)).unwrap(), 49);
    let waited = since.elapsed();
    pool.close();
    pool.join().unwrap();
    let ran = started.load(Ordering::SeqCst);
    eprintln!("after the drop, the apply waited {waited:?}; {ran} abandoned tasks ran");
    // What ran: the chunks the two workers were on when it was dropped (and
    // at most one more each that started as the withdrawal came), not the
    // hundreds it had queued.
    assert!(ran <= 16, "{ran} tasks of an abandoned imap ran");
}

#[test]
fn cancel_withdraws_the_tasks_of_an_async_result_that_have_not_started() {
    let _deadline = deadline("a cancelled map_async", DEADLINE);
    let (builder, started) = counting(2);
    let pool = builder.build().unwrap();
    let result = pool
        .map_async::<u64, _, _>("noted_sleep", vec![20u64; 400], 4)
        .unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    result.cancel();
    let err = outcome(&result, "a cancelled map_async").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    pool.close();
    pool.join().unwrap();
    let ran = started.load(Ordering::SeqCst);
    assert!(ran <= 16, "{ran} tasks of a cancelled map ran");
    // A cancel after the end changes nothing.
    let done = {
        let pool = crate::common::pool(1);
        let r = pool.apply_async::<i64, _>("square", (3,)).unwrap();
        let value = outcome(&r, "an apply").unwrap();
        r.cancel();
        value
    };
    assert_eq!(done, 9);
}

#[test]
fn a_slot_waiting_for_its_worker_always_hears_it_finish() {
    // A slot that cannot take more work sleeps until its worker's reader
    // thread tells it of progress. Tiny tasks one per chunk keep slots
    // deciding, and workers finishing, many thousand times a second: a
    // progress report that slipped between the two would leave a slot
    // asleep beside a queue full of work, and the stream would never end.
    let _deadline = deadline("streams of 100,000 tiny tasks, one per chunk", DEADLINE);
    let pool = crate::common::pool(2);
    for round in 0..5 {
        let n = pool
            .imap::<i64, _, _>("square", 0..100_000i64, 1)
            .unwrap()
            .inspect(|result| assert!(result.is_ok(), "round {round}: {result:?}"))
            .count();
        assert_eq!(n, 100_000);
    }
}

#[test]
fn an_output_handler_that_panics_fails_the_task_instead_of_hanging_it() {
    let _deadline = deadline("a task whose output handler panics", DEADLINE);
    let pool = builder(1)
        .on_output(|_| panic!("the output handler gives up"))
        .build()
        .unwrap();
    // The handler runs on the thread reading the worker's channel: its
    // panic ends that thread, and the worker with it.
    let err = pool.apply::<i64, _>("chatty", (3,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
    assert!(err.to_string().contains("panicked"), "{err}");
    // A new worker takes the next task.
    assert_eq!(pool.apply::<i64, _>("square", (3,)).unwrap(), 9);
}
