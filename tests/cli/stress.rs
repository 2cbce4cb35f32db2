//! Chaos: thousands of tasks with faults mixed in at random, workers killed
//! under them, and a host killed outright. Every task gets exactly one
//! outcome of the right kind, nothing hangs, no worker outlives its host.
//!
//! CI-sized by default; `WASMPOOL_STRESS_TASKS=50000` for a bigger run.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, builder, deadline};
use wasmpool::ErrorKind;
use wasmpool_artifacts::FIXTURES;

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The fault to inject and the outcome it must produce.
fn pick(rng: &mut Rng) -> (&'static str, Option<ErrorKind>) {
    match rng.next() % 1000 {
        0..=849 => ("ok", None),
        850..=899 => ("err", Some(ErrorKind::Failed)),
        900..=939 => ("panic", Some(ErrorKind::Panic)),
        940..=979 => ("trap", Some(ErrorKind::Trap)),
        980..=987 => ("spin", Some(ErrorKind::Timeout)),
        988..=995 => ("hog", Some(ErrorKind::MemoryLimit)),
        _ => ("sleep", Some(ErrorKind::Timeout)),
    }
}

#[test]
fn every_task_gets_exactly_one_outcome_of_the_right_kind() {
    stress(false, 3000);
}

#[test]
fn every_task_on_a_fresh_instance_of_its_own_gets_exactly_one_outcome_of_the_right_kind() {
    stress(true, 1000);
}

/// The stress run: `tasks` of them unless `WASMPOOL_STRESS_TASKS` says,
/// each on a fresh instance if `fresh`.
fn stress(fresh: bool, tasks: usize) {
    let tasks: usize = std::env::var("WASMPOOL_STRESS_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(tasks);
    let seed: u64 = std::env::var("WASMPOOL_STRESS_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_cafe);
    // 3000 tasks take about 6 s on two cores; a bigger run gets more time.
    let budget = Duration::from_millis(20 * tasks as u64).max(DEADLINE);
    let _deadline = deadline(
        "every task of the stress run to have an outcome",
        budget + Duration::from_secs(30),
    );
    println!("stress: {tasks} tasks, seed {seed}, fresh instances: {fresh}");
    let mut rng = Rng(seed);
    let plan: Vec<(&str, Option<ErrorKind>)> = (0..tasks).map(|_| pick(&mut rng)).collect();
    let pool = Arc::new(
        builder(2)
            .task_timeout(Duration::from_millis(250))
            .memory_limit(64 << 20)
            .fresh_instance(fresh)
            .build()
            .unwrap(),
    );

    // Kill a random worker now and then while the tasks run.
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (pool, done) = (pool.clone(), done.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(seed ^ 0xdead);
            let mut kills = 0;
            while !done.load(Ordering::SeqCst) && kills < 6 {
                std::thread::sleep(Duration::from_millis(400));
                let pids = pool.worker_pids();
                if let Some(pid) = pids.get(rng.next() as usize % pids.len().max(1)) {
                    // SAFETY: kill(2) on a worker of this test's pool.
                    unsafe {
                        libc::kill(*pid as i32, libc::SIGKILL);
                    }
                    kills += 1;
                }
            }
            kills
        })
    };

    // Run it all on another thread, under a global deadline.
    let (tx, rx) = crossbeam_channel::bounded(1);
    {
        let (pool, plan) = (pool.clone(), plan.clone());
        std::thread::spawn(move || {
            let args = plan
                .iter()
                .enumerate()
                .map(|(i, (kind, _))| (kind.to_string(), i as i64));
            let outcomes: Vec<(u64, Result<i64, wasmpool::Error>)> = pool
                .istarmap("chaos", args, 8, false)
                .unwrap()
                .indexed()
                .collect();
            let _ = tx.send(outcomes);
        });
    }
    let outcomes = rx
        .recv_timeout(budget)
        .unwrap_or_else(|_| panic!("the stress run hung: no end within {budget:?}"));
    done.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();

    let mut seen: HashMap<u64, Result<i64, wasmpool::Error>> = HashMap::new();
    for (index, outcome) in outcomes {
        assert!(
            seen.insert(index, outcome).is_none(),
            "task {index} got two outcomes"
        );
    }
    assert_eq!(seen.len(), tasks, "every task gets an outcome");
    let mut lost = 0;
    for (index, (_, expected)) in plan.iter().enumerate() {
        let outcome = &seen[&(index as u64)];
        match (outcome, expected) {
            (Err(err), _) if err.is_worker_lost() => lost += 1,
            (Ok(value), None) => assert_eq!(*value, index as i64),
            (Err(err), Some(kind)) => {
                assert_eq!(err.kind(), *kind, "task {index}: {err}");
                assert_eq!(err.task_index(), Some(index as u64));
            }
            (outcome, expected) => panic!("task {index}: expected {expected:?}, got {outcome:?}"),
        }
    }
    println!("stress: {kills} workers killed, {lost} tasks lost with them");
    // A kill loses at most the chunk its worker was running.
    assert!(lost <= kills * 8, "{lost} tasks lost to {kills} kills");

    // The pool is still usable. A kill that landed as the run ended may
    // still cost one task, and its worker a moment to be replaced.
    let after = (0..3)
        .map(|_| pool.apply::<i64, _>("square", (12,)))
        .find(|outcome| !matches!(outcome, Err(err) if err.is_worker_lost()));
    assert_eq!(after.expect("a task after the run").unwrap(), 144);
    let replaced = Instant::now() + Duration::from_secs(10);
    while pool.worker_pids().len() != 2 && Instant::now() < replaced {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(pool.worker_pids().len(), 2);
}

/// The state letter of a process (`R`, `S`, `Z`, ...), if it exists.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

/// The children of a process, over all its threads.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[test]
fn no_worker_outlives_a_killed_host() {
    let _deadline = deadline("the workers of a killed host to end", DEADLINE);
    // The host: the wasmpool command with three workers, waiting for input.
    let mut host = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", FIXTURES, "square", "-j", "3", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The pool starts its workers before it reads any input.
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let workers = children(host.id());
        if workers.len() == 3 {
            break workers;
        }
        assert!(
            Instant::now() < deadline,
            "the host did not start its workers: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdin = host.stdin.take();

    host.kill().unwrap();
    host.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = workers
            .iter()
            .copied()
            .filter(|pid| state(*pid).is_some_and(|s| s != 'Z'))
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers {alive:?} outlived their host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
}
