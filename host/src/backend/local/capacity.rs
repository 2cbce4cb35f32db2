//! How many workers this machine can hold: the bound a pool's process count
//! is checked against before any worker starts, unless the user forces it.
//!
//! The bound is the least of three, each read from the machine when a pool
//! starts:
//!
//! - [`PER_CPU`] workers per CPU the process may run on;
//! - what the process limits leave room for (`RLIMIT_NPROC`, the kernel's
//!   `pid_max` and `threads-max`, a cgroup's `pids.max`), at
//!   [`THREADS_PER_WORKER`] threads each;
//! - what the available memory (`MemAvailable`, a cgroup's `memory.max`)
//!   leaves room for, at [`MEMORY_PER_WORKER`] each.

use std::fmt;
use std::fs;
use std::thread;

use crate::error::{Error, ErrorKind};

/// Workers per CPU: more than a CPU-bound pool wants by far, enough for
/// tasks that mostly wait (on host functions, on shared objects).
pub(crate) const PER_CPU: u64 = 64;

/// Threads (each a process id to the kernel) one worker costs: three in the
/// worker, its slot and reader threads in the host, and one to spare.
pub(crate) const THREADS_PER_WORKER: u64 = 6;

/// Memory one worker is counted at: an idle worker's resident set is about
/// 13 MiB, the rest is room for its tasks.
pub(crate) const MEMORY_PER_WORKER: u64 = 32 << 20;

/// The machine's bound on a pool's workers, and what it was derived from.
#[derive(Debug)]
pub(crate) struct Capacity {
    cpus: u64,
    /// The fewest process ids any limit leaves, and its name.
    ids: Option<(u64, &'static str)>,
    /// The least memory any limit leaves, in bytes, and its name.
    memory: Option<(u64, &'static str)>,
}

impl Capacity {
    /// Reads the machine's limits now.
    pub(crate) fn of_this_machine() -> Capacity {
        let cgroup = own_cgroup();
        let cgroup_file = |name: &str| {
            cgroup
                .as_ref()
                .and_then(|dir| read_number(&format!("{dir}/{name}")))
        };
        let ids = [
            (nproc_limit(), "RLIMIT_NPROC"),
            (read_number("/proc/sys/kernel/pid_max"), "pid_max"),
            (read_number("/proc/sys/kernel/threads-max"), "threads-max"),
            (cgroup_file("pids.max"), "the cgroup's pids.max"),
        ];
        let memory = [
            (mem_available(), "MemAvailable"),
            (
                cgroup_file("memory.max")
                    .map(|max| max.saturating_sub(cgroup_file("memory.current").unwrap_or(0))),
                "the cgroup's memory.max",
            ),
        ];
        Capacity {
            cpus: thread::available_parallelism().map_or(1, |n| n.get() as u64),
            ids: least(ids),
            memory: least(memory),
        }
    }

    /// How many workers a pool may have.
    pub(crate) fn processes(&self) -> u64 {
        let by_cpus = self.cpus.saturating_mul(PER_CPU);
        let by_ids = self
            .ids
            .map_or(u64::MAX, |(ids, _)| ids / THREADS_PER_WORKER);
        let by_memory = self
            .memory
            .map_or(u64::MAX, |(bytes, _)| bytes / MEMORY_PER_WORKER);
        by_cpus.min(by_ids).min(by_memory).max(1)
    }

    /// Refuses `processes` past the bound, unless `force`d, naming the bound,
    /// what it was derived from, and how to force it.
    pub(crate) fn check(&self, processes: usize, force: bool) -> Result<(), Error> {
        let bound = self.processes();
        if force || processes as u64 <= bound {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "{processes} processes is past what this machine can hold, {bound} ({self}); \
                 to start them anyway, force it (--force-jobs on the \
                 command line, force_processes in the API)"
            ),
        ))
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus = self.cpus;
        let plural = if cpus == 1 { "" } else { "s" };
        write!(f, "{PER_CPU} per CPU on {cpus} CPU{plural}")?;
        if let Some((ids, name)) = self.ids {
            write!(
                f,
                "; {name} of {ids} leaves room for {} at {THREADS_PER_WORKER} threads each",
                ids / THREADS_PER_WORKER
            )?;
        }
        if let Some((bytes, name)) = self.memory {
            write!(
                f,
                "; {name} of {} MiB for {} at {} MiB each",
                bytes >> 20,
                bytes / MEMORY_PER_WORKER,
                MEMORY_PER_WORKER >> 20
            )?;
        }
        Ok(())
    }
}

/// The least of the limits that are set, with its name.
fn least<const N: usize>(limits: [(Option<u64>, &'static str); N]) -> Option<(u64, &'static str)> {
    limits
        .into_iter()
        .filter_map(|(limit, name)| limit.map(|limit| (limit, name)))
        .min_by_key(|&(limit, _)| limit)
}

/// The soft `RLIMIT_NPROC`, unless unlimited.
fn nproc_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nproc).current
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The directory of this process's cgroup (v2), if it has one.
fn own_cgroup() -> Option<String> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(format!("/sys/fs/cgroup{}", path.trim_end_matches('/')))
}

/// A file holding one number (not `max`).
fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(cpus: u64, ids: u64, memory_mib: u64) -> Capacity {
        Capacity {
            cpus,
            ids: Some((ids, "RLIMIT_NPROC")),
            memory: Some((memory_mib << 20, "MemAvailable")),
        }
    }

    #[test]
    fn the_least_limit_bounds_the_processes() {
        assert_eq!(capacity(2, 1_000_000, 1 << 20).processes(), 128);
        assert_eq!(capacity(64, 600, 1 << 20).processes(), 100);
        assert_eq!(capacity(64, 1_000_000, 3200).processes(), 100);
        assert_eq!(
            capacity(1, 1, 1).processes(),
            1,
            "one worker is always allowed"
        );
    }

    #[test]
    fn a_refusal_names_the_bound_its_sources_and_how_to_force_it() {
        let capacity = capacity(2, 96_367, 24_000);
        assert!(capacity.check(128, false).is_ok());
        assert!(capacity.check(100_000, true).is_ok());
        let err = capacity.check(129, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            "129 processes is past what this machine can hold, 128 (64 per CPU on 2 CPUs; \
             RLIMIT_NPROC of 96367 leaves room for 16061 at 6 threads each; MemAvailable of \
             24000 MiB for 750 at 32 MiB each); to start them anyway, force it (--force-jobs on the \
             command line, force_processes in the API)"
        );
    }

    #[test]
    fn this_machine_allows_a_pool_per_cpu() {
        let capacity = Capacity::of_this_machine();
        let cpus = thread::available_parallelism().map_or(1, |n| n.get() as u64);
        assert!(capacity.processes() <= cpus * PER_CPU, "{capacity}");
        assert!(
            capacity.ids.is_some(),
            "pid_max is always there: {capacity}"
        );
        assert!(
            capacity.memory.is_some(),
            "MemAvailable is always there: {capacity}"
        );
    }
}
