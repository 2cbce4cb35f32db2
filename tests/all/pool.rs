//! The Pool API, through real worker processes running real guests: ordering,
//! chunking, laziness, results and callbacks.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, OUTCOME_WAIT, Place, WORKER_PROGRAM, builder, deadline, pool};
use crate::terminal::{ESCAPED, FORGERY, assert_shown_escaped};
use wasmpool::{AsyncResult, Callbacks, ErrorKind, GetTimeoutError, NotReady, Pool};

#[test]
fn apply_runs_one_task_and_returns_its_result() {
    let _deadline = deadline("the results of four apply calls", DEADLINE);
    let pool = pool(2);
    let v: i64 = pool.apply("square", (7,)).unwrap();
    assert_eq!(v, 49);
    let q: i64 = pool.apply("divide", (7, 2)).unwrap();
    assert_eq!(q, 3);
    let s: String = pool.apply("echo", ("héllo",)).unwrap();
    assert_eq!(s, "héllo");
    let unit: () = pool.apply("noop", ()).unwrap();
    assert_eq!(unit, ());
}

#[test]
fn map_keeps_input_order() {
    let _deadline = deadline("map's 1000 squares", DEADLINE);
    let pool = pool(2);
    let input: Vec<i64> = (0..1000).rev().collect();
    let out: Vec<i64> = pool.map("square", input.clone(), None).unwrap();
    assert_eq!(out, input.iter().map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn map_of_nothing_is_nothing() {
    let _deadline = deadline("the empty map, starmap, map_async and imap", DEADLINE);
    let pool = pool(2);
    let out: Vec<i64> = pool.map("square", Vec::<i64>::new(), None).unwrap();
    assert!(out.is_empty());
    let out: Vec<i64> = pool.starmap("add", Vec::<(i64, i64)>::new(), None).unwrap();
    assert!(out.is_empty());
    let r = pool.map_async::<i64, i64, _>("square", [], None).unwrap();
    assert_eq!(r.get().unwrap(), Vec::<i64>::new());
    let mut it = pool.imap::<i64, i64, _>("square", [], None).unwrap();
    assert!(it.next().is_none());
}

#[test]
fn chunksize_one_and_huge_give_the_same_results() {
    let _deadline = deadline("map's 300 squares at four chunk sizes", DEADLINE);
    let pool = pool(2);
    let expected: Vec<i64> = (0..300).map(|x| x * x).collect();
    for chunksize in [1, 7, 300, 1_000_000] {
        let out: Vec<i64> = pool.map("square", 0..300i64, chunksize).unwrap();
        assert_eq!(out, expected, "chunksize {chunksize}");
    }
}

#[test]
fn chunksize_decides_how_items_spread_over_workers() {
    let _deadline = deadline("the places of map over 7 items", DEADLINE);
    // The seed: map(func, [1..7], 3) on 3 processes gives runs of 3, 3, 1
    // items per pid; with chunksize 7, one pid runs them all.
    let pool = pool(3);
    let places: Vec<Place> = pool.map("place", 1..=7i64, 3).unwrap();
    for run in places.chunks(3) {
        assert!(
            run.iter().all(|p| p.pid == run[0].pid),
            "a chunk runs on one worker"
        );
    }
    let places: Vec<Place> = pool.map("place", 1..=7i64, 7).unwrap();
    assert!(places.iter().all(|p| p.pid == places[0].pid));
    let indices: Vec<u64> = places.iter().map(|p| p.index).collect();
    assert_eq!(
        indices,
        (0..7).collect::<Vec<_>>(),
        "task_index is the input position"
    );
}

#[test]
fn workers_are_distinct_processes() {
    let _deadline = deadline("six slow place tasks", DEADLINE);
    let pool = pool(3);
    let pids: HashSet<u32> = pool.worker_pids().into_iter().collect();
    assert_eq!(pids.len(), 3);
    assert!(!pids.contains(&std::process::id()));
    // Slow tasks, one per chunk, spread over every worker.
    let places: Vec<Place> = pool.map("place_slowly", 0..6i64, 1).unwrap();
    let used: HashSet<u32> = places.iter().map(|p| p.pid).collect();
    assert!(used.is_subset(&pids));
    assert!(used.len() >= 2, "slow tasks should spread, ran on {used:?}");
}

#[test]
fn starmap_unpacks_tuples_in_order() {
    let _deadline = deadline("starmap's sums and quotients", DEADLINE);
    let pool = pool(2);
    let pairs: Vec<(i64, i64)> = (0..100).map(|i| (i, 1000 - i)).collect();
    let sums: Vec<i64> = pool.starmap("add", pairs.clone(), 3).unwrap();
    assert_eq!(sums, vec![1000; 100]);
    let r = pool
        .starmap_async::<i64, _, _>("divide", [(10, 2), (9, 3)], None)
        .unwrap();
    assert_eq!(r.get().unwrap(), vec![5, 3]);
}

#[test]
fn imap_is_ordered_and_lazy() {
    let _deadline = deadline("imap's squares of a finite and an endless input", DEADLINE);
    let pool = pool(2);
    let out: Vec<i64> = pool
        .imap("square", 0..500i64, 4)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, (0..500).map(|x| x * x).collect::<Vec<_>>());

    // An endless input: only a bounded window of it is ever pulled.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let endless = (0i64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let first: Vec<i64> = pool
        .imap("square", endless, None)
        .unwrap()
        .take(10)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..10).map(|x| x * x).collect::<Vec<_>>());
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled < 200,
        "pulled {pulled} items of an endless input for 10 results"
    );
}

#[test]
fn imap_next_with_a_timeout() {
    let _deadline = deadline("imap's two sleeps", DEADLINE);
    let pool = pool(1);
    let mut it = pool
        .imap::<u64, u64, _>("sleep_ms", [600, 0], None)
        .unwrap();
    let early = it.next_timeout(Duration::from_millis(50));
    assert_eq!(early.unwrap_err(), wasmpool::NextTimeout);
    assert_eq!(
        it.next_timeout(Duration::from_secs(30))
            .unwrap()
            .unwrap()
            .unwrap(),
        600
    );
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(it.next().is_none());
}

#[test]
fn a_stream_yields_each_result_before_the_next_item_comes() {
    let _deadline = deadline("the results of a lockstep stream", DEADLINE);
    // Lockstep: the producer sends item k+1 only once result k was yielded,
    // so an imap that waited for input before yielding would never finish.
    // Chunks of 8 hold one item each time: what came goes out at once.
    let pool = pool(2);
    for ordered in [true, false] {
        let (items, rx) = wasmpool::crossbeam_channel::bounded(4);
        let (yielded_tx, yielded) = std::sync::mpsc::channel::<()>();
        let producer = std::thread::spawn(move || {
            for x in 0..20i64 {
                items.send((x,)).unwrap();
                if yielded.recv_timeout(Duration::from_secs(10)).is_err() {
                    return false;
                }
            }
            true
        });
        let mut results = pool
            .istarmap_stream::<i64, _>("square", rx, 8, ordered)
            .unwrap()
            .indexed();
        let mut got = Vec::new();
        while let Some((index, result)) = results.next_timeout(Duration::from_secs(20)).unwrap() {
            got.push((index, result.unwrap()));
            let _ = yielded_tx.send(());
        }
        assert!(producer.join().unwrap(), "a result was held back");
        got.sort();
        assert_eq!(got, (0..20).map(|x| (x as u64, x * x)).collect::<Vec<_>>());
    }
}

#[test]
fn a_stream_ends_when_the_pool_is_terminated_though_its_channel_stays_open() {
    let _deadline = deadline("the end of a stream whose pool is terminated", DEADLINE);
    let pool = pool(1);
    let (items, rx) = wasmpool::crossbeam_channel::unbounded();
    items.send((3i64,)).unwrap();
    let mut results = pool
        .istarmap_stream::<i64, _>("square", rx, None, true)
        .unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 9);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            pool.terminate();
        });
        let started = Instant::now();
        assert!(results.next().is_none());
        assert!(started.elapsed() < Duration::from_secs(20));
    });
    // The stream is let go: its producer learns that nobody takes items.
    assert!(items.send((4i64,)).is_err());
    assert!(results.next().is_none());
}

#[test]
fn imap_unordered_yields_every_item_once() {
    let _deadline = deadline("imap_unordered's 40 sleeps", DEADLINE);
    let pool = pool(2);
    // Slow items first, so completion order differs from input order.
    let input: Vec<u64> = (0..40)
        .map(|i| if i % 10 == 0 { 50 } else { i % 3 })
        .collect();
    let seen: Vec<(u64, u64)> = pool
        .imap_unordered("sleep_ms", input.clone(), 2)
        .unwrap()
        .indexed()
        .map(|(index, result)| (index, result.unwrap()))
        .collect();
    assert_eq!(seen.len(), input.len());
    let indices: BTreeSet<u64> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..input.len() as u64).collect::<BTreeSet<_>>());
    for (index, value) in seen {
        assert_eq!(value, input[index as usize]);
    }
}

#[test]
fn get_with_a_timeout_on_a_slow_task() {
    let _deadline = deadline("a task sleeping 400 ms", DEADLINE);
    let pool = pool(1);
    let r = pool.apply_async::<u64, _>("sleep_ms", (400,)).unwrap();
    assert_eq!(
        r.get_timeout(Duration::from_millis(20)),
        Err(GetTimeoutError::Timeout)
    );
    assert!(!r.ready());
    assert_eq!(r.get_timeout(Duration::from_secs(30)), Ok(400));
    // Taken: asking again is a usage error, not a hang.
    assert_eq!(r.get().unwrap_err().kind(), ErrorKind::Usage);
}

#[test]
fn successful_before_ready_is_an_error() {
    let _deadline = deadline("a slow task and a failing one", DEADLINE);
    let pool = pool(1);
    let r = pool.apply_async::<u64, _>("sleep_ms", (300,)).unwrap();
    assert_eq!(r.successful(), Err(NotReady));
    r.wait();
    assert!(r.ready());
    assert_eq!(r.successful(), Ok(true));
    let bad = pool.apply_async::<i64, _>("divide", (1, 0)).unwrap();
    assert!(bad.wait_timeout(Duration::from_secs(30)));
    assert_eq!(bad.successful(), Ok(false));
    let err = bad.get().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.message(), "division by zero");
}

#[test]
fn wait_any_and_wait_all() {
    let _deadline = deadline("two sleeping tasks", DEADLINE);
    let pool = pool(2);
    let results: Vec<AsyncResult<u64>> = [800, 10]
        .into_iter()
        .map(|ms| pool.apply_async("sleep_ms", (ms,)).unwrap())
        .collect();
    assert_eq!(
        AsyncResult::wait_any(&results, Some(Duration::from_secs(30))),
        Some(1)
    );
    assert!(!AsyncResult::wait_all(
        &results,
        Some(Duration::from_millis(10))
    ));
    assert!(AsyncResult::wait_all(&results, None));
    assert_eq!(results[0].get().unwrap(), 800);
}

#[test]
fn apply_async_results_arrive_in_any_order_but_all_arrive() {
    let _deadline = deadline("20 squares from apply_async", DEADLINE);
    let pool = pool(2);
    let started = Instant::now();
    let results: Vec<AsyncResult<i64>> = (1..=20)
        .rev()
        .map(|i| pool.apply_async("square", (i,)).unwrap())
        .collect();
    let values: Vec<i64> = results.iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(values, (1..=20).rev().map(|i| i * i).collect::<Vec<i64>>());
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn callback_and_error_callback_each_exactly_once_per_task() {
    let _deadline = deadline("join after 50 tasks with callbacks", DEADLINE);
    crate::common::callbacks_run_once_each(&pool(2), 50);
}

#[test]
fn map_async_callback_gets_the_whole_list_once() {
    let _deadline = deadline("map_async's list and its callback", DEADLINE);
    let pool = pool(2);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let r = pool
        .map_async_with(
            "square",
            (1..=20i64).rev(),
            None,
            Callbacks::new().callback(move |v: &Vec<i64>| seen.lock().unwrap().push(v.clone())),
        )
        .unwrap();
    let values = r.get().unwrap();
    assert_eq!(values, (1..=20).rev().map(|x| x * x).collect::<Vec<i64>>());
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0], values);
}

#[test]
fn a_slow_or_panicking_callback_does_not_stall_other_results() {
    let _deadline = deadline("results beside a slow and a panicking callback", DEADLINE);
    let pool = pool(2);
    let slow = pool
        .apply_async_with(
            "square",
            (2,),
            Callbacks::new().callback(|_: &i64| std::thread::sleep(Duration::from_millis(1500))),
        )
        .unwrap();
    let panicking = pool
        .apply_async_with(
            "square",
            (3,),
            Callbacks::new().callback(|_: &i64| panic!("a callback panics")),
        )
        .unwrap();
    // Results without callbacks are delivered while the slow callback runs.
    let started = Instant::now();
    let plain: Vec<i64> = pool.map("square", 0..100i64, None).unwrap();
    assert_eq!(plain[9], 81);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "plain results waited for a slow callback ({:?})",
        started.elapsed()
    );
    assert_eq!(slow.get().unwrap(), 4);
    // The panic is caught; the result is still delivered.
    assert_eq!(panicking.get().unwrap(), 9);
    let after: i64 = pool.apply("square", (5,)).unwrap();
    assert_eq!(after, 25);
}

#[test]
fn initializer_state_is_seen_by_tasks() {
    let _deadline = deadline("tasks after an initializer", DEADLINE);
    let pool = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(2)
        .initializer("set_base", (42u64,))
        .build()
        .unwrap();
    let bases: Vec<u64> = pool.map("get_base_of", 0..20i64, 1).unwrap();
    assert!(bases.iter().all(|b| *b == 42), "{bases:?}");
}

#[test]
fn module_state_persists_within_a_worker() {
    let _deadline = deadline("five count tasks", DEADLINE);
    let pool = pool(1);
    let counts: Vec<u64> = (0..5).map(|_| pool.apply("count", ()).unwrap()).collect();
    assert_eq!(counts, [1, 2, 3, 4, 5]);
}

#[test]
fn task_names_and_argument_counts_are_checked_at_submit_time() {
    let _deadline = deadline(
        "calls with wrong names, arguments and result types",
        DEADLINE,
    );
    let pool = pool(1);
    let err = pool.apply::<i64, _>("no_such_task", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    assert!(
        err.message().contains("no_such_task") && err.message().contains("square"),
        "{err}"
    );
    let err = pool.map::<i64, i64, _>("nope", 0..3, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    let err = pool.apply::<i64, _>("add", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments);
    assert!(
        err.message()
            .contains("takes 2 arguments, but 1 were given"),
        "{err}"
    );
    let err = pool.apply::<i64, _>("square", 5).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments);
    // Wrong types reach the guest, which names what did not decode.
    let err = pool.apply::<i64, _>("square", ("seven",)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments);
    assert!(err.message().contains("square"), "{err}");
    // A result of another type than asked for.
    let err = pool.apply::<String, _>("square", (3,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadResult);
    assert_eq!(err.task_index(), Some(0));
    let tasks: Vec<&str> = pool.tasks().iter().map(|t| t.name.as_str()).collect();
    assert!(tasks.contains(&"square") && tasks.contains(&"divide"));
}

#[test]
fn guest_output_is_captured_and_attributed() {
    let _deadline = deadline("four chatty tasks and their output", DEADLINE);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let pool = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(2)
        .on_output(move |out| {
            sink.lock().unwrap().push((
                out.task_index,
                out.stream,
                out.text().into_owned(),
                out.pid,
            ))
        })
        .build()
        .unwrap();
    let _: Vec<i64> = pool.map("chatty", 0..4i64, 1).unwrap();
    let lines = lines.lock().unwrap();
    for index in 0..4u64 {
        let out: Vec<_> = lines.iter().filter(|l| l.0 == index).collect();
        assert!(
            out.iter()
                .any(|l| l.1 == wasmpool::Stream::Stdout
                    && l.2 == format!("hello from task {index}\n")),
            "{lines:?}"
        );
        assert!(
            out.iter()
                .any(|l| l.1 == wasmpool::Stream::Stderr && l.2 == format!("x is {index}\n"))
        );
        assert!(out.iter().all(|l| pool.worker_pids().contains(&l.3)));
    }
}

#[test]
fn output_is_bounded() {
    let _deadline = deadline("a task shouting 10,000 bytes", DEADLINE);
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let sink = outputs.clone();
    let pool = Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .output_limit(100)
        .on_output(move |out| sink.lock().unwrap().push(out.clone()))
        .build()
        .unwrap();
    let n: u64 = pool.apply("shout", (10_000u64,)).unwrap();
    assert_eq!(n, 10_000);
    let outputs = outputs.lock().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].bytes.len(), 100);
    assert!(outputs[0].truncated);
}

#[test]
fn output_reaches_the_handler_while_its_task_runs() {
    let _deadline = deadline("the first line of a task that sleeps on", DEADLINE);
    let (lines_tx, lines) = crossbeam_channel::unbounded();
    let pool = builder(1)
        .on_output(move |out| {
            let _ = lines_tx.send(out.clone());
        })
        .build()
        .unwrap();
    let result = pool
        .apply_async::<u64, _>("noted_sleep", (30_000u64,))
        .unwrap();
    let first = lines
        .recv_timeout(OUTCOME_WAIT)
        .expect("the task's line comes while it sleeps");
    assert_eq!(first.text(), "started\n");
    assert_eq!(first.task_index, 0);
    assert!(!result.ready(), "the task ended before its output came");
}

#[test]
fn an_output_handler_gets_the_bytes_a_task_wrote() {
    let _deadline = deadline("a task printing escape sequences", DEADLINE);
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let sink = outputs.clone();
    let pool = builder(1)
        .on_output(move |out| sink.lock().unwrap().push((out.stream, out.bytes.clone())))
        .build()
        .unwrap();
    pool.apply::<(), _>("say", (FORGERY,)).unwrap();
    // The line the task left unended comes with its outcome, not later.
    let outputs = outputs.lock().unwrap();
    for stream in [wasmpool::Stream::Stdout, wasmpool::Stream::Stderr] {
        assert!(
            outputs.contains(&(stream, FORGERY.as_bytes().to_vec())),
            "{outputs:?}"
        );
    }
}

/// Set in the copy of this test binary that the next test runs on a
/// terminal.
const ON_A_TERMINAL: &str = "WASMPOOL_TEST_ON_A_TERMINAL";

#[test]
fn on_a_terminal_the_pools_own_handlers_escape_what_would_act_on_it() {
    let _deadline = deadline("tasks printing escape sequences on a terminal", DEADLINE);
    if std::env::var_os(ON_A_TERMINAL).is_some() {
        // The copy, its stderr on the terminal: the default handler, then
        // plain output.
        pool(1).apply::<(), _>("say", (FORGERY,)).unwrap();
        builder(1)
            .plain_output()
            .build()
            .unwrap()
            .apply::<(), _>("say", (FORGERY,))
            .unwrap();
        return;
    }
    let mut copy = std::process::Command::new(std::env::current_exe().unwrap());
    copy.args([
        "--exact",
        "pool::on_a_terminal_the_pools_own_handlers_escape_what_would_act_on_it",
        "--nocapture",
    ])
    .env(ON_A_TERMINAL, "1");
    let (status, shown) = crate::terminal::stderr_on_a_terminal(copy, DEADLINE);
    let shown = String::from_utf8(shown).unwrap();
    assert!(status.success(), "{shown}");
    assert_shown_escaped(&shown, &["task 0 out] ", "task 0 err] "]);
    // Plain output: the task's stderr as it wrote it, escaped.
    assert!(shown.ends_with(&format!("\r\n{ESCAPED}")), "{shown:?}");
}

#[test]
fn pools_and_results_are_send_and_sync() {
    let _deadline = deadline("40 squares asked from four threads", DEADLINE);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<AsyncResult<Vec<String>>>();
    send_sync::<wasmpool::Error>();
    let pool = pool(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4i64)
            .map(|t| {
                let pool = &pool;
                scope.spawn(move || {
                    (0..10i64)
                        .map(|i| pool.apply::<i64, _>("square", (t * 10 + i,)).unwrap())
                        .sum::<i64>()
                })
            })
            .collect();
        let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, (0..40i64).map(|x| x * x).sum::<i64>());
    });
}

#[test]
fn istarmap_is_a_lazy_starmap() {
    let _deadline = deadline("istarmap's sums", DEADLINE);
    let pool = pool(2);
    let pairs = (0..50i64).map(|i| (i, 2 * i));
    let sums: Vec<i64> = pool
        .istarmap("add", pairs, 4, true)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sums, (0..50).map(|i| 3 * i).collect::<Vec<_>>());
    let mut unordered: Vec<i64> = pool
        .istarmap("add", [(1i64, 1i64), (2, 2)], None, false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort();
    assert_eq!(unordered, [2, 4]);
}
