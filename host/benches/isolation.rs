//! What isolation between tasks costs: the same tiny task on an instance
//! kept from task to task (the default), on a fresh instance per task
//! (`PoolBuilder::fresh_instance`), and in a fresh worker process per task
//! (`max_tasks_per_child(1)`), for a task written in Rust
//! (`examples/guests/seeds`) and one written in Python
//! (`examples/guests/python/pytasks.py`); 2 processes, one run.
//!
//! `cargo bench --bench isolation` prints a table and writes it as the
//! section "Isolation between tasks" of `BENCHMARKS.md`.

use std::fmt::Write as _;

use wasmpool::{Pool, PoolBuilder};
use wasmpool_artifacts::{PYTASKS, SEEDS};

mod shared;

use shared::{time_runs, write_section};

const SECTION: &str = "## Isolation between tasks";

/// Why a fresh Python instance costs what it costs: from a profile (perf,
/// 3,000 tasks on one worker), not from this run.
const PYTHON_COST: &str = "Where a fresh Python instance's time goes (perf, 3,000 tasks on one \
worker): about a quarter in filling its function table — componentize-py's CPython is \
dynamically linked, so its 5,676 table entries are written by element segments at every \
instantiation, each a lookup of two functions' code; about two fifths in the kernel, \
faulting in the pages the interpreter touches (154 a task) and dropping them again; the \
rest in the interpreter's own start and the task. Keeping dirtied pages resident and \
resetting them in place (`PAGEMAP_SCAN`) took 37% of the faults and 20% of the time off; \
what remains is wasmtime's per-instance work on a component of this size.\n";
const PROCESSES: usize = 2;

/// How a task is kept apart from the tasks before it.
#[derive(Clone, Copy)]
enum Isolation {
    Instance,
    FreshInstance,
    FreshProcess,
}

/// The median time of one task of `task` (which takes an integer), in µs,
/// over `tasks` of them in chunks of 8.
fn per_task(module: &str, task: &str, isolation: Isolation, tasks: usize) -> f64 {
    let builder: PoolBuilder = Pool::builder().module_file(module).processes(PROCESSES);
    let pool = match isolation {
        Isolation::Instance => builder,
        Isolation::FreshInstance => builder.fresh_instance(true),
        Isolation::FreshProcess => builder.max_tasks_per_child(1),
    }
    .build()
    .expect("the pool starts");
    let run = || {
        let results: Vec<i64> = pool.map(task, 0..tasks as i64, 8).expect("the tasks run");
        assert_eq!(results.len(), tasks);
    };
    run(); // the workers warm
    time_runs(5, run) / tasks as f64 * 1e6
}

fn main() {
    wasmpool::init();
    let modules = [
        ("Rust", SEEDS, 20_000, 400),
        ("Python", PYTASKS, 4_000, 100),
    ];
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| task in | instance kept | fresh instance | added per task | fresh process | added per task |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|");
    for (language, module, tasks, processes) in modules {
        eprintln!("{language} ...");
        let kept = per_task(module, "square", Isolation::Instance, tasks);
        let fresh = per_task(module, "square", Isolation::FreshInstance, tasks);
        let process = per_task(module, "square", Isolation::FreshProcess, processes);
        let _ = writeln!(
            table,
            "| {language} | {kept:.2} µs | {fresh:.2} µs | {:.2} µs | {process:.0} µs | {:.0} µs |",
            fresh - kept,
            process - kept,
        );
    }
    print!("{table}");
    let section = format!(
        "{SECTION}\n\nWritten by `cargo bench --bench isolation` (host/benches/isolation.rs): \
         a tiny task (`square`) on {PROCESSES} worker processes, in chunks of 8, with the \
         instance kept from task to task (the default), on a fresh instance per task \
         (`fresh_instance`), and in a fresh worker process per task \
         (`max_tasks_per_child(1)`). Medians of 5 runs, per task, one run on the machine \
         above; \"added\" is against the kept instance.\n\n{table}\n{PYTHON_COST}"
    );
    write_section(SECTION, &section);
}
