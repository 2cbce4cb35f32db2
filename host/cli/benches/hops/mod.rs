//! Where one `apply` round trip on an agent spends its time:
//! `WASMPOOL_BENCH_ONLY=hops`.
//!
//! One agent of one process runs `noop`s, one `apply` at a time, a few
//! milliseconds apart, while `perf trace` records the reads and writes of
//! every process on the path: this one (the pool's host), the
//! `nats-server`, the agent and its worker. The host marks the start and
//! the end of each round trip with a `getpid` system call. Each event that
//! most round trips have (a thread's first, second… call of a kind on an
//! fd) gets a row, in the order of its median time since the start, with
//! the gap from the row before: the gaps are the hops (a wake-up on another
//! process, a message through the server, a store on file).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use wasmpool::Pool;

/// Round trips traced.
const TRIPS: usize = 300;
/// The pause between two, so that each runs alone.
const PAUSE: Duration = Duration::from_millis(4);
/// The system calls traced: the marks, and what moves bytes.
const SYSCALLS: &str = "getpid,read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg,\
                        pwrite64,fsync,fdatasync";

/// Which process an event is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Host,
    Server,
    Agent,
    Worker,
}

/// One traced system call that moved bytes.
#[derive(Clone, Debug)]
struct Event {
    /// When the call returned, in milliseconds on perf's clock.
    at: f64,
    role: Role,
    /// The thread's name.
    thread: String,
    syscall: String,
    fd: i64,
    bytes: i64,
}

/// The pids of each role, the workers found under the agent.
pub(crate) struct Sides {
    pub(crate) host: u32,
    pub(crate) server: u32,
    pub(crate) agent: u32,
    pub(crate) workers: Vec<u32>,
}

/// Traces [`TRIPS`] round trips of `noop` on `pool` and returns the table,
/// or why it could not (no `perf`, say).
pub(crate) fn profile(pool: &Pool, sides: &Sides) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let out = dir.path().join("trace.txt");
    let mut pids = vec![sides.host, sides.server, sides.agent];
    pids.extend(&sides.workers);
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut perf = Command::new("perf")
        .args(["trace", "-o"])
        .arg(&out)
        .args(["--sort-events", "-e", SYSCALLS, "-p", &list.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run perf: {err}"))?;
    // Time for perf to attach to every thread.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..TRIPS {
        mark();
        let _: () = pool.apply("noop", ()).map_err(|err| err.to_string())?;
        mark();
        std::thread::sleep(PAUSE);
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) of the perf process this function started.
    unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
    let status = perf.wait().map_err(|err| err.to_string())?;
    let text = std::fs::read_to_string(&out)
        .map_err(|err| format!("perf ({status}) wrote no trace: {err}"))?;
    let roles = roles_of_threads(sides);
    let events = parse(&text, &roles);
    let trips = trips(&events);
    if trips.is_empty() {
        return Err(format!("no round trip in the trace ({status})"));
    }
    Ok(table(&trips))
}

/// The host's mark of a round trip's start or end, a `getpid` system call
/// (made directly, so that no library answers it from a cache).
fn mark() {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::syscall(libc::SYS_getpid) };
}

/// Every thread of each side, by thread id, with its name.
fn roles_of_threads(sides: &Sides) -> HashMap<u32, (Role, String)> {
    let mut roles = HashMap::new();
    let mut add = |pid: u32, role: Role| {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            roles.insert(tid, (role, name.trim().to_string()));
        }
    };
    add(sides.host, Role::Host);
    add(sides.server, Role::Server);
    add(sides.agent, Role::Agent);
    for &worker in &sides.workers {
        add(worker, Role::Worker);
    }
    roles
}

/// The lines of `perf trace`, `12.345 ( 0.010 ms): name/tid call(args) =
/// n`, as events: marks, and calls that moved bytes. A call another event
/// interrupted comes in two lines, its start (`...` for a result) and its
/// end (`... [continued]: call()) = n`).
fn parse(text: &str, roles: &HashMap<u32, (Role, String)>) -> Vec<Event> {
    let mut started: HashMap<u32, (String, i64)> = HashMap::new();
    let mut events = Vec::new();
    for line in text.lines() {
        let Some((at, tid, call)) = split_line(line) else {
            continue;
        };
        let Some((role, thread)) = roles.get(&tid) else {
            continue;
        };
        let (syscall, fd, result) = if let Some(rest) = call.strip_prefix("... [continued]: ") {
            let Some((syscall, fd)) = started.remove(&tid) else {
                continue;
            };
            let Some((_, result)) = rest.rsplit_once(" = ") else {
                continue;
            };
            (syscall, fd, result)
        } else {
            let Some((syscall, args)) = call.split_once('(') else {
                continue;
            };
            // perf leaves out an argument that is 0: `fd: 0` too.
            let fd = args
                .split(", ")
                .find_map(|arg| arg.strip_prefix("fd: "))
                .and_then(|fd| fd.split([',', ')']).next()?.parse().ok())
                .unwrap_or(0);
            match args.rsplit_once(" = ") {
                Some((_, result)) => (syscall.to_string(), fd, result),
                None => {
                    started.insert(tid, (syscall.to_string(), fd));
                    continue;
                }
            }
        };
        let Some(bytes) = result
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if syscall != "getpid" && bytes <= 0 {
            continue;
        }
        events.push(Event {
            at,
            role: *role,
            thread: thread.clone(),
            syscall,
            fd,
            bytes,
        });
    }
    events
}

/// A line's time (when the call returned: perf gives its start and its
/// duration, and a blocking read starts long before its bytes come), thread
/// id and call (with its arguments and result).
fn split_line(line: &str) -> Option<(f64, u32, &str)> {
    let (at, rest) = line.trim_start().split_once(" (")?;
    let (took, rest) = rest.split_once("): ")?;
    let took: f64 = took
        .trim()
        .trim_end_matches("ms")
        .trim()
        .parse()
        .unwrap_or(0.0);
    let (who, call) = rest.split_once(' ')?;
    let (_, tid) = who.rsplit_once('/')?;
    Some((
        at.parse::<f64>().ok()? + took,
        tid.parse().ok()?,
        call.trim_start(),
    ))
}

/// The events of each round trip, from the host's mark of its start to
/// that of its end, with times from the start.
fn trips(events: &[Event]) -> Vec<Vec<Event>> {
    let mut trips = Vec::new();
    let mut open: Option<(f64, Vec<Event>)> = None;
    for event in events {
        let is_mark = event.role == Role::Host && event.syscall == "getpid";
        match (&mut open, is_mark) {
            (None, true) => open = Some((event.at, Vec::new())),
            (Some(_), true) => trips.extend(open.take().map(|(_, trip)| trip)),
            (Some((start, trip)), false) => trip.push(Event {
                at: event.at - *start,
                ..event.clone()
            }),
            (None, false) => {}
        }
    }
    trips
}

/// What an event is, whatever its time: who made which call on which fd,
/// and how many such calls the same thread made before it in its trip.
type Key = (Role, String, String, i64, usize);

fn keys(trip: &[Event]) -> Vec<Key> {
    let mut seen: HashMap<(Role, &str, &str, i64), usize> = HashMap::new();
    trip.iter()
        .map(|event| {
            let nth = seen
                .entry((event.role, &event.thread, &event.syscall, event.fd))
                .or_default();
            *nth += 1;
            (
                event.role,
                event.thread.clone(),
                event.syscall.clone(),
                event.fd,
                *nth,
            )
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The events that most round trips have (the same call on the same fd
/// by the same thread, its first, second… in the trip), in the order of
/// their median times from the start; each with that median and the gap
/// from the event before.
fn table(trips: &[Vec<Event>]) -> String {
    let mut times: HashMap<Key, (Vec<f64>, Vec<f64>)> = HashMap::new();
    for trip in trips {
        for (key, event) in keys(trip).into_iter().zip(trip) {
            let (at, bytes) = times.entry(key).or_default();
            at.push(event.at);
            bytes.push(event.bytes as f64);
        }
    }
    let mut rows: Vec<(f64, f64, usize, Key)> = times
        .into_iter()
        .filter(|(_, (at, _))| at.len() * 2 > trips.len())
        .map(|(key, (at, bytes))| (median(at.clone()), median(bytes), at.len(), key))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ends: Vec<f64> = trips
        .iter()
        .filter_map(|trip| trip.last().map(|event| event.at))
        .collect();
    let mut table = format!(
        "{} round trips; the host's last event of one, median: {:.0} µs\n\n\
         | process | thread | call | fd | bytes | in trips | µs from start | µs from the row before |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n",
        trips.len(),
        median(ends) * 1e3,
    );
    let mut before = 0.0;
    for (at, bytes, count, (role, thread, syscall, fd, nth)) in rows {
        let nth = if nth > 1 {
            format!(" ({nth})")
        } else {
            String::new()
        };
        table.push_str(&format!(
            "| {role:?} | {thread} | {syscall}{nth} | {fd} | {bytes:.0} | {count} | {:.0} | {:.0} |\n",
            at * 1e3,
            (at - before) * 1e3,
        ));
        before = at;
    }
    table
}
