//! Running a process job's one chunk on an agent: its task in a
//! [`Process`] of its own (a worker nothing else uses), reported started
//! with the worker's pid, and exited with its exit code and the task's
//! outcome in one report; what it writes among its reports, in order,
//! before its end ([`Said`]); and the host's [`Control`]s, which signal
//! it. The host's side is `backend/nats/process.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::chunk::{Serving, failed, pack, progress_ticks, publish};
use crate::backend::nats::keys::Domain;
use crate::backend::nats::wire::{ChunkMessage, Control, OutputMessage, Report, Signed};
use crate::channel::Outcomes;
use crate::error::{Error, ErrorKind};
use crate::process::{self, Context, Process};

/// The processes of a job running here, by chunk: what its host's controls
/// reach.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<u64, Arc<Process>>>);

impl Running {
    fn set(&self, chunk: u64, process: Option<Arc<Process>>) {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match process {
            Some(process) => running.insert(chunk, process),
            None => running.remove(&chunk),
        };
    }

    fn get(&self, chunk: u64) -> Option<Arc<Process>> {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.get(&chunk).cloned()
    }
}

/// A process job's output, on its way to the host among the job's reports
/// in the order it was written; and the marks that wait until all said
/// before them is stored.
pub(crate) struct Said {
    sending: mpsc::UnboundedSender<Saying>,
    /// Taken by the task that publishes it.
    said: Mutex<Option<mpsc::UnboundedReceiver<Saying>>>,
}

enum Saying {
    Output(OutputMessage),
    /// Everything before this is stored.
    Flushed(oneshot::Sender<()>),
}

/// What the process's output handler says with.
pub(crate) struct Sayer(mpsc::UnboundedSender<Saying>);

impl Sayer {
    pub(crate) fn say(&self, output: OutputMessage) {
        // Gone once the job is: nobody to tell.
        let _ = self.0.send(Saying::Output(output));
    }
}

impl Said {
    pub(crate) fn new() -> Said {
        let (sending, said) = mpsc::unbounded_channel();
        Said {
            sending,
            said: Mutex::new(Some(said)),
        }
    }

    pub(crate) fn sender(&self) -> Sayer {
        Sayer(self.sending.clone())
    }

    /// The task that publishes what is said, in order, for as long as the
    /// job is served (none if it was made already).
    pub(crate) fn relay(
        &self,
        serving: Arc<Serving>,
        cancelled: watch::Receiver<Option<bool>>,
    ) -> Option<impl Future<Output = ()> + use<>> {
        let mut said = self
            .said
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(async move {
            while let Some(saying) = said.recv().await {
                match saying {
                    Saying::Output(output) => {
                        let _ = publish(&serving, &Report::Output(output), &cancelled).await;
                    }
                    Saying::Flushed(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })
    }

    /// Waits until all said so far is stored (or given up on).
    async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.sending.send(Saying::Flushed(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Runs `chunk` (from `message`) of a process job in a process of
/// `context`, whose output goes through `said`, until it exits or the
/// chunk stops being served (then the process is killed, and the chunk
/// handed back if the agent stops).
pub(crate) async fn run(
    serving: &Arc<Serving>,
    message: &jetstream::Message,
    context: &Context,
    said: &Said,
    chunk: ChunkMessage,
    cancelled: &mut watch::Receiver<Option<bool>>,
) {
    let (seq, first_index) = (chunk.tasks.seq, chunk.tasks.first_index);
    let starting = {
        let context = context.clone();
        tokio::task::spawn_blocking(move || process::start_encoded(&context, seq, chunk.tasks))
    };
    let process = match starting.await {
        Ok(Ok(process)) => Arc::new(process),
        Ok(Err(err)) => {
            return exited(serving, message, seq, first_index, Err(err), 1, cancelled).await;
        }
        Err(err) => {
            let err = Error::new(ErrorKind::Spawn, format!("starting the process: {err}"));
            return exited(serving, message, seq, first_index, Err(err), 1, cancelled).await;
        }
    };
    serving.running.set(seq, Some(process.clone()));
    let started = Report::Started {
        chunk: seq,
        pid: process.pid(),
    };
    let _ = publish(serving, &started, cancelled).await;
    let mut ended = {
        let process = process.clone();
        tokio::task::spawn_blocking(move || process.join())
    };
    let mut progress = progress_ticks(serving.ack_wait);
    loop {
        tokio::select! {
            _ = &mut ended => break,
            stop = async { cancelled.wait_for(Option::is_some).await.map(|stop| *stop) } => {
                process.kill();
                serving.running.set(seq, None);
                if stop.is_ok_and(|stop| stop == Some(true)) {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
                return;
            }
            _ = progress.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
    serving.running.set(seq, None);
    // What it wrote comes before its end.
    said.flush().await;
    let outcome = process.outcome().cloned().unwrap_or_else(|| {
        Err(Error::new(
            ErrorKind::WorkerLost,
            "the process ended without an outcome",
        ))
    });
    let exitcode = process.exitcode().unwrap_or(1);
    exited(
        serving,
        message,
        seq,
        first_index,
        outcome,
        exitcode,
        cancelled,
    )
    .await;
}

/// Reports the process of chunk `seq` exited with `exitcode`, its task with
/// `outcome`, and acknowledges the chunk once that is stored.
async fn exited(
    serving: &Serving,
    message: &jetstream::Message,
    seq: u64,
    first_index: u64,
    outcome: Result<Vec<u8>, Error>,
    exitcode: i32,
    cancelled: &watch::Receiver<Option<bool>>,
) {
    let outcomes = match outcome {
        Ok(result) => {
            let mut outcomes = Outcomes::with_capacity(1);
            outcomes.push_ok(&result);
            outcomes
        }
        Err(err) => failed(1, &err),
    };
    // Cut to fit a report, as any chunk's outcomes are.
    let Some((first_index, outcomes)) = pack(vec![(first_index, outcomes)], serving.room)
        .into_iter()
        .next()
    else {
        return;
    };
    let report = Report::Exited {
        chunk: seq,
        first_index,
        outcomes,
        exitcode,
    };
    if publish(serving, &report, cancelled).await.is_ok()
        && let Err(err) = message.ack().await
    {
        tracing::warn!("job {}: cannot acknowledge a chunk: {err}", serving.job);
    }
}

/// Reads the host's controls of the job `serving` serves, signed by its
/// host, and signals the processes they name, until `controls` ends.
pub(crate) async fn obey(serving: Arc<Serving>, mut controls: async_nats::Subscriber) {
    let job = &serving.job;
    while let Some(message) = controls.next().await {
        let opened = Signed::open_from_host(
            &message.payload,
            Domain::Control,
            job,
            "control",
            &serving.host,
        );
        let control: Control = match opened {
            Ok(control) => control,
            Err(err) => {
                tracing::warn!("job {job}: dropped a control: {err}");
                continue;
            }
        };
        let Control::Signal { chunk, signal } = control;
        let Some(process) = serving.running.get(chunk) else {
            continue;
        };
        match signal {
            libc::SIGKILL => process.kill(),
            libc::SIGTERM => process.terminate(),
            other => tracing::warn!("job {job}: dropped a control asking for signal {other}"),
        }
    }
}
