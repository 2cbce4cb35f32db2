//! Trust on the NATS backend, against peers that lie: a rogue client of the
//! same server (no keys, or a key of its own) that reads, forges and
//! replays; agents with keys a pool does not trust; hosts with keys an
//! agent does not trust. Real `nats-server`, real agents, real guests.

#[path = "common/command.rs"]
mod command;
mod common;
#[path = "common/nats.rs"]
mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use command::wasmpool;
use common::{DEADLINE, OUTCOME_WAIT, builder, deadline, outcome};
use server::{AgentProcess, NatsServer};
use wasmpool::{ErrorKind, GuestOutput, Nats, SigningKey};

/// 666, as MessagePack: the result a lying agent claims.
const FORGED_RESULT: [u8; 3] = [0xcd, 0x02, 0x9a];

/// The job id in a subject `wasmpool.<what>.<job>`.
fn job_of(subject: &str) -> String {
    subject.rsplit('.').next().unwrap().to_string()
}

/// A rogue without a key the pool admitted: it reads every chunk, and
/// answers each with well-formed reports that say every task returned 666,
/// tagged as an agent of its own, and as the job's own agent (without the
/// report key the host sealed to that agent); it publishes junk as reports,
/// output and chunks; it replays another job's real reports and chunks onto
/// this one.
/// The pool delivers the agent's outcomes only, each once; the forged
/// output never reaches the handler; the agent drops the junk chunk saying
/// where it came from.
#[test]
fn a_rogue_without_an_admitted_key_forges_nothing() {
    let _deadline = deadline("forgeries against a job", DEADLINE);
    let server = NatsServer::start();
    let agent = AgentProcess::start(server.url(), 1, "honest");
    let mut rogue = server.raw_client(None);
    rogue.subscribe("wasmpool.chunks.*");
    rogue.subscribe("wasmpool.reports.*");
    assert_eq!(rogue.flush(), None);

    // A first job, whose real reports and chunks the rogue keeps.
    let first = builder(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let squares: Vec<i64> = first.map("square", 1..=6i64, Some(1)).unwrap();
    assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
    let kept = rogue.messages(Duration::from_millis(300));
    let old_reports: Vec<Vec<u8>> = kept
        .iter()
        .filter(|(subject, _)| subject.starts_with("wasmpool.reports."))
        .map(|(_, payload)| payload.clone())
        .collect();
    let old_chunk = kept
        .iter()
        .find(|(subject, _)| subject.starts_with("wasmpool.chunks."))
        .map(|(_, payload)| payload.clone())
        .expect("the rogue read the first job's chunks");
    assert_eq!(old_reports.len(), 6, "one report a chunk");

    // The second job: six tasks of 300 ms on one worker, so that most are
    // still to run when the forgeries come.
    let written = Arc::new(Mutex::new(Vec::<GuestOutput>::new()));
    let kept_output = written.clone();
    let second = builder(1)
        .nats(server.url())
        .on_output(move |output| kept_output.lock().unwrap().push(output.clone()))
        .build()
        .expect("the pool starts");
    let running = second
        .map_async::<u64, _, _>("sleep_ms", [300u64; 6], 1)
        .unwrap();
    let chunks: Vec<(String, Vec<u8>)> = rogue
        .messages(Duration::from_millis(200))
        .into_iter()
        .filter(|(subject, _)| subject.starts_with("wasmpool.chunks."))
        .collect();
    assert!(!chunks.is_empty(), "the rogue reads the chunks");
    let job = job_of(&chunks[0].0);
    let reports = format!("wasmpool.reports.{job}");
    let rogue_key = SigningKey::generate().public_key();
    for (_, chunk) in &chunks {
        for as_whom in [&rogue_key, &agent.key()] {
            let forged = wasmpool::internals::forged_report(as_whom, &job, chunk, &FORGED_RESULT)
                .expect("a chunk");
            rogue.publish(&reports, &forged);
        }
    }
    for report in &old_reports {
        rogue.publish(&reports, report);
    }
    rogue.publish(&reports, b"junk");
    rogue.publish(&format!("wasmpool.output.{job}"), b"\x1b]0;owned\x07");
    rogue.publish(&format!("wasmpool.chunks.{job}"), &old_chunk);
    rogue.publish(&format!("wasmpool.chunks.{job}"), b"junk");
    assert_eq!(rogue.flush(), None);

    let slept = outcome(&running, "the second job's tasks").unwrap();
    assert_eq!(slept, [300; 6], "only the agent's outcomes");
    agent.wait_for_line(&format!("dropped on wasmpool.chunks.{job}"), OUTCOME_WAIT);
    assert!(
        written.lock().unwrap().is_empty(),
        "forged output reached the handler"
    );
    // The agent's own still serves the job.
    assert_eq!(second.apply::<u64, _>("sleep_ms", (1u64,)).unwrap(), 1);
}

/// A rogue takes a chunk from the job's consumer, as an agent would,
/// acknowledges it without running it, and reports it done with a key of
/// its own: the chunk is gone from the server, and the report is refused.
/// The host sees the chunk acknowledged with no outcome from an agent it
/// admitted, sends it again, and the agent that comes runs it: the task
/// gets its one real outcome rather than wait for ever.
#[test]
fn a_chunk_taken_and_acknowledged_by_a_rogue_runs_after_all() {
    let _deadline = deadline("a chunk a rogue acknowledged", DEADLINE);
    let server = NatsServer::start();
    let mut rogue = server.raw_client(None);
    rogue.subscribe("$KV.wasmpool_jobs.*");
    assert_eq!(rogue.flush(), None);
    let pool = builder(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let running = pool.apply_async::<i64, _>("square", (5,)).unwrap();
    let job = rogue
        .messages(Duration::from_millis(300))
        .first()
        .map(|(subject, _)| job_of(subject))
        .expect("the job's record");
    let chunk = rogue.pull_and_ack("WASMPOOL_CHUNKS", &format!("job-{job}"));
    let rogue_key = SigningKey::generate().public_key();
    let forged = wasmpool::internals::forged_report(&rogue_key, &job, &chunk, &FORGED_RESULT)
        .expect("the rogue took a chunk");
    rogue.publish(&format!("wasmpool.reports.{job}"), &forged);
    assert_eq!(rogue.flush(), None);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!running.ready(), "a forged outcome was taken");
    let _agent = AgentProcess::start(server.url(), 1, "late");
    assert_eq!(outcome(&running, "the task a rogue took"), Ok(25));
}

/// A pool that trusts one agent's key: an agent with another key asks to
/// serve the job, is refused, and takes none of its chunks (they wait for
/// the trusted agent, which runs them all).
#[test]
fn an_agent_the_pool_does_not_trust_serves_none_of_its_job() {
    let _deadline = deadline("an untrusted agent", DEADLINE);
    let server = NatsServer::start();
    let stranger = AgentProcess::start(server.url(), 1, "stranger");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("trusted.nk");
    let key_path = key_file.to_str().unwrap();
    let made = wasmpool(&["keygen", key_path], "");
    assert!(made.status.success(), "{made:?}");
    let public = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(public.starts_with('U') && public.len() == 56, "{public}");

    let pool = builder(1)
        .nats_options(Nats::new(server.url()).trust_agent(&public))
        .build()
        .expect("the pool starts");
    let running = pool.map_async::<i64, _, _>("square", 0..10i64, 1).unwrap();
    let refused = stranger.wait_for_line("not served: its host refused this agent", OUTCOME_WAIT);
    assert!(refused.contains(&stranger.key()), "{refused}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !running.ready(),
        "tasks ran on an agent the pool does not trust"
    );

    let trusted = AgentProcess::start_with(server.url(), 1, "trusted", &["--key", key_path]);
    assert_eq!(trusted.key(), public);
    let squares = outcome(&running, "the trusted agent's tasks").unwrap();
    assert_eq!(squares, (0..10i64).map(|x| x * x).collect::<Vec<_>>());
    assert!(
        !stranger.stderr().contains("serving, module"),
        "{}",
        stranger.stderr()
    );
}

/// An agent started with `--trust-host` serves the jobs signed by that
/// host key only: another host's job is not served (said once), the
/// trusted host's is.
#[test]
fn an_agent_serves_only_the_hosts_it_trusts() {
    let _deadline = deadline("an agent that trusts one host", DEADLINE);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host_key = SigningKey::write_new(dir.path().join("host.nk")).unwrap();
    let agent = AgentProcess::start_with(
        server.url(),
        1,
        "loyal",
        &["--trust-host", &host_key.public_key()],
    );

    let other = builder(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let waiting = other.apply_async::<i64, _>("square", (3,)).unwrap();
    let line = agent.wait_for_line("which this agent does not trust", OUTCOME_WAIT);
    assert!(line.contains("not served"), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.ready(), "an untrusted host's task ran");
    drop(other);

    let key = SigningKey::from_file(dir.path().join("host.nk")).unwrap();
    let trusted = builder(1)
        .nats_options(Nats::new(server.url()).key(key))
        .build()
        .expect("the pool starts");
    assert_eq!(trusted.apply::<i64, _>("square", (4,)).unwrap(), 16);
}

/// A rogue rewrites a running job's record: with another job's record (a
/// module of its choosing, signed by that job's host), and with junk. An
/// agent that joins mid-job ignores both, and runs the job's own module:
/// every task's outcome is its own module's.
#[test]
fn a_rewritten_job_record_runs_nothing_of_the_rogues() {
    let _deadline = deadline("a job record rewritten", DEADLINE);
    let server = NatsServer::start();
    let mut rogue = server.raw_client(None);
    rogue.subscribe("$KV.wasmpool_jobs.*");
    assert_eq!(rogue.flush(), None);
    // The rogue's job, of another module (the seeds' examples).
    let _first = AgentProcess::start(server.url(), 1, "first");
    let theirs = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let records = rogue.messages(Duration::from_millis(300));
    let (subject, their_record) = records.last().cloned().expect("the job's record");
    let their_job = job_of(&subject);

    let ours = builder(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    assert_eq!(ours.apply::<i64, _>("square", (2,)).unwrap(), 4);
    let our_job = rogue
        .messages(Duration::from_millis(2500))
        .into_iter()
        .map(|(subject, _)| job_of(&subject))
        .find(|job| *job != their_job)
        .expect("our job's record");
    let our_subject = format!("$KV.wasmpool_jobs.{our_job}");
    rogue.publish(&our_subject, &their_record);
    assert_eq!(rogue.flush(), None);
    let late = AgentProcess::start(server.url(), 1, "late");
    late.wait_for_line(&format!("job {our_job}: "), OUTCOME_WAIT);
    rogue.publish(&our_subject, b"junk");
    assert_eq!(rogue.flush(), None);
    let squares: Vec<i64> = ours.map("square", 0..20i64, Some(1)).unwrap();
    assert_eq!(squares, (0..20i64).map(|x| x * x).collect::<Vec<_>>());
    let said = late.stderr();
    assert!(said.contains("its signature is not"), "{said}");
    drop(theirs);
}

/// A job's environment variables cross the server sealed to the agent the
/// pool trusts: the task reads the value, and a client that subscribes to
/// every subject of the server sees it nowhere. A pool that names no
/// trusted agent is refused, naming the variable and what to do.
#[test]
fn secrets_cross_the_server_sealed_to_trusted_agents_only() {
    let _deadline = deadline("a job's secrets", DEADLINE);
    let server = NatsServer::start();
    let mut listener = server.raw_client(None);
    listener.subscribe(">");
    assert_eq!(listener.flush(), None);
    let agent = AgentProcess::start(server.url(), 1, "trusted");
    let secret = format!("s3cret-{}", std::process::id());
    let pool = builder(1)
        .env("API_TOKEN", &secret)
        .nats_options(Nats::new(server.url()).trust_agent(agent.key()))
        .build()
        .expect("the pool starts");
    // Reversed: results cross the server as readable as arguments.
    let read: Option<String> = pool.apply("read_env_reversed", ("API_TOKEN",)).unwrap();
    let reversed: String = secret.chars().rev().collect();
    assert_eq!(read, Some(reversed));
    drop(pool);
    let heard = listener.messages(Duration::from_millis(500));
    assert!(heard.len() > 10, "the listener hears the job: {heard:?}");
    let leaked: Vec<&String> = heard
        .iter()
        .filter(|(_, payload)| {
            payload
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        })
        .map(|(subject, _)| subject)
        .collect();
    assert!(
        leaked.is_empty(),
        "the secret crossed in clear on {leaked:?}"
    );

    let err = builder(1)
        .env("API_TOKEN", &secret)
        .nats(server.url())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("API_TOKEN"), "{err}");
    assert!(err.message().contains("trust_agent"), "{err}");
    assert!(!err.message().contains(&secret), "{err}");
}

/// The command: `keygen` will not overwrite a key; `map --nats` refuses
/// `--env` without `--trust-agent`, and a trusted key that is not one,
/// before it connects.
#[test]
fn the_command_makes_keys_and_refuses_what_would_leak() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.nk");
    let path = path.to_str().unwrap();
    assert!(wasmpool(&["keygen", path], "").status.success());
    let again = wasmpool(&["keygen", path], "");
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("agent.nk"),
        "{again:?}"
    );

    let module = wasmpool_artifacts::FIXTURES;
    let refused = wasmpool(
        &[
            "map",
            module,
            "read_env",
            "--nats",
            "nats://127.0.0.1:9",
            "--env",
            "HOME",
        ],
        "\"HOME\"\n",
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("HOME") && said.contains("--trust-agent"),
        "{said}"
    );

    let bad = wasmpool(
        &[
            "map",
            module,
            "square",
            "--nats",
            "nats://127.0.0.1:9",
            "--trust-agent",
            "UNOTAKEY",
        ],
        "1\n",
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`UNOTAKEY` is not a public key"),
        "{bad:?}"
    );
}

/// The command end to end, with keys on both sides: an agent started with
/// `--key` and `--trust-host`, and `map --nats` with `--key`,
/// `--trust-agent` and `--env`: the tasks run there, and read the variable.
#[test]
fn map_and_agent_with_keys_on_both_sides() {
    let _deadline = deadline("the command with keys", DEADLINE);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host_file = dir.path().join("host.nk");
    let agent_file = dir.path().join("agent.nk");
    let host = SigningKey::write_new(&host_file).unwrap().public_key();
    let agent_key = SigningKey::write_new(&agent_file).unwrap().public_key();
    let _agent = AgentProcess::start_with(
        server.url(),
        1,
        "keyed",
        &["--key", agent_file.to_str().unwrap(), "--trust-host", &host],
    );
    let done = command::wasmpool_with_env(
        &[
            "map",
            wasmpool_artifacts::FIXTURES,
            "read_env_reversed",
            "--nats",
            server.url(),
            "--key",
            host_file.to_str().unwrap(),
            "--trust-agent",
            &agent_key,
            "--env",
            "WASMPOOL_TEST_TOKEN",
        ],
        "\"WASMPOOL_TEST_TOKEN\"\n",
        &[("WASMPOOL_TEST_TOKEN", "abc123")],
    );
    assert!(done.status.success(), "{done:?}");
    let records = command::records(&done);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["ok"], "321cba");
}

/// Every answer to `reply` the rogue got within a moment, as results or
/// refusals.
fn answers(rogue: &mut server::RawClient, reply: &str) -> Vec<Result<Vec<u8>, String>> {
    rogue
        .messages(Duration::from_millis(500))
        .into_iter()
        .filter(|(subject, _)| subject == reply)
        .map(|(_, payload)| wasmpool::internals::answer_of(&payload).expect("an answer"))
        .collect()
}

/// The calls tasks on agents make on the host, against a rogue of the same
/// server: calls signed with a key the pool did not admit are dropped
/// unanswered; a real call replayed is not run again (while its task waits,
/// nor once it ended); and even with the agent's own key (read from its
/// file), a call for a task that does not run, or on an object its task was
/// not handed, is refused, and changes nothing.
#[test]
fn a_rogue_cannot_call_for_a_task_nor_replay_its_calls() {
    let _deadline = deadline("forged and replayed calls", DEADLINE);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = command::keygen_in(dir.path());
    let key_path = key_file.to_str().unwrap();
    let agent = AgentProcess::start_with(server.url(), 1, "honest", &["--key", key_path]);
    let stolen = SigningKey::from_file(&key_file).unwrap();
    let stranger = SigningKey::generate();
    let mut rogue = server.raw_client(None);
    rogue.subscribe("wasmpool.calls.*");
    rogue.subscribe("rogue.answers");
    assert_eq!(rogue.flush(), None);
    let pool = builder(1)
        .nats_options(Nats::new(server.url()).trust_agent(agent.key()))
        .build()
        .expect("the pool starts");
    let dict = wasmpool::Manager::new()
        .dict([("count".to_string(), 10i64)])
        .unwrap();
    assert_eq!(
        pool.apply::<i64, _>("count_down", (dict.clone(), "count"))
            .unwrap(),
        9
    );
    let (subject, count_down) = rogue
        .messages(Duration::from_millis(300))
        .into_iter()
        .find(|(subject, payload)| {
            subject.starts_with("wasmpool.calls.")
                && wasmpool::internals::is_call_of(payload, "add")
        })
        .expect("the rogue reads the task's call");

    // A task waits in `acquire` on the host while the host holds the lock.
    let lock = wasmpool::Lock::new();
    let held = lock.acquire();
    let taker = pool
        .apply_async::<bool, _>("take_lock", (lock.clone(),))
        .unwrap();
    let acquire = loop {
        let seen = rogue.messages(Duration::from_millis(100));
        if let Some((_, payload)) = seen
            .into_iter()
            .find(|(_, payload)| wasmpool::internals::is_call_of(payload, "acquire"))
        {
            break payload;
        }
    };

    // Replayed: the waiting call is not run twice, the ended one not again.
    rogue.publish_with_reply(&subject, "rogue.answers", &acquire);
    rogue.publish_with_reply(&subject, "rogue.answers", &count_down);
    assert_eq!(rogue.flush(), None);
    let replayed = answers(&mut rogue, "rogue.answers");
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    let why = replayed[0].clone().unwrap_err();
    assert!(why.contains("this task ended"), "{why}");
    assert_eq!(dict.get(&"count".to_string()).unwrap(), Some(9));

    // A stranger's key: dropped, unanswered, whatever it asks.
    let forged = wasmpool::internals::forged_call(
        &stranger,
        &job_of(&subject),
        &acquire,
        1 << 40,
        None,
        None,
    )
    .unwrap();
    rogue.publish_with_reply(&subject, "rogue.answers", &forged);
    assert_eq!(rogue.flush(), None);
    assert_eq!(answers(&mut rogue, "rogue.answers"), []);

    // The agent's own key: a task that does not run, an object its task was
    // not handed.
    let job = job_of(&subject);
    let elsewhere =
        wasmpool::internals::forged_call(&stolen, &job, &acquire, 1 << 41, None, Some(1 << 30))
            .unwrap();
    let dict_id = wasmpool::internals::object_id(&dict).unwrap();
    let other_object =
        wasmpool::internals::forged_call(&stolen, &job, &acquire, 1 << 42, Some(dict_id), None)
            .unwrap();
    rogue.publish_with_reply(&subject, "rogue.answers", &elsewhere);
    rogue.publish_with_reply(&subject, "rogue.answers", &other_object);
    assert_eq!(rogue.flush(), None);
    let refused = answers(&mut rogue, "rogue.answers");
    assert_eq!(refused.len(), 2, "{refused:?}");
    let whys: Vec<String> = refused.into_iter().map(Result::unwrap_err).collect();
    assert!(
        whys.iter().any(|why| why.contains("does not run")),
        "{whys:?}"
    );
    assert!(
        whys.iter().any(|why| why.contains("was not handed")),
        "{whys:?}"
    );
    assert_eq!(dict.get(&"count".to_string()).unwrap(), Some(9));

    // The task took the lock once, when the host let go of it, and let go
    // of it as it ended.
    assert!(!taker.ready());
    drop(held);
    assert_eq!(outcome(&taker, "the task taking the lock"), Ok(false));
    assert!(lock.acquire_timeout(OUTCOME_WAIT).is_some());
}
