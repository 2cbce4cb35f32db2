//! wasmpool side by side with CPython's `multiprocessing.Pool`, on the same
//! workloads, the same process count and the same machine, in one run.
//!
//! `cargo bench --bench peer` runs `peer.py` (CPython, fork start method),
//! then the same workloads on wasmpool, prints a table of times and ratios,
//! and writes it with a description of the machine to `BENCHMARKS.md`.
//!
//! For profiling: `WASMPOOL_BENCH_ONLY=w1` (or w2 ... w5) runs just that
//! workload of wasmpool's, twenty times, and prints its median.

#[path = "../../examples/guests/seeds/src/compute.rs"]
mod compute;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use wasmpool::{AsyncResult, Pool};
use wasmpool_artifacts::SEEDS;

mod shared;

use shared::{PYTHON_SECTION, median, python_peer, time_runs};

/// Inputs of the CPU-bound workloads, per task.
const SUM_N: u64 = 10_000_000;
const SIEVE_N: u64 = 2_000_000;
/// How many lazily generated inputs W8 streams through `imap`.
const W8_ITEMS: u64 = 10_000_000;

fn pool(processes: usize) -> Pool {
    Pool::builder()
        .module_file(SEEDS)
        .processes(processes)
        .build()
        .expect("the pool starts")
}

/// Peak resident memory (VmHWM) of a process, in kB.
fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// W7, in a fresh process: start, build a pool, print the first result.
fn w7_child(processes: usize, cache: &Path) {
    let pool = Pool::builder()
        .module_file(SEEDS)
        .processes(processes)
        .cache_dir(cache)
        .build()
        .expect("the pool starts");
    let v: i64 = pool.apply("square", (3,)).expect("square");
    println!("{v}");
}

/// W8, in a fresh process: imap over lazily generated inputs; prints how much
/// the peak memory of the host and of the workers grew.
fn w8_child(processes: usize) {
    let pool = pool(processes);
    let _: () = pool.apply("noop", ()).expect("noop");
    let me = std::process::id();
    let workers = pool.worker_pids();
    let base_host = peak_kb(me);
    let base_workers = workers.iter().map(|pid| peak_kb(*pid)).max().unwrap_or(0);
    let mut count = 0u64;
    for result in pool
        .imap::<i64, _, _>("square", 0..W8_ITEMS as i64, 1000)
        .expect("imap")
    {
        result.expect("square");
        count += 1;
    }
    assert_eq!(count, W8_ITEMS);
    let peak_workers = workers.iter().map(|pid| peak_kb(*pid)).max().unwrap_or(0);
    let peak_host = peak_kb(me);
    println!(
        "{}",
        serde_json::json!({
            "host_mb": (peak_host - base_host) as f64 / 1024.0,
            "workers_mb": (peak_workers - base_workers) as f64 / 1024.0,
        })
    );
}

/// Program start to first result, median of 5, with a warm or cold cache.
fn cold_start(processes: usize, warm: bool) -> f64 {
    let exe = std::env::current_exe().expect("this program");
    let cache = std::env::temp_dir().join(format!("wasmpool-bench-cache-{}", std::process::id()));
    let run = || {
        let start = Instant::now();
        let mut child = Command::new(&exe)
            .args([
                "--w7-child",
                &processes.to_string(),
                cache.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("a result");
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(line.trim(), "9");
        child.wait().expect("the child ends");
        elapsed
    };
    let samples = (0..5)
        .map(|_| {
            if warm {
                if !cache.exists() {
                    run();
                }
            } else {
                let _ = std::fs::remove_dir_all(&cache);
            }
            run()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&cache);
    median(samples)
}

struct Results {
    w1: f64,
    w2: f64,
    w3_p50_us: f64,
    w3_p99_us: f64,
    w4: f64,
    w5_ms: f64,
    w6_sum: f64,
    w6_sieve: f64,
    against_native: Vec<AgainstNative>,
    w7_warm: f64,
    w7_cold: f64,
    w8: Value,
}

/// A CPU-bound workload: its label, its task, the same code natively, and
/// its input.
type Workload = (&'static str, &'static str, fn(u64) -> u64, u64);

/// A setting of the pool: its label, and what it does to a builder.
type Setting = (
    &'static str,
    fn(wasmpool::PoolBuilder) -> wasmpool::PoolBuilder,
);

/// A CPU-bound task in one worker, with a pool's settings, and the same
/// code run natively: the best time of a task of each.
struct AgainstNative {
    workload: String,
    native: f64,
    wasm: f64,
}

/// The CPU-bound tasks against the same code run natively, one process and
/// one thread, without and with the settings that add checks to the
/// compiled code (a time limit: an epoch check in every loop; fuel: a count
/// in every block). Each is the best of `RUNS` runs of `TASKS` tasks,
/// native and wasm in turn, so that both see the same machine.
fn against_native() -> Vec<AgainstNative> {
    const RUNS: usize = 7;
    const TASKS: usize = 4;
    let workloads: [Workload; 2] = [
        (
            "sum-to-n (n = 50M)",
            "sum_range",
            compute::sum_range,
            50_000_000,
        ),
        ("prime sieve (n = 2M)", "sieve", compute::sieve, SIEVE_N),
    ];
    let settings: [Setting; 3] = [
        ("", |builder| builder),
        (", with a time limit", |builder| {
            builder.task_timeout(std::time::Duration::from_secs(3600))
        }),
        (", with fuel", |builder| builder.fuel(u64::MAX / 2)),
    ];
    let mut rows = Vec::new();
    for (label, task, f, n) in workloads {
        for (setting, configure) in settings {
            let pool = configure(Pool::builder().module_file(SEEDS).processes(1))
                .build()
                .expect("the pool starts");
            let _: u64 = pool.apply(task, (10u64,)).expect("warm-up");
            let (mut native, mut wasm) = (f64::MAX, f64::MAX);
            for _ in 0..RUNS {
                let start = Instant::now();
                for _ in 0..TASKS {
                    std::hint::black_box(f(std::hint::black_box(n)));
                }
                native = native.min(start.elapsed().as_secs_f64() / TASKS as f64);
                let start = Instant::now();
                let _: Vec<u64> = pool.map(task, vec![n; TASKS], 1).expect("W6");
                wasm = wasm.min(start.elapsed().as_secs_f64() / TASKS as f64);
            }
            rows.push(AgainstNative {
                workload: format!("{label}{setting}"),
                native,
                wasm,
            });
        }
    }
    rows
}

fn run_wasmpool(processes: usize) -> Results {
    let p = pool(processes);
    let _: Vec<()> = p
        .starmap("noop", vec![(); processes * 4], None)
        .expect("warm-up");

    let w1 = time_runs(5, || {
        let out: Vec<i64> = p.map("square", 0..1_000_000i64, None).expect("W1");
        assert_eq!(out[999_999], 999_999 * 999_999);
    });
    let w2 = time_runs(5, || {
        let pending: Vec<AsyncResult<()>> = (0..10_000)
            .map(|_| p.apply_async("noop", ()).expect("W2"))
            .collect();
        for r in &pending {
            r.get().expect("W2");
        }
    });
    let mut latencies: Vec<f64> = (0..2_000)
        .map(|_| {
            let start = Instant::now();
            let _: () = p.apply("noop", ()).expect("W3");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let w4 = time_runs(3, || {
        let mut n = 0;
        for result in p.imap::<i64, _, _>("square", 0..200_000i64, 1).expect("W4") {
            result.expect("W4");
            n += 1;
        }
        assert_eq!(n, 200_000);
    });
    let tasks = processes * 2;
    let w6_sum = time_runs(3, || {
        let _: Vec<u64> = p.map("sum_range", vec![SUM_N; tasks], 1).expect("W6");
    });
    let w6_sieve = time_runs(3, || {
        let _: Vec<u64> = p.map("sieve", vec![SIEVE_N; tasks], 1).expect("W6");
    });
    drop(p);

    let w5 = time_runs(3, || w5(processes));

    let w8 = Command::new(std::env::current_exe().unwrap())
        .args(["--w8-child", &processes.to_string()])
        .output()
        .expect("W8");
    let w8: Value = serde_json::from_slice(&w8.stdout).expect("W8 prints JSON");

    Results {
        w1,
        w2,
        w3_p50_us: latencies[latencies.len() / 2],
        w3_p99_us: latencies[latencies.len() * 99 / 100],
        w4,
        w5_ms: w5 / 200.0 * 1000.0,
        w6_sum,
        w6_sieve,
        against_native: against_native(),
        w7_warm: cold_start(processes, true),
        w7_cold: cold_start(processes, false),
        w8,
    }
}

/// W5: 200 no-op tasks with a fresh worker process for each.
fn w5(processes: usize) {
    let p = Pool::builder()
        .module_file(SEEDS)
        .processes(processes)
        .max_tasks_per_child(1)
        .build()
        .expect("W5");
    let _: Vec<()> = p.starmap("noop", vec![(); 200], 1).expect("W5");
}

/// Runs one workload of wasmpool's twenty times, for a profiler.
fn profile(workload: &str, processes: usize) {
    let p = pool(processes);
    let seconds = time_runs(20, || match workload {
        "w1" => {
            let _: Vec<i64> = p.map("square", 0..1_000_000i64, None).expect("W1");
        }
        "w2" => {
            let pending: Vec<AsyncResult<()>> = (0..10_000)
                .map(|_| p.apply_async("noop", ()).expect("W2"))
                .collect();
            pending.iter().for_each(|r| r.get().expect("W2"));
        }
        "w3" => (0..2_000).for_each(|_| p.apply::<(), _>("noop", ()).expect("W3")),
        "w4" => {
            let it = p.imap::<i64, _, _>("square", 0..20_000i64, 1).expect("W4");
            assert_eq!(it.count(), 20_000);
        }
        "w5" => w5(processes),
        other => panic!("no workload {other}: use w1, w2, w3, w4 or w5"),
    });
    println!("{workload}: median {seconds:.4} s");
}

fn run_cpython(processes: usize) -> Value {
    // While working on wasmpool's side, reuse a saved CPython run.
    if let Some(saved) = std::env::var_os("WASMPOOL_PEER_JSON") {
        let saved = std::fs::read(saved).expect("WASMPOOL_PEER_JSON is readable");
        return serde_json::from_slice(&saved).expect("WASMPOOL_PEER_JSON holds peer.py's JSON");
    }
    python_peer("peer.py", &["--processes", &processes.to_string()])
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb as f64 / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {} cores, {memory} memory, Linux {}, {rustc}",
        std::thread::available_parallelism().map_or(1, usize::from),
        kernel.trim()
    )
}

fn main() {
    wasmpool::init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--w7-child") => return w7_child(args[2].parse().unwrap(), &PathBuf::from(&args[3])),
        Some("--w8-child") => return w8_child(args[2].parse().unwrap()),
        _ => {}
    }
    let processes = std::thread::available_parallelism().map_or(2, usize::from);
    if let Ok(only) = std::env::var("WASMPOOL_BENCH_ONLY") {
        return profile(&only, processes);
    }
    eprintln!("CPython multiprocessing.Pool({processes}) ...");
    let py = run_cpython(processes);
    eprintln!("wasmpool Pool({processes}) ...");
    let rs = run_wasmpool(processes);
    let f = |key: &str| py[key].as_f64().unwrap_or(f64::NAN);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| workload | CPython | wasmpool | CPython / wasmpool | target | met |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---|:-:|");
    let mut row = |name: &str, py: f64, rs: f64, unit: &str, target: &str, met: bool| {
        let _ = writeln!(
            table,
            "| {name} | {py:.3} {unit} | {rs:.3} {unit} | {:.1}× | {target} | {} |",
            py / rs,
            if met { "yes" } else { "no" }
        );
    };
    row(
        "W1 `map(square, range(1_000_000))`",
        f("w1_s"),
        rs.w1,
        "s",
        "≥ 10×",
        f("w1_s") / rs.w1 >= 10.0,
    );
    row(
        "W2 10,000 `apply_async` no-ops, then `get`",
        f("w2_s"),
        rs.w2,
        "s",
        "≥ 5×",
        f("w2_s") / rs.w2 >= 5.0,
    );
    row(
        "W3 `apply` round trip, p50",
        f("w3_p50_us"),
        rs.w3_p50_us,
        "µs",
        "≤ 30 µs",
        rs.w3_p50_us <= 30.0,
    );
    row(
        "W3 `apply` round trip, p99",
        f("w3_p99_us"),
        rs.w3_p99_us,
        "µs",
        "—",
        true,
    );
    row(
        "W4 `imap(square, range(200_000), chunksize=1)`",
        f("w4_s"),
        rs.w4,
        "s",
        "≥ 8×",
        f("w4_s") / rs.w4 >= 8.0,
    );
    row(
        "W5 `max_tasks_per_child=1`, per task",
        f("w5_ms_per_task"),
        rs.w5_ms,
        "ms",
        "≤ 1.5 ms",
        rs.w5_ms <= 1.5,
    );
    row(
        "W6 sum-to-n (n = 10M) × 2/process",
        f("w6_sum_s"),
        rs.w6_sum,
        "s",
        "≥ 20×",
        f("w6_sum_s") / rs.w6_sum >= 20.0,
    );
    row(
        "W6 prime sieve (n = 2M) × 2/process",
        f("w6_sieve_s"),
        rs.w6_sieve,
        "s",
        "≥ 20×",
        f("w6_sieve_s") / rs.w6_sieve >= 20.0,
    );
    row(
        "W7 start to first result, cache warm",
        f("w7_s"),
        rs.w7_warm,
        "s",
        "≤ 30 ms",
        rs.w7_warm <= 0.030,
    );
    row(
        "W7 start to first result, cache cold",
        f("w7_s"),
        rs.w7_cold,
        "s",
        "—",
        true,
    );
    let mut native_rows = String::new();
    for row in &rs.against_native {
        let ratio = row.wasm / row.native;
        // The target is for the default settings; the checks a time limit or
        // fuel add are what they cost.
        let (target, met) = if row.workload.contains(", with") {
            ("—", "—")
        } else {
            ("≤ 1.3×", if ratio <= 1.3 { "yes" } else { "no" })
        };
        let _ = writeln!(
            native_rows,
            "| W6 {} | {:.2} ms | {:.2} ms | {ratio:.2}× native | {target} | {met} |",
            row.workload,
            row.native * 1e3,
            row.wasm * 1e3,
        );
    }
    let w8_host = rs.w8["host_mb"].as_f64().unwrap_or(f64::NAN);
    let w8_workers = rs.w8["workers_mb"].as_f64().unwrap_or(f64::NAN);
    let w8 = format!(
        "| W8 `imap` over 10,000,000 lazy inputs: peak RSS growth, host / workers | {:.1} / {:.1} MB | {w8_host:.1} / {w8_workers:.1} MB | — | ≤ 64 MB | {} |\n",
        py["w8"]["host_mb"].as_f64().unwrap_or(f64::NAN),
        py["w8"]["workers_mb"].as_f64().unwrap_or(f64::NAN),
        if w8_host <= 64.0 && w8_workers <= 64.0 {
            "yes"
        } else {
            "no"
        },
    );
    table.push_str(&w8);
    let report = format!(
        "# Benchmarks: wasmpool and CPython's multiprocessing.Pool\n\n\
         Written by `cargo bench --bench peer` (host/benches/peer.rs, host/benches/peer.py):\n\
         the same workloads, the same number of processes ({processes}), fork start method for\n\
         CPython {python}, on the same machine in one run. Times are medians of 3–5 runs.\n\n\
         Machine: {machine}.\n\n{table}\n\
         CPU-bound work against the same Rust code (`examples/guests/seeds/src/compute.rs`) run\n\
         natively: one task at a time, in one worker and on one thread, best of 7 runs of 4 tasks\n\
         each, native and wasm in turn; times per task. A time limit (`task_timeout`) and fuel\n\
         add checks to the compiled code: what they cost is in their rows.\n\n\
         | workload | native | wasmpool | ratio | target | met |\n|---|---:|---:|---:|---|:-:|\n{native_rows}",
        python = py["python"].as_str().unwrap_or("?"),
        machine = machine(),
    );
    println!("{report}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    // The sections from the one `cargo bench --bench python` writes on stay.
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let python = current
        .find(&format!("\n{PYTHON_SECTION}"))
        .map_or("", |at| &current[at..]);
    std::fs::write(&path, format!("{report}{python}")).expect("BENCHMARKS.md is writable");
    eprintln!("written to {}", path.display());
}
