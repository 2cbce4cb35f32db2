//! The host's side of enrollment: agents ask a job's host to serve it
//! ([`Enrollment`], on the job's enroll subject); the host answers each,
//! signed, with the job's secrets sealed to that request (and the key the
//! agent's reports are tagged with, made for that agent), or with why it
//! may not. The [`Roster`] is the agents it admitted: the only ones whose
//! reports and output the host takes.
//!
//! The agent's side is `agent/enroll.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_bytes::ByteBuf;

use super::keys::{self, Domain, ReportKey, SigningKey};
use super::wire::{self, Enrolled, Enrollment, Sealed, Secrets, Signed};
use crate::channel::bounds;
use crate::error::Error;

/// The most agents one job admits: past it, a request is refused (one key
/// per agent; a flood of keys would otherwise grow the roster for ever).
const MOST_AGENTS: usize = 10_000;

/// The agents a job admits, and what it hands them.
pub(crate) struct Roster {
    job: String,
    key: SigningKey,
    /// The agent keys the pool trusts; empty: any agent that asks.
    trusted: HashSet<String>,
    /// The job's environment variables: sealed anew to each request.
    env: Vec<(String, String)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The keys admitted, with the name their agent gave and the key of
    /// their reports (the same for every request of one agent key).
    admitted: HashMap<String, (String, ReportKey)>,
    /// The keys refused, warned of once each.
    refused: HashSet<String>,
}

impl Roster {
    /// The roster of `job`, whose host signs with `key`, admitting the
    /// agents of `trusted` (or, if none, any), and handing them `env`.
    pub(crate) fn new(
        job: &str,
        key: SigningKey,
        trusted: &[String],
        env: &[(String, String)],
    ) -> Roster {
        Roster {
            job: job.to_string(),
            key,
            trusted: trusted.iter().cloned().collect(),
            env: env.to_vec(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the agent of `key` was admitted.
    pub(crate) fn admits(&self, key: &str) -> bool {
        self.state().admitted.contains_key(key)
    }

    /// The key of the reports of the agent of `key`, if it was admitted.
    pub(crate) fn report_key(&self, key: &str) -> Option<ReportKey> {
        let state = self.state();
        state
            .admitted
            .get(key)
            .map(|(_, report_key)| report_key.clone())
    }

    /// The answer to the request in `payload`, signed; none for what is
    /// not a request signed by the key it names.
    pub(crate) fn answer(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let job = &self.job;
        let (agent, request) =
            match Signed::open::<Enrollment>(payload, Domain::Enroll, job, "request to serve") {
                Ok(opened) => opened,
                Err(err) => {
                    tracing::warn!("job {job}: dropped on {}: {err}", wire::enroll_subject(job));
                    return None;
                }
            };
        let name = match bounds::check_name("agent name", &request.name) {
            Ok(()) => request.name.clone(),
            Err(_) => keys::short(&agent),
        };
        let answer = self.admit(&agent, &name).and_then(|report_key| {
            let secrets = wire::encode(&Sealed {
                env: self.env.clone(),
                report_key: ByteBuf::from(report_key.as_bytes()),
            });
            let (exchange, sealed) =
                keys::seal(&secrets, &request.exchange).map_err(|err| err.message().to_string())?;
            Ok(Secrets {
                exchange,
                sealed: ByteBuf::from(sealed),
            })
        });
        let enrolled = Enrolled {
            agent,
            nonce: request.nonce,
            answer,
        };
        Some(Signed::encode(&self.key, Domain::Enrolled, job, &enrolled))
    }

    /// Admits the agent of `key`, called `name`, with the key of its
    /// reports, or says why not.
    fn admit(&self, key: &str, name: &str) -> Result<ReportKey, String> {
        let job = &self.job;
        let mut state = self.state();
        if let Some((_, report_key)) = state.admitted.get(key) {
            return Ok(report_key.clone());
        }
        let why = if !self.trusted.is_empty() && !self.trusted.contains(key) {
            format!("the pool does not trust its key {key} (give the pool `--trust-agent {key}`)")
        } else if state.admitted.len() >= MOST_AGENTS {
            format!("the job has admitted its most agents, {MOST_AGENTS}")
        } else {
            tracing::info!(
                "job {job}: agent {name} serves it, key {}",
                keys::short(key)
            );
            let report_key = ReportKey::generate();
            state
                .admitted
                .insert(key.to_string(), (name.to_string(), report_key.clone()));
            return Ok(report_key);
        };
        if state.refused.len() < MOST_AGENTS && state.refused.insert(key.to_string()) {
            tracing::warn!("job {job}: refused agent {name}: {why}");
        }
        Err(why)
    }
}

/// The task that answers the agents' requests to serve the job.
pub(crate) async fn serve(
    roster: std::sync::Arc<Roster>,
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
) {
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else {
            continue;
        };
        if let Some(answer) = roster.answer(&request.payload)
            && let Err(err) = client.publish(reply, Bytes::from(answer)).await
        {
            tracing::warn!("job {}: cannot answer an agent: {err}", roster.job);
        }
    }
}

/// The job's environment variables and the key of the agent's reports
/// that an [`Enrolled`] answer to a request made with `exchange` carries.
pub(crate) fn opened_secrets(
    secrets: &Secrets,
    exchange: &nkeys::XKey,
) -> Result<(Vec<(String, String)>, ReportKey), Error> {
    let sealed = keys::unseal(&secrets.sealed, exchange, &secrets.exchange)?;
    let sealed: Sealed = wire::decode(&sealed, "job's secrets")?;
    Ok((sealed.env, ReportKey::from_bytes(&sealed.report_key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(agent: &SigningKey, job: &str, exchange: &nkeys::XKey) -> Vec<u8> {
        Signed::encode(
            agent,
            Domain::Enroll,
            job,
            &Enrollment {
                name: "a1".into(),
                nonce: "n1".into(),
                exchange: exchange.public_key(),
            },
        )
    }

    fn answered(roster: &Roster, payload: &[u8]) -> Enrolled {
        let answer = roster.answer(payload).expect("answered");
        let (key, enrolled) =
            Signed::open::<Enrolled>(&answer, Domain::Enrolled, "job1", "answer").unwrap();
        assert_eq!(key, roster.key.public_key());
        enrolled
    }

    #[test]
    fn a_trusted_agent_is_admitted_with_the_secrets_and_another_is_not() {
        let (host, trusted, stranger) = (
            SigningKey::generate(),
            SigningKey::generate(),
            SigningKey::generate(),
        );
        let env = [("TOKEN".to_string(), "s3cret".to_string())];
        let roster = Roster::new("job1", host, &[trusted.public_key()], &env);
        let exchange = keys::exchange_key();

        let enrolled = answered(&roster, &request(&trusted, "job1", &exchange));
        assert_eq!(enrolled.agent, trusted.public_key());
        assert_eq!(enrolled.nonce, "n1");
        let secrets = enrolled.answer.unwrap();
        let (opened, report_key) = opened_secrets(&secrets, &exchange).unwrap();
        assert_eq!(opened, env);
        assert!(roster.admits(&trusted.public_key()));
        // Its reports' key is the roster's for it, and for it only; asked
        // again, the same.
        let tag = report_key.tag(Domain::Report, "job1", b"report");
        let kept = roster.report_key(&trusted.public_key()).unwrap();
        assert!(kept.check(Domain::Report, "job1", b"report", &tag));
        assert!(!kept.check(Domain::Report, "job2", b"report", &tag));
        assert!(!kept.check(Domain::Output, "job1", b"report", &tag));
        assert!(!kept.check(Domain::Report, "job1", b"another", &tag));
        let again = answered(&roster, &request(&trusted, "job1", &exchange));
        let (_, same) = opened_secrets(&again.answer.unwrap(), &exchange).unwrap();
        assert_eq!(same.as_bytes(), report_key.as_bytes());
        assert!(roster.report_key(&stranger.public_key()).is_none());

        let refused = answered(&roster, &request(&stranger, "job1", &exchange));
        let why = refused.answer.unwrap_err();
        assert!(why.contains(&stranger.public_key()), "{why}");
        assert!(!roster.admits(&stranger.public_key()));
    }

    #[test]
    fn with_no_trusted_key_any_agent_is_admitted_but_forgeries_are_not() {
        let roster = Roster::new("job1", SigningKey::generate(), &[], &[]);
        let agent = SigningKey::generate();
        let exchange = keys::exchange_key();
        assert!(
            answered(&roster, &request(&agent, "job1", &exchange))
                .answer
                .is_ok()
        );
        assert!(roster.admits(&agent.public_key()));

        // Signed for another job, or not signed by the key it names.
        let other = SigningKey::generate();
        assert!(roster.answer(&request(&other, "job2", &exchange)).is_none());
        let mut forged: Signed =
            wire::decode(&request(&other, "job1", &exchange), "request").unwrap();
        forged.key = SigningKey::generate().public_key();
        assert!(roster.answer(&wire::encode(&forged)).is_none());
        assert!(roster.answer(b"junk").is_none());
        assert!(!roster.admits(&other.public_key()));
    }
}
