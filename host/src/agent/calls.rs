//! The agent's side of what its tasks ask of their job's host: the job's
//! local pool passes every call of a host function or on a shared object to
//! a [`Forwarder`] (a [`Forward`]), which sends it to the host, signed, on
//! the job's calls subject, and hands the host's answer back to the worker.
//! The host's side is `backend/nats/calls.rs`.
//!
//! Core NATS carries these messages, with no store behind them: a call not
//! answered is sent again every [`RESEND`] (the host runs each call once and
//! answers it again), so a message lost with a restarting server delays a
//! call, and loses nothing. While the job's tasks have called, the agent
//! shows the host it lives at the same pace: a host that hears nothing for
//! its job's `ack_wait` lets go of what the agent's tasks held.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_bytes::ByteBuf;

use crate::backend::calls::{Asked, Forward, Replies};
use crate::backend::nats::keys::{Domain, SigningKey};
use crate::backend::nats::wire::{self, Answer, CallMessage, Calling, Signed};
use crate::error::Error;

/// How often calls not answered are sent again, and the agent shows it
/// lives (at most: a third of the job's `ack_wait` if that is shorter).
pub(crate) const RESEND: Duration = Duration::from_secs(2);

/// The most calls answered after their task stopped waiting that are
/// remembered, to give back what their answers carry.
const CANCELLED_KEPT: usize = 1024;

/// A call on its way to the host.
struct Waiting {
    /// The message that asks it, to send again.
    message: Bytes,
    replies: Arc<dyn Replies>,
}

#[derive(Default)]
struct State {
    /// By worker and call.
    waiting: HashMap<(u64, u64), Waiting>,
    /// Calls whose task stopped waiting (or whose worker ended) before
    /// their answer came, the oldest first.
    cancelled: VecDeque<(u64, u64)>,
    /// The job's tasks have called: the host is shown the agent lives.
    called: bool,
}

impl State {
    /// Remembers that nobody waits for the answer to `call` any more.
    fn cancel(&mut self, call: (u64, u64)) {
        if self.cancelled.len() == CANCELLED_KEPT {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(call);
    }
}

/// Passes one job's calls to its host.
pub(crate) struct Forwarder {
    job: String,
    /// The job's host key: the only signer of answers taken.
    host: String,
    key: SigningKey,
    client: async_nats::Client,
    handle: tokio::runtime::Handle,
    subject: String,
    /// Where the answers come: unique to this agent's process.
    inbox: String,
    /// Drawn when it began: what the host knows this run of the agent by.
    session: String,
    state: Mutex<State>,
    /// Its tasks reading answers and sending again: stopped with it.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Forwarder {
    /// Starts passing `job`'s calls to its host (whose key is `host`), and
    /// reading the answers, until the forwarder is dropped; `ack_wait` is
    /// the job's.
    pub(crate) async fn start(
        client: async_nats::Client,
        key: SigningKey,
        job: &str,
        host: &str,
        ack_wait: Duration,
    ) -> Result<Arc<Forwarder>, Error> {
        let inbox = client.new_inbox();
        let answers = client.subscribe(inbox.clone()).await.map_err(|err| {
            crate::backend::nats::store::remote("cannot subscribe to the host's answers", err)
        })?;
        let forwarder = Arc::new(Forwarder {
            job: job.to_string(),
            host: host.to_string(),
            key,
            client,
            handle: tokio::runtime::Handle::current(),
            subject: wire::calls_subject(job),
            inbox,
            session: nuid::next().to_string(),
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Vec::new()),
        });
        let every = RESEND.min(ack_wait / 3);
        let tasks = [
            tokio::spawn(read_answers(Arc::downgrade(&forwarder), answers)).abort_handle(),
            tokio::spawn(resend(Arc::downgrade(&forwarder), every)).abort_handle(),
        ];
        forwarder
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
        Ok(forwarder)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `message` of this session, signed.
    fn signed(&self, message: CallMessage) -> Bytes {
        let calling = Calling {
            session: self.session.clone(),
            message,
        };
        Bytes::from(Signed::encode(&self.key, Domain::Call, &self.job, &calling))
    }

    /// Publishes `message`, with the subject answers come on.
    fn send(&self, message: Bytes) {
        let (client, subject, inbox) = (
            self.client.clone(),
            self.subject.clone(),
            self.inbox.clone(),
        );
        self.handle.spawn(async move {
            let _ = client.publish_with_reply(subject, inbox, message).await;
        });
    }

    /// Takes an answer from the host.
    fn on_answer(&self, payload: &[u8]) {
        let job = &self.job;
        let answer = match Signed::open_from_host::<Answer>(
            payload,
            Domain::Answer,
            job,
            "answer",
            &self.host,
        ) {
            Ok(answer) if answer.to == self.inbox => answer,
            Ok(_) => {
                tracing::warn!("job {job}: dropped an answer to another run of an agent");
                return;
            }
            Err(err) => {
                tracing::warn!("job {job}: dropped an answer: {err}");
                return;
            }
        };
        let key = (answer.worker, answer.call);
        let mut state = self.state();
        if let Some(waiting) = state.waiting.remove(&key) {
            drop(state);
            // The worker is gone: what the answer carries goes back.
            if let Some(Ok(result)) = waiting.replies.reply(answer.call, answer.result) {
                self.unclaimed(answer.worker, answer.call, result);
            }
        } else if let Some(at) = state.cancelled.iter().position(|of| *of == key) {
            state.cancelled.remove(at);
            drop(state);
            if let Ok(result) = answer.result {
                self.unclaimed(answer.worker, answer.call, result);
            }
        }
        // Else an answer given again, to a call answered already.
    }

    /// Sends the calls not answered again, and shows the host the agent
    /// lives if the job's tasks have called.
    fn resend(&self) {
        let state = self.state();
        let again: Vec<Bytes> = state
            .waiting
            .values()
            .map(|waiting| waiting.message.clone())
            .collect();
        let called = state.called;
        drop(state);
        if called {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                });
            self.send(self.signed(CallMessage::Alive { at }));
        }
        for message in again {
            self.send(message);
        }
    }
}

impl Forward for Forwarder {
    fn call(
        &self,
        worker: u64,
        chunk: Option<u64>,
        index: u64,
        call: u64,
        asked: Asked,
        replies: Arc<dyn Replies>,
    ) {
        let message = self.signed(CallMessage::Call {
            worker,
            chunk,
            index,
            call,
            asked,
        });
        let mut state = self.state();
        state.called = true;
        state.waiting.insert(
            (worker, call),
            Waiting {
                message: message.clone(),
                replies,
            },
        );
        drop(state);
        self.send(message);
    }

    fn cancel(&self, worker: u64, call: u64) {
        let mut state = self.state();
        if state.waiting.remove(&(worker, call)).is_some() {
            state.cancel((worker, call));
        }
        drop(state);
        self.send(self.signed(CallMessage::Cancel { worker, call }));
    }

    fn unclaimed(&self, worker: u64, call: u64, result: ByteBuf) {
        self.send(self.signed(CallMessage::Unclaimed {
            worker,
            call,
            result,
        }));
    }

    fn ended(&self, worker: u64) {
        let mut state = self.state();
        // An answer still on its way to the worker's calls goes back.
        let orphans: Vec<(u64, u64)> = state
            .waiting
            .keys()
            .filter(|(of, _)| *of == worker)
            .copied()
            .collect();
        for key in orphans {
            state.waiting.remove(&key);
            state.cancel(key);
        }
        let called = state.called;
        drop(state);
        if called {
            self.send(self.signed(CallMessage::Ended { worker }));
        }
    }
}

/// Hands the host's answers on, while the forwarder lives.
async fn read_answers(forwarder: Weak<Forwarder>, mut answers: async_nats::Subscriber) {
    while let Some(message) = answers.next().await {
        let Some(forwarder) = forwarder.upgrade() else {
            return;
        };
        forwarder.on_answer(&message.payload);
    }
}

/// Sends again what was not answered, every `every`, while the forwarder
/// lives.
async fn resend(forwarder: Weak<Forwarder>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(forwarder) = forwarder.upgrade() else {
            return;
        };
        forwarder.resend();
    }
}
