//! The host's side of a job on agents: [`Remote`], the backend of a pool
//! built with [`PoolBuilder::nats`](crate::PoolBuilder::nats).
//!
//! A dispatcher thread takes the pool's chunks from its queue and publishes
//! them, never more than the window at once; a task on the runtime reads
//! the agents' reports in order and delivers each task's first outcome to
//! its chunk, dropping those that redelivery made twice; another shows the
//! agents that the job lives. Chunks are kept here until every task has its
//! outcome, so that nothing an agent loses is lost.

use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::consumer::{self, pull};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded, select};
use futures_util::StreamExt;
use serde_bytes::ByteBuf;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use super::calls::{self, Calls};
use super::enroll::{self, Roster};
use super::keys::{self, Domain, SigningKey};
use super::process::{self as process_job, ProcessWatch, RemoteWorker};
use super::store::{AgentInfo, SERVER_PATIENCE, Store, remote};
use super::throttle::Throttle;
use super::watchdog::Watched;
use super::wire::{
    self, ChunkMessage, HEARTBEAT, JobLimits, JobSpec, OutputMessage, Report, Signed, Tagged,
};
use super::{Nats, block_on, runtime};
use crate::backend::output::OutputHandler;
use crate::backend::{Backend, KillHandle, ProcessWorker, Settings};
use crate::channel::Batch;
use crate::chunk::{Chunk, withdrawn_error};
use crate::error::{Error, ErrorKind};
use crate::module;
use crate::objects::ObjectRef;
use crate::settled::Settled;

/// How long after the server says a chunk was acknowledged its outcomes
/// may still be on their way (an agent acknowledges a chunk once its
/// reports are stored; the host reads them a moment later): past it, the
/// chunk is sent again.
const UNREPORTED_GRACE: Duration = Duration::from_secs(3);

/// How long ending a job on the server may take before the pool gives up
/// on tidying (agents drop a job whose host went silent anyway).
const TIDY_LIMIT: Duration = Duration::from_secs(5);

/// A pool's job on agents.
pub(crate) struct Remote {
    inner: Arc<Inner>,
    /// Dropped to terminate: disconnects `stopped`.
    stop: Mutex<Option<Sender<()>>>,
    stopped: Receiver<()>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    runtime: Mutex<Option<Runtime>>,
}

/// What the dispatcher, the report reader and the pool share.
struct Inner {
    job: String,
    store: Store,
    /// What the job's record and chunks are signed with.
    key: SigningKey,
    /// The agents admitted to serve the job: whose reports are taken.
    roster: Arc<Roster>,
    /// What the tasks on agents ask of the host.
    calls: Arc<Calls>,
    /// The job's process, if it is a process's.
    process: Option<Arc<ProcessWatch>>,
    /// Where what the tasks write goes.
    on_output: OutputHandler,
    /// The warnings of reports dropped as forged or unsigned.
    forgery_warnings: Mutex<Throttle>,
    /// The job's record marked ended, signed: put when the job ends, once
    /// the heartbeat has stopped (`ending`).
    ended_record: Bytes,
    ending: AtomicBool,
    /// The job's state on the server, checked at every heartbeat.
    watched: Watched,
    /// Wakes the report reader to read the reports anew (their stream was
    /// made anew).
    reread: Notify,
    /// Why chunks cannot go out now: what vanished from the server and
    /// could not be made again (until a later check makes it).
    broken: Mutex<Option<Error>>,
    /// The watch's warnings of checks the server did not answer.
    check_warnings: Mutex<Throttle>,
    handle: tokio::runtime::Handle,
    /// The chunks out, and a wake-up for when one comes back.
    out: Mutex<Out>,
    returned: Condvar,
    /// The most chunks out at once.
    window: usize,
    /// The most bytes of arguments in one message.
    room: usize,
    /// How many times a chunk whose agent was lost runs again.
    agent_retries: u32,
    terminating: AtomicBool,
    /// The pool's queue of chunks.
    queue: Receiver<Chunk>,
}

/// The chunks published and not yet done, by number.
#[derive(Default)]
struct Out {
    chunks: HashMap<u64, Sent>,
    next: u64,
}

struct Sent {
    chunk: Chunk,
    /// How many times it was sent again after agents died running it.
    sending: u32,
    /// How many times it was published; the sequence of its last
    /// publication in the stream of chunks, once stored.
    published: u64,
    stored: Option<u64>,
    /// When the server was first seen to have its last publication
    /// acknowledged, while outcomes were still missing.
    acknowledged: Option<Instant>,
    /// How many times it was acknowledged without its outcomes coming.
    unreported: u32,
}

impl Sent {
    fn new(chunk: Chunk) -> Self {
        Sent {
            chunk,
            sending: 0,
            published: 0,
            stored: None,
            acknowledged: None,
            unreported: 0,
        }
    }
}

impl Remote {
    /// Publishes the module and the job, and starts sending the chunks of
    /// `queue`. Returns once agents can find the job.
    pub(crate) fn start(
        nats: &Nats,
        settings: &Settings,
        module: &[u8],
        queue: Receiver<Chunk>,
        window: usize,
        process: Option<Arc<Settled<Option<ExitStatus>>>>,
    ) -> Result<Arc<Remote>, Error> {
        let env = &settings.spawn.setup.grants.env;
        if !env.is_empty() && nats.trusted_agents.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a pool on NATS agents hands environment variables ({}) only to agents it \
                     trusts, sealed to each: name them with `Nats::trust_agent` (`--trust-agent \
                     KEY`); with none named, any client of the server could serve the job and \
                     read them",
                    env.iter()
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let runtime = runtime(1, "wasmpool-nats")?;
        let mut spec = job_spec(nats, settings, module);
        if process.is_some() {
            // A process's task never runs again.
            spec.process = true;
            spec.agent_retries = 0;
        }
        let on_output = settings.on_output.clone();
        let job = nuid::next().to_string();
        let key = nats.key.clone().unwrap_or_else(SigningKey::generate);
        let roster = Arc::new(Roster::new(&job, key.clone(), &nats.trusted_agents, env));
        let record = Bytes::from(Signed::encode(&key, Domain::Job, &job, &spec));
        let ended = JobSpec {
            ended: true,
            ..spec.clone()
        };
        let ended_record = Bytes::from(Signed::encode(&key, Domain::Job, &job, &ended));
        let consumer_config = pull::Config {
            durable_name: Some(wire::consumer_name(&job)),
            filter_subject: wire::chunks_subject(&job),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_millis(spec.ack_wait_ms),
            max_ack_pending: window as i64,
            ..Default::default()
        };
        let (store, reports, output, requests, asked) = block_on(runtime.handle(), async {
            let store = Store::open(nats, &format!("wasmpool pool {job}")).await?;
            let output = store
                .client
                .subscribe(wire::output_subject(&job))
                .await
                .map_err(|err| remote("cannot subscribe to the job's output", err))?;
            let requests = store
                .client
                .subscribe(wire::enroll_subject(&job))
                .await
                .map_err(|err| remote("cannot subscribe to agents' requests", err))?;
            let asked = store
                .client
                .subscribe(wire::calls_subject(&job))
                .await
                .map_err(|err| remote("cannot subscribe to agents' calls", err))?;
            store.publish_module(&spec.module, module).await?;
            store
                .chunks
                .create_consumer(consumer_config.clone())
                .await
                .map_err(|err| remote("cannot make the job's consumer", err))?;
            // Read reports from the start, before any chunk goes out.
            let reports = read_from_start(&store, &job).await?;
            store
                .jobs
                .put(&job, record.clone())
                .await
                .map_err(|err| remote("cannot publish the job", err))?;
            Ok::<_, Error>((store, reports, output, requests, asked))
        })?;
        let watched = Watched::new(
            &store,
            consumer_config,
            spec.module.clone(),
            module.to_vec(),
        );
        let room = store.message_room();
        let calls = Calls::new(
            &job,
            key.clone(),
            roster.clone(),
            store.client.clone(),
            runtime.handle().clone(),
            settings,
            Duration::from_millis(spec.ack_wait_ms),
        );
        let process = process.map(|exit| {
            Arc::new(ProcessWatch::new(
                &job,
                key.clone(),
                store.client.clone(),
                runtime.handle().clone(),
                exit,
            ))
        });
        let (stop_tx, stop_rx) = bounded(0);
        let inner = Arc::new(Inner {
            process,
            on_output: on_output.clone(),
            job,
            store,
            key,
            roster: roster.clone(),
            calls: calls.clone(),
            forgery_warnings: Mutex::new(Throttle::default()),
            ended_record,
            ending: AtomicBool::new(false),
            watched,
            reread: Notify::new(),
            broken: Mutex::new(None),
            check_warnings: Mutex::new(Throttle::default()),
            handle: runtime.handle().clone(),
            out: Mutex::new(Out::default()),
            returned: Condvar::new(),
            window,
            room,
            agent_retries: spec.agent_retries,
            terminating: AtomicBool::new(false),
            queue,
        });
        runtime.spawn(read_reports(inner.clone(), reports));
        runtime.spawn(show_output(inner.clone(), output, on_output));
        runtime.spawn(enroll::serve(roster, inner.store.client.clone(), requests));
        let serving = inner.clone();
        runtime.spawn(calls::serve_calls(calls, asked, move |_, message| {
            serving.on_call(message);
        }));
        runtime.spawn(heartbeat(inner.clone(), record));
        runtime.spawn(watch_state(inner.clone()));
        if let Some(process) = &inner.process {
            let limit = nats.process_start_limit;
            runtime.spawn(limit_start(inner.clone(), process.clone(), limit));
        }
        let dispatcher = {
            let (inner, stop) = (inner.clone(), stop_rx.clone());
            thread::Builder::new()
                .name("wasmpool-nats-dispatch".into())
                .spawn(move || dispatch(&inner, &stop))
                .map_err(|err| {
                    Error::new(
                        ErrorKind::Spawn,
                        format!("cannot start the NATS dispatcher: {err}"),
                    )
                })?
        };
        Ok(Arc::new(Remote {
            inner,
            stop: Mutex::new(Some(stop_tx)),
            stopped: stop_rx,
            dispatcher: Mutex::new(Some(dispatcher)),
            runtime: Mutex::new(Some(runtime)),
        }))
    }
}

impl Backend for Remote {
    fn drop_if_terminating(&self) {
        fence(Ordering::SeqCst);
        if self.inner.terminating() {
            while self.inner.queue.try_recv().is_ok() {}
        }
    }

    fn stopped(&self) -> &Receiver<()> {
        &self.stopped
    }

    fn terminate(&self) {
        let inner = &self.inner;
        if inner.terminating.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Dropping the chunks fails their tasks as terminated.
        let out = std::mem::take(&mut inner.out().chunks);
        inner.returned.notify_all();
        drop(out);
        inner.all_over();
        fence(Ordering::SeqCst);
        while inner.queue.try_recv().is_ok() {}
    }

    fn join(&self) {
        let dispatcher = self
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(dispatcher) = dispatcher {
            let _ = dispatcher.join();
        }
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }

    fn workers(&self) -> Vec<KillHandle> {
        Vec::new()
    }

    fn process_worker(&self) -> Option<Arc<dyn ProcessWorker>> {
        let watch = self.inner.process.clone()?;
        Some(Arc::new(RemoteWorker(watch)))
    }

    fn agents(&self) -> Result<Vec<AgentInfo>, Error> {
        block_on(&self.inner.handle, self.inner.store.agents())
    }
}

impl Inner {
    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn terminating(&self) -> bool {
        self.terminating.load(Ordering::SeqCst)
    }

    /// Publishes chunk `number`'s `message`; returns once it is on its way
    /// to the server, while a task waits for the server's word (and fails
    /// the chunk if it does not come), so the next chunks go out meanwhile.
    async fn publish(self: &Arc<Self>, number: u64, message: Bytes) -> Result<(), Error> {
        let subject = wire::chunks_subject(&self.job);
        let publication = self.out().chunks.get_mut(&number).map(|sent| {
            sent.published += 1;
            sent.stored = None;
            sent.acknowledged = None;
            sent.published
        });
        let first = self
            .store
            .js
            .publish(subject.clone(), message.clone())
            .await
            .map_err(|err| remote("cannot publish a chunk", err))?;
        let inner = self.clone();
        tokio::spawn(async move {
            let stop = || inner.terminating();
            let stored = inner
                .store
                .publish_stored(subject, message, Some(first), stop)
                .await;
            match stored {
                Ok(sequence) => {
                    let mut out = inner.out();
                    if let Some(sent) = out.chunks.get_mut(&number)
                        && Some(sent.published) == publication
                    {
                        sent.stored = Some(sequence);
                    }
                }
                Err(err) => inner.fail_chunk(number, &err),
            }
        });
        Ok(())
    }

    /// Sends again the chunks the server says were acknowledged (stored at
    /// or before `floor`) whose outcomes have not come within
    /// [`UNREPORTED_GRACE`]: taken by a client that did not run them, or
    /// whose reports were lost. Past the job's agent retries, the first
    /// task without an outcome of such a chunk fails.
    async fn resend_unreported(self: &Arc<Self>, floor: u64) {
        let now = Instant::now();
        let mut again = Vec::new();
        {
            let mut out = self.out();
            let mut done = Vec::new();
            for (&number, sent) in &mut out.chunks {
                if sent.stored.is_none_or(|stored| stored > floor) {
                    continue;
                }
                let since = *sent.acknowledged.get_or_insert(now);
                if now.duration_since(since) < UNREPORTED_GRACE {
                    continue;
                }
                sent.unreported += 1;
                tracing::warn!(
                    "job {}: chunk {number} was acknowledged on the server, and no outcome \
                     from an agent the job admitted came: sending it again",
                    self.job
                );
                if sent.unreported > self.agent_retries {
                    sent.chunk.fail_next(&Error::new(
                        ErrorKind::WorkerLost,
                        format!(
                            "the task's chunk was acknowledged on the server {} times with no \
                             outcome from an agent the job admitted (a client that takes \
                             chunks and does not run them?): it is not sent again",
                            sent.unreported
                        ),
                    ));
                    if sent.chunk.remaining() == 0 {
                        done.push(number);
                        continue;
                    }
                }
                sent.sending += 1;
                again.push((number, self.message(number, sent)));
            }
            for number in done {
                out.chunks.remove(&number);
                self.chunk_over(number);
            }
        }
        self.returned.notify_all();
        for (number, message) in again {
            if let Err(err) = self.publish(number, message).await {
                self.fail_chunk(number, &err);
            }
        }
    }

    /// What the tasks of chunk `number` that have their outcomes (all, if
    /// it is no longer out) held is let go of.
    fn settled(&self, out: &Out, number: u64) {
        match out.chunks.get(&number) {
            Some(sent) => {
                let next = sent.chunk.first_index + sent.chunk.done() as u64;
                self.calls.ended_before(number, Some(next));
            }
            None => self.chunk_over(number),
        }
    }

    /// Chunk `number` is no longer out: what its tasks held is let go of,
    /// and a process's worker that never started never will.
    fn chunk_over(&self, number: u64) {
        self.calls.ended_before(number, None);
        if let Some(process) = &self.process {
            process.over();
        }
    }

    /// No chunk is out any more (the pool terminates, or its chunks fail).
    fn all_over(&self) {
        self.calls.end_all();
        if let Some(process) = &self.process {
            process.over();
        }
    }

    /// Takes a task's call from an agent, checked against the chunks out:
    /// the task must run (its chunk is out, its outcome has not come), and
    /// may use only the objects its arguments carried.
    fn on_call(&self, message: async_nats::Message) {
        // Its signature is checked before the chunks are locked.
        let Some(opened) = self.calls.open(&message.payload) else {
            return;
        };
        let reply = message.reply.map(|subject| subject.to_string());
        let out = self.out();
        self.calls.on_message(opened, reply, |number, index| {
            let sent = out.chunks.get(&number)?;
            let chunk = &sent.chunk;
            let next = chunk.first_index + chunk.done() as u64;
            if index < next || index >= chunk.first_index + chunk.len() as u64 {
                return None;
            }
            Some(handed_to(chunk, index))
        });
    }

    /// Takes the report an agent published. Returns the message that sends
    /// a chunk again, if agents died running it too often.
    fn on_report(&self, payload: &[u8]) -> Option<(u64, Bytes)> {
        let opened = Tagged::open(payload, &self.job, |agent| self.roster.report_key(agent));
        let report = match opened {
            Ok((_, report)) => report,
            Err(err) => {
                self.warn_dropped(&wire::reports_subject(&self.job), &err);
                return None;
            }
        };
        if let Report::Output(output) = report {
            // A process's, among its reports: before its end.
            (self.on_output)(&output.into_output());
            return None;
        }
        let mut out = self.out();
        // A process job's worker: its start, and its exit ahead of its
        // task's outcome.
        let report = match report {
            Report::Started { chunk, pid } => {
                if let Some(process) = &self.process
                    && out.chunks.contains_key(&chunk)
                {
                    process.started(pid);
                }
                return None;
            }
            Report::Exited {
                chunk,
                first_index,
                outcomes,
                exitcode,
            } => {
                if let Some(process) = &self.process
                    && out.chunks.contains_key(&chunk)
                {
                    process.exited(exitcode);
                }
                Report::Outcomes {
                    chunk,
                    first_index,
                    outcomes,
                }
            }
            report => report,
        };
        match report {
            Report::Outcomes {
                chunk: number,
                first_index,
                outcomes,
            } => {
                let Some(sent) = out.chunks.get_mut(&number) else {
                    // Done already: a duplicate.
                    return None;
                };
                if !outcomes.is_well_formed() {
                    tracing::warn!("job {}: dropped malformed outcomes", self.job);
                    return None;
                }
                let chunk = &mut sent.chunk;
                let next = chunk.first_index + chunk.done() as u64;
                let Some(seen) = next.checked_sub(first_index) else {
                    tracing::warn!(
                        "job {}: dropped outcomes from task {first_index}, past the next \
                         expected, {next}",
                        self.job
                    );
                    return None;
                };
                let fresh = match usize::try_from(seen) {
                    Ok(0) => outcomes,
                    Ok(seen) if seen < outcomes.len() => outcomes.skip(seen),
                    _ => return None,
                };
                if fresh.len() > chunk.remaining() {
                    tracing::warn!("job {}: dropped outcomes past a chunk's end", self.job);
                    return None;
                }
                chunk.deliver(fresh);
                if chunk.remaining() == 0 {
                    out.chunks.remove(&number);
                    self.returned.notify_all();
                }
                self.settled(&out, number);
                None
            }
            Report::Lost {
                chunk: number,
                sending,
                deliveries,
            } => {
                let sent = out.chunks.get_mut(&number)?;
                if sent.sending != sending {
                    return None;
                }
                sent.chunk.fail_next(&Error::new(
                    ErrorKind::WorkerLost,
                    format!(
                        "the agents running this task were lost {} times: it is not run \
                         again (the pool's agent_retries is {})",
                        deliveries.saturating_sub(1),
                        self.agent_retries
                    ),
                ));
                if sent.chunk.remaining() == 0 {
                    out.chunks.remove(&number);
                    self.returned.notify_all();
                    self.settled(&out, number);
                    return None;
                }
                self.settled(&out, number);
                let sent = out.chunks.get_mut(&number)?;
                sent.sending += 1;
                Some((number, self.message(number, sent)))
            }
            // Taken above.
            Report::Started { .. } | Report::Exited { .. } | Report::Output(_) => None,
        }
    }

    /// Checks the job's state on the server, and makes again what vanished:
    /// the chunks out are sent again if they may be lost (their stream, or
    /// that of their reports, was made anew), the reports read anew if
    /// theirs was. What cannot be made again fails the chunks out, and the
    /// next ones until it can.
    async fn watch(self: &Arc<Self>) {
        let checked = self.watched.check(&self.store).await;
        let broken = checked.as_ref().err().cloned();
        *self.broken.lock().unwrap_or_else(PoisonError::into_inner) = broken;
        let restored = match checked {
            Ok(restored) => restored,
            Err(err) => {
                tracing::warn!("job {}: {err}", self.job);
                return self.fail_all(&err);
            }
        };
        if let Some(floor) = restored.ack_floor {
            self.resend_unreported(floor).await;
        }
        if let Some(err) = &restored.unchecked
            && let Some(held) = self
                .check_warnings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pass()
        {
            tracing::warn!("job {}: {err}{held}", self.job);
        }
        if restored.vanished.is_empty() {
            return;
        }
        tracing::warn!(
            "job {}: {} vanished from the server: made again",
            self.job,
            restored.vanished.join(", ")
        );
        if restored.reports_lost {
            self.reread.notify_one();
        }
        if restored.chunks_lost || restored.reports_lost {
            let again: Vec<(u64, Bytes)> = self
                .out()
                .chunks
                .iter()
                .map(|(&number, sent)| (number, self.message(number, sent)))
                .collect();
            for (number, message) in again {
                if let Err(err) = self.publish(number, message).await {
                    self.fail_chunk(number, &err);
                }
            }
        }
    }

    /// The message of `domain` in `payload`, if an agent the job admitted
    /// signed it.
    fn opened<T: for<'de> serde::Deserialize<'de>>(
        &self,
        payload: &[u8],
        domain: Domain,
        what: &str,
    ) -> Result<T, Error> {
        let (agent, message) = Signed::open(payload, domain, &self.job, what)?;
        if !self.roster.admits(&agent) {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "a {what} signed by {}, an agent the job did not admit",
                    keys::short(&agent)
                ),
            ));
        }
        Ok(message)
    }

    /// Warns (at most every few seconds) of a message on `subject` dropped
    /// as forged, unsigned or malformed.
    fn warn_dropped(&self, subject: &str, err: &Error) {
        let held = self
            .forgery_warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pass();
        if let Some(held) = held {
            tracing::warn!("job {}: dropped on {subject}: {err}{held}", self.job);
        }
    }

    /// The message, signed, that sends the unfinished tasks of `sent`.
    fn message(&self, number: u64, sent: &Sent) -> Bytes {
        let (first_index, args, ends) = sent.chunk.unfinished();
        let chunk = ChunkMessage {
            sending: sent.sending,
            tasks: Batch {
                seq: number,
                task: sent.chunk.task.to_string(),
                first_index,
                args: ByteBuf::from(args),
                ends,
                handed: sent
                    .chunk
                    .handed
                    .iter()
                    .filter(|(index, _)| *index >= first_index)
                    .copied()
                    .collect(),
            },
        };
        Bytes::from(Signed::encode(&self.key, Domain::Chunk, &self.job, &chunk))
    }

    /// Fails the tasks without an outcome of every chunk out.
    fn fail_all(&self, err: &Error) {
        let out = std::mem::take(&mut self.out().chunks);
        self.all_over();
        self.returned.notify_all();
        for sent in out.into_values() {
            sent.chunk.fail(err);
        }
    }

    /// Fails the tasks of chunk `number` without an outcome.
    fn fail_chunk(&self, number: u64, err: &Error) {
        let removed = self.out().chunks.remove(&number);
        self.failed(number, removed, err);
    }

    /// Chunk `number`, taken from the chunks out (`removed`, if it was
    /// out), fails with `err`.
    fn failed(&self, number: u64, removed: Option<Sent>, err: &Error) {
        self.chunk_over(number);
        self.returned.notify_all();
        if let Some(sent) = removed {
            sent.chunk.fail(err);
        }
    }

    /// Waits while `busy` says so of the chunks out, unless the pool
    /// terminates; whether it did not.
    fn wait_while(&self, busy: impl Fn(&Out) -> bool) -> bool {
        let mut out = self.out();
        while busy(&out) && !self.terminating() {
            out = self
                .returned
                .wait(out)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !self.terminating()
    }
}

/// The dispatcher thread: publishes the pool's chunks, in pieces that fit
/// a message, while the window has room; once the pool is closed and every
/// chunk is done (or the pool terminates), ends the job.
fn dispatch(inner: &Arc<Inner>, stop: &Receiver<()>) {
    'feeding: loop {
        let chunk = select! {
            recv(inner.queue) -> chunk => match chunk {
                Ok(chunk) => chunk,
                Err(_) => break,
            },
            recv(stop) -> _ => break,
        };
        if chunk.is_withdrawn() {
            chunk.fail(&withdrawn_error());
            continue;
        }
        for piece in pieces(chunk, inner.room) {
            if !inner.wait_while(|out| out.chunks.len() >= inner.window) {
                // Terminated: the pieces left fail as they are dropped.
                break 'feeding;
            }
            let broken = inner
                .broken
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(err) = broken {
                // What the job needs on the server is gone for now.
                piece.fail(&err);
                continue;
            }
            let sent = Sent::new(piece);
            let number = {
                let mut out = inner.out();
                out.next += 1;
                out.next - 1
            };
            let message = inner.message(number, &sent);
            {
                // `terminate` marks the pool, then takes the chunks out:
                // one put out after that would be left behind.
                let mut out = inner.out();
                if inner.terminating() {
                    break 'feeding;
                }
                out.chunks.insert(number, sent);
            }
            if let Err(err) = inner.handle.block_on(inner.publish(number, message)) {
                inner.fail_chunk(number, &err);
            }
        }
    }
    // Once closed, every chunk out is done before the job ends.
    inner.wait_while(|out| !out.chunks.is_empty());
    inner.ending.store(true, Ordering::SeqCst);
    block_on(&inner.handle, async {
        let _ = tokio::time::timeout(TIDY_LIMIT, async {
            // The host's word that the job ended, which agents take (a
            // deleted record alone they do not).
            if let Err(err) = inner
                .store
                .jobs
                .put(&inner.job, inner.ended_record.clone())
                .await
            {
                tracing::warn!("job {}: cannot mark it ended: {err}", inner.job);
            }
            inner.store.tidy(&inner.job).await;
        })
        .await;
    });
}

/// The most bytes the ends of a chunk's tasks take in a message, each.
const END_BYTES: usize = 5;

/// Splits `chunk` into pieces whose arguments (and their ends) fit `room`
/// bytes; a task whose arguments alone do not fit fails.
fn pieces(mut chunk: Chunk, room: usize) -> Vec<Chunk> {
    let mut pieces = Vec::new();
    loop {
        if chunk.args.len() + END_BYTES * chunk.len() <= room {
            pieces.push(chunk);
            return pieces;
        }
        let fit = chunk
            .ends
            .iter()
            .enumerate()
            .take_while(|(at, end)| **end as usize + END_BYTES * (at + 1) <= room)
            .count();
        if fit == 0 {
            let size = chunk.ends[0];
            chunk.fail_next(&Error::new(
                ErrorKind::BadArguments,
                format!(
                    "the task's arguments of {size} bytes do not fit in a message of the NATS \
                     server, which takes {room} bytes of them at most (its max_payload)"
                ),
            ));
        } else {
            let rest = chunk.split_off(fit);
            pieces.push(chunk);
            chunk = rest;
            continue;
        }
        match chunk.rest() {
            Some(rest) => chunk = rest,
            None => return pieces,
        }
    }
}

/// The shared objects handed to task `index` of `chunk`.
fn handed_to(chunk: &Chunk, index: u64) -> Vec<ObjectRef> {
    chunk
        .handed
        .iter()
        .filter(|(task, _)| *task == index)
        .filter_map(|(_, id)| chunk.objects.iter().find(|object| object.id() == *id))
        .cloned()
        .collect()
}

/// The task that reads the job's reports, in order, and sends again the
/// chunks agents died running too often.
async fn read_reports(inner: Arc<Inner>, mut reports: pull::Ordered) {
    let mut warnings = Throttle::default();
    loop {
        let report = tokio::select! {
            report = reports.next() => report,
            () = inner.reread.notified() => {
                // Their stream was made anew: what it held is gone, and
                // the new one is read from its start.
                match read_from_start(&inner.store, &inner.job).await {
                    Ok(fresh) => reports = fresh,
                    Err(err) => tracing::warn!("job {}: {err}", inner.job),
                }
                continue;
            }
        };
        match report {
            Some(Ok(report)) => {
                if let Some((number, message)) = inner.on_report(&report.payload)
                    && let Err(err) = inner.publish(number, message).await
                {
                    inner.fail_chunk(number, &err);
                }
            }
            Some(Err(err)) => {
                if let Some(held) = warnings.pass() {
                    tracing::warn!("job {}: reading reports: {err}{held}", inner.job);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => return,
        }
    }
}

/// Reads job `job`'s reports from the start of their stream.
async fn read_from_start(store: &Store, job: &str) -> Result<pull::Ordered, Error> {
    store
        .reports
        .create_consumer(pull::OrderedConfig {
            filter_subject: wire::reports_subject(job),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|err| remote("cannot read the job's reports", err))?
        .messages()
        .await
        .map_err(|err| remote("cannot read the job's reports", err))
}

/// The job the agents run, made of the pool's settings: its workers'
/// limits, initializer, retries and environment, and `module` by its hash.
fn job_spec(nats: &Nats, settings: &Settings, module: &[u8]) -> JobSpec {
    let setup = &settings.spawn.setup;
    JobSpec {
        version: wire::VERSION,
        module: module::sha256_hex(module),
        module_size: module.len() as u64,
        initializer: setup.initializer.clone(),
        limits: JobLimits {
            worker: setup.limits.clone(),
            memory_limit: setup.engine.max_memory,
            output_limit: setup.output_limit,
        },
        max_tasks_per_child: settings.max_tasks_per_child,
        fresh_instance: setup.fresh_instance,
        retries: settings.retries,
        agent_retries: nats.agent_retries,
        ack_wait_ms: u64::try_from(nats.ack_wait.as_millis()).unwrap_or(u64::MAX),
        process: false,
        ended: false,
    }
}

/// The task that hands what the job's tasks write, as signed by the agents
/// the job admitted, to the pool's output handler.
async fn show_output(
    inner: Arc<Inner>,
    mut messages: async_nats::Subscriber,
    on_output: OutputHandler,
) {
    while let Some(message) = messages.next().await {
        match inner.opened::<OutputMessage>(&message.payload, Domain::Output, "task's output") {
            Ok(output) => on_output(&output.into_output()),
            Err(err) => inner.warn_dropped(&message.subject, &err),
        }
    }
}

/// Fails a process's task if no agent started its worker within `limit`.
/// Checked under the lock the agents' reports take: a start that crosses
/// the limit either comes first (the process runs) or finds its chunk
/// gone (the process failed), never both.
async fn limit_start(inner: Arc<Inner>, process: Arc<ProcessWatch>, limit: Duration) {
    tokio::time::sleep(limit).await;
    loop {
        let removed = {
            let mut out = inner.out();
            if process.settled() || inner.terminating() {
                return;
            }
            out.chunks.remove(&process_job::CHUNK)
        };
        if removed.is_some() {
            let err = Error::new(
                ErrorKind::Spawn,
                format!(
                    "no agent started the process within {limit:?} (`Nats::process_start_limit`): \
                     is an agent serving the pool's server?"
                ),
            );
            inner.failed(process_job::CHUNK, removed, &err);
            return;
        }
        // Not out yet (its publication is under way): looked at again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The task that watches the job's state on the server every
/// [`HEARTBEAT`] while connected (see [`Inner::watch`]): a task of its own,
/// so that a check the server is slow to answer never holds up the
/// heartbeat agents judge the job's life by.
async fn watch_state(inner: Arc<Inner>) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    while !inner.terminating() {
        ticks.tick().await;
        if !inner.terminating() && inner.store.client.connection_state() == State::Connected {
            inner.watch().await;
        }
    }
}

/// The task that shows agents the job lives: it puts the job again every
/// [`HEARTBEAT`].
async fn heartbeat(inner: Arc<Inner>, spec: Bytes) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.tick().await;
    let mut lost_since: Option<Instant> = None;
    while !inner.terminating() {
        ticks.tick().await;
        if inner.terminating() {
            break;
        }
        if inner.store.client.connection_state() == State::Connected {
            lost_since = None;
        } else if lost_since.get_or_insert_with(Instant::now).elapsed() > SERVER_PATIENCE {
            // Gone for good, as far as the tasks out there can tell.
            inner.fail_all(&Error::new(
                ErrorKind::Remote,
                format!(
                    "lost the NATS server for over {SERVER_PATIENCE:?}: the task's outcome \
                     cannot come back"
                ),
            ));
            lost_since = None;
        }
        if inner.ending.load(Ordering::SeqCst) {
            break;
        }
        if let Err(err) = inner.store.jobs.put(&inner.job, spec.clone()).await {
            tracing::warn!("job {}: cannot renew it: {err}", inner.job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Outcomes;
    use crate::chunk::{Sink, Submission, Withdrawals};

    /// Keeps the outcomes delivered: (index, kind of error if failed).
    #[derive(Default)]
    struct Kept(Mutex<Vec<(u64, Option<ErrorKind>)>>);

    impl Sink for Kept {
        fn deliver(&self, first_index: u64, outcomes: Outcomes) {
            let mut kept = self.0.lock().unwrap();
            for (at, outcome) in outcomes.iter().enumerate() {
                kept.push((first_index + at as u64, outcome.err().map(Error::kind)));
            }
        }
    }

    #[test]
    fn a_chunk_is_cut_to_fit_a_message_and_a_task_too_large_fails() {
        let kept = Arc::new(Kept::default());
        let sizes = [10u32, 10, 100, 10, 10];
        let ends: Vec<u32> = sizes
            .iter()
            .scan(0, |end, size| {
                *end += size;
                Some(*end)
            })
            .collect();
        let batch = Batch {
            seq: 0,
            task: "t".into(),
            first_index: 50,
            args: ByteBuf::from(vec![0; 140]),
            ends,
            handed: Vec::new(),
        };
        let chunk = Chunk::encoded(
            0,
            batch,
            Submission::new(kept.clone(), Withdrawals::new(Vec::new())),
        );
        let pieces = pieces(chunk, 40);
        let shapes: Vec<(u64, usize)> = pieces.iter().map(|p| (p.first_index, p.len())).collect();
        assert_eq!(shapes, [(50, 2), (53, 2)]);
        assert_eq!(
            *kept.0.lock().unwrap(),
            [(52, Some(ErrorKind::BadArguments))]
        );
        for piece in pieces {
            piece.fail(&Error::new(ErrorKind::Failed, "done"));
        }
        assert_eq!(kept.0.lock().unwrap().len(), 5);
    }
}
