//! The agent's side of enrollment (the host's is
//! `backend/nats/enroll.rs`): before it pulls a job's chunks, an agent asks
//! the job's host to serve it, signed with its key; the answer, signed by
//! the job's host key, admits it with the job's secrets (and the key its
//! reports are tagged with) sealed to this request, or refuses it, and then
//! the agent leaves the job's chunks to others.

use std::time::Duration;

use bytes::Bytes;

use super::context::JobContext;
use crate::backend::nats::enroll::opened_secrets;
use crate::backend::nats::keys::{self, Domain, ReportKey};
use crate::backend::nats::throttle::Throttle;
use crate::backend::nats::wire::{self, Enrolled, Enrollment, Signed};
use crate::channel::bounds;
use crate::error::{Error, ErrorKind};

/// How long an agent waits for the host's answer before it asks again.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long after a request that went unanswered the agent asks again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The job's environment variables, and the key this agent's reports are
/// tagged with.
pub(crate) type Admitted = (Vec<(String, String)>, ReportKey);

/// Asks the host of `job`, whose key is `host`, to serve it, until it
/// answers: what it hands an agent it admits, or why not.
pub(crate) async fn enroll(context: &JobContext, job: &str, host: &str) -> Result<Admitted, Error> {
    let mut warnings = Throttle::default();
    loop {
        match ask(context, job, host).await {
            Ok(answer) => return answer,
            Err(err) => {
                if let Some(held) = warnings.pass() {
                    tracing::warn!("job {job}: asking its host to serve it: {err}{held}");
                }
                tokio::time::sleep(ASK_AGAIN_AFTER).await;
            }
        }
    }
}

/// Asks once: the answer, or an error if no good answer came.
async fn ask(
    context: &JobContext,
    job: &str,
    host: &str,
) -> Result<Result<Admitted, Error>, Error> {
    let exchange = keys::exchange_key();
    let nonce = nuid::next().to_string();
    let request = Signed::encode(
        &context.key,
        Domain::Enroll,
        job,
        &Enrollment {
            name: context.agent.clone(),
            nonce: nonce.clone(),
            exchange: exchange.public_key(),
        },
    );
    let client = &context.store.client;
    let reply = tokio::time::timeout(
        ANSWER_WAIT,
        client.request(wire::enroll_subject(job), Bytes::from(request)),
    )
    .await
    .map_err(|_| {
        Error::new(
            ErrorKind::Remote,
            format!("no answer within {ANSWER_WAIT:?}"),
        )
    })?
    .map_err(|err| Error::new(ErrorKind::Remote, err.to_string()))?;
    let enrolled: Enrolled =
        Signed::open_from_host(&reply.payload, Domain::Enrolled, job, "host's answer", host)?;
    if enrolled.nonce != nonce || enrolled.agent != context.key.public_key() {
        return Err(Error::new(
            ErrorKind::Remote,
            "an answer to another request",
        ));
    }
    Ok(match enrolled.answer {
        Ok(secrets) => Ok(opened_secrets(&secrets, &exchange)?),
        Err(why) => Err(Error::new(
            ErrorKind::Config,
            format!(
                "its host refused this agent: {}",
                bounds::cut(why, bounds::NAME_BYTES * 4)
            ),
        )),
    })
}
