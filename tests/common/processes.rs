//! `Process`: one task in a worker process of its own, wherever it runs —
//! results and exit codes, kill and terminate, join with a timeout,
//! daemons, and output while the task runs. Each case takes the [`Pools`]
//! it runs on; [`tests_of_processes`] declares a test of each for one place
//! (here: `tests/all/here.rs`; agents: `tests/nats.rs`).

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::calls::Pools;
use crate::common::{DEADLINE, OUTCOME_WAIT, deadline};
use wasmpool::ErrorKind;

/// Declares a `#[test]` of each case, run on the [`Pools`] `$place` makes.
macro_rules! tests_of_processes {
    ($place:expr) => {
        tests_of_processes!(@each $place;
            a_task_that_returns_ends_with_its_result_and_exit_code_0,
            a_failed_task_ends_with_exit_code_1_and_its_error,
            an_unknown_task_is_refused_at_start,
            kill_and_terminate_end_with_minus_the_signal,
            join_with_a_timeout_returns_while_the_process_runs_on,
            the_pid_is_the_workers_own_and_its_parent_runs_the_pool,
            dropping_a_daemon_kills_it_and_dropping_another_waits_for_it,
            output_comes_while_the_process_runs,
            keyword_arguments_bind_with_the_task_defaults,
            twenty_processes_run_each_in_a_worker_of_its_own,
        );
    };
    (@each $place:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::processes::$case(&$place);
            }
        )*
    };
}
pub(crate) use tests_of_processes;

/// A process of `context` that sleeps a minute, unless stopped.
fn sleeper(context: &wasmpool::Context) -> wasmpool::Process {
    context
        .process("sleep_ms")
        .args((60_000u64,))
        .start()
        .unwrap()
}

/// The parent pid of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // `pid (comm) state ppid ...`; comm may hold spaces, not a `)`.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

pub fn a_task_that_returns_ends_with_its_result_and_exit_code_0(at: &dyn Pools) {
    let _deadline = deadline("a process squaring 7", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let p = context
        .process("square")
        .args((7,))
        .name("squarer")
        .start()
        .unwrap();
    assert_eq!(p.name(), "squarer");
    p.join();
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(p.result::<i64>().unwrap().unwrap(), 49);
}

pub fn a_failed_task_ends_with_exit_code_1_and_its_error(at: &dyn Pools) {
    let _deadline = deadline("a process dividing by zero", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let p = context.process("divide").args((1, 0)).start().unwrap();
    p.join();
    assert_eq!(p.exitcode(), Some(1));
    let err = p.result::<i64>().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("division by zero"), "{err}");
}

pub fn an_unknown_task_is_refused_at_start(at: &dyn Pools) {
    let _deadline = deadline("a process of a task the module lacks", DEADLINE);
    let err = at
        .builder(1)
        .context()
        .unwrap()
        .process("no_such_task")
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
}

pub fn kill_and_terminate_end_with_minus_the_signal(at: &dyn Pools) {
    let _deadline = deadline("a killed and a terminated process", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let looping = context.process("spin").args((1u64,)).start().unwrap();
    let sleeping = sleeper(&context);
    looping.kill();
    sleeping.terminate();
    looping.join();
    sleeping.join();
    assert_eq!(looping.exitcode(), Some(-libc::SIGKILL));
    assert_eq!(sleeping.exitcode(), Some(-libc::SIGTERM));
    for p in [&looping, &sleeping] {
        let err = p.result::<u64>().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
    }
}

pub fn join_with_a_timeout_returns_while_the_process_runs_on(at: &dyn Pools) {
    let _deadline = deadline("a sleeping process joined with a timeout", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let p = sleeper(&context);
    assert!(p.is_alive());
    assert!(!p.join_timeout(Duration::from_millis(200)));
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert!(p.result::<u64>().is_none());
    p.kill();
    assert!(p.join_timeout(OUTCOME_WAIT));
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
}

pub fn the_pid_is_the_workers_own_and_its_parent_runs_the_pool(at: &dyn Pools) {
    let _deadline = deadline("a process reporting its pid", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let p = sleeper(&context);
    assert_eq!(parent_of(p.pid()), at.parent_of_workers());
    p.kill();
    let p = context.process("pid").args((0,)).start().unwrap();
    p.join();
    assert_eq!(p.result::<u32>().unwrap().unwrap(), p.pid());
}

pub fn dropping_a_daemon_kills_it_and_dropping_another_waits_for_it(at: &dyn Pools) {
    let _deadline = deadline("a dropped daemon and a dropped process", DEADLINE);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let context = at
        .builder(1)
        .on_output(move |out| {
            sink.lock()
                .unwrap()
                .push((out.pid, out.text().into_owned()))
        })
        .context()
        .unwrap();
    let ticked = |pid| lines.lock().unwrap().iter().filter(|l| l.0 == pid).count();
    // For 100 seconds, unless killed: a drop that waited would miss the
    // test's deadline.
    let daemon = context
        .process("ticks")
        .args((1000u64, 100u64))
        .daemon(true)
        .start()
        .unwrap();
    let pid = daemon.pid();
    drop(daemon);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(ticked(pid) < 1000);
    let waited = context
        .process("ticks")
        .args((3u64, 100u64))
        .start()
        .unwrap();
    let pid = waited.pid();
    drop(waited);
    assert_eq!(ticked(pid), 3, "{:?}", lines.lock().unwrap());
}

pub fn output_comes_while_the_process_runs(at: &dyn Pools) {
    let _deadline = deadline("the first line of a sleeping process", DEADLINE);
    let (lines_tx, lines) = crossbeam_channel::unbounded();
    let context = at
        .builder(1)
        .on_output(move |out| {
            let _ = lines_tx.send(out.text().into_owned());
        })
        .context()
        .unwrap();
    let p = context
        .process("noted_sleep")
        .args((60_000u64,))
        .daemon(true)
        .start()
        .unwrap();
    let first = lines
        .recv_timeout(OUTCOME_WAIT)
        .expect("the line comes while it sleeps");
    assert_eq!(first, "started\n");
    assert!(p.is_alive());
}

pub fn keyword_arguments_bind_with_the_task_defaults(at: &dyn Pools) {
    let _deadline = deadline("processes called with keyword arguments", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let kwargs = std::collections::BTreeMap::from([("times", 2)]);
    let p = context
        .process("greet")
        .args(("Ada",))
        .kwargs(kwargs)
        .start()
        .unwrap();
    p.join();
    assert_eq!(
        p.result::<String>().unwrap().unwrap(),
        "Hello, Ada! Hello, Ada!"
    );
    let bad = context
        .process("greet")
        .kwargs(std::collections::BTreeMap::from([("nobody", 1)]))
        .start()
        .unwrap();
    bad.join();
    assert_eq!(bad.exitcode(), Some(1));
    let err = bad.result::<String>().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments, "{err}");
}

pub fn twenty_processes_run_each_in_a_worker_of_its_own(at: &dyn Pools) {
    let _deadline = deadline("twenty processes reporting their pids", DEADLINE);
    let context = at.builder(1).context().unwrap();
    let processes: Vec<wasmpool::Process> = (0..20)
        .map(|_| context.process("pid").args((0,)).start().unwrap())
        .collect();
    let mut pids = std::collections::HashSet::new();
    for p in &processes {
        p.join();
        assert_eq!(p.exitcode(), Some(0));
        assert_eq!(p.result::<u32>().unwrap().unwrap(), p.pid());
        pids.insert(p.pid());
    }
    assert_eq!(pids.len(), 20);
}
