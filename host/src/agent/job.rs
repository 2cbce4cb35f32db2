//! Serving one job on an agent: fetching its module, starting a local pool
//! for it, and pulling its chunks while there is room.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::calls::Forwarder;
use super::chunk::{self, JobPool, Serving};
use super::context::{Caps, JobContext};
use super::depth::{Ahead, Depth};
use super::enroll::enroll;
use super::process::{self, Running, Said};
use crate::backend::nats::keys::Domain;
use crate::backend::nats::store::remote;
use crate::backend::nats::throttle::Throttle;
use crate::backend::nats::wire::{self, JobLimits, JobSpec, MODULE_LIMIT, OutputMessage, Signed};
use crate::channel::Limits;
use crate::error::{Error, ErrorKind};
use crate::module::{self, Compiling};
use crate::pool::Pool;

/// How long an agent waits before it tries again what failed on the server.
const BACKOFF: Duration = Duration::from_secs(1);
/// How many modules an agent keeps in memory, for the jobs that share them.
const MODULES_KEPT: usize = 4;

/// Chunks an agent keeps here not yet done at most, per process, however
/// long its link: no more wait on an agent while another may be idle.
const AHEAD_PER_PROCESS: usize = 8;

/// Chunks an agent holds at most, per process: not yet done here, or done
/// with their outcomes on the way to the server (a round trip, long on a
/// slow link), during which the next chunks run.
const HELD_PER_PROCESS: usize = 32;

/// Starts serving `job`, whose host signs with `host`; send `Some(true)` to stop for good (the agent
/// stops: chunks held go back to the server), `Some(false)` when the job
/// ended.
pub(crate) fn start(
    context: &Arc<JobContext>,
    job: &str,
    host: &str,
    spec: JobSpec,
) -> (JoinHandle<()>, watch::Sender<Option<bool>>) {
    let (cancel, cancelled) = watch::channel(None);
    let task = tokio::spawn(run_until_ended(
        context.clone(),
        job.to_string(),
        host.to_string(),
        spec,
        cancelled,
    ));
    (task, cancel)
}

/// The limits of a job's tasks here: the job's, within the agent's caps.
pub(crate) fn capped(limits: &JobLimits, caps: &Caps) -> JobLimits {
    fn least<T: Ord + Copy>(job: Option<T>, cap: Option<T>) -> Option<T> {
        match (job, cap) {
            (Some(job), Some(cap)) => Some(job.min(cap)),
            (job, cap) => job.or(cap),
        }
    }
    JobLimits {
        worker: Limits {
            task_timeout: least(limits.worker.task_timeout, caps.task_timeout),
            fuel: least(limits.worker.fuel, caps.fuel),
            ..limits.worker.clone()
        },
        memory_limit: least(Some(limits.memory_limit), caps.memory_limit)
            .unwrap_or(limits.memory_limit),
        ..limits.clone()
    }
}

/// Serves `job` until it ends or the agent stops: asks its host to serve
/// it, and if admitted, runs its chunks.
async fn run_until_ended(
    context: Arc<JobContext>,
    job: String,
    host: String,
    spec: JobSpec,
    mut cancelled: watch::Receiver<Option<bool>>,
) {
    let admitted = tokio::select! {
        admitted = enroll(&context, &job, &host) => admitted,
        _ = cancelled.wait_for(Option::is_some) => return,
    };
    let (env, report_key) = match admitted {
        Ok(admitted) => admitted,
        Err(err) => {
            // Its chunks are left to the agents it trusts.
            tracing::warn!("job {job}: not served: {}", err.message());
            return;
        }
    };
    let prepared = tokio::select! {
        prepared = prepare(&context, &job, &host, &spec, &env) => prepared,
        _ = cancelled.wait_for(Option::is_some) => return,
    };
    let pool = match prepared {
        Ok(pool) => {
            tracing::info!(
                "job {job}: serving, module sha256 {}, {}",
                spec.module,
                match pool {
                    JobPool::Process(..) => "a process".to_string(),
                    _ => format!("{} processes", context.processes),
                }
            );
            pool
        }
        Err(err) => {
            tracing::warn!("job {job}: cannot run here, its tasks fail: {err}");
            JobPool::Broken(err)
        }
    };
    let serving = Arc::new(Serving {
        context: context.clone(),
        job: job.clone(),
        host,
        reporter: (context.key.public_key(), report_key),
        pool,
        agent_retries: spec.agent_retries,
        ack_wait: Duration::from_millis(spec.ack_wait_ms),
        room: context.store.message_room(),
        running: Running::default(),
    });
    // A process's host stops it through the job's control subject; its
    // output goes to the host in order.
    let mut helpers = Vec::new();
    if let JobPool::Process(_, said) = &serving.pool {
        let controls = context.store.client.subscribe(wire::control_subject(&job));
        match controls.await {
            Ok(controls) => helpers.push(tokio::spawn(process::obey(serving.clone(), controls))),
            Err(err) => tracing::warn!("job {job}: cannot hear its host's controls: {err}"),
        }
        if let Some(relaying) = said.relay(serving.clone(), cancelled.clone()) {
            helpers.push(tokio::spawn(relaying));
        }
    }
    pull_chunks(&serving, &mut cancelled).await;
    for helper in helpers {
        helper.abort();
        let _ = helper.await;
    }
    let Ok(serving) = Arc::try_unwrap(serving) else {
        return;
    };
    if let JobPool::Pool(pool) = serving.pool {
        // Terminates the pool: its workers are killed and reaped.
        let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
    }
}

/// Pulls the job's chunks while fewer are here, not yet done, than it keeps
/// ([`depth`](super::depth): twice the processes, and more while fetches find
/// the workers idle, up to [`AHEAD_PER_PROCESS`] times the processes), and
/// fewer than [`HELD_PER_PROCESS`] times the processes
/// are held (not done, or with their outcomes on the way to the server), each
/// chunk served by a task of its own, until cancelled; then waits for those.
async fn pull_chunks(serving: &Arc<Serving>, cancelled: &mut watch::Receiver<Option<bool>>) {
    let context = &serving.context;
    let job = &serving.job;
    let held = Arc::new(Semaphore::new(HELD_PER_PROCESS * context.processes));
    let depth = Arc::new(Depth::default());
    let mut ahead = Ahead::new(2 * context.processes, AHEAD_PER_PROCESS * context.processes);
    let mut running = JoinSet::new();
    // Its consumer may vanish for a while (its host makes it again).
    let mut warnings = Throttle::default();
    let consumer = loop {
        let found = context
            .store
            .chunks
            .get_consumer::<pull::Config>(&wire::consumer_name(job))
            .await;
        match found {
            Ok(consumer) => break Some(consumer),
            Err(err) => {
                tracing::warn!("job {job}: cannot find its chunks yet: {err}");
                tokio::select! {
                    _ = tokio::time::sleep(BACKOFF) => {}
                    _ = cancelled.wait_for(Option::is_some) => break None,
                }
            }
        }
    };
    if let Some(consumer) = consumer {
        'pulling: loop {
            let keep = ahead.keep();
            let (pending, first) = tokio::select! {
                room = async {
                    let pending = depth.below(keep).await;
                    let holding = held.clone().acquire_owned().await;
                    (pending, holding.expect("the semaphore is never closed"))
                } => room,
                _ = cancelled.wait_for(Option::is_some) => break,
            };
            let mut permits = vec![first];
            while pending + permits.len() < keep {
                match held.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let batch = consumer
                .batch()
                .max_messages(permits.len())
                .expires(Duration::from_secs(1))
                .messages();
            let batch = tokio::select! {
                batch = batch => batch,
                _ = cancelled.wait_for(Option::is_some) => break,
            };
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    if let Some(held) = warnings.pass() {
                        tracing::warn!("job {job}: cannot pull chunks: {err}{held}");
                    }
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            };
            let mut first_message = true;
            loop {
                let message = tokio::select! {
                    message = batch.next() => message,
                    _ = cancelled.wait_for(Option::is_some) => break 'pulling,
                };
                match message {
                    Some(Ok(message)) => {
                        if std::mem::take(&mut first_message) {
                            ahead.fetched(depth.pending());
                        }
                        let holding = permits.pop().expect("no more messages than permits");
                        let taken = chunk::take(serving, message);
                        running.spawn(chunk::serve(
                            serving.clone(),
                            taken,
                            depth.here(),
                            holding,
                            cancelled.clone(),
                        ));
                    }
                    Some(Err(err)) => {
                        if let Some(held) = warnings.pass() {
                            tracing::warn!("job {job}: pulling chunks: {err}{held}");
                        }
                        break;
                    }
                    None => break,
                }
            }
            while running.try_join_next().is_some() {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// Fetches the module (once per agent) and starts the job's local pool.
async fn prepare(
    context: &Arc<JobContext>,
    job: &str,
    host: &str,
    spec: &JobSpec,
    env: &[(String, String)],
) -> Result<JobPool, Error> {
    if let Some(allowed) = &context.allowed_modules
        && !allowed.contains(&spec.module)
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "agent {} runs only the modules it allows, and {} is not one of them",
                context.agent, spec.module
            ),
        ));
    }
    let module = loop {
        match fetch_module(context, spec).await {
            Ok(module) => break module,
            // The module's hash or size is wrong: fetching again won't help.
            Err(err) if err.kind() == ErrorKind::BadModule => return Err(err),
            Err(err) => {
                tracing::warn!("job {job}: {err}");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    };
    let limits = capped(&spec.limits, &context.caps);
    let compiled = format!("job {job}: compiled its module, {}, in", spec.module);
    let mut builder = Pool::builder()
        .here()
        .on_compile(move |compiling| {
            // Once per module on each machine (its artifact is cached): the
            // wait of a job's first chunk, or of a process's start.
            if let Compiling::Finished { took, .. } = compiling {
                tracing::info!("{compiled} {:.2} s", took.as_secs_f64());
            }
        })
        .module_bytes(module.as_slice())
        .processes(context.processes)
        .force_processes(true)
        .retries(spec.retries)
        .memory_limit(limits.memory_limit)
        .startup_timeout(limits.worker.startup_timeout)
        .initializer_timeout(limits.worker.initializer_timeout)
        .max_payload(usize::try_from(limits.worker.max_payload).unwrap_or(usize::MAX))
        .output_limit(limits.output_limit);
    if let Some(limit) = limits.worker.task_timeout {
        builder = builder.task_timeout(limit);
    }
    if let Some(fuel) = limits.worker.fuel {
        builder = builder.fuel(fuel);
    }
    if let Some(tasks) = spec.max_tasks_per_child {
        builder = builder.max_tasks_per_child(tasks);
    }
    builder = builder.fresh_instance(spec.fresh_instance);
    if let Some(call) = &spec.initializer {
        builder = builder.initializer_call(call.clone());
    }
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    // What tasks write goes to the job's host, as it comes, signed.
    // A process's goes among its reports, in order, ahead of its end.
    let said = spec.process.then(Said::new);
    let saying = said.as_ref().map(Said::sender);
    let client = context.store.client.clone();
    let (subject, room) = (wire::output_subject(job), context.store.message_room());
    let runtime = tokio::runtime::Handle::current();
    let (key, signed_job) = (context.key.clone(), job.to_string());
    builder = builder.on_output(move |output| {
        let output = OutputMessage::new(output, room);
        if let Some(saying) = &saying {
            return saying.say(output);
        }
        let message = Signed::encode(&key, Domain::Output, &signed_job, &output);
        let (client, subject) = (client.clone(), subject.clone());
        runtime.spawn(async move {
            let _ = client.publish(subject, message.into()).await;
        });
    });
    // What tasks ask of the host goes to the job's host.
    let ack_wait = Duration::from_millis(spec.ack_wait_ms);
    let forwarder = Forwarder::start(
        context.store.client.clone(),
        context.key.clone(),
        job,
        host,
        ack_wait,
    )
    .await?;
    builder = builder.forward_calls(forwarder);
    if let Some(dir) = &context.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(program) = &context.worker_program {
        builder = builder.worker_program(program);
    }
    let job = job.to_string();
    tokio::task::spawn_blocking(move || {
        let prepared = if let Some(said) = said {
            (builder.processes(1).context()).map(|context| JobPool::Process(context, said))
        } else {
            builder.build().map(|pool| JobPool::Pool(Arc::new(pool)))
        };
        prepared.map_err(|err| Error::new(err.kind(), format!("job {job}: {}", err.message())))
    })
    .await
    .map_err(|err| Error::new(ErrorKind::Spawn, format!("starting the job's pool: {err}")))?
}

/// The job's module, from memory or from the object store, checked
/// against its hash.
async fn fetch_module(context: &JobContext, spec: &JobSpec) -> Result<Arc<Vec<u8>>, Error> {
    let hash = &spec.module;
    if let Some(module) = context
        .modules
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(hash)
    {
        return Ok(module.clone());
    }
    let fetching = std::time::Instant::now();
    let object = context
        .store
        .modules
        .get(hash)
        .await
        .map_err(|err| remote(&format!("cannot fetch the module {hash}"), err))?;
    let mut bytes = Vec::with_capacity(spec.module_size.min(MODULE_LIMIT) as usize);
    object
        .take(MODULE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| remote(&format!("cannot read the module {hash}"), err))?;
    if bytes.len() as u64 > MODULE_LIMIT {
        return Err(Error::new(
            ErrorKind::BadModule,
            format!("the module {hash} is over {MODULE_LIMIT} bytes"),
        ));
    }
    if module::sha256_hex(&bytes) != *hash {
        return Err(Error::new(
            ErrorKind::BadModule,
            format!("the module stored as {hash} has another hash: it was tampered with"),
        ));
    }
    tracing::info!(
        "fetched module {hash} ({} bytes) in {:.2} s",
        bytes.len(),
        fetching.elapsed().as_secs_f64()
    );
    let module = Arc::new(bytes);
    let mut modules = context
        .modules
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if modules.len() >= MODULES_KEPT {
        modules.clear();
    }
    modules.insert(hash.clone(), module.clone());
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> JobLimits {
        JobLimits {
            worker: Limits {
                task_timeout: Some(Duration::from_secs(10)),
                startup_timeout: Duration::from_secs(5),
                initializer_timeout: Duration::from_secs(30),
                fuel: None,
                max_payload: 1 << 20,
            },
            memory_limit: 1 << 30,
            output_limit: 1 << 16,
        }
    }

    #[test]
    fn an_agent_caps_what_a_job_asks() {
        let caps = Caps {
            memory_limit: Some(64 << 20),
            task_timeout: Some(Duration::from_secs(60)),
            fuel: Some(1_000),
        };
        let capped = capped(&limits(), &caps);
        assert_eq!(capped.memory_limit, 64 << 20);
        // The job's own limit is lower: it stays.
        assert_eq!(capped.worker.task_timeout, Some(Duration::from_secs(10)));
        // The job has none: the cap applies.
        assert_eq!(capped.worker.fuel, Some(1_000));
        assert_eq!(capped.worker.max_payload, 1 << 20);

        let uncapped = super::capped(&limits(), &Caps::default());
        assert_eq!(uncapped, limits());
    }
}
