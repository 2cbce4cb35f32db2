//! Running one chunk on an agent: on the job's local pool, its outcomes
//! published as they come, a sign of life while it runs, and the chunk
//! acknowledged once every outcome is stored on the server.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::context::JobContext;
use super::depth::Here;
use super::process::{self, Running, Said};
use crate::backend::nats::keys::{Domain, ReportKey};
use crate::backend::nats::wire::{self, ChunkMessage, Report, Signed, Tagged};
use crate::channel::{Outcomes, bounds};
use crate::chunk::{Chunk, Sink};
use crate::error::{Error, ErrorKind};
use crate::pool::Pool;
use crate::process::Context;

/// What runs a job's chunks here.
pub(crate) enum JobPool {
    Pool(Arc<Pool>),
    /// The job is a process's: its chunk runs in a process of its own,
    /// whose output goes among its reports.
    Process(Context, Said),
    /// The job cannot run here: its chunks fail with this.
    Broken(Error),
}

/// A job being served, as its chunks see it.
pub(crate) struct Serving {
    pub(crate) context: Arc<JobContext>,
    pub(crate) job: String,
    /// The key the job's chunks are signed with.
    pub(crate) host: String,
    /// This agent's public key, which its reports name, and the key they
    /// are tagged with, shared with the host.
    pub(crate) reporter: (String, ReportKey),
    pub(crate) pool: JobPool,
    /// How many times a chunk whose agent was lost runs again.
    pub(crate) agent_retries: u32,
    pub(crate) ack_wait: Duration,
    /// The most bytes of results one report carries.
    pub(crate) room: usize,
    /// The job's processes running here.
    pub(crate) running: Running,
}

/// A local chunk's outcomes, on their way to be published.
struct Forward(mpsc::UnboundedSender<(u64, Outcomes)>);

impl Sink for Forward {
    fn deliver(&self, first_index: u64, outcomes: Outcomes) {
        // Gone once the chunk stopped being served: nothing to publish.
        let _ = self.0.send((first_index, outcomes));
    }
}

/// A chunk as it was taken from the server, in the order of its stream.
pub(crate) struct Taken {
    message: jetstream::Message,
    what: Chunked,
}

enum Chunked {
    /// Not a chunk of the job's host: dropped, with why.
    Dropped(Error),
    /// Lost with its agents too often: reported so.
    Lost(Report),
    /// On the job's local pool: its outcomes come on `outcomes`.
    Running {
        seq: u64,
        tasks: usize,
        outcomes: mpsc::UnboundedReceiver<(u64, Outcomes)>,
    },
    /// A process job's: run in a process of its own.
    Process(ChunkMessage),
}

/// Takes the chunk in `message`: checks it, and hands it to the job's local
/// pool at once, so that the chunks taken by one agent start in the order
/// of their stream, as a local pool's do.
pub(crate) fn take(serving: &Serving, message: jetstream::Message) -> Taken {
    let chunk = match open(serving, &message.payload) {
        Ok(chunk) => chunk,
        Err(err) => {
            return Taken {
                message,
                what: Chunked::Dropped(err),
            };
        }
    };
    let deliveries = message
        .info()
        .map_or(1, |info| info.delivered.max(1) as u64);
    if deliveries > u64::from(serving.agent_retries) + 1 {
        // Agents were lost running it more often than the job allows.
        let lost = Report::Lost {
            chunk: chunk.tasks.seq,
            sending: chunk.sending,
            deliveries,
        };
        return Taken {
            message,
            what: Chunked::Lost(lost),
        };
    }
    let tasks = chunk.tasks.ends.len();
    let (seq, first_index) = (chunk.tasks.seq, chunk.tasks.first_index);
    let (forward, outcomes) = mpsc::unbounded_channel();
    match &serving.pool {
        JobPool::Pool(pool) => {
            let local = Chunk::encoded(
                seq,
                chunk.tasks,
                pool.submitter.submission(Arc::new(Forward(forward))),
            );
            match pool.submitter.sender() {
                Ok(sender) => pool.submitter.send(&sender, local),
                Err(err) => local.fail(&err),
            }
        }
        JobPool::Broken(err) => Forward(forward).deliver(first_index, failed(tasks, err)),
        JobPool::Process(..) => {
            return Taken {
                message,
                what: Chunked::Process(chunk),
            };
        }
    }
    Taken {
        message,
        what: Chunked::Running {
            seq,
            tasks,
            outcomes,
        },
    }
}

/// Serves the chunk `taken`, counted `here` until its tasks are done here,
/// and holding `_held` (room for one chunk held) until its outcomes are
/// stored: while they are on their way to the server, the next chunks run.
/// Stops early when `cancelled` (handing the chunk back to the server if the
/// agent stops).
pub(crate) async fn serve(
    serving: Arc<Serving>,
    taken: Taken,
    here: Here,
    _held: OwnedSemaphorePermit,
    mut cancelled: watch::Receiver<Option<bool>>,
) {
    let mut here = Some(here);
    let job = &serving.job;
    let Taken { message, what } = taken;
    let (seq, tasks, mut outcomes) = match what {
        Chunked::Dropped(err) => {
            tracing::warn!("job {job}: dropped on {}: {err}", message.subject);
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
        Chunked::Lost(lost) => {
            if publish(&serving, &lost, &cancelled).await.is_ok() {
                let _ = message.ack().await;
            }
            return;
        }
        Chunked::Process(chunk) => {
            let JobPool::Process(context, said) = &serving.pool else {
                return;
            };
            return process::run(&serving, &message, context, said, chunk, &mut cancelled).await;
        }
        Chunked::Running {
            seq,
            tasks,
            outcomes,
        } => (seq, tasks, outcomes),
    };
    let mut progress = progress_ticks(serving.ack_wait);
    let mut reported = 0;
    while reported < tasks {
        tokio::select! {
            biased;
            stop = async { cancelled.wait_for(Option::is_some).await.map(|stop| *stop) } => {
                if stop.is_ok_and(|stop| stop == Some(true)) {
                    // The agent stops: another agent takes the chunk now.
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
                return;
            }
            next = outcomes.recv() => {
                let Some((first_index, first)) = next else {
                    return;
                };
                let mut batch = vec![(first_index, first)];
                while let Ok(more) = outcomes.try_recv() {
                    batch.push(more);
                }
                reported += batch.iter().map(|(_, outcomes)| outcomes.len()).sum::<usize>();
                if reported == tasks {
                    // Its tasks are done here: the next chunk may come.
                    here.take();
                }
                for (first_index, outcomes) in pack(batch, serving.room) {
                    let report = Report::Outcomes {
                        chunk: seq,
                        first_index,
                        outcomes,
                    };
                    if publish(&serving, &report, &cancelled).await.is_err() {
                        // Not acknowledged: the chunk runs again elsewhere.
                        return;
                    }
                }
            }
            _ = progress.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
    if let Err(err) = message.ack().await {
        tracing::warn!("job {job}: cannot acknowledge a chunk: {err}");
    }
}

/// When a chunk being served says it is in progress: a third of the
/// server's `ack_wait`, the first a third from now. (Not an interval's
/// first tick, due at once: it fires only at the timer's next turn, up to
/// a millisecond later, and the chunk would wait for it before its
/// outcomes.)
pub(crate) fn progress_ticks(ack_wait: Duration) -> tokio::time::Interval {
    let every = ack_wait / 3;
    tokio::time::interval_at(tokio::time::Instant::now() + every, every)
}

/// The chunk `payload` carries, if the job's host signed it.
fn open(serving: &Serving, payload: &[u8]) -> Result<ChunkMessage, Error> {
    let chunk: ChunkMessage =
        Signed::open_from_host(payload, Domain::Chunk, &serving.job, "chunk", &serving.host)?;
    chunk.check()?;
    Ok(chunk)
}

/// Publishes a report on the job, tagged, and waits until the server
/// stored it (publishing it again while the server may be restarting,
/// unless the chunk stops being served).
pub(crate) async fn publish(
    serving: &Serving,
    report: &Report,
    cancelled: &watch::Receiver<Option<bool>>,
) -> Result<(), Error> {
    let (agent, report_key) = &serving.reporter;
    let report = Bytes::from(Tagged::encode(agent, report_key, &serving.job, report));
    let subject = wire::reports_subject(&serving.job);
    let store = &serving.context.store;
    store
        .publish_stored(subject, report, None, || cancelled.borrow().is_some())
        .await
        .map(drop)
        .inspect_err(|err| tracing::warn!("job {}: {err}", serving.job))
}

/// `tasks` outcomes, each failed with `err`.
pub(crate) fn failed(tasks: usize, err: &Error) -> Outcomes {
    let mut outcomes = Outcomes::with_capacity(tasks);
    for _ in 0..tasks {
        outcomes.push_err(err.clone());
    }
    outcomes
}

/// Packs consecutive outcomes (each batch from its first task's index) into
/// as few reports as fit `room` bytes each, counting each outcome at its
/// encoded size. A result that alone does not fit becomes a failure that
/// says so; an error that alone does not fit is cut to fit (see
/// [`fit`]): either way the task ran once, and its report goes once.
pub(crate) fn pack(batches: Vec<(u64, Outcomes)>, room: usize) -> Vec<(u64, Outcomes)> {
    // Each report with the bytes its outcomes take.
    let mut packed: Vec<(u64, Outcomes, usize)> = Vec::new();
    for (first_index, outcomes) in batches {
        for (offset, outcome) in outcomes.iter().enumerate() {
            let index = first_index + offset as u64;
            let outcome = match outcome {
                Ok(result) if result.len() + OUTCOME_OVERHEAD > room => Err(fit(
                    Error::new(
                        ErrorKind::BadResult,
                        format!(
                            "the result of {} bytes does not fit in a message of the NATS \
                         server, which takes {room} bytes of results at most (its \
                         max_payload)",
                            result.len()
                        ),
                    )
                    .with_index(index),
                    room,
                )),
                Ok(result) => Ok(result),
                Err(err) => Err(fit(err.clone(), room)),
            };
            let size = match &outcome {
                Ok(result) => result.len() + OUTCOME_OVERHEAD,
                Err(err) => encoded_size(err),
            };
            let fits_last = packed.last().is_some_and(|(first, last, used)| {
                *first + last.len() as u64 == index && used + size <= room
            });
            if !fits_last {
                packed.push((index, Outcomes::with_capacity(1), 0));
            }
            let (_, last, used) = packed.last_mut().expect("pushed above");
            *used += size;
            match outcome {
                Ok(result) => last.push_ok(result),
                Err(err) => last.push_err(err),
            }
        }
    }
    packed
        .into_iter()
        .map(|(first, outcomes, _)| (first, outcomes))
        .collect()
}

/// What an outcome takes in a report besides its result or error: its end
/// and its position, as varints.
const OUTCOME_OVERHEAD: usize = 10;

/// The bytes `err` takes in a report.
fn encoded_size(err: &Error) -> usize {
    wire::encode(err).len() + OUTCOME_OVERHEAD
}

/// `err` made to fit in `room` bytes of a report: its message cut in the
/// middle (saying how much went), and, if that is not enough, its
/// backtrace dropped. A task whose error is too large for the server thus
/// fails once with the error cut, rather than run again and again as a
/// report the server refuses.
fn fit(mut err: Error, room: usize) -> Error {
    let size = encoded_size(&err);
    if size <= room {
        return err;
    }
    let over = size - room;
    let (message, _) = err.texts_mut();
    // The marker the cut adds, and the varint of the length, take room too.
    let keep = message.len().saturating_sub(over + 64);
    *message = bounds::cut(std::mem::take(message), keep);
    if encoded_size(&err) > room
        && let (_, Some(trap)) = err.texts_mut()
    {
        trap.backtrace.clear();
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(results: &[&[u8]]) -> Outcomes {
        let mut outcomes = Outcomes::default();
        for result in results {
            outcomes.push_ok(result);
        }
        outcomes
    }

    #[test]
    fn consecutive_batches_pack_into_one_report() {
        let packed = pack(
            vec![(10, outcomes(&[b"a", b"b"])), (12, outcomes(&[b"c"]))],
            1024,
        );
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].0, 10);
        assert_eq!(packed[0].1, outcomes(&[b"a", b"b", b"c"]));
    }

    #[test]
    fn an_error_too_large_for_a_report_is_cut_to_fit_and_goes_once() {
        let mut batch = outcomes(&[b"a"]);
        let long = format!("start{}end", "e".repeat(100 << 10));
        batch.push_err(Error::new(ErrorKind::Failed, long).with_index(11));
        batch.push_ok(b"c");
        let room = 4096;
        let packed = pack(vec![(10, batch)], room);
        let all: Vec<_> = packed
            .iter()
            .flat_map(|(_, outcomes)| outcomes.iter())
            .collect();
        assert_eq!(all.len(), 3, "every task has its one outcome");
        let err = all[1].unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert_eq!(err.task_index(), Some(11));
        assert!(err.message().starts_with("start"), "{err}");
        assert!(err.message().ends_with("end"), "{err}");
        assert!(err.message().contains("bytes cut"), "{err}");
        for (_, outcomes) in &packed {
            let size: usize = outcomes
                .iter()
                .map(|outcome| outcome.map_or_else(encoded_size, |r| r.len() + OUTCOME_OVERHEAD))
                .sum();
            assert!(size <= room, "{size} > {room}");
            assert!(
                wire::encode(outcomes).len() <= room,
                "a report past its room"
            );
        }
    }

    #[test]
    fn many_errors_split_reports_by_their_real_size() {
        let mut batch = Outcomes::default();
        for i in 0..10 {
            batch.push_err(Error::new(ErrorKind::Failed, "x".repeat(1000)).with_index(i));
        }
        let packed = pack(vec![(0, batch)], 2500);
        assert_eq!(packed.len(), 5, "two errors of 1,000 bytes to a report");
        for (_, outcomes) in &packed {
            assert!(wire::encode(outcomes).len() <= 2500);
        }
    }

    #[test]
    fn reports_split_to_fit_and_a_result_too_large_fails() {
        let big = vec![7u8; 100];
        let packed = pack(vec![(0, outcomes(&[&big, &big, &big, &[0; 500]]))], 230);
        let firsts: Vec<u64> = packed.iter().map(|(first, _)| *first).collect();
        assert_eq!(firsts, [0, 2, 3]);
        let last: Vec<_> = packed[2].1.iter().collect();
        assert_eq!(packed[0].1.len(), 2);
        let err = last[0].unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResult);
        assert!(err.message().contains("500 bytes"), "{err}");
        assert_eq!(err.task_index(), Some(3));
    }
}
