//! The watchdog on a job's state on the server: what its host and agents
//! rely on there — the streams of chunks and reports, the job's consumer,
//! its record in the bucket of jobs, its module — may vanish (deleted by
//! someone, or lost by a server that restarted without its store). Checked
//! at every heartbeat, what vanished is made again; what the streams held
//! is gone with them, so the host then sends its chunks out again, and
//! reads the reports anew. What cannot be made again fails the tasks out
//! with an error that names it. The consumer's ack floor tells the host
//! which chunks were acknowledged: one acknowledged whose outcomes never
//! came (a client that took it and did not run it) is sent again.

use std::sync::{Mutex, PoisonError};

use async_nats::datetime::DateTime;
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream;

use super::store::{Store, chunks_config, jobs_bucket, modules_store, remote, reports_config};
use crate::error::Error;

/// What a check found vanished, and made again.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// What vanished, as a warning names it.
    pub(crate) vanished: Vec<&'static str>,
    /// The stream of chunks was made anew: the chunks out are gone.
    pub(crate) chunks_lost: bool,
    /// The stream of reports was made anew: reports not yet read are gone.
    pub(crate) reports_lost: bool,
    /// A check the server did not answer: nothing is known vanished.
    pub(crate) unchecked: Option<Error>,
    /// The consumer's ack floor: every chunk stored at or before this
    /// sequence of the stream of chunks was acknowledged (none if not
    /// known).
    pub(crate) ack_floor: Option<u64>,
}

/// A job's state on the server, as its host watches it.
pub(crate) struct Watched {
    /// The job's consumer of chunks, as it was made.
    consumer: pull::Config,
    /// The module's SHA-256 (its name in the object store), and its bytes.
    module_hash: String,
    module: Vec<u8>,
    /// When the streams of chunks and reports were made, as last seen: one
    /// made at another time is another stream.
    made: Mutex<(DateTime, DateTime)>,
}

impl Watched {
    /// Watches the state `store` holds now for a job with `consumer`, and
    /// `module` (named `module_hash`).
    pub(crate) fn new(
        store: &Store,
        consumer: pull::Config,
        module_hash: String,
        module: Vec<u8>,
    ) -> Self {
        Watched {
            consumer,
            module_hash,
            module,
            made: Mutex::new((
                store.chunks.cached_info().created,
                store.reports.cached_info().created,
            )),
        }
    }

    /// Checks that everything the job relies on is on the server, and makes
    /// again what is not. `Err` names what vanished and could not be made
    /// again; a check the server did not answer is no sign that anything
    /// vanished, and is in [`Restored::unchecked`].
    pub(crate) async fn check(&self, store: &Store) -> Result<Restored, Error> {
        let mut restored = Restored::default();
        let (chunks, reports) = *self.made.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(chunks_now) = made_at(
            store,
            chunks_config(),
            "the stream of chunks",
            &mut restored,
        )
        .await?
        else {
            return Ok(restored);
        };
        let Some(reports_now) = made_at(
            store,
            reports_config(),
            "the stream of reports",
            &mut restored,
        )
        .await?
        else {
            return Ok(restored);
        };
        // Made anew, by this check or by another client since (a host or
        // an agent that found it missing).
        for (lost, now, seen, what) in [
            (
                &mut restored.chunks_lost,
                &chunks_now,
                chunks,
                "the stream of chunks",
            ),
            (
                &mut restored.reports_lost,
                &reports_now,
                reports,
                "the stream of reports",
            ),
        ] {
            *lost = *now != seen;
            if *lost {
                restored.vanished.push(what);
            }
        }
        *self.made.lock().unwrap_or_else(PoisonError::into_inner) = (chunks_now, reports_now);
        let name = self.consumer.durable_name.as_deref().unwrap_or_default();
        match store.chunks.consumer_info(name).await {
            Ok(info) => restored.ack_floor = Some(info.ack_floor.stream_sequence),
            Err(err) if is_not_found(&err) => {
                if !restored.chunks_lost {
                    restored.vanished.push("the job's consumer");
                }
                store
                    .chunks
                    .create_consumer(self.consumer.clone())
                    .await
                    .map_err(again("the job's consumer"))?;
            }
            Err(err) => restored.unchecked = Some(remote("cannot check the job's consumer", err)),
        }
        match store.js.get_key_value(super::wire::JOBS).await {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {
                // The heartbeat puts the job in it again.
                restored.vanished.push("the bucket of jobs");
                jobs_bucket(&store.js).await?;
            }
            Err(err) => restored.unchecked = Some(remote("cannot check the bucket of jobs", err)),
        }
        match store.modules.info(&self.module_hash).await {
            Ok(info) if !info.deleted => {}
            Err(err) if !is_not_found(&err) => {
                restored.unchecked = Some(remote("cannot check the job's module", err));
            }
            _ => {
                restored.vanished.push("the job's module");
                modules_store(&store.js).await?;
                store
                    .publish_module(&self.module_hash, &self.module)
                    .await?;
            }
        }
        Ok(restored)
    }
}

/// When the stream `config` names (`what`) was made, made again if it
/// vanished; `None` if the server did not answer (said in `restored`).
async fn made_at(
    store: &Store,
    config: stream::Config,
    what: &'static str,
    restored: &mut Restored,
) -> Result<Option<DateTime>, Error> {
    match store.js.get_stream(&config.name).await {
        Ok(stream) => Ok(Some(stream.cached_info().created)),
        Err(err) if is_not_found(&err) => {
            let made = store
                .js
                .get_or_create_stream(config)
                .await
                .map_err(again(what))?;
            Ok(Some(made.cached_info().created))
        }
        Err(err) => {
            restored.unchecked = Some(remote(&format!("cannot check {what}"), err));
            Ok(None)
        }
    }
}

/// Whether the server said that what was asked for is not there.
fn is_not_found(err: &impl std::fmt::Display) -> bool {
    err.to_string().to_ascii_lowercase().contains("not found")
}

/// The error of making `what` again.
fn again<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |err| remote(&format!("{what} vanished, and cannot be made again"), err)
}
