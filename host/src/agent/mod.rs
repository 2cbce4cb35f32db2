//! [`Agent`]: runs the chunks of the jobs published on a NATS server on
//! sandboxed workers of this machine (`wasmpool agent`).
//!
//! - `mod.rs`: the agent, and its watch on the bucket of jobs: a job is
//!   served from when it is put (or, for a job already there when the agent
//!   started, from the next sign of its host) until its host marks it
//!   ended (a signed record; a record merely deleted is not the end) or has
//!   been silent for [`ABANDONED_AFTER`];
//! - [`enroll`]: asking a job's host to serve it, and getting its secrets;
//! - [`job`]: serving one job: its module, its local pool, pulling chunks;
//! - [`chunk`]: running one chunk and reporting its outcomes;
//! - [`process`]: running a process job's chunk in a process of its own,
//!   which its host may signal;
//! - [`calls`]: passing what its tasks ask (host functions, shared
//!   objects) to the job's host, and its answers back;
//! - [`context`]: what the jobs an agent serves share.
//!
//! The agent is the far side of the NATS backend (`backend/nats/`), as
//! `worker/` is the far side of the local one; it is a user of a local
//! [`Pool`](crate::Pool), and sits above the backends.
//!
//! The agent is what talks to the network; its workers are the local
//! pool's, behind the same seccomp filter as any pool's, with no socket.

mod calls;
mod chunk;
mod context;
mod depth;
mod enroll;
mod job;
mod process;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use async_nats::datetime::DateTime;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::local::capacity::Capacity;
use crate::backend::nats::keys::{self, Domain};
use crate::backend::nats::store::{self, SERVER_PATIENCE, Store, remote};
use crate::backend::nats::wire::{
    self, ABANDONED_AFTER, AGENT_HEARTBEAT, AgentRecord, JobSpec, Signed,
};
use crate::backend::nats::{Nats, SigningKey, block_on, runtime};
use crate::error::{Error, ErrorKind};
use context::{Caps, JobContext};

/// How often an agent looks for jobs whose host went silent.
const SWEEP: Duration = Duration::from_secs(1);

/// Configures an [`Agent`]; from [`Agent::builder`].
#[derive(Debug)]
pub struct AgentBuilder {
    nats: Nats,
    name: Option<String>,
    processes: Option<usize>,
    force_processes: bool,
    max_jobs: Option<usize>,
    caps: Caps,
    cache_dir: Option<PathBuf>,
    worker_program: Option<PathBuf>,
    allowed_modules: Option<Vec<String>>,
    trusted_hosts: Vec<String>,
}

impl AgentBuilder {
    /// The agent's name in logs and in the server's monitoring (its host
    /// name and pid unless set).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many worker processes each job gets on this machine (as many as
    /// it has cores unless set). The agent holds at most twice as many of a
    /// job's chunks at once.
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Gives each job as many processes as [`processes`](Self::processes)
    /// asks even past what this machine can hold (see
    /// [`PoolBuilder::force_processes`](crate::PoolBuilder::force_processes)
    /// for the bound); unless forced, [`start`](Self::start) refuses it.
    pub fn force_processes(mut self, force: bool) -> Self {
        self.force_processes = force;
        self
    }

    /// Serves at most `jobs` jobs at once (as many as are published unless
    /// set): each job gets its own [`processes`](Self::processes), so this
    /// bounds the workers the agent runs. A job past it waits until one
    /// ends, and is served at its host's next sign of life.
    pub fn max_jobs(mut self, jobs: usize) -> Self {
        self.max_jobs = Some(jobs);
        self
    }

    /// The most linear memory any task may have here, whatever its job asks.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.caps.memory_limit = Some(bytes);
        self
    }

    /// The longest any task may run here, whatever its job asks.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.caps.task_timeout = Some(limit);
        self
    }

    /// The most fuel any task may burn here, whatever its job asks.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.caps.fuel = Some(fuel);
        self
    }

    /// Where compiled modules are kept (as
    /// [`PoolBuilder::cache_dir`](crate::PoolBuilder::cache_dir)).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The program to run as workers (as
    /// [`PoolBuilder::worker_program`](crate::PoolBuilder::worker_program)).
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.worker_program = Some(path.into());
        self
    }

    /// Runs only jobs whose module has this SHA-256 (hex); may be given
    /// many times. Unless given, the agent runs the jobs of anyone the
    /// server lets publish them.
    pub fn allow_module(mut self, sha256: impl Into<String>) -> Self {
        self.allowed_modules
            .get_or_insert_with(Vec::new)
            .push(sha256.into().to_ascii_lowercase());
        self
    }

    /// Serves only the jobs signed by this host key (`U...`, as `wasmpool
    /// keygen` prints it; the host gives its key with
    /// [`Nats::key`](crate::Nats::key)); may be given many times. Unless
    /// given, the agent serves the jobs of any host the server lets publish
    /// them, each checked against the key its record was first signed
    /// with.
    pub fn trust_host(mut self, key: impl Into<String>) -> Self {
        self.trusted_hosts.push(key.into().trim().to_string());
        self
    }

    /// Connects, and starts serving jobs in the background; returns once
    /// the agent watches for jobs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Remote`] if the server cannot be reached or refuses the
    /// credentials; [`ErrorKind::Config`] for an invalid configuration.
    pub fn start(self) -> Result<Agent, Error> {
        self.nats.check()?;
        if self.processes == Some(0) {
            return Err(Error::new(
                ErrorKind::Config,
                "an agent needs at least one process",
            ));
        }
        if self.max_jobs == Some(0) {
            return Err(Error::new(
                ErrorKind::Config,
                "an agent must be able to serve at least one job (max_jobs)",
            ));
        }
        if let Some(allowed) = &self.allowed_modules
            && let Some(bad) = allowed
                .iter()
                .find(|hash| hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!("`{bad}` is not a SHA-256 in hex (64 digits)"),
            ));
        }
        for key in &self.trusted_hosts {
            keys::check_public_key(key)?;
        }
        let processes = self
            .processes
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from));
        // Checked once here: a job's pool, started later beside others, is
        // forced past a bound that counts the memory they use.
        Capacity::of_this_machine().check(processes, self.force_processes)?;
        let name = self.name.unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|host| host.trim().to_string())
                .unwrap_or_else(|_| "agent".to_string());
            format!("{host}-{}", std::process::id())
        });
        let runtime = runtime(2, "wasmpool-agent")?;
        let store = block_on(
            runtime.handle(),
            Store::open(&self.nats, &format!("wasmpool agent {name}")),
        )?;
        let key = self.nats.key.clone().unwrap_or_else(SigningKey::generate);
        let context = Arc::new(JobContext {
            store,
            agent: name.clone(),
            key: key.clone(),
            trusted_hosts: self.trusted_hosts,
            processes,
            max_jobs: self.max_jobs.unwrap_or(usize::MAX),
            caps: self.caps,
            cache_dir: self.cache_dir,
            worker_program: self.worker_program,
            allowed_modules: self.allowed_modules,
            modules: Mutex::new(HashMap::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let main = runtime.spawn(watch_jobs(context, stopped, ready_tx));
        let agent = Agent {
            name,
            key,
            stop,
            main: Mutex::new(Some(main)),
            runtime: Mutex::new(Some(runtime)),
        };
        // Ready once it watches for jobs; if it failed before, why.
        let handle = agent.runtime().clone();
        match block_on(&handle, ready) {
            Ok(()) => Ok(agent),
            Err(_) => Err(agent.wait().err().unwrap_or_else(|| {
                Error::new(ErrorKind::Remote, "the agent stopped as it started")
            })),
        }
    }
}

/// Runs the chunks of jobs published on a NATS server on sandboxed worker
/// processes of this machine: what `wasmpool agent` runs.
///
/// Agents come and go at any time. Each job gets a local pool of its own
/// here, with the job's limits (capped by the agent's), its initializer and
/// its retries; chunks are acknowledged once their outcomes are stored on
/// the server, so a chunk whose agent dies runs on another.
///
/// ```no_run
/// wasmpool::init();
/// let agent = wasmpool::Agent::builder(wasmpool::Nats::new("nats://127.0.0.1:4222"))
///     .processes(4)
///     .start()?;
/// agent.wait()?;
/// # Ok::<(), wasmpool::Error>(())
/// ```
pub struct Agent {
    name: String,
    key: SigningKey,
    stop: watch::Sender<bool>,
    main: Mutex<Option<JoinHandle<Result<(), Error>>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts configuring an agent of the server `nats`.
    pub fn builder(nats: Nats) -> AgentBuilder {
        AgentBuilder {
            nats,
            name: None,
            processes: None,
            force_processes: false,
            max_jobs: None,
            caps: Caps::default(),
            cache_dir: None,
            worker_program: None,
            allowed_modules: None,
            trusted_hosts: Vec::new(),
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key the agent signs its reports with (`U...`): what a
    /// pool trusts with [`Nats::trust_agent`](crate::Nats::trust_agent).
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// The runtime's handle, while the agent has not been waited for.
    fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .expect("an agent not yet waited for has its runtime")
            .handle()
            .clone()
    }

    /// Stops taking chunks: those it holds are handed back to the server at
    /// once, for other agents, and its workers are stopped. Then
    /// [`wait`](Self::wait) returns.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the agent has stopped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Remote`] if the agent stopped because it lost the
    /// server for good.
    pub fn wait(&self) -> Result<(), Error> {
        let main = self
            .main
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (Some(main), Some(runtime)) = (main, runtime) else {
            return Ok(());
        };
        let ended = block_on(runtime.handle(), main);
        runtime.shutdown_background();
        match ended {
            Ok(ended) => ended,
            Err(err) => Err(Error::new(
                ErrorKind::Remote,
                format!("the agent failed: {err}"),
            )),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        let _ = self.wait();
    }
}

/// A job this agent knows of.
struct Known {
    /// When its host was last seen (or the job was first listed).
    seen: Instant,
    /// Serving it, until told to stop (`true` when the agent itself
    /// stops); none for a job that was there when the agent started, or
    /// that waits for room (`max_jobs`), until its host shows a sign of
    /// life.
    serving: Option<(JoinHandle<()>, watch::Sender<Option<bool>>)>,
    /// The key its record was first signed with: its host's.
    host: String,
    spec: JobSpec,
}

/// The agent's main task: watches the bucket of jobs, serves those that
/// live, until `stopped`.
async fn watch_jobs(
    context: Arc<JobContext>,
    mut stopped: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), Error> {
    let store = &context.store;
    // The jobs put before this revision were there before the agent: their
    // hosts may be long gone.
    let bucket = jobs_stream(store).await?;
    let mut start = bucket.state.last_sequence;
    // When the bucket was made: another time is another bucket.
    let mut made = bucket.created;
    let mut watch = store
        .jobs
        .watch_with_history(">")
        .await
        .map_err(|err| remote("cannot watch the bucket of jobs", err))?;
    tracing::debug!(agent = %context.agent, "agent ready, {} processes per job", context.processes);
    let _ = ready.send(());
    let mut jobs: HashMap<String, Known> = HashMap::new();
    let mut remembered = Remembered::default();
    let mut sweep = tokio::time::interval(SWEEP);
    // Hosts list this agent while it shows it lives.
    let key = nuid::next().to_string();
    let mut alive = tokio::time::interval(AGENT_HEARTBEAT);
    let ended = loop {
        tokio::select! {
            _ = async { stopped.wait_for(|stop| *stop).await.map(drop) } => break Ok(()),
            entry = watch.next() => match entry {
                Some(Ok(entry)) => {
                    let fresh = entry.revision > start;
                    let before = serving(&jobs);
                    on_entry(&context, &mut jobs, &mut remembered, entry, fresh);
                    if serving(&jobs) != before {
                        // Hosts see the change now, not at the next beat.
                        alive.reset_immediately();
                    }
                }
                ended_or_failed => {
                    if let Some(Err(err)) = ended_or_failed {
                        tracing::warn!("watching jobs: {err}");
                        // The watch goes on from where it was, unless its
                        // bucket vanished, or was made anew.
                        if jobs_stream(store).await.is_ok_and(|bucket| bucket.created == made) {
                            continue;
                        }
                    }
                    // Watched anew, the jobs served go on; in a bucket made
                    // anew, every job is fresh news (one whose host is gone
                    // is dropped once it has been silent too long).
                    match rewatch(&context).await {
                        Ok((again, created)) => {
                            start = if created == made { start } else { 0 };
                            (watch, made) = (again, created);
                        }
                        Err(err) => break Err(err),
                    }
                }
            },
            _ = alive.tick() => {
                let record = AgentRecord {
                    version: wire::VERSION,
                    name: context.agent.clone(),
                    key: context.key.public_key(),
                    processes: context.processes,
                    pid: std::process::id(),
                    jobs: serving(&jobs),
                };
                if let Err(err) = store.agents.put(&key, wire::encode(&record).into()).await {
                    tracing::warn!("cannot show the agent lives: {err}");
                }
            }
            _ = sweep.tick() => {
                let silent: Vec<String> = jobs
                    .iter()
                    .filter(|(_, known)| known.seen.elapsed() > ABANDONED_AFTER)
                    .map(|(job, _)| job.clone())
                    .collect();
                for job in silent {
                    tracing::warn!("job {job}: its host has been silent for {ABANDONED_AFTER:?}: dropped");
                    if let Some(known) = jobs.remove(&job) {
                        let context = context.clone();
                        tokio::spawn(async move {
                            if let Some((task, cancel)) = known.serving {
                                cancel.send_replace(Some(false));
                                let _ = task.await;
                            }
                            context.store.tidy(&job).await;
                        });
                    }
                }
            }
        }
    };
    for (_, cancel) in jobs.values().filter_map(|known| known.serving.as_ref()) {
        cancel.send_replace(Some(true));
    }
    for (task, _) in jobs.into_values().filter_map(|known| known.serving) {
        let _ = task.await;
    }
    let _ = store.agents.delete(&key).await;
    ended
}

/// Watches the bucket of jobs again, after the watch ended or its bucket
/// vanished: makes the bucket again if it is not there, trying for
/// [`SERVER_PATIENCE`]. Returns the watch, and when the bucket was made.
async fn rewatch(context: &JobContext) -> Result<(kv::Watch, DateTime), Error> {
    let started = Instant::now();
    tracing::warn!("the bucket of jobs vanished, or its watch ended: watching it again");
    loop {
        let watched = async {
            let bucket = store::jobs_bucket(&context.store.js).await?;
            let made = jobs_stream(&context.store).await?.created;
            let watch = bucket
                .watch_with_history(">")
                .await
                .map_err(|err| remote("cannot watch the bucket of jobs", err))?;
            Ok::<_, Error>((watch, made))
        };
        match watched.await {
            Ok(watch) => return Ok(watch),
            Err(err) if started.elapsed() < SERVER_PATIENCE => {
                tracing::debug!("{err}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("the bucket of jobs is gone for over {SERVER_PATIENCE:?}: {err}"),
                ));
            }
        }
    }
}

/// The stream that holds the bucket of jobs, as the server describes it
/// now: when it was made, and how far it goes.
async fn jobs_stream(store: &Store) -> Result<stream::Info, Error> {
    let stream = store
        .js
        .get_stream(format!("KV_{}", wire::JOBS))
        .await
        .map_err(|err| remote("cannot read the bucket of jobs", err))?;
    Ok(stream.cached_info().clone())
}

/// How many of the jobs the agent knows it serves (a job whose host
/// refused the agent is served no more).
fn serving(jobs: &HashMap<String, Known>) -> usize {
    jobs.values()
        .filter(|known| {
            known
                .serving
                .as_ref()
                .is_some_and(|(task, _)| !task.is_finished())
        })
        .count()
}

/// The most jobs an agent remembers it warned of, or saw end.
const REMEMBERED: usize = 1024;

/// What an agent remembers of jobs it does not serve.
#[derive(Default)]
struct Remembered {
    /// The jobs it warned of (not served, or a record ignored), once each.
    warned: HashSet<String>,
    /// The jobs whose host said they ended: their records are ignored
    /// from then on.
    ended: HashSet<String>,
}

impl Remembered {
    /// Warns that `job` is not served, or a record of it ignored, unless
    /// it warned of `job` before.
    fn warn_once(&mut self, job: &str, why: &str) {
        if self.warned.len() >= REMEMBERED {
            self.warned.clear();
        }
        if self.warned.insert(job.to_string()) {
            tracing::warn!("job {job}: {why}");
        }
    }

    /// Remembers that `job` ended.
    fn end(&mut self, job: &str) {
        if self.ended.len() >= REMEMBERED {
            self.ended.clear();
        }
        self.ended.insert(job.to_string());
    }
}

/// The host key and job of the record `value` of `job`, once checked: it
/// must be signed by the key it names, one the agent trusts if it was told
/// which.
fn open_record(context: &JobContext, job: &str, value: &[u8]) -> Result<(String, JobSpec), Error> {
    let (host, spec) = Signed::open::<JobSpec>(value, Domain::Job, job, "job")?;
    if !context.trusted_hosts.is_empty() && !context.trusted_hosts.contains(&host) {
        return Err(Error::new(
            ErrorKind::Remote,
            format!(
                "signed by the host key {host}, which this agent does not trust (it serves \
                 the jobs of its --trust-host keys only)"
            ),
        ));
    }
    spec.check()?;
    Ok((host, spec))
}

/// Takes a change to the bucket of jobs.
fn on_entry(
    context: &Arc<JobContext>,
    jobs: &mut HashMap<String, Known>,
    remembered: &mut Remembered,
    entry: async_nats::jetstream::kv::Entry,
    fresh: bool,
) {
    let job = entry.key;
    if !wire::is_job_id(&job) {
        tracing::warn!("ignored a job named `{job}`: not a job id");
        return;
    }
    match entry.operation {
        Operation::Delete | Operation::Purge => {
            remembered.warned.remove(&job);
            if jobs.contains_key(&job) && !remembered.ended.contains(&job) {
                // Anyone who may write to the bucket may delete a record:
                // the job goes on while its host shows it lives.
                tracing::warn!(
                    "job {job}: its record was deleted without its host's word that it \
                     ended: served on while its host shows it lives"
                );
            }
        }
        Operation::Put => {
            if remembered.ended.contains(&job) {
                return;
            }
            let room = serving(jobs) < context.max_jobs;
            let opened = open_record(context, &job, &entry.value);
            if let Ok((host, spec)) = &opened
                && spec.ended
            {
                let known_host = jobs.get(&job).map(|known| known.host.as_str());
                if known_host.is_none_or(|known| known == host) {
                    remembered.end(&job);
                    if let Some((_, cancel)) = jobs.remove(&job).and_then(|known| known.serving) {
                        tracing::info!("job {job}: ended by its host");
                        cancel.send_replace(Some(false));
                    }
                    return;
                }
            }
            if let Some(known) = jobs.get_mut(&job) {
                match &opened {
                    Ok((host, _)) if *host == known.host => {}
                    // Not a sign that its host lives: the job goes on as
                    // it was first signed, or is dropped once its host is
                    // silent.
                    Ok((host, _)) => {
                        return remembered.warn_once(
                            &job,
                            &format!(
                                "its record is now signed by another key, {}: ignored",
                                keys::short(host)
                            ),
                        );
                    }
                    Err(err) => {
                        return remembered
                            .warn_once(&job, &format!("a record ignored: {}", err.message()));
                    }
                }
                if fresh {
                    known.seen = Instant::now();
                    if known.serving.is_none() && room {
                        // A job that was there before this agent, or that
                        // waited for room: its host lives.
                        known.serving =
                            Some(job::start(context, &job, &known.host, known.spec.clone()));
                    }
                }
                return;
            }
            let (host, spec) = match opened {
                Ok(opened) => opened,
                Err(err) => {
                    return remembered.warn_once(&job, &format!("not served: {}", err.message()));
                }
            };
            if fresh && !room {
                tracing::info!(
                    "job {job}: waits, this agent serves its most jobs at once ({})",
                    context.max_jobs
                );
            }
            let serving = (fresh && room).then(|| job::start(context, &job, &host, spec.clone()));
            jobs.insert(
                job,
                Known {
                    seen: Instant::now(),
                    serving,
                    host,
                    spec,
                },
            );
        }
    }
}
