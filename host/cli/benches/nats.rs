//! The NATS backend against the local one, on this machine in one run.
//!
//! `cargo bench -p wasmpool-cli --bench nats` starts a `nats-server` with
//! JetStream on a loopback port and `wasmpool agent` processes (the CLI
//! binary built with this benchmark), then measures:
//!
//! 1. the workloads W1, W2, W3 and W4 of `peer.rs` on a local pool of two
//!    processes and on a pool of two processes on one agent (`-j 2`), and
//!    their ratio: what going through the server costs per chunk; then W2
//!    once more, counting the messages through the server and the CPU time
//!    of each process (host, server, agent, workers) per chunk; and a
//!    lock's acquire and release from a task, locally and on one agent
//!    (`WASMPOOL_BENCH_ONLY=calls` runs this alone);
//! 2. the throughput of a CPU-bound task (`sum_range`, 1.5–2 ms a task)
//!    with one, two and three agents of one process each (`-j 1`), next to a
//!    local pool of one and of two processes.
//!
//! 3. scale-out where the agents' workers have what they need to
//!    themselves: tasks that wait (`nap`, 20 ms, as on I/O), with one, two
//!    and four agents of two processes each. The machine has two cores, so
//!    CPU-bound tasks cannot show N agents doing N times the work; waiting
//!    ones can.
//!
//! 4. a slow link: one agent of two processes reaching the server through a
//!    proxy that adds a delay each way ([`slow_link`]), the pool's host next
//!    to the server: pipelined no-ops, waiting tasks and round trips, with
//!    no delay and with a delay as of a link across a region and across an
//!    ocean. What the pipeline hides of the link shows in the throughput.
//!
//! It prints a table; the numbers are copied by hand into `BENCHMARKS.md`
//! (section "Several machines (NATS)"). `WASMPOOL_BENCH_ONLY=link` runs
//! part 4 alone; `WASMPOOL_BENCH_ONLY=hops` profiles one `apply` round trip
//! on an agent instead, system call by system call ([`hops`]; needs
//! `perf`).

#[path = "../../../tests/common/nats.rs"]
mod nats_server;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use nats_server::{AgentProcess, NatsServer};
use wasmpool::{AsyncResult, Lock, Pool};
use wasmpool_artifacts::{FIXTURES, SEEDS};

mod hops;
#[path = "../../benches/shared/mod.rs"]
mod shared;
mod slow_link;

use shared::time_runs;
use slow_link::SlowLink;

/// Processes of the pools of part 1, local and on the one agent.
const PROCESSES: usize = 2;
/// Items of W1, `map(square, range(W1_ITEMS))`, as in `peer.rs`.
const W1_ITEMS: i64 = 1_000_000;
/// W1's chunks: `map`'s default chunk size makes four per process.
const W1_CHUNKS: usize = 4 * PROCESSES;
/// W2's `apply_async` no-ops, as in `peer.rs`.
const W2_TASKS: usize = 10_000;
/// W3's `apply` round trips, one at a time (2,000 in `peer.rs`).
const W3_TRIPS: usize = 1_000;
/// W4's `imap` items of one task a chunk (200,000 in `peer.rs`: over NATS
/// those would take minutes).
const W4_ITEMS: i64 = 20_000;
/// The CPU-bound task of part 2: `sum_range(SUM_N)`, 1.5–2 ms in a worker.
const SUM_N: u64 = 4_000_000;
/// How many of them a throughput run maps, one a chunk.
const SUM_TASKS: usize = 600;
/// The agents' processes (`-j`) in part 2.
const AGENT_PROCESSES: usize = 1;
/// The waiting task of part 3: `nap(NAP_MS)`, `NAP_TASKS` of them.
const NAP_MS: u64 = 20;
const NAP_TASKS: usize = 800;
/// The agents' processes (`-j`) in part 3.
const NAP_AGENT_PROCESSES: usize = 2;

/// The delays each way of part 4's link: none (the proxy alone), then as
/// across a region and across an ocean; with the pool's window (chunks out
/// at once) unless given.
const LINKS: [(u64, Option<usize>); 4] = [(0, None), (5, None), (25, None), (25, Some(64))];
/// Part 4's pipelined no-ops, waiting tasks and round trips.
const LINK_NOOPS: usize = 500;
const LINK_NAPS: usize = 200;
const LINK_TRIPS: usize = 20;
/// Acquire-and-release pairs of a lock one task makes per timed run.
const LOCK_TRIPS: u64 = 200;

/// How long the warm-up waits for every worker to have run a task.
const SPREAD_LIMIT: Duration = Duration::from_secs(20);

/// What part 1 measured on one pool, in seconds.
struct Workloads {
    w1: f64,
    w2: f64,
    w3_p50: f64,
    w3_p99: f64,
    w4: f64,
}

fn local_pool(processes: usize) -> Pool {
    Pool::builder()
        .module_file(SEEDS)
        .processes(processes)
        .build()
        .expect("the local pool starts")
}

fn nats_pool(url: &str, processes: usize) -> Pool {
    Pool::builder()
        .module_file(SEEDS)
        .nats(url)
        .processes(processes)
        .build()
        .expect("the NATS pool starts")
}

/// A pool of one process on the fixtures module (which has the tasks on
/// shared objects), local or, given a server's `url`, on its agents.
fn fixtures_pool(url: Option<&str>) -> Pool {
    let builder = Pool::builder().module_file(FIXTURES).processes(1);
    match url {
        Some(url) => builder.nats(url),
        None => builder,
    }
    .build()
    .expect("the fixtures pool starts")
}

/// A lock's acquire-and-release from a task on `pool`, in seconds: the
/// median of 5 runs of [`LOCK_TRIPS`], per pair.
fn lock_round_trip(pool: &Pool) -> f64 {
    let lock = Lock::new();
    let _: () = pool
        .apply("lock_round_trips", (&lock, 20u64))
        .expect("a warm-up");
    time_runs(5, || {
        let _: () = pool
            .apply("lock_round_trips", (&lock, LOCK_TRIPS))
            .expect("lock round trips");
    }) / LOCK_TRIPS as f64
}

/// Runs tiny tasks until `workers` distinct worker processes have run one
/// (every agent has started the job's workers), or [`SPREAD_LIMIT`] passed;
/// returns how many were seen.
fn warm_up(pool: &Pool, workers: usize) -> usize {
    let started = Instant::now();
    let mut seen = HashSet::new();
    while seen.len() < workers && started.elapsed() < SPREAD_LIMIT {
        let tags: Vec<String> = pool
            .map("tag", 0..(8 * workers as i64), 1)
            .expect("warm-up");
        // Each tag is "(item:pid)".
        seen.extend(
            tags.iter()
                .filter_map(|tag| tag.trim_end_matches(')').rsplit(':').next())
                .map(str::to_owned),
        );
    }
    if seen.len() < workers {
        eprintln!(
            "  warning: only {} of {workers} workers ran a task during the warm-up",
            seen.len()
        );
    }
    seen.len()
}

/// The times of `trips` `apply` round trips of a no-op on `pool`, one at a
/// time, shortest first.
fn round_trips(pool: &Pool, trips: usize) -> Vec<f64> {
    let mut times: Vec<f64> = (0..trips)
        .map(|_| {
            let start = Instant::now();
            let _: () = pool.apply("noop", ()).expect("a round trip");
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// W1–W4 of `peer.rs` on `pool`.
fn workloads(pool: &Pool) -> Workloads {
    let w1 = time_runs(5, || {
        let out: Vec<i64> = pool.map("square", 0..W1_ITEMS, None).expect("W1");
        assert_eq!(out[W1_ITEMS as usize - 1], (W1_ITEMS - 1) * (W1_ITEMS - 1));
    });
    let w2 = time_runs(3, || {
        let pending: Vec<AsyncResult<()>> = (0..W2_TASKS)
            .map(|_| pool.apply_async("noop", ()).expect("W2"))
            .collect();
        for r in &pending {
            r.get().expect("W2");
        }
    });
    let trips = round_trips(pool, W3_TRIPS);
    let w4 = time_runs(3, || {
        let mut n = 0;
        for result in pool
            .imap::<i64, _, _>("square", 0..W4_ITEMS, 1)
            .expect("W4")
        {
            result.expect("W4");
            n += 1;
        }
        assert_eq!(n, W4_ITEMS);
    });
    Workloads {
        w1,
        w2,
        w3_p50: trips[trips.len() / 2],
        w3_p99: trips[trips.len() * 99 / 100],
        w4,
    }
}

/// Tasks per second of `sum_range(SUM_N)`, one a chunk: the median of 5.
fn throughput(pool: &Pool) -> f64 {
    let seconds = time_runs(5, || {
        let sums: Vec<u64> = pool
            .map("sum_range", vec![SUM_N; SUM_TASKS], 1)
            .expect("sum_range");
        assert_eq!(sums[0], SUM_N * (SUM_N - 1) / 2);
    });
    SUM_TASKS as f64 / seconds
}

/// Tasks per second of `pool` on waiting tasks, one a chunk.
fn waiting_throughput(pool: &Pool) -> f64 {
    let seconds = time_runs(3, || {
        let naps: Vec<u64> = pool.map("nap", vec![NAP_MS; NAP_TASKS], 1).expect("nap");
        assert_eq!(naps.len(), NAP_TASKS);
    });
    NAP_TASKS as f64 / seconds
}

/// What part 4 measured through a link of one delay.
struct OverLink {
    delay_ms: u64,
    window: Option<usize>,
    noops_per_s: f64,
    naps_per_s: f64,
    trip_p50: f64,
}

/// Part 4: one agent of `-j PROCESSES` through a link delaying `delay_ms`
/// each way to the server at `port`; the pool's host connects directly,
/// with `window` chunks out at once if given.
fn over_link(url: &str, port: u16, delay_ms: u64, window: Option<usize>) -> OverLink {
    let link = SlowLink::start(
        ([127, 0, 0, 1], port).into(),
        Duration::from_millis(delay_ms),
    );
    let agent = AgentProcess::start(&link.url(), PROCESSES, &format!("bench-far-{delay_ms}"));
    let mut nats = wasmpool::Nats::new(url);
    if let Some(window) = window {
        nats = nats.window(window);
    }
    let pool = Pool::builder()
        .module_file(SEEDS)
        .nats_options(nats)
        .processes(PROCESSES)
        .build()
        .expect("the NATS pool starts");
    warm_up(&pool, PROCESSES);
    let start = Instant::now();
    let pending: Vec<AsyncResult<()>> = (0..LINK_NOOPS)
        .map(|_| pool.apply_async("noop", ()).expect("no-ops"))
        .collect();
    pending.iter().for_each(|r| r.get().expect("no-ops"));
    let noops_per_s = LINK_NOOPS as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let naps: Vec<u64> = pool.map("nap", vec![NAP_MS; LINK_NAPS], 1).expect("nap");
    assert_eq!(naps.len(), LINK_NAPS);
    let naps_per_s = LINK_NAPS as f64 / start.elapsed().as_secs_f64();
    let trips = round_trips(&pool, LINK_TRIPS);
    drop(pool);
    stop(agent);
    OverLink {
        delay_ms,
        window,
        noops_per_s,
        naps_per_s,
        trip_p50: trips[trips.len() / 2],
    }
}

/// Part 4, over each of [`LINKS`].
fn links(url: &str, port: u16) -> Vec<OverLink> {
    LINKS
        .into_iter()
        .map(|(delay_ms, window)| {
            eprintln!("part 4: one agent through a link of {delay_ms} ms each way ...");
            over_link(url, port, delay_ms, window)
        })
        .collect()
}

/// Part 4's table.
fn link_table(links: &[OverLink]) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| one agent `-j {PROCESSES}`, through a link of | window | {LINK_NOOPS} `apply_async` no-ops | `nap({NAP_MS})` × {LINK_NAPS}, chunksize 1 | `apply` round trip, p50 |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|");
    for link in links {
        let _ = writeln!(
            table,
            "| {} ms each way | {} | {:.0} tasks/s | {:.0} tasks/s (ideal {:.0}) | {:.1} ms |",
            link.delay_ms,
            link.window
                .map_or(format!("{} (default)", 16 * PROCESSES), |w| w.to_string()),
            link.noops_per_s,
            link.naps_per_s,
            PROCESSES as f64 * 1000.0 / NAP_MS as f64,
            link.trip_p50 * 1e3,
        );
    }
    table
}

/// Stops an agent as an operator would (SIGTERM), so that its workers go
/// with it.
fn stop(mut agent: AgentProcess) {
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(20));
}

/// CPU seconds (user and system) each side has used so far: this process
/// (the pool's host), the `nats-server` it started, the agent process, and
/// the agent's workers (its descendants).
#[derive(Clone, Copy, Default)]
struct Cpu {
    host: f64,
    server: f64,
    agent: f64,
    workers: f64,
}

/// Every process's parent and CPU seconds, from `/proc`.
fn processes() -> Vec<(u32, u32, String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let name = head.split_once(" (")?.1.to_owned();
            let fields: Vec<&str> = tail.split_whitespace().collect();
            let ppid = fields.get(1)?.parse().ok()?;
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((pid, ppid, name, (utime + stime) / ticks))
        })
        .collect()
}

/// The children of `parent` named `name`, among `all` processes.
fn children_of(all: &[(u32, u32, String, f64)], parent: u32, name: &str) -> Vec<u32> {
    all.iter()
        .filter(|(_, ppid, named, _)| *ppid == parent && named == name)
        .map(|(pid, ..)| *pid)
        .collect()
}

/// The descendants of `ancestor`, among `all` processes.
fn descendants_of(all: &[(u32, u32, String, f64)], ancestor: u32) -> Vec<u32> {
    let mut descendants = vec![ancestor];
    let mut at = 0;
    while at < descendants.len() {
        let parent = descendants[at];
        descendants.extend(
            all.iter()
                .filter(|(_, ppid, ..)| *ppid == parent)
                .map(|(pid, ..)| *pid),
        );
        at += 1;
    }
    descendants.split_off(1)
}

impl Cpu {
    fn now(agent: u32) -> Cpu {
        let all = processes();
        let me = std::process::id();
        let cpu_of = |pid: u32| {
            all.iter()
                .find(|(p, ..)| *p == pid)
                .map_or(0.0, |(.., cpu)| *cpu)
        };
        Cpu {
            host: cpu_of(me),
            server: children_of(&all, me, "nats-server")
                .into_iter()
                .map(cpu_of)
                .sum(),
            agent: cpu_of(agent),
            workers: descendants_of(&all, agent).into_iter().map(cpu_of).sum(),
        }
    }

    /// CPU µs per chunk of each side between `self` and `later`.
    fn per_chunk(self, later: Cpu, chunks: usize) -> Cpu {
        let per = |before: f64, after: f64| (after - before) / chunks as f64 * 1e6;
        Cpu {
            host: per(self.host, later.host),
            server: per(self.server, later.server),
            agent: per(self.agent, later.agent),
            workers: per(self.workers, later.workers),
        }
    }
}

/// The messages the server took in and sent out so far (its `/varz`).
fn server_messages(server: &NatsServer) -> f64 {
    let varz: serde_json::Value =
        serde_json::from_str(&server.monitor("/varz")).expect("/varz is JSON");
    ["in_msgs", "out_msgs"]
        .iter()
        .map(|key| varz[key].as_f64().expect("a count of messages"))
        .sum()
}

/// What W2 costs on the NATS pool, run once more: CPU µs per chunk of each
/// side, wall µs per chunk, and messages through the server per chunk.
struct W2Cost {
    cpu: Cpu,
    wall: f64,
    messages: f64,
}

fn w2_cost(pool: &Pool, server: &NatsServer, agent: u32) -> W2Cost {
    let messages = server_messages(server);
    let before = Cpu::now(agent);
    let start = Instant::now();
    let pending: Vec<AsyncResult<()>> = (0..W2_TASKS)
        .map(|_| pool.apply_async("noop", ()).expect("W2"))
        .collect();
    for r in &pending {
        r.get().expect("W2");
    }
    let wall = start.elapsed().as_secs_f64() / W2_TASKS as f64 * 1e6;
    let cpu = before.per_chunk(Cpu::now(agent), W2_TASKS);
    W2Cost {
        cpu,
        wall,
        messages: (server_messages(server) - messages) / W2_TASKS as f64,
    }
}

fn main() {
    wasmpool::init();
    let server = NatsServer::start();
    let url = server.url().to_owned();
    if std::env::var("WASMPOOL_BENCH_ONLY").as_deref() == Ok("link") {
        let links = links(&url, server.port());
        println!("{}", link_table(&links));
        return;
    }
    let locks = || {
        eprintln!("part 1: a lock's round trip from a task, local and on one agent ...");
        let local = lock_round_trip(&fixtures_pool(None));
        let agent = AgentProcess::start(&url, 1, "bench-lock");
        let remote = lock_round_trip(&fixtures_pool(Some(&url)));
        stop(agent);
        format!(
            "| lock `acquire` + `release` from a task | {:.1} µs | {:.1} µs | {:.1}× | {:.1} µs |\n",
            local * 1e6,
            remote * 1e6,
            remote / local,
            (remote - local) * 1e6,
        )
    };
    if std::env::var("WASMPOOL_BENCH_ONLY").as_deref() == Ok("hops") {
        let agent = AgentProcess::start(&url, 1, "bench-hops");
        let pool = nats_pool(&url, 1);
        warm_up(&pool, 1);
        let trips = round_trips(&pool, 500);
        println!(
            "`apply` round trip untraced, p50: {:.0} µs\n",
            trips[trips.len() / 2] * 1e6
        );
        let all = processes();
        let sides = hops::Sides {
            host: std::process::id(),
            server: children_of(&all, std::process::id(), "nats-server")[0],
            agent: agent.pid(),
            workers: descendants_of(&all, agent.pid()),
        };
        match hops::profile(&pool, &sides) {
            Ok(table) => println!("{table}"),
            Err(why) => eprintln!("no profile: {why}"),
        }
        return;
    }
    if std::env::var("WASMPOOL_BENCH_ONLY").as_deref() == Ok("calls") {
        println!("{}", locks());
        return;
    }
    let lock_row = locks();

    eprintln!("part 1: local Pool({PROCESSES}) ...");
    let local = {
        let pool = local_pool(PROCESSES);
        warm_up(&pool, PROCESSES);
        workloads(&pool)
    };
    eprintln!("part 1: Pool({PROCESSES}) on one agent (-j {PROCESSES}) ...");
    let agent = AgentProcess::start(&url, PROCESSES, "bench-1");
    let (remote, cost) = {
        let pool = nats_pool(&url, PROCESSES);
        warm_up(&pool, PROCESSES);
        (workloads(&pool), w2_cost(&pool, &server, agent.pid()))
    };
    stop(agent);

    eprintln!("part 2: sum_range({SUM_N}) × {SUM_TASKS}, local ...");
    let local_rates: Vec<f64> = [1, 2]
        .into_iter()
        .map(|processes| {
            let pool = local_pool(processes);
            warm_up(&pool, processes);
            throughput(&pool)
        })
        .collect();
    let mut agents = Vec::new();
    let mut agent_rates = Vec::new();
    for count in 1..=3 {
        eprintln!("part 2: {count} agent(s) of -j {AGENT_PROCESSES} ...");
        agents.push(AgentProcess::start(
            &url,
            AGENT_PROCESSES,
            &format!("bench-{count}"),
        ));
        let workers = count * AGENT_PROCESSES;
        let pool = nats_pool(&url, workers);
        let seen = warm_up(&pool, workers);
        agent_rates.push((count, seen, throughput(&pool)));
    }
    agents.into_iter().for_each(stop);

    let mut agents = Vec::new();
    let mut nap_rates = Vec::new();
    for count in 1..=4 {
        eprintln!("part 3: nap({NAP_MS}) × {NAP_TASKS} on {count} agent(s) ...");
        agents.push(AgentProcess::start(
            &url,
            NAP_AGENT_PROCESSES,
            &format!("bench-nap-{count}"),
        ));
        if count == 3 {
            continue;
        }
        let workers = count * NAP_AGENT_PROCESSES;
        let pool = nats_pool(&url, workers);
        let seen = warm_up(&pool, workers);
        nap_rates.push((count, seen, waiting_throughput(&pool)));
    }
    agents.into_iter().for_each(stop);

    let links = links(&url, server.port());
    drop(server);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| workload | local, {PROCESSES} processes | NATS, 1 agent `-j {PROCESSES}` | NATS / local | extra per chunk |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|");
    let cpu = cost.cpu;
    let mut row = |name: &str, local: f64, remote: f64, chunks: usize, unit: &str, scale: f64| {
        let _ = writeln!(
            table,
            "| {name} | {:.3} {unit} | {:.3} {unit} | {:.1}× | {:.1} µs |",
            local * scale,
            remote * scale,
            remote / local,
            (remote - local) / chunks as f64 * 1e6,
        );
    };
    row(
        &format!("W1 `map(square, range({W1_ITEMS}))`"),
        local.w1,
        remote.w1,
        W1_CHUNKS,
        "s",
        1.0,
    );
    row(
        &format!("W2 {W2_TASKS} `apply_async` no-ops, then `get`"),
        local.w2,
        remote.w2,
        W2_TASKS,
        "s",
        1.0,
    );
    row(
        "W3 `apply` round trip, p50",
        local.w3_p50,
        remote.w3_p50,
        1,
        "ms",
        1e3,
    );
    row(
        "W3 `apply` round trip, p99",
        local.w3_p99,
        remote.w3_p99,
        1,
        "ms",
        1e3,
    );
    row(
        &format!("W4 `imap(square, range({W4_ITEMS}), chunksize=1)`"),
        local.w4,
        remote.w4,
        W4_ITEMS as usize,
        "s",
        1.0,
    );
    table.push_str(&lock_row);
    let _ = writeln!(
        table,
        "\n| `sum_range({SUM_N})` × {SUM_TASKS}, chunksize 1 | workers | tasks/s | vs. 1 worker |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|");
    let base = local_rates[0];
    for (processes, rate) in [1, 2].into_iter().zip(&local_rates) {
        let _ = writeln!(
            table,
            "| local pool, {processes} process(es) | {processes} | {rate:.0} | {:.2}× |",
            rate / base
        );
    }
    let base = agent_rates[0].2;
    for (count, seen, rate) in &agent_rates {
        let _ = writeln!(
            table,
            "| NATS, {count} agent(s) of `-j {AGENT_PROCESSES}` | {} (ran tasks: {seen}) | {rate:.0} | {:.2}× |",
            count * AGENT_PROCESSES,
            rate / base
        );
    }
    let _ = writeln!(
        table,
        "\n| `nap({NAP_MS})` × {NAP_TASKS}, chunksize 1 | workers | tasks/s | vs. 1 agent | ideal |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|");
    let base = nap_rates[0].2;
    for (count, seen, rate) in &nap_rates {
        let workers = count * NAP_AGENT_PROCESSES;
        let _ = writeln!(
            table,
            "| NATS, {count} agent(s) of `-j {NAP_AGENT_PROCESSES}` | {workers} (ran tasks: {seen}) | {rate:.0} | {:.2}× | {:.0} |",
            rate / base,
            workers as f64 * 1000.0 / NAP_MS as f64,
        );
    }
    table.push('\n');
    table.push_str(&link_table(&links));
    let _ = writeln!(
        table,
        "\nW2 once more on the agent: {:.0} µs a chunk; {:.1} messages a chunk in and out \
         of the server; CPU µs a chunk: host {:.0}, nats-server {:.0}, agent {:.0}, its \
         workers {:.0} (total {:.0})",
        cost.wall,
        cost.messages,
        cpu.host,
        cpu.server,
        cpu.agent,
        cpu.workers,
        cpu.host + cpu.server + cpu.agent + cpu.workers,
    );
    println!(
        "NATS backend, one nats-server {} on loopback, {} cores\n\n{table}",
        nats_server_version(),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
}

/// What `nats-server --version` says.
fn nats_server_version() -> String {
    std::process::Command::new(nats_server::nats_server_program())
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}
