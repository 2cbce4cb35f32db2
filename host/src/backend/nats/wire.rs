//! What travels through the NATS server, and where: the names of the
//! streams, buckets and subjects, and the messages on them. Everything read
//! here came over the network, so decoding checks it.
//!
//! - Bucket [`JOBS`] (key-value): one key per job, its [`JobSpec`], which
//!   the host puts again every [`HEARTBEAT`] while it lives, and once more
//!   marked ended when it ends.
//! - Bucket [`AGENTS`] (key-value, entries expire after [`AGENT_TTL`]): one
//!   key per agent, its [`AgentRecord`], put again every [`AGENT_HEARTBEAT`].
//! - Object store [`MODULES`]: modules by the SHA-256 of their bytes.
//! - Stream [`CHUNKS`] (a work queue): a job's chunks on
//!   `wasmpool.chunks.<job>`, pulled by agents through the job's consumer.
//! - Stream [`REPORTS`]: what agents report of a job's chunks, on
//!   `wasmpool.reports.<job>`, read by the host in order.
//! - Subject `wasmpool.output.<job>` (no stream): what tasks write to
//!   stdout and stderr, as [`OutputMessage`]s, for the host's output handler.
//! - Subject `wasmpool.enroll.<job>` (no stream, request and reply): an
//!   agent's [`Enrollment`] to serve a job, and its host's [`Enrolled`].
//! - Subject `wasmpool.control.<job>` (no stream): a process job's host
//!   stopping its process ([`Control`]).
//! - Subject `wasmpool.calls.<job>` (no stream): what tasks on agents ask
//!   of the host, as [`CallMessage`]s; the host's [`Answer`]s go to the
//!   subject each call names, unique to its agent's process.
//!
//! Every message but an agent's record is [`Signed`]: a job's record,
//! chunks, controls and answers by its host, reports, output and calls by the agent
//! that ran them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::keys::{self, Domain, ReportKey, SigningKey};
use crate::GuestOutput;
use crate::backend::calls::Asked;
use crate::channel::{Batch, Call, Failure, Limits, Outcomes, Stream};
use crate::error::{Error, ErrorKind};

/// The version of these messages; a job of another version is refused.
pub(crate) const VERSION: u32 = 7;
/// The key-value bucket of running jobs.
pub(crate) const JOBS: &str = "wasmpool_jobs";
/// The key-value bucket of agents.
pub(crate) const AGENTS: &str = "wasmpool_agents";
/// How often an agent shows that it lives.
pub(crate) const AGENT_HEARTBEAT: Duration = Duration::from_secs(5);
/// How long the record of an agent that stopped showing it lives is kept.
pub(crate) const AGENT_TTL: Duration = Duration::from_secs(16);
/// The object store of modules.
pub(crate) const MODULES: &str = "wasmpool_modules";
/// The work-queue stream of chunks.
pub(crate) const CHUNKS: &str = "WASMPOOL_CHUNKS";
/// The stream of agents' reports.
pub(crate) const REPORTS: &str = "WASMPOOL_REPORTS";
/// How often a host shows that its job lives.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long agents wait for a sign of a job's host before they drop it.
pub(crate) const ABANDONED_AFTER: Duration = Duration::from_secs(15);
/// The largest module an agent fetches.
pub(crate) const MODULE_LIMIT: u64 = crate::module::MODULE_BYTES;
/// Room left in a message for what is not arguments or results.
pub(crate) const ENVELOPE: usize = 4 << 10;

/// The subject of a job's chunks.
pub(crate) fn chunks_subject(job: &str) -> String {
    format!("wasmpool.chunks.{job}")
}

/// The subject of the reports on a job's chunks.
pub(crate) fn reports_subject(job: &str) -> String {
    format!("wasmpool.reports.{job}")
}

/// The subject of what a job's tasks write.
pub(crate) fn output_subject(job: &str) -> String {
    format!("wasmpool.output.{job}")
}

/// The subject on which agents ask a job's host to serve it.
pub(crate) fn enroll_subject(job: &str) -> String {
    format!("wasmpool.enroll.{job}")
}

/// The subject on which agents pass their tasks' calls to a job's host
/// (core NATS: the host answers each on the subject the call names).
pub(crate) fn calls_subject(job: &str) -> String {
    format!("wasmpool.calls.{job}")
}

/// The subject on which a process job's host stops its process
/// ([`Control`]).
pub(crate) fn control_subject(job: &str) -> String {
    format!("wasmpool.control.{job}")
}

/// The durable consumer through which agents pull a job's chunks.
pub(crate) fn consumer_name(job: &str) -> String {
    format!("job-{job}")
}

/// Whether `job` is a job id a host could have made: it is used in
/// subjects and names, so anything else is refused.
pub(crate) fn is_job_id(job: &str) -> bool {
    !job.is_empty() && job.len() <= 64 && job.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A job, as agents need it to run its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobSpec {
    pub(crate) version: u32,
    /// The SHA-256 of the module, in hex: its name in [`MODULES`].
    pub(crate) module: String,
    /// The module's size in bytes.
    pub(crate) module_size: u64,
    /// Run on every fresh instance before its first task.
    pub(crate) initializer: Option<Call>,
    pub(crate) limits: JobLimits,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// Every task on an instance of its own (see
    /// [`PoolBuilder::fresh_instance`](crate::PoolBuilder::fresh_instance)).
    pub(crate) fresh_instance: bool,
    /// How many times a chunk whose worker died runs again on its agent.
    pub(crate) retries: u32,
    /// How many times a chunk whose agent was lost runs again elsewhere.
    pub(crate) agent_retries: u32,
    /// The consumer's ack wait, in milliseconds: agents show a chunk's
    /// progress three times in it.
    pub(crate) ack_wait_ms: u64,
    /// The job is one [`Process`](crate::Process): its one task runs in a
    /// worker of its own, reported [`Report::Started`] (with the worker's
    /// pid) and [`Report::Exited`] (with its exit code), and stopped by the
    /// host's [`Control`]s.
    pub(crate) process: bool,
    /// The job has ended: its host's last word, before it deletes the
    /// record (a deleted record alone is no sign of the end: anyone who
    /// may write to the bucket could delete it).
    pub(crate) ended: bool,
    // The environment variables granted to tasks are not here: they come
    // sealed in the answer to each agent's [`Enrollment`].
}

/// The limits of a job's tasks (see [`PoolBuilder`](crate::PoolBuilder)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobLimits {
    /// What each worker enforces, as on a local pool.
    pub(crate) worker: Limits,
    pub(crate) memory_limit: u64,
    pub(crate) output_limit: u32,
}

/// Some consecutive tasks of a job: the message on its chunks subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkMessage {
    /// How many times the host sent the chunk again after agents died
    /// running it too often: reports of an older sending are stale.
    pub(crate) sending: u32,
    /// The tasks, as a local worker gets them; their `seq` is the chunk's
    /// number in its job.
    pub(crate) tasks: Batch,
}

/// What an agent reports of a chunk: the message on a job's reports subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The outcomes of the chunk's tasks from `first_index` on.
    Outcomes {
        chunk: u64,
        first_index: u64,
        outcomes: Outcomes,
    },
    /// Agents were lost running this sending of the chunk more often than
    /// the job's agent retries: its first task without an outcome is lost.
    Lost {
        chunk: u64,
        sending: u32,
        deliveries: u64,
    },
    /// A process job's task started in worker `pid` on the agent.
    Started { chunk: u64, pid: u32 },
    /// What a process job's task wrote: among its reports, so that it
    /// comes before the process's end, as a local process's does.
    Output(OutputMessage),
    /// A process job's worker ended with `exitcode` (as
    /// [`Process::exitcode`](crate::Process::exitcode) says it), its task
    /// with `outcomes`.
    Exited {
        chunk: u64,
        first_index: u64,
        outcomes: Outcomes,
        exitcode: i32,
    },
}

/// The host's word to the agent running a process job's chunk, on the
/// job's control subject, signed by the job's host key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Control {
    /// Send `signal` (SIGTERM or SIGKILL) to the worker running `chunk`.
    Signal { chunk: u64, signal: i32 },
}

/// What an agent sends on a job's calls subject, signed by its key: a
/// [`CallMessage`] of one session, which the agent drew when it began to
/// serve the job. An agent started again with the same key begins another:
/// nothing of its predecessor's tasks is taken for its own, and its signs of
/// life keep none of theirs alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Calling {
    pub(crate) session: String,
    pub(crate) message: CallMessage,
}

/// What an agent asks of a job's host, in a [`Calling`]. Its workers are
/// named by numbers unique in the agent's process, their calls by the
/// worker's own numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CallMessage {
    /// Task `index` of chunk `chunk` (none: the pool's initializer) on
    /// `worker` asks `asked` in `call`. Sent again while unanswered: the
    /// host runs a call once, and answers it again when asked again.
    Call {
        worker: u64,
        chunk: Option<u64>,
        index: u64,
        call: u64,
        asked: Asked,
    },
    /// The task no longer waits for `call`: a wait it started is given up.
    Cancel { worker: u64, call: u64 },
    /// The answer to `call` came after its task stopped waiting: `result`
    /// is what it carried, to give back.
    Unclaimed {
        worker: u64,
        call: u64,
        result: ByteBuf,
    },
    /// `worker` is gone: what its tasks held is let go of.
    Ended { worker: u64 },
    /// The agent lives: what its tasks hold stays theirs. `at` grows with
    /// each (milliseconds since the Unix epoch, on the agent's clock), so a
    /// sign of life replayed by another client shows nothing.
    Alive { at: u64 },
}

/// The host's answer to a [`CallMessage::Call`], signed by the job's host
/// key, on the subject the call named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// The subject it answers on (unique to one agent's process, so that an
    /// answer cannot be replayed to another), and the call answered.
    pub(crate) to: String,
    pub(crate) worker: u64,
    pub(crate) call: u64,
    pub(crate) result: Result<ByteBuf, Failure>,
}

/// An agent, as it describes itself to hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AgentRecord {
    pub(crate) version: u32,
    pub(crate) name: String,
    /// Its public key, which it signs its reports with.
    pub(crate) key: String,
    pub(crate) processes: usize,
    pub(crate) pid: u32,
    pub(crate) jobs: usize,
}

/// An agent's request to serve a job, on its enroll subject: signed by the
/// agent's key, which the host then accepts reports of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Enrollment {
    /// The agent's name, for the host's log.
    pub(crate) name: String,
    /// Unique to this request: the answer carries it back.
    pub(crate) nonce: String,
    /// A curve key made for this request (`X...`): what the job's secrets
    /// are sealed to.
    pub(crate) exchange: String,
}

/// A host's answer to an [`Enrollment`], signed by the job's host key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Enrolled {
    /// The key of the agent answered, and its request's nonce.
    pub(crate) agent: String,
    pub(crate) nonce: String,
    /// The job's secrets for this agent, or why it may not serve the job.
    pub(crate) answer: Result<Secrets, String>,
}

/// What a job hands one agent that must not cross the server in clear:
/// its environment variables and the agent's [`ReportKey`], sealed to the
/// curve key of the agent's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Secrets {
    /// The host's curve key made for this answer (`X...`).
    pub(crate) exchange: String,
    /// A [`Sealed`], encoded and sealed.
    pub(crate) sealed: ByteBuf,
}

/// What [`Secrets`] seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sealed {
    /// The job's environment variables.
    pub(crate) env: Vec<(String, String)>,
    /// The key of the agent's reports ([`ReportKey`]).
    pub(crate) report_key: ByteBuf,
}

/// A message and its signature: what travels of every message but an
/// agent's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Signed {
    /// The signer's public key.
    pub(crate) key: String,
    /// The message, encoded.
    pub(crate) body: ByteBuf,
    pub(crate) signature: ByteBuf,
}

impl Signed {
    /// `message`, of `domain` in `job`, encoded and signed with `key`.
    pub(crate) fn encode<T: Serialize>(
        key: &SigningKey,
        domain: Domain,
        job: &str,
        message: &T,
    ) -> Vec<u8> {
        let body = encode(message);
        let signature = key.sign(domain, job, &body);
        encode(&Signed {
            key: key.public_key(),
            body: ByteBuf::from(body),
            signature: ByteBuf::from(signature),
        })
    }

    /// The signer and the message of `domain` in `job` that `bytes` carry
    /// (a `what`), once its signature is checked.
    pub(crate) fn open<T: for<'de> Deserialize<'de>>(
        bytes: &[u8],
        domain: Domain,
        job: &str,
        what: &str,
    ) -> Result<(String, T), Error> {
        let signed: Signed = decode(bytes, what)?;
        keys::verify(&signed.key, domain, job, &signed.body, &signed.signature)
            .map_err(|err| Error::new(ErrorKind::Remote, format!("a {what}: {}", err.message())))?;
        let message = decode(&signed.body, what)?;
        Ok((signed.key, message))
    }

    /// The message of `domain` in `job` that `bytes` carry (a `what`), once
    /// its signature is checked and found to be `host`'s, the job's host.
    pub(crate) fn open_from_host<T: for<'de> Deserialize<'de>>(
        bytes: &[u8],
        domain: Domain,
        job: &str,
        what: &str,
        host: &str,
    ) -> Result<T, Error> {
        let (signer, message) = Signed::open(bytes, domain, job, what)?;
        if signer != host {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "a {what} signed by {}, not by the job's host",
                    keys::short(&signer)
                ),
            ));
        }
        Ok(message)
    }
}

/// A report and its tag: what an agent publishes on its job's reports
/// subject, tagged with the [`ReportKey`] it shares with the job's host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tagged {
    /// The agent's public key: whose report key the tag is of.
    pub(crate) key: String,
    /// The report, encoded.
    pub(crate) body: ByteBuf,
    pub(crate) tag: ByteBuf,
}

impl Tagged {
    /// `report` of `job`, encoded and tagged with `report_key`, the key
    /// the agent of public key `agent` shares with the job's host.
    pub(crate) fn encode(
        agent: &str,
        report_key: &ReportKey,
        job: &str,
        report: &Report,
    ) -> Vec<u8> {
        let body = encode(report);
        let tag = report_key.tag(Domain::Report, job, &body);
        encode(&Tagged {
            key: agent.to_string(),
            body: ByteBuf::from(body),
            tag: ByteBuf::from(tag),
        })
    }

    /// The agent and the report of `job` that `bytes` carry, once its tag
    /// is checked against the key `key_of` gives for its agent (none: an
    /// agent the job did not admit).
    pub(crate) fn open(
        bytes: &[u8],
        job: &str,
        key_of: impl FnOnce(&str) -> Option<ReportKey>,
    ) -> Result<(String, Report), Error> {
        let tagged: Tagged = decode(bytes, "report")?;
        let Some(report_key) = key_of(&tagged.key) else {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "a report tagged as {}'s, an agent the job did not admit",
                    keys::short(&tagged.key)
                ),
            ));
        };
        if !report_key.check(Domain::Report, job, &tagged.body, &tagged.tag) {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "a report whose tag is not that of {}'s key",
                    keys::short(&tagged.key)
                ),
            ));
        }
        Ok((tagged.key, decode(&tagged.body, "report")?))
    }
}

/// Output a task wrote on an agent (a [`GuestOutput`](crate::GuestOutput)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutputMessage {
    pub(crate) pid: u32,
    pub(crate) task_index: u64,
    pub(crate) stream: Stream,
    pub(crate) bytes: ByteBuf,
    pub(crate) truncated: bool,
}

impl OutputMessage {
    /// The message of `output`, cut to `room` bytes (then truncated).
    pub(crate) fn new(output: &GuestOutput, room: usize) -> Self {
        let kept = output.bytes.len().min(room);
        OutputMessage {
            pid: output.pid,
            task_index: output.task_index,
            stream: output.stream,
            bytes: ByteBuf::from(&output.bytes[..kept]),
            truncated: output.truncated || kept < output.bytes.len(),
        }
    }

    /// The output it carries.
    pub(crate) fn into_output(self) -> GuestOutput {
        GuestOutput {
            pid: self.pid,
            task_index: self.task_index,
            stream: self.stream,
            bytes: self.bytes.into_vec(),
            truncated: self.truncated,
        }
    }
}

/// Encodes a message.
pub(crate) fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Cannot fail: these types encode into a growing vector.
    postcard::to_stdvec(message).expect("wire messages encode")
}

/// Decodes a message of `what`, naming it if it does not decode.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|err| {
        Error::new(
            ErrorKind::Remote,
            format!("a {what} of {} bytes does not decode: {err}", bytes.len()),
        )
    })
}

impl JobSpec {
    /// Checks what an agent relies on.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let refuse = |why: String| Err(Error::new(ErrorKind::Remote, why));
        if self.version != VERSION {
            return refuse(format!(
                "the job is of wire version {}, this agent speaks {VERSION}",
                self.version
            ));
        }
        if self.module.len() != 64 || !self.module.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse("the job's module is not named by a SHA-256".to_string());
        }
        if self.module_size > MODULE_LIMIT {
            return refuse(format!(
                "the job's module of {} bytes is over the {MODULE_LIMIT} bytes an agent fetches",
                self.module_size
            ));
        }
        if self.ack_wait_ms < 300 {
            return refuse(format!(
                "the job's ack wait of {} ms is too short",
                self.ack_wait_ms
            ));
        }
        Ok(())
    }
}

impl ChunkMessage {
    /// Checks that the arguments are where `ends` says.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let mut previous = 0;
        for &end in &self.tasks.ends {
            if end < previous {
                return Err(Error::new(
                    ErrorKind::Remote,
                    "a chunk's argument ends go backwards",
                ));
            }
            previous = end;
        }
        if self.tasks.ends.is_empty() || previous as usize != self.tasks.args.len() {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "a chunk's {} tasks do not end where its {} bytes of arguments do",
                    self.tasks.ends.len(),
                    self.tasks.args.len()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> ChunkMessage {
        ChunkMessage {
            sending: 0,
            tasks: Batch {
                seq: 7,
                task: "square".into(),
                first_index: 100,
                args: ByteBuf::from(vec![0x91, 1, 0x91, 2]),
                ends: vec![2, 4],
                handed: Vec::new(),
            },
        }
    }

    #[test]
    fn messages_round_trip() {
        let message = chunk();
        assert_eq!(
            decode::<ChunkMessage>(&encode(&message), "chunk").unwrap(),
            message
        );
        let mut outcomes = Outcomes::with_capacity(2);
        outcomes.push_ok(&[1]);
        outcomes.push_err(Error::new(ErrorKind::Failed, "no"));
        let report = Report::Outcomes {
            chunk: 7,
            first_index: 100,
            outcomes,
        };
        assert_eq!(
            decode::<Report>(&encode(&report), "report").unwrap(),
            report
        );
    }

    #[test]
    fn output_too_long_for_a_message_is_cut_and_said_so() {
        let output = GuestOutput {
            pid: 7,
            task_index: 3,
            stream: Stream::Stderr,
            bytes: b"hello\nworld\n".to_vec(),
            truncated: false,
        };
        let whole = OutputMessage::new(&output, 100).into_output();
        assert_eq!(whole, output);
        let cut = OutputMessage::new(&output, 6).into_output();
        assert_eq!(cut.bytes, b"hello\n");
        assert!(cut.truncated);
    }

    #[test]
    fn a_chunk_whose_ends_do_not_fit_is_refused() {
        assert!(chunk().check().is_ok());
        let mut past = chunk();
        past.tasks.ends = vec![2, 5];
        assert!(past.check().is_err());
        let mut backwards = chunk();
        backwards.tasks.ends = vec![3, 2, 4];
        assert!(backwards.check().is_err());
        let mut empty = chunk();
        empty.tasks.ends.clear();
        empty.tasks.args.clear();
        assert!(empty.check().is_err());
    }

    #[test]
    fn garbage_does_not_decode() {
        let err = decode::<Report>(&[0xff, 0xff, 0xff], "report").unwrap_err();
        assert!(err.message().contains("report of 3 bytes"), "{err}");
    }

    #[test]
    fn job_ids_are_plain() {
        assert!(is_job_id("AbC123"));
        assert!(!is_job_id("a.b"));
        assert!(!is_job_id("a*"));
        assert!(!is_job_id(""));
    }
}
