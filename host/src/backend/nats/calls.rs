//! The host's side of what tasks on agents ask of it: [`Calls`] takes the
//! [`CallMessage`]s agents send on the job's calls subject (each of one
//! session of one agent: a run of it), checks each
//! against what the host knows of the task, serves it as a local worker's
//! (`backend/calls/`), and answers, signed, on the subject the call named.
//! The agent's side is `agent/calls.rs`.
//!
//! The rule is the local one: a task may call the pool's host functions and
//! use the shared objects its own arguments carried, while it runs. "While
//! it runs" is the host's view: its chunk is out and its outcome has not
//! come. Each task of an agent's worker is a holder of its own, ended
//! (its waits given up, what it held let go of, the next holder told) as
//! soon as the first of these comes: its outcome, its chunk's end, its
//! worker's end (the agent says so), or the agent's silence for the job's
//! `ack_wait` — the time after which the server gives its chunks to other
//! agents too. Agents show they live every third of that while they have
//! called.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_bytes::ByteBuf;

use super::enroll::Roster;
use super::keys::{Domain, SigningKey};
use super::wire::{Answer, CallMessage, Calling, Signed};
use crate::backend::calls::host_fns::{self, Request};
use crate::backend::calls::objects::{self as object_calls, Invoke};
use crate::backend::calls::{Asked, Replies};
use crate::backend::{HostFns, Settings};
use crate::channel::{Failure, bounds};
use crate::objects::ObjectRef;
use crate::objects::grants::Grants;

/// How many ended tasks an agent's record remembers: their late calls are
/// refused, and answers that come back unclaimed still given back.
const ENDED_KEPT: usize = 4096;

/// How many of a task's last calls are remembered, with their answers (a
/// task makes one call at a time: the one it waits for, and a few before).
const CALLS_KEPT: usize = 4;

/// A task on an agent: the worker it runs on, its chunk (none: the pool's
/// initializer) and its index.
type TaskKey = (u64, Option<u64>, u64);

/// What a task on an agent may use, and its last calls.
struct RemoteTask {
    grants: Arc<Mutex<Grants>>,
    /// Its last calls, the newest last, each with its answer once sent
    /// (sent again if asked again).
    calls: Mutex<VecDeque<(u64, Option<Bytes>)>>,
    ended: AtomicBool,
}

impl RemoteTask {
    fn calls(&self) -> MutexGuard<'_, VecDeque<(u64, Option<Bytes>)>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it made `call`, of those remembered.
    fn made(&self, call: u64) -> bool {
        self.calls().iter().any(|(made, _)| *made == call)
    }

    /// Gives up its waits and lets go of what it held.
    fn end(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            object_calls::end(&self.grants);
        }
    }
}

/// One agent's tasks that called.
struct AgentTasks {
    /// When it last showed it lives, and the mark it showed.
    heard: Instant,
    alive_at: u64,
    running: HashMap<TaskKey, Arc<RemoteTask>>,
    ended: HashMap<TaskKey, Arc<RemoteTask>>,
    ended_order: VecDeque<TaskKey>,
}

impl AgentTasks {
    fn new() -> Self {
        AgentTasks {
            heard: Instant::now(),
            alive_at: 0,
            running: HashMap::new(),
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
        }
    }

    /// Moves the running tasks `which` picks to the ended, returning them
    /// to end (outside the lock).
    fn end_where(&mut self, which: impl Fn(&TaskKey) -> bool) -> Vec<Arc<RemoteTask>> {
        let keys: Vec<TaskKey> = self
            .running
            .keys()
            .filter(|key| which(key))
            .copied()
            .collect();
        let mut ended = Vec::with_capacity(keys.len());
        for key in keys {
            let task = self.running.remove(&key).expect("listed");
            if self.ended_order.len() == ENDED_KEPT
                && let Some(old) = self.ended_order.pop_front()
            {
                self.ended.remove(&old);
            }
            self.ended_order.push_back(key);
            self.ended.insert(key, task.clone());
            ended.push(task);
        }
        ended
    }
}

/// Where the answers to one task's calls go: its agent's subject.
struct ToAgent {
    calls: Arc<Calls>,
    task: Arc<RemoteTask>,
    to: String,
    worker: u64,
}

impl Replies for ToAgent {
    fn reply(
        &self,
        call: u64,
        result: Result<ByteBuf, Failure>,
    ) -> Option<Result<ByteBuf, Failure>> {
        let mut calls = self.task.calls();
        // An answer to a task that ended can never be used: it goes back.
        if self.task.ended.load(Ordering::SeqCst) {
            return Some(result);
        }
        let answer = Answer {
            to: self.to.clone(),
            worker: self.worker,
            call,
            result,
        };
        let signed = Bytes::from(Signed::encode(
            &self.calls.key,
            Domain::Answer,
            &self.calls.job,
            &answer,
        ));
        if let Some((_, answer)) = calls.iter_mut().find(|(made, _)| *made == call) {
            *answer = Some(signed.clone());
        }
        drop(calls);
        self.calls.send(self.to.clone(), signed);
        None
    }
}

/// The host's record of its agents' calls.
pub(crate) struct Calls {
    job: String,
    key: SigningKey,
    roster: Arc<Roster>,
    client: async_nats::Client,
    handle: tokio::runtime::Handle,
    host_fns: HostFns,
    max_payload: usize,
    /// How long an agent may be silent before its tasks are taken as lost.
    patience: Duration,
    /// By agent key and session.
    agents: Mutex<HashMap<(String, String), AgentTasks>>,
}

impl Calls {
    /// The record of `job`'s calls, answered with `key`, taken from the
    /// agents of `roster`, served as a local pool of `settings` serves
    /// them; agents silent for `patience` are taken for lost.
    pub(crate) fn new(
        job: &str,
        key: SigningKey,
        roster: Arc<Roster>,
        client: async_nats::Client,
        handle: tokio::runtime::Handle,
        settings: &Settings,
        patience: Duration,
    ) -> Arc<Calls> {
        Arc::new(Calls {
            job: job.to_string(),
            key,
            roster,
            client,
            handle,
            host_fns: settings.host_fns.clone(),
            max_payload: settings.max_payload,
            patience,
            agents: Mutex::new(HashMap::new()),
        })
    }

    fn agents(&self) -> MutexGuard<'_, HashMap<(String, String), AgentTasks>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `message` on `subject`, from any thread.
    fn send(&self, subject: String, message: Bytes) {
        let client = self.client.clone();
        self.handle.spawn(async move {
            let _ = client.publish(subject, message).await;
        });
    }

    /// The call `payload` carries, with the agent that signed it: none for
    /// what is not a call of an admitted agent (said in a warning).
    pub(crate) fn open(&self, payload: &[u8]) -> Option<(String, Calling)> {
        let job = &self.job;
        let (agent, calling) = match Signed::open::<Calling>(payload, Domain::Call, job, "call") {
            Ok(opened) => opened,
            Err(err) => {
                tracing::warn!("job {job}: dropped a call: {err}");
                return None;
            }
        };
        if let Err(why) = bounds::check_name("agent's session", &calling.session) {
            tracing::warn!("job {job}: dropped a call: {why}");
            return None;
        }
        if !self.roster.admits(&agent) {
            tracing::warn!("job {job}: dropped a call of an agent it did not admit");
            return None;
        }
        Some((agent, calling))
    }

    /// Takes `calling`, [opened](Self::open) from `agent`, answered (if it
    /// is a call) on `reply`. `running(chunk, index)` says whether task
    /// `index` of chunk `chunk` runs, with the objects handed to it; the
    /// caller holds what it reads until this returns, so that a task cannot
    /// end between the check and its record here.
    pub(crate) fn on_message(
        self: &Arc<Self>,
        (agent, calling): (String, Calling),
        reply: Option<String>,
        running: impl FnOnce(u64, u64) -> Option<Vec<ObjectRef>>,
    ) {
        let job = &self.job;
        let Calling { session, message } = calling;
        let mut agents = self.agents();
        let tasks = agents
            .entry((agent, session))
            .or_insert_with(AgentTasks::new);
        match message {
            CallMessage::Alive { at } => {
                // Only a sign newer than the last counts: not a replay.
                if at > tasks.alive_at {
                    tasks.alive_at = at;
                    tasks.heard = Instant::now();
                }
            }
            CallMessage::Ended { worker } => {
                let ended = tasks.end_where(|key| key.0 == worker);
                drop(agents);
                ended.iter().for_each(|task| task.end());
            }
            CallMessage::Cancel { worker, call } => {
                let found = find(tasks, worker, call);
                drop(agents);
                if let Some(task) = found {
                    object_calls::cancel(call, &task.grants);
                }
            }
            CallMessage::Unclaimed {
                worker,
                call,
                result,
            } => {
                let found = find(tasks, worker, call);
                drop(agents);
                if let Some(task) = found {
                    object_calls::unclaimed(call, &result, &task.grants);
                }
            }
            CallMessage::Call {
                worker,
                chunk,
                index,
                call,
                asked,
            } => {
                let Some(to) = reply else {
                    return;
                };
                let key = (worker, chunk, index);
                let refuse = |why: String| {
                    let answer = Answer {
                        to: to.clone(),
                        worker,
                        call,
                        result: Err(Failure::Refused(why)),
                    };
                    Bytes::from(Signed::encode(&self.key, Domain::Answer, job, &answer))
                };
                if tasks.ended.contains_key(&key) {
                    let why = "this task ended on the host (its outcome came, or its agent was \
                               taken for lost): it may call no more";
                    let refused = refuse(why.to_string());
                    drop(agents);
                    return self.send(to, refused);
                }
                let task = match tasks.running.get(&key) {
                    Some(task) => task.clone(),
                    None => {
                        let objects = match chunk {
                            Some(chunk) => running(chunk, index),
                            None => Some(Vec::new()),
                        };
                        let Some(objects) = objects else {
                            let why = format!(
                                "task {index} of chunk {} does not run on this agent's \
                                 host: it ended, or never was",
                                chunk.unwrap_or_default()
                            );
                            let refused = refuse(why);
                            drop(agents);
                            return self.send(to, refused);
                        };
                        let mut grants = Grants::new(&objects);
                        if chunk.is_some() {
                            grants.initialized();
                        }
                        let task = Arc::new(RemoteTask {
                            grants: Arc::new(Mutex::new(grants)),
                            calls: Mutex::new(VecDeque::new()),
                            ended: AtomicBool::new(false),
                        });
                        tasks.running.insert(key, task.clone());
                        task
                    }
                };
                drop(agents);
                self.serve(task, to, worker, call, asked);
            }
        }
    }

    /// Runs `call` of `task` once, or answers it again if it was asked
    /// before (the agent asks again while it has no answer).
    fn serve(
        self: &Arc<Self>,
        task: Arc<RemoteTask>,
        to: String,
        worker: u64,
        call: u64,
        asked: Asked,
    ) {
        {
            let mut calls = task.calls();
            if let Some((_, answer)) = calls.iter().find(|(made, _)| *made == call) {
                if let Some(answer) = answer {
                    self.send(to, answer.clone());
                }
                return;
            }
            // Numbers grow: one older than all remembered was answered.
            if calls.front().is_some_and(|(oldest, _)| call < *oldest) {
                return;
            }
            if calls.len() == CALLS_KEPT {
                calls.pop_front();
            }
            calls.push_back((call, None));
        }
        let replies: Arc<dyn Replies> = Arc::new(ToAgent {
            calls: self.clone(),
            task: task.clone(),
            to,
            worker,
        });
        match asked {
            Asked::HostFn { name, args } => {
                if let Err(why) = bounds::check_name("host function", &name) {
                    replies.reply(call, Err(Failure::Refused(why)));
                    return;
                }
                let request = Request { call, name, args };
                host_fns::call(&self.host_fns, request, self.max_payload, replies);
            }
            Asked::Invoke { object, op, args } => {
                if let Err(why) = bounds::check_name("operation", &op) {
                    replies.reply(call, Err(Failure::Refused(why)));
                    return;
                }
                let invoke = Invoke {
                    call,
                    object,
                    op,
                    args,
                };
                object_calls::invoke(invoke, &task.grants, &replies, self.max_payload);
            }
        }
    }

    /// The tasks of chunk `chunk` before index `next` have their outcomes
    /// (with `next` none: the chunk is done): they end.
    pub(crate) fn ended_before(&self, chunk: u64, next: Option<u64>) {
        let mut ended = Vec::new();
        for tasks in self.agents().values_mut() {
            ended.extend(tasks.end_where(|&(_, of, index)| {
                of == Some(chunk) && next.is_none_or(|next| index < next)
            }));
        }
        ended.iter().for_each(|task| task.end());
    }

    /// Every task ends: the pool stops.
    pub(crate) fn end_all(&self) {
        let mut ended = Vec::new();
        for tasks in self.agents().values_mut() {
            ended.extend(tasks.end_where(|_| true));
        }
        ended.iter().for_each(|task| task.end());
    }

    /// Ends the tasks of agents silent for longer than the job's patience:
    /// the server gives their chunks to other agents, and what they held
    /// goes to the next holders.
    pub(crate) fn end_silent(&self) {
        let mut ended = Vec::new();
        for ((agent, _), tasks) in self.agents().iter_mut() {
            if tasks.running.is_empty() || tasks.heard.elapsed() <= self.patience {
                continue;
            }
            tracing::warn!(
                "job {}: agent {} silent for {:?}: what its tasks held is let go of",
                self.job,
                super::keys::short(agent),
                tasks.heard.elapsed()
            );
            ended.extend(tasks.end_where(|_| true));
        }
        ended.iter().for_each(|task| task.end());
    }

    /// How often silent agents are looked for.
    pub(crate) fn sweep_every(&self) -> Duration {
        self.patience / 3
    }
}

/// The task of `worker` that made `call`, running or ended.
fn find(tasks: &AgentTasks, worker: u64, call: u64) -> Option<Arc<RemoteTask>> {
    tasks
        .running
        .iter()
        .chain(tasks.ended.iter())
        .find(|(key, task)| key.0 == worker && task.made(call))
        .map(|(_, task)| task.clone())
}

/// Reads the agents' calls until the subscription ends.
pub(crate) async fn serve_calls(
    calls: Arc<Calls>,
    mut messages: async_nats::Subscriber,
    on_call: impl Fn(&Arc<Calls>, async_nats::Message) + Send + 'static,
) {
    use futures_util::StreamExt;
    let mut sweep = tokio::time::interval(calls.sweep_every());
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => on_call(&calls, message),
                None => return,
            },
            _ = sweep.tick() => calls.end_silent(),
        }
    }
}
