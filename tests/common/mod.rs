//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde::Deserialize;
use wasmpool::{AsyncResult, Callbacks, ErrorKind, Pool};

/// The deadline of a test of the pool: many times what the slowest of them
/// takes on a busy two-core machine, far below what CI would wait for a hung
/// test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A test's watchdog, from [`deadline`]; dropping it (at the end of the test,
/// or as a failing test unwinds) disarms it.
#[must_use = "a watchdog bound to `_` is dropped at once: bind it to `_deadline`"]
pub struct Deadline {
    _armed: mpsc::Sender<()>,
}

/// Arms a watchdog over the calling test: if the returned guard is still
/// alive after `limit`, it prints `test deadline: <test> still waiting for
/// <what> after <limit>` to stderr and ends the test process with status 1,
/// so that a test that hangs fails in bounded time instead of holding the
/// whole run.
///
/// Create it first thing in a test, bound to a name (`let _deadline = ...`),
/// so it lives until the test ends. `what` says what the test waits for.
pub fn deadline(what: &str, limit: Duration) -> Deadline {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let what = what.to_owned();
    let (armed, disarmed) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("deadline of {test}"))
        .spawn(move || {
            // Nothing is ever sent: the guard's drop disconnects the channel.
            if disarmed.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                // Straight to stderr: `eprintln!` here would go to the test's
                // captured output, which nobody prints once the process exits.
                let _ = writeln!(
                    std::io::stderr(),
                    "test deadline: {test} still waiting for {what} after {}s",
                    limit.as_secs()
                );
                std::process::exit(1);
            }
        })
        .expect("the deadline thread starts");
    Deadline { _armed: armed }
}

/// How long a test waits for the outcome of a task that must come at once
/// (the pool was terminated, dropped or joined): ample on a busy machine, yet
/// a lost outcome fails the test in seconds.
pub const OUTCOME_WAIT: Duration = Duration::from_secs(10);

/// The outcome of `result`, which must come within [`OUTCOME_WAIT`];
/// otherwise panics, naming `what` the result is.
pub fn outcome<R>(result: &wasmpool::AsyncResult<R>, what: &str) -> Result<R, wasmpool::Error> {
    match result.get_timeout(OUTCOME_WAIT) {
        Ok(value) => Ok(value),
        Err(wasmpool::GetTimeoutError::Failed(err)) => Err(err),
        Err(wasmpool::GetTimeoutError::Timeout) => {
            panic!("no outcome for {what} within {OUTCOME_WAIT:?}")
        }
    }
}

/// The program the tests' pools start as their workers: the library's
/// `wasmpool-worker`, or in the tests of the `wasmpool-cli` package (which
/// has no such binary) the `wasmpool` command; both call `wasmpool::init()`.
/// A test binary cannot: it has no `main` of its own.
pub const WORKER_PROGRAM: &str = match (
    option_env!("CARGO_BIN_EXE_wasmpool-worker"),
    option_env!("CARGO_BIN_EXE_wasmpool"),
) {
    (Some(program), _) | (None, Some(program)) => program,
    (None, None) => panic!("a package whose tests use these helpers has no worker program"),
};

/// A pool of `processes` workers on the fixtures module, started as
/// [`WORKER_PROGRAM`].
pub fn pool(processes: usize) -> Pool {
    builder(processes).build().expect("the pool starts")
}

/// The builder of [`pool`], to configure further.
pub fn builder(processes: usize) -> wasmpool::PoolBuilder {
    Pool::builder()
        .module_file(wasmpool_artifacts::FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(processes)
}

/// What the `place` task returns.
#[derive(Debug, Deserialize)]
pub struct Place {
    pub pid: u32,
    pub index: u64,
    pub value: i64,
}

/// Submits `tasks` divisions with callbacks to `pool` (every fifth by
/// zero), closes and joins it, and checks that each task's callback or
/// error callback ran exactly once, before `join` returned, and that each
/// result was ready by then: a core case every backend must pass.
pub fn callbacks_run_once_each(pool: &Pool, tasks: i64) {
    let oks = Arc::new(Mutex::new(Vec::new()));
    let errs = Arc::new(Mutex::new(Vec::new()));
    let results: Vec<AsyncResult<i64>> = (0..tasks)
        .map(|i| {
            let (oks, errs) = (oks.clone(), errs.clone());
            let divisor = if i % 5 == 0 { 0 } else { 1 };
            pool.apply_async_with(
                "divide",
                (i, divisor),
                Callbacks::new()
                    .callback(move |v: &i64| oks.lock().unwrap().push(*v))
                    .error_callback(move |e| errs.lock().unwrap().push(e.clone())),
            )
            .unwrap()
        })
        .collect();
    pool.close();
    pool.join().unwrap();
    // join waited for the callbacks, as in CPython.
    let mut oks = oks.lock().unwrap().clone();
    oks.sort();
    let expected: Vec<i64> = (0..tasks).filter(|i| i % 5 != 0).collect();
    assert_eq!(oks, expected);
    let errs = errs.lock().unwrap();
    assert_eq!(errs.len(), tasks as usize - expected.len());
    assert!(
        errs.iter()
            .all(|e| e.kind() == ErrorKind::Failed && e.message() == "division by zero"),
        "{errs:?}"
    );
    // Each result was ready once its callback had run.
    assert!(results.iter().all(AsyncResult::ready));
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.successful().unwrap(), i % 5 != 0, "task {i}");
    }
}

/// Checks that `err` is the trap of `unreachable` in `function`, with its
/// code and a backtrace through it.
pub fn assert_unreachable_in(err: &wasmpool::Error, function: &str) {
    let details = err.trap_details().expect("a trap has details");
    assert_eq!(details.code.as_deref(), Some("unreachable"));
    assert!(
        details.backtrace.iter().any(|f| f.contains(function)),
        "{:?}",
        details.backtrace
    );
}
