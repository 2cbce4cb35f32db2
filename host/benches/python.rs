//! Tasks written in Python, side by side with the same tasks written in Rust
//! and with CPython's own `multiprocessing.Pool`, on the same machine in one
//! run: the per-task cost of a tiny task, a CPU-bound task, and the time
//! from start to the first result with the artifact cache cold and warm, and
//! for a second module of the same language once the first is compiled.
//!
//! `cargo bench --bench python` runs `python_peer.py` (CPython, fork start
//! method), then the workloads on wasmpool with the Python module
//! (`examples/guests/python/pytasks.py`) and the Rust one
//! (`examples/guests/seeds`), prints a table, and writes it as the section
//! "Tasks in Python" of `BENCHMARKS.md`.

use std::path::Path;
use std::time::Instant;

use wasmpool::Pool;
use wasmpool_artifacts::{FIXTURES, PYFIXTURES, PYTASKS, SEEDS};

mod shared;

use shared::{PYTHON_SECTION, python_peer, time_runs, write_section};

/// Items of the tiny-task workload.
const TINY: u64 = 100_000;
/// The CPU-bound workload: `sum(range(SUM_N))`, `SUM_TASKS` times.
const SUM_N: u64 = 3_000_000;
const SUM_TASKS: usize = 4;
const PROCESSES: usize = 2;

/// What one module measured.
struct Measured {
    cold: f64,
    warm: f64,
    /// Another module's first start, in the cache the first was compiled to.
    second: f64,
    tiny: f64,
    cpu: f64,
}

/// Builds a pool on `module` with the artifact cache in `cache`, and times
/// it to its first result.
fn first_result(module: &str, cache: &Path) -> (Pool, f64) {
    let start = Instant::now();
    let pool = Pool::builder()
        .module_file(module)
        .processes(PROCESSES)
        .cache_dir(cache)
        .build()
        .expect("the pool starts");
    let nine: i64 = pool.apply("square", (3,)).expect("square");
    assert_eq!(nine, 9);
    (pool, start.elapsed().as_secs_f64())
}

fn measure(module: &str, second_module: &str) -> Measured {
    let cache = tempfile::tempdir().expect("a temporary cache");
    let (cold_pool, cold) = first_result(module, cache.path());
    drop(cold_pool);
    let (pool, warm) = first_result(module, cache.path());
    let (second_pool, second) = first_result(second_module, cache.path());
    drop(second_pool);
    let tiny = time_runs(3, || {
        let squares: Vec<i64> = pool.map("square", 0..TINY as i64, None).expect("map");
        assert_eq!(squares.len(), TINY as usize);
    });
    let cpu = time_runs(3, || {
        let sums: Vec<u64> = pool
            .map("sum_range", vec![SUM_N; SUM_TASKS], 1)
            .expect("map");
        assert_eq!(sums[0], SUM_N * (SUM_N - 1) / 2);
    });
    Measured {
        cold,
        warm,
        second,
        tiny,
        cpu,
    }
}

fn main() {
    wasmpool::init();
    let peer = python_peer("python_peer.py", &[&PROCESSES.to_string()]);
    let cpython = |key: &str| peer[key].as_f64().unwrap_or(f64::NAN);
    let python = measure(PYTASKS, PYFIXTURES);
    let rust = measure(SEEDS, FIXTURES);
    let per_task = |seconds: f64| seconds / TINY as f64 * 1e6;
    let table = format!(
        "| workload | CPython `Pool` | wasmpool, Python task | wasmpool, Rust task | Python task / CPython |\n\
         |---|---:|---:|---:|---:|\n\
         | `map(square, range({TINY}))`, per task | {:.2} µs | {:.2} µs | {:.2} µs | {:.2}× |\n\
         | `map(sum_range, [{SUM_N}] * {SUM_TASKS}, chunksize=1)` | {:.3} s | {:.3} s | {:.3} s | {:.2}× |\n\
         | start to first result, artifact cache cold | {:.3} s | {:.3} s | {:.3} s | {:.2}× |\n\
         | start to first result, artifact cache warm | {:.3} s | {:.3} s | {:.3} s | {:.2}× |\n\
         | start to first result, a second module, cache cold | {:.3} s | {:.3} s | {:.3} s | {:.2}× |\n",
        per_task(cpython("tiny")),
        per_task(python.tiny),
        per_task(rust.tiny),
        python.tiny / cpython("tiny"),
        cpython("cpu"),
        python.cpu,
        rust.cpu,
        python.cpu / cpython("cpu"),
        cpython("first"),
        python.cold,
        rust.cold,
        python.cold / cpython("first"),
        cpython("first"),
        python.warm,
        rust.warm,
        python.warm / cpython("first"),
        cpython("first"),
        python.second,
        rust.second,
        python.second / cpython("first"),
    );
    let section = format!(
        "{PYTHON_SECTION}\n\n\
         Written by `cargo bench --bench python` (host/benches/python.rs, host/benches/python_peer.py):\n\
         the same Python functions as a wasmpool module (`examples/guests/python/pytasks.py`,\n\
         CPython inside the component) and on CPython {} itself (`multiprocessing.Pool`, fork),\n\
         and the same tasks in Rust (`examples/guests/seeds`); {PROCESSES} processes, one run, times\n\
         are medians of 3. The machine is noisy: compare within a row. A ratio above 1 means the\n\
         Python task in wasmpool takes longer than on CPython's own pool. CPython's start has no\n\
         cache: its row repeats. \"A second module\" is the first start of another module\n\
         (`tests/guests/python/pyfixtures.py`; in Rust, `tests/guests/fixtures`) whose artifact is\n\
         not cached, once the first was compiled: it compiles only the functions the first did\n\
         not (every Python module carries the same CPython).\n\n{table}",
        peer["python"].as_str().unwrap_or("?"),
    );
    println!("{section}");
    write_section(PYTHON_SECTION, &section);
}
