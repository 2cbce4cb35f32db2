//! The server's side of a job: connecting, and the streams and buckets of
//! [`wire`](super::wire), made on first use by whichever host or agent
//! comes first.

use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;

use async_nats::jetstream::{self, kv, object_store, stream};

use super::Nats;
use super::throttle::Throttle;
use super::wire::{self, AGENT_TTL, AGENTS, CHUNKS, ENVELOPE, JOBS, MODULES, REPORTS};
use crate::error::{Error, ErrorKind};
use futures_util::StreamExt;

/// An agent serving the jobs of a NATS server, as
/// [`Pool::agents`](crate::Pool::agents) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentInfo {
    /// Its name (`--name`, or its host name and pid).
    pub name: String,
    /// How many worker processes it gives each job.
    pub processes: usize,
    /// Its process id, on its own machine.
    pub pid: u32,
    /// How many jobs it serves now.
    pub jobs: usize,
    /// The public key it signs its reports with (`U...`): what a pool
    /// trusts with [`Nats::trust_agent`](crate::Nats::trust_agent).
    pub key: String,
}

/// How long chunks and reports are kept at most, whatever becomes of
/// their job: a job's host deletes them when it ends, this bounds what a
/// job whose host died (and agents that never saw it) leave behind.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a pool or agent waits for a server it lost (restarting, or out
/// of reach) before it gives up on what it has out there.
pub(crate) const SERVER_PATIENCE: Duration = Duration::from_secs(60);
/// How long after the server failed to store a message it is published
/// again.
const REPUBLISH_AFTER: Duration = Duration::from_millis(250);

/// A connection, with the streams and buckets a job uses.
pub(crate) struct Store {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) jobs: kv::Store,
    pub(crate) agents: kv::Store,
    pub(crate) modules: object_store::ObjectStore,
    pub(crate) chunks: stream::Stream,
    pub(crate) reports: stream::Stream,
}

impl Store {
    /// Connects as `name`, and makes the streams and buckets that are not
    /// there yet.
    pub(crate) async fn open(nats: &Nats, name: &str) -> Result<Store, Error> {
        let client = nats.connect(name).await?;
        let js = jetstream::new(client.clone());
        let jobs = jobs_bucket(&js).await?;
        let agents = bucket(&js, AGENTS, AGENT_TTL, "agents").await?;
        let modules = modules_store(&js).await?;
        let chunks = js
            .get_or_create_stream(chunks_config())
            .await
            .map_err(|err| remote("cannot make the stream of chunks", err))?;
        let reports = js
            .get_or_create_stream(reports_config())
            .await
            .map_err(|err| remote("cannot make the stream of reports", err))?;
        Ok(Store {
            client,
            js,
            jobs,
            agents,
            modules,
            chunks,
            reports,
        })
    }

    /// Deletes job `job` and what it left on the server: its key (agents
    /// stop serving it), its consumer, its chunks and its reports.
    pub(crate) async fn tidy(&self, job: &str) {
        if let Err(err) = self.jobs.delete(job).await {
            tracing::warn!("job {job}: cannot delete it: {err}");
        }
        let _ = self.chunks.delete_consumer(&wire::consumer_name(job)).await;
        let _ = self.chunks.purge().filter(wire::chunks_subject(job)).await;
        let _ = self
            .reports
            .purge()
            .filter(wire::reports_subject(job))
            .await;
    }

    /// Puts `module` in the object store under its hash, unless it is
    /// there.
    pub(crate) async fn publish_module(&self, hash: &str, module: &[u8]) -> Result<(), Error> {
        if let Ok(info) = self.modules.info(hash).await
            && !info.deleted
            && info.size == module.len()
        {
            return Ok(());
        }
        let mut reader = module;
        // In pieces that fit the server's messages (128 KiB unless they are
        // smaller).
        let metadata = object_store::ObjectMetadata {
            name: hash.to_string(),
            chunk_size: Some(self.message_room().clamp(1024, 128 << 10)),
            ..Default::default()
        };
        self.modules
            .put(metadata, &mut reader)
            .await
            .map_err(|err| remote("cannot put the module in the object store", err))?;
        Ok(())
    }

    /// The agents that showed they live within [`AGENT_TTL`].
    pub(crate) async fn agents(&self) -> Result<Vec<AgentInfo>, Error> {
        let mut keys = self
            .agents
            .keys()
            .await
            .map_err(|err| remote("cannot list the agents", err))?;
        let mut agents = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|err| remote("cannot list the agents", err))?;
            let Ok(Some(entry)) = self.agents.entry(key).await else {
                continue;
            };
            let record = wire::decode::<wire::AgentRecord>(&entry.value, "record of an agent");
            let fresh = entry.operation == kv::Operation::Put;
            if let (true, Ok(record)) = (fresh, record) {
                agents.push(AgentInfo {
                    name: record.name,
                    processes: record.processes,
                    pid: record.pid,
                    jobs: record.jobs,
                    key: record.key,
                });
            }
        }
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(agents)
    }

    /// Publishes `payload` on `subject` (unless `sent` is its publication
    /// already) and waits until the server has stored it; returns its
    /// sequence in its stream. A server that
    /// does not answer may be restarting: the message is published again
    /// (a copy stored after all is a duplicate, which readers drop) until it
    /// is stored, [`SERVER_PATIENCE`] has passed, or `stop()` says so.
    pub(crate) async fn publish_stored(
        &self,
        subject: String,
        payload: Bytes,
        sent: Option<PublishAckFuture>,
        stop: impl Fn() -> bool,
    ) -> Result<u64, Error> {
        let started = Instant::now();
        let mut warnings = Throttle::default();
        let mut sent = match sent {
            Some(ack) => Ok(ack),
            None => self.js.publish(subject.clone(), payload.clone()).await,
        };
        loop {
            let stored = match sent {
                Ok(ack) => ack.await.map(|ack| ack.sequence),
                Err(err) => Err(err),
            };
            match stored {
                Ok(sequence) => return Ok(sequence),
                Err(err) if started.elapsed() < SERVER_PATIENCE && !stop() => {
                    if let Some(held) = warnings.pass() {
                        tracing::warn!("{subject}: {err}: publishing it again{held}");
                    }
                    tokio::time::sleep(REPUBLISH_AFTER).await;
                    sent = self.js.publish(subject.clone(), payload.clone()).await;
                }
                Err(err) => {
                    return Err(remote(
                        &format!("the server did not store a message within {SERVER_PATIENCE:?}"),
                        err,
                    ));
                }
            }
        }
    }

    /// The most bytes of arguments or results one message may carry.
    pub(crate) fn message_room(&self) -> usize {
        (self.client.server_info().max_payload).saturating_sub(ENVELOPE)
    }
}

/// The stream of chunks: a work queue, each chunk taken by one agent.
pub(crate) fn chunks_config() -> stream::Config {
    stream::Config {
        name: CHUNKS.to_string(),
        subjects: vec!["wasmpool.chunks.*".to_string()],
        retention: stream::RetentionPolicy::WorkQueue,
        max_age: KEEP,
        ..Default::default()
    }
}

/// The stream of reports, read by each job's host from its start.
pub(crate) fn reports_config() -> stream::Config {
    stream::Config {
        name: REPORTS.to_string(),
        subjects: vec!["wasmpool.reports.*".to_string()],
        max_age: KEEP,
        ..Default::default()
    }
}

/// The bucket of jobs, made if it is not there.
pub(crate) async fn jobs_bucket(js: &jetstream::Context) -> Result<kv::Store, Error> {
    bucket(js, JOBS, Duration::ZERO, "jobs").await
}

/// The object store of modules, made if it is not there.
pub(crate) async fn modules_store(
    js: &jetstream::Context,
) -> Result<object_store::ObjectStore, Error> {
    match js.get_object_store(MODULES).await {
        Ok(modules) => Ok(modules),
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: MODULES.to_string(),
                ..Default::default()
            })
            .await
            .map_err(|err| remote("cannot make the object store of modules", err)),
    }
}

/// The key-value bucket `name` (of `what`), made if it is not there, each
/// key keeping its last value, for `max_age` (zero: for ever).
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    what: &str,
) -> Result<kv::Store, Error> {
    if let Ok(bucket) = js.get_key_value(name).await {
        return Ok(bucket);
    }
    js.create_key_value(kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age,
        ..Default::default()
    })
    .await
    .map_err(|err| remote(&format!("cannot make the bucket of {what}"), err))
}

/// An error of the server, saying what was being done.
pub(crate) fn remote(doing: &str, err: impl std::fmt::Display) -> Error {
    let err = err.to_string();
    let lower = err.to_ascii_lowercase();
    let hint = if [
        "jetstream not enabled",
        "jetstream unavailable",
        "no responders",
    ]
    .iter()
    .any(|sign| lower.contains(sign))
    {
        " (is JetStream enabled on the server? start it with `nats-server -js`)"
    } else {
        ""
    };
    Error::new(ErrorKind::Remote, format!("NATS: {doing}: {err}{hint}"))
}
