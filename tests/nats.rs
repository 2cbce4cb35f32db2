//! The NATS JetStream backend: pools whose tasks run on agents reached
//! through a real `nats-server`, with real agents (`wasmpool agent`
//! processes) running real guests.

#[path = "common/calls.rs"]
mod calls;
#[path = "common/command.rs"]
mod command;
mod common;
#[path = "common/histories/mod.rs"]
mod histories;
#[path = "common/processes.rs"]
mod processes;
#[path = "common/nats.rs"]
mod server;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use command::{records, wasmpool};
use common::{DEADLINE, OUTCOME_WAIT, Place, builder, deadline, outcome};
use server::{AgentProcess, NatsServer};
use wasmpool::{AsyncResult, Callbacks, ErrorKind, Nats, Pool, PoolBuilder};

/// The deadline of the tests that kill an agent or a host: the chunks
/// their victims held come back after the ack wait, and a job that lost its
/// host is dropped after 15 s.
const LONG_DEADLINE: Duration = Duration::from_secs(120);

/// A pool of `processes` planned workers on the fixtures module, its tasks
/// run by the agents of `server`.
fn nats_builder(server: &NatsServer, processes: usize) -> PoolBuilder {
    builder(processes).nats(server.url())
}

/// A pool of one process on the agents of `server` that takes an agent
/// silent for a second as lost, and runs a task of a lost agent once more.
fn losing_agents_within_a_second(server: &NatsServer) -> PoolBuilder {
    builder(1).nats_options(
        Nats::new(server.url())
            .ack_wait(Duration::from_secs(1))
            .agent_retries(1),
    )
}

/// The pid of the parent of process `pid`, from `/proc/PID/stat`; `None`
/// once the process is gone.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` descends from process `ancestor`.
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    while let Some(parent) = parent_of(current) {
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        current = parent;
    }
    false
}

/// How many times the server handed out chunks, and how many chunks it
/// handed out, over the consumers of the stream of chunks. Counts right on a
/// server that served one pool, whose chunks alone are in the stream.
fn deliveries(server: &NatsServer) -> (u64, u64) {
    let page = server.monitor("/jsz?consumers=true");
    let jsz: serde_json::Value = serde_json::from_str(&page).expect("/jsz is JSON");
    let consumers: Vec<&serde_json::Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .filter(|stream| stream["name"] == "WASMPOOL_CHUNKS")
        .flat_map(|stream| stream["consumer_detail"].as_array().into_iter().flatten())
        .collect();
    assert!(!consumers.is_empty(), "no consumer of chunks in {page}");
    consumers
        .iter()
        .fold((0, 0), |(deliveries, chunks), consumer| {
            let delivered = &consumer["delivered"];
            (
                deliveries
                    + delivered["consumer_seq"]
                        .as_u64()
                        .expect("a count of deliveries"),
                chunks
                    + delivered["stream_seq"]
                        .as_u64()
                        .expect("a sequence of chunks"),
            )
        })
}

/// How many times the server handed out a chunk again (after its ack wait
/// ran out, or its agent handed it back): deliveries less the chunks
/// delivered.
fn redeliveries(server: &NatsServer) -> u64 {
    let (deliveries, chunks) = deliveries(server);
    deliveries - chunks
}

/// Waits until the server has handed out chunks `count` times in all.
fn wait_for_deliveries(server: &NatsServer, count: u64) {
    while deliveries(server).0 < count {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes that descend from process `ancestor`.
fn descendants(ancestor: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| descends_from(pid, ancestor))
        .collect()
}

#[test]
fn map_imap_and_starmap_keep_their_order_on_agents() {
    let _deadline = deadline("maps on two agents", DEADLINE);
    let server = NatsServer::start();
    let _one = AgentProcess::start(server.url(), 2, "one");
    let _two = AgentProcess::start(server.url(), 2, "two");
    let pool = nats_builder(&server, 4).build().expect("the pool starts");
    assert_eq!(pool.processes(), 4);
    assert!(pool.worker_pids().is_empty(), "no local workers");
    // Both agents list themselves, each serving this one job.
    let listed = loop {
        let agents = pool.agents().expect("the server lists its agents");
        if agents.len() == 2 && agents.iter().all(|agent| agent.jobs == 1) {
            break agents;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let names: Vec<&str> = listed.iter().map(|agent| agent.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert!(listed.iter().all(|agent| agent.processes == 2));
    assert!(builder(1).build().unwrap().agents().unwrap().is_empty());

    let squares: Vec<i64> = pool.map("square", 0..1000i64, 7).unwrap();
    assert_eq!(squares, (0..1000i64).map(|x| x * x).collect::<Vec<_>>());

    let ordered: Vec<i64> = pool
        .imap("square", 0..200i64, 3)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..200i64).map(|x| x * x).collect::<Vec<_>>());

    // Slow items first, so completion order differs from input order.
    let input: Vec<u64> = (0..60)
        .map(|i| if i % 10 == 0 { 50 } else { i % 3 })
        .collect();
    let seen: Vec<(u64, u64)> = pool
        .imap_unordered("sleep_ms", input.clone(), 2)
        .unwrap()
        .indexed()
        .map(|(index, result)| (index, result.unwrap()))
        .collect();
    assert_eq!(seen.len(), input.len());
    let indices: BTreeSet<u64> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..input.len() as u64).collect::<BTreeSet<_>>());
    for (index, value) in seen {
        assert_eq!(value, input[index as usize]);
    }

    let sums: Vec<i64> = pool
        .starmap("add", (0..50i64).map(|i| (i, 100 * i)), 4)
        .unwrap();
    assert_eq!(sums, (0..50i64).map(|i| 101 * i).collect::<Vec<_>>());

    let nothing: Vec<i64> = pool.map("square", Vec::<i64>::new(), None).unwrap();
    assert!(nothing.is_empty());
}

#[test]
fn apply_async_callbacks_run_once_per_task_on_agents() {
    let _deadline = deadline("60 tasks with callbacks on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 2, "only");
    let pool = nats_builder(&server, 2).build().expect("the pool starts");
    common::callbacks_run_once_each(&pool, 60);
}

#[test]
fn each_error_kind_comes_back_as_on_a_local_pool() {
    let _deadline = deadline("failing tasks on an agent and locally", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 2, "only");
    let remote = nats_builder(&server, 2).build().expect("the pool starts");
    let local = builder(1).build().expect("the local pool starts");

    // Each failure, on both pools: the same kind, index and message.
    let trap = |pool: &Pool| pool.apply::<i64, _>("trap_if_negative", (-1,)).unwrap_err();
    let failed = |pool: &Pool| pool.apply::<i64, _>("divide", (1, 0)).unwrap_err();
    let wrong_type = |pool: &Pool| pool.apply::<i64, _>("square", ("seven",)).unwrap_err();
    let wrong_result = |pool: &Pool| pool.apply::<String, _>("square", (3,)).unwrap_err();
    for (what, call, kind) in [
        (
            "a trap",
            &trap as &dyn Fn(&Pool) -> wasmpool::Error,
            ErrorKind::Trap,
        ),
        ("a failed task", &failed, ErrorKind::Failed),
        (
            "arguments of the wrong type",
            &wrong_type,
            ErrorKind::BadArguments,
        ),
        (
            "a result of the wrong type",
            &wrong_result,
            ErrorKind::BadResult,
        ),
    ] {
        let (on_agent, here) = (call(&remote), call(&local));
        assert_eq!(on_agent.kind(), kind, "{what} on an agent: {on_agent}");
        assert_eq!(here.kind(), kind, "{what} locally: {here}");
        assert_eq!(on_agent.task_index(), here.task_index(), "{what}");
        assert_eq!(on_agent.message(), here.message(), "{what}");
    }
    let err = trap(&remote);
    common::assert_unreachable_in(&err, "trap_if_negative");
    assert_eq!(
        failed(&remote).to_string(),
        "task 0: failed: division by zero"
    );

    // A panic fails its own task only.
    let outcomes: Vec<_> = remote
        .imap::<i64, _, _>("panic_if_negative", [1i64, -2, 3], 3)
        .unwrap()
        .collect();
    assert_eq!(outcomes[0].as_ref().unwrap(), &1);
    let err = outcomes[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic, "{err}");
    assert!(err.message().starts_with("negative input: -2"), "{err}");
    assert_eq!(err.task_index(), Some(1));
    assert_eq!(outcomes[2].as_ref().unwrap(), &3);

    // Names and argument counts are checked at submit, before the server.
    let err = remote.apply::<i64, _>("no_such_task", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    assert!(err.message().contains("no_such_task"), "{err}");
    let err = remote.map::<i64, i64, _>("nope", 0..3, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    let err = remote.apply::<i64, _>("add", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments);
    assert!(
        err.message()
            .contains("takes 2 arguments, but 1 were given"),
        "{err}"
    );

    // The pool goes on after all that.
    assert_eq!(remote.apply::<i64, _>("square", (12,)).unwrap(), 144);
}

/// On a server whose messages take at most 48 KiB: the module still
/// crosses (in pieces that fit); an argument too large fails clearly; an
/// error message of 64 KiB (the most a worker sends) comes back once, cut to
/// fit, rather than run again and again as a report the server refuses.
#[test]
fn what_does_not_fit_a_small_server_fails_once_and_says_so() {
    let _deadline = deadline("tasks on a server of 48 KiB messages", DEADLINE);
    let server = NatsServer::with_max_payload(48 << 10);
    let agent = AgentProcess::start(server.url(), 1, "small");
    // A job with environment variables trusts the agents it hands them.
    let pool = builder(1)
        .module_file(wasmpool_artifacts::HOSTILE)
        .env("HOSTILE", "tasks")
        .nats_options(Nats::new(server.url()).trust_agent(agent.key()))
        .build()
        .expect("the pool starts");
    pool.apply::<(), _>("ok", ()).unwrap();
    let err = pool.apply::<(), _>("long_error", ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    let message = err.message();
    assert!(
        message.starts_with("start") && message.ends_with("end"),
        "{err}"
    );
    assert!(message.contains("bytes cut"), "{err}");
    assert!(message.len() < 48 << 10, "{}", message.len());

    let fixtures = nats_builder(&server, 1).build().expect("the pool starts");
    let err = fixtures
        .apply::<String, _>("echo", ("x".repeat(60 << 10),))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments, "{err}");
    assert!(
        err.message()
            .contains("do not fit in a message of the NATS server, which takes"),
        "{err}"
    );
    assert_eq!(fixtures.apply::<i64, _>("square", (7,)).unwrap(), 49);
}

/// `wasmpool agent` says on stderr what it does (the jobs it serves) and
/// every warning: a record a rogue client wrote into the bucket of jobs is
/// dropped, and said so.
#[test]
fn an_agent_says_what_it_serves_and_warns_of_what_it_drops() {
    let _deadline = deadline("an agent's log", DEADLINE);
    let server = NatsServer::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let agent = AgentProcess::start_with(server.url(), 1, "talker", &["--cache-dir", cache_dir]);
    server.publish_raw("$KV.wasmpool_jobs.not-a-job", b"junk");
    let line = agent.wait_for_line("not-a-job", OUTCOME_WAIT);
    assert!(line.starts_with("wasmpool: warning: "), "{line}");
    assert!(line.contains("not a job id"), "{line}");
    server.publish_raw("$KV.wasmpool_jobs.rogue", b"\x1b]0;owned\x07");
    let line = agent.wait_for_line("job rogue: not served", OUTCOME_WAIT);
    assert!(line.starts_with("wasmpool: warning: "), "{line}");

    let pool = nats_builder(&server, 1).build().expect("the pool starts");
    assert_eq!(pool.apply::<i64, _>("square", (4,)).unwrap(), 16);
    let line = agent.wait_for_line(": serving, module sha256 ", OUTCOME_WAIT);
    assert!(line.starts_with("wasmpool: info: job "), "{line}");
    // What a job's first chunk waited for: the module fetched, then
    // compiled into the agent's (here empty) cache.
    let fetched = agent.wait_for_line("fetched module ", OUTCOME_WAIT);
    assert!(fetched.contains(" bytes) in "), "{fetched}");
    let compiled = agent.wait_for_line(": compiled its module, ", OUTCOME_WAIT);
    assert!(compiled.ends_with(" s"), "{compiled}");
}

/// `--max-jobs 1`: a second job waits, said so, until the first ends.
#[test]
fn an_agent_serves_at_most_max_jobs_at_once() {
    let _deadline = deadline("an agent serving one job at once", DEADLINE);
    let server = NatsServer::start();
    let agent = AgentProcess::start_with(server.url(), 1, "single", &["--max-jobs", "1"]);
    let first = nats_builder(&server, 1).build().expect("the pool starts");
    assert_eq!(first.apply::<i64, _>("square", (2,)).unwrap(), 4);
    let second = nats_builder(&server, 1).build().expect("the pool starts");
    let waiting = second.apply_async::<i64, _>("square", (3,)).unwrap();
    agent.wait_for_line(
        "waits, this agent serves its most jobs at once (1)",
        OUTCOME_WAIT,
    );
    assert!(!waiting.ready(), "served beside the first job");
    assert!(first.agents().unwrap().iter().all(|agent| agent.jobs <= 1));
    drop(first);
    assert_eq!(outcome(&waiting, "the second job's task"), Ok(9));
}

/// What a job relies on on the server vanishes mid-run, deleted by a
/// rogue client: the job's record (which agents do not take as its end,
/// without its host's signed word), the job's consumer, the stream of
/// chunks, the stream of reports, the bucket of jobs, the object store of
/// modules. The
/// host notices within a heartbeat or two and makes each again (sending its
/// chunks out again, reading the reports anew), the agent watches the jobs
/// anew, and every task still gets exactly one outcome; an agent that
/// joins afterwards finds the job and its module.
#[test]
fn a_job_whose_state_vanishes_from_the_server_goes_on() {
    let _deadline = deadline("a job whose state on the server is deleted", LONG_DEADLINE);
    let server = NatsServer::start();
    let first = AgentProcess::start(server.url(), 2, "first");
    let pool = nats_builder(&server, 2).build().expect("the pool starts");
    assert_eq!(pool.apply::<i64, _>("square", (2,)).unwrap(), 4);
    // The job's id, as the agent names it.
    let serving = first.wait_for_line(": serving, module", OUTCOME_WAIT);
    let job = serving
        .split("job ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    for deletion in [
        "the job's record".to_string(),
        format!("CONSUMER.DELETE.WASMPOOL_CHUNKS.job-{job}"),
        "STREAM.DELETE.WASMPOOL_CHUNKS".to_string(),
        "STREAM.DELETE.WASMPOOL_REPORTS".to_string(),
        "STREAM.DELETE.KV_wasmpool_jobs".to_string(),
        "STREAM.DELETE.OBJ_wasmpool_modules".to_string(),
    ] {
        let out: Vec<AsyncResult<u64>> = (0..6u64)
            .map(|n| pool.apply_async("sleep_ms", (200 + n,)).unwrap())
            .collect();
        if deletion == "the job's record" {
            let mut rogue = server.raw_client(None);
            rogue.kv_delete("wasmpool_jobs", job);
            assert_eq!(rogue.flush(), None);
        } else {
            let answer = server.request_raw(&format!("$JS.API.{deletion}"));
            assert!(answer.contains("\"success\":true"), "{deletion}: {answer}");
        }
        for (n, result) in (0..6u64).zip(&out) {
            assert_eq!(outcome(result, &deletion), Ok(200 + n), "after {deletion}");
        }
    }
    // A job published since, in the bucket made anew, is served too.
    let later = nats_builder(&server, 1).build().expect("the pool starts");
    assert_eq!(later.apply::<i64, _>("square", (5,)).unwrap(), 25);
    // The module is there again for an agent that never fetched it.
    drop(first);
    let _second = AgentProcess::start(server.url(), 1, "second");
    assert_eq!(pool.apply::<i64, _>("square", (3,)).unwrap(), 9);
}

/// The two-tenant configuration shipped in `examples/nats/tenants.conf`,
/// on a real server: while tenant A's host and agent run a job, tenant B's
/// clients read nothing of it, and what they delete or forge does not reach
/// it; A's own agent may not publish a job, nor delete A's streams.
#[test]
fn a_second_tenant_reads_and_touches_nothing_of_the_first() {
    let _deadline = deadline("two tenants on one server", DEADLINE);
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/nats/tenants.conf"
    ))
    .expect("the shipped configuration is there");
    let server = NatsServer::with_config(&config);
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let url = |user: &str| format!("nats://{user}:change-me-{user}@127.0.0.1:{port}");
    let _agent = AgentProcess::start(&url("agent-a"), 2, "tenant-a");
    let pool = builder(2)
        .nats(url("host-a"))
        .build()
        .expect("A's pool starts");
    assert_eq!(pool.apply::<i64, _>("square", (2,)).unwrap(), 4);

    // B listens to all its host may hear, while A runs tasks that print.
    let mut listener = server.raw_client(Some(("host-b", "change-me-host-b")));
    listener.subscribe("wasmpool.output.*");
    listener.subscribe("_INBOX.>");
    assert_eq!(listener.flush(), None);
    let running = pool.map_async::<i64, _, _>("chatty", 0..20i64, 1).unwrap();
    let mut rogue = server.raw_client(Some(("agent-b", "change-me-agent-b")));
    for subject in ["wasmpool.reports.anything", "wasmpool.output.anything"] {
        rogue.publish(subject, b"forged");
    }
    assert_eq!(rogue.flush(), None, "B may publish in its own account");
    let mut owner = server.raw_client(Some(("host-b", "change-me-host-b")));
    let answer = owner.request("$JS.API.STREAM.DELETE.WASMPOOL_CHUNKS");
    assert!(answer.contains("stream not found"), "{answer}");
    let done = outcome(&running, "A's tasks").unwrap();
    assert_eq!(done, (0..20i64).collect::<Vec<_>>());
    let mut heard = listener.received(Duration::from_millis(500));
    heard.sort();
    // B's own: the rogue's output, and the answer to B's own request.
    assert_eq!(
        heard,
        ["_INBOX.rogue", "wasmpool.output.anything"],
        "B heard only itself"
    );

    // A's agent: no job, no deletion.
    let mut agent = server.raw_client(Some(("agent-a", "change-me-agent-a")));
    agent.publish("$KV.wasmpool_jobs.forged", b"junk");
    agent.publish("$JS.API.STREAM.DELETE.WASMPOOL_CHUNKS", b"");
    let refused = agent.flush().expect("the server refuses the agent");
    assert!(refused.contains("Permissions Violation"), "{refused}");
    assert_eq!(pool.apply::<i64, _>("square", (3,)).unwrap(), 9);

    // What A's users may do covers calls on the host and processes.
    let lock = wasmpool::Lock::new();
    let counter = wasmpool::Manager::new().value(&0i64).unwrap();
    let counted = pool.apply::<u64, _>("locked_increments", (&lock, &counter, 5u64));
    assert_eq!(counted.unwrap(), 0);
    assert_eq!(counter.get().unwrap(), 5);
    let context = builder(1).nats(url("host-a")).context().unwrap();
    let sleeper = context
        .process("sleep_ms")
        .args((60_000u64,))
        .start()
        .unwrap();
    sleeper.kill();
    sleeper.join();
    assert_eq!(sleeper.exitcode(), Some(-libc::SIGKILL));
}

/// A job's stream of reports vanishes where its host may not make it again
/// (its user may not create streams; an administrator made them): every
/// task out fails with a `remote` error that names what vanished, rather
/// than wait for ever — once the server has left the host's request to
/// make it unanswered (a refused request gets no answer), about 10 s.
#[test]
fn what_vanished_and_cannot_be_made_again_fails_the_tasks_out_naming_it() {
    let _deadline = deadline("a job whose reports vanish for good", DEADLINE);
    let server = NatsServer::with_config(
        "accounts { ONE: { jetstream: enabled, users: [\n\
         { user: admin, password: admin-pw }\n\
         { user: host, password: host-pw, permissions: { publish: { deny: \
         [\"$JS.API.STREAM.CREATE.>\"] } } }\n] } }\n",
    );
    let port = server.url().rsplit(':').next().unwrap().to_string();
    // The administrator's agent makes the streams and buckets.
    let _agent = AgentProcess::start(
        &format!("nats://admin:admin-pw@127.0.0.1:{port}"),
        2,
        "admin",
    );
    let pool = builder(2)
        .nats(format!("nats://host:host-pw@127.0.0.1:{port}"))
        .build()
        .expect("the pool starts");
    assert_eq!(pool.apply::<i64, _>("square", (2,)).unwrap(), 4);
    let out: Vec<AsyncResult<u64>> = (0..4u64)
        .map(|n| pool.apply_async("sleep_ms", (500 + n,)).unwrap())
        .collect();
    let mut admin = server.raw_client(Some(("admin", "admin-pw")));
    let answer = admin.request("$JS.API.STREAM.DELETE.WASMPOOL_REPORTS");
    assert!(answer.contains("\"success\":true"), "{answer}");
    for result in &out {
        let err = match result.get_timeout(Duration::from_secs(40)) {
            Err(wasmpool::GetTimeoutError::Failed(err)) => err,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
        assert!(
            err.message()
                .contains("the stream of reports vanished, and cannot be made again"),
            "{err}"
        );
    }
}

#[test]
fn a_task_over_its_time_limit_times_out_on_the_agent() {
    let _deadline = deadline("a task timing out on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 2, "only");
    let pool = nats_builder(&server, 2)
        .task_timeout(Duration::from_millis(500))
        .build()
        .expect("the pool starts");
    let slow = pool
        .apply_async::<u64, _>("sleep_ms", (30_000u64,))
        .unwrap();
    let quick = pool.apply_async::<u64, _>("sleep_ms", (10u64,)).unwrap();
    let err = slow.get().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(quick.get().unwrap(), 10);
    // A fresh instance serves the next task.
    assert_eq!(pool.apply::<i64, _>("square", (5,)).unwrap(), 25);
}

#[test]
fn an_agent_runs_each_task_of_a_fresh_instance_job_on_an_instance_of_its_own() {
    let _deadline = deadline("secrets left on an agent's instances", DEADLINE);
    let server = NatsServer::start();
    // One worker: every task of a job runs on the same one.
    let _agent = AgentProcess::start(server.url(), 1, "only");
    let found = |fresh: bool| -> Vec<Vec<String>> {
        let pool = nats_builder(&server, 1)
            .fresh_instance(fresh)
            .build()
            .expect("the pool starts");
        (1..=3u64)
            .map(|secret| pool.apply("swap_secret", (secret,)).unwrap())
            .collect()
    };
    let kept = found(false);
    assert_eq!(kept[2], ["global 2", "buffer 2", "environment 2"]);
    let fresh = found(true);
    assert!(
        fresh.iter().all(Vec::is_empty),
        "a task found a secret: {fresh:?}"
    );
}

#[test]
fn terminate_fails_unfinished_tasks_and_returns_promptly() {
    let _deadline = deadline("terminate of a pool on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 2, "only");
    let pool = nats_builder(&server, 2).build().expect("the pool starts");
    // One task done, so that the agent serves the job; then sleeps of a
    // minute, some running on the agent, some waiting.
    assert_eq!(pool.apply::<i64, _>("square", (4,)).unwrap(), 16);
    let sleeps: Vec<AsyncResult<u64>> = (0..6)
        .map(|_| pool.apply_async("sleep_ms", (60_000u64,)).unwrap())
        .collect();
    // No outcome yet: the sleeps run for a minute.
    assert!(!sleeps[0].wait_timeout(Duration::from_millis(500)));
    pool.terminate();
    for (i, sleep) in sleeps.iter().enumerate() {
        let err = outcome(sleep, &format!("sleep {i}")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Terminated, "sleep {i}: {err}");
    }
    pool.join().unwrap();
    let err = pool.apply::<i64, _>("square", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolClosed, "{err}");
    // The agent serves the next job.
    let next = nats_builder(&server, 2)
        .build()
        .expect("the next pool starts");
    assert_eq!(next.map::<i64, _, _>("square", 0..10i64, 3).unwrap()[9], 81);
}

#[test]
fn close_and_join_wait_for_every_task() {
    let _deadline = deadline("join of a pool on agents", DEADLINE);
    let server = NatsServer::start();
    let _one = AgentProcess::start(server.url(), 2, "one");
    let _two = AgentProcess::start(server.url(), 1, "two");
    let pool = nats_builder(&server, 3).build().expect("the pool starts");
    let sleeps: Vec<AsyncResult<u64>> = (0..30u64)
        .map(|i| pool.apply_async("sleep_ms", (20 + i % 4,)).unwrap())
        .collect();
    let mapped = pool.map_async::<i64, _, _>("square", 0..100i64, 9).unwrap();
    pool.close();
    let err = pool.apply::<i64, _>("square", (1,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolClosed, "{err}");
    pool.join().unwrap();
    for (i, sleep) in sleeps.iter().enumerate() {
        assert!(sleep.ready(), "sleep {i} is done once join returns");
        assert_eq!(sleep.get().unwrap(), 20 + i as u64 % 4);
    }
    assert!(mapped.ready());
    assert_eq!(mapped.get().unwrap()[99], 99 * 99);
}

#[test]
fn a_killed_agent_loses_no_task_and_duplicates_none() {
    let _deadline = deadline("10,000 tasks on three agents, one killed", LONG_DEADLINE);
    const TASKS: usize = 10_000;
    let server = NatsServer::start();
    let mut agents: Vec<AgentProcess> = ["one", "two", "three"]
        .iter()
        .map(|name| AgentProcess::start(server.url(), 2, name))
        .collect();
    let pool = builder(6)
        .nats_options(Nats::new(server.url()).ack_wait(Duration::from_secs(2)))
        .build()
        .expect("the pool starts");
    let counts: Vec<AtomicU32> = (0..TASKS).map(|_| AtomicU32::new(0)).collect();
    let (mut ok, mut lost, mut other, mut yielded) = (0usize, 0usize, Vec::new(), 0usize);
    let mut victim = None;
    let results = pool
        .imap_unordered::<u64, u64, _>("sleep_ms", vec![1u64; TASKS], 5)
        .unwrap()
        .indexed();
    for (index, result) in results {
        yielded += 1;
        counts[usize::try_from(index).unwrap()].fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(1) => ok += 1,
            Err(err) if err.is_worker_lost() => lost += 1,
            other_outcome => other.push((index, other_outcome)),
        }
        if yielded == TASKS / 5 {
            // A fifth done: the agents all hold chunks.
            let agent = &mut agents[1];
            victim = Some(agent.pid());
            agent.kill();
        }
    }
    // The server redelivered what the victim held: it was killed mid-work.
    let redelivered = redeliveries(&server);
    eprintln!(
        "killed agent two (pid {victim:?}) after {} outcomes: {ok} ok, {lost} worker-lost, \
         {} other, {yielded} outcomes in all, of {TASKS} tasks; {redelivered} \
         redeliveries",
        TASKS / 5,
        other.len()
    );
    assert!(redelivered > 0, "the killed agent held no chunk");
    assert!(victim.is_some(), "the agent was killed mid-map");
    assert!(other.is_empty(), "only successes or lost tasks: {other:?}");
    let twice: Vec<usize> = (0..TASKS)
        .filter(|&i| counts[i].load(Ordering::Relaxed) > 1)
        .collect();
    let never: Vec<usize> = (0..TASKS)
        .filter(|&i| counts[i].load(Ordering::Relaxed) == 0)
        .collect();
    assert!(
        twice.is_empty(),
        "tasks with more than one outcome: {twice:?}"
    );
    assert!(never.is_empty(), "tasks without an outcome: {never:?}");
    assert_eq!(yielded, TASKS);
    // The lost agent's chunks ran again elsewhere (2 agent retries).
    assert_eq!(ok, TASKS, "every task succeeded");
    for (i, agent) in agents.iter_mut().enumerate() {
        assert_eq!(agent.is_running(), i != 1, "agent {}", agent.name());
    }
}

#[test]
fn callbacks_see_each_task_once_when_an_agent_is_killed() {
    let _deadline = deadline("1,000 callbacks on three agents, one killed", LONG_DEADLINE);
    const TASKS: usize = 1000;
    let server = NatsServer::start();
    let mut agents: Vec<AgentProcess> = ["one", "two", "three"]
        .iter()
        .map(|name| AgentProcess::start(server.url(), 1, name))
        .collect();
    let pool = builder(3)
        .nats_options(Nats::new(server.url()).ack_wait(Duration::from_secs(2)))
        .build()
        .expect("the pool starts");
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let results: Vec<AsyncResult<u64>> = (0..TASKS)
        .map(|i| {
            let (ok_counts, err_counts, errors) = (counts.clone(), counts.clone(), errors.clone());
            pool.apply_async_with(
                "sleep_ms",
                (3u64,),
                Callbacks::new()
                    .callback(move |_: &u64| {
                        ok_counts[i].fetch_add(1, Ordering::Relaxed);
                    })
                    .error_callback(move |e| {
                        err_counts[i].fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push((i, e.clone()));
                    }),
            )
            .unwrap()
        })
        .collect();
    // Kill an agent once a tenth of the tasks are done.
    AsyncResult::wait_all(&results[..TASKS / 10], None);
    agents[0].kill();
    AsyncResult::wait_all(&results, None);
    let redelivered = redeliveries(&server);
    pool.close();
    pool.join().unwrap();
    let calls: u32 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let errors = errors.lock().unwrap();
    eprintln!(
        "killed agent one after {} of {TASKS} tasks: {calls} callbacks, {} error callbacks; \
         {redelivered} redeliveries",
        TASKS / 10,
        errors.len()
    );
    assert!(redelivered > 0, "the killed agent held no chunk");
    let wrong: Vec<(usize, u32)> = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "tasks whose callbacks ran other than once: {wrong:?}"
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(results.iter().all(|r| r.get() == Ok(3)));
}

#[test]
fn an_agent_started_after_the_job_began_takes_work() {
    let _deadline = deadline("a second agent joining a job", DEADLINE);
    let server = NatsServer::start();
    let first = AgentProcess::start(server.url(), 1, "first");
    let pool = nats_builder(&server, 2).build().expect("the pool starts");
    // A thousand 30 ms tasks: half a minute on the first agent alone.
    let mut results = pool
        .imap::<Place, i64, _>("place_slowly", 0..1000i64, 1)
        .unwrap();
    let mut first_pids = BTreeSet::new();
    for _ in 0..5 {
        let place = results.next().unwrap().unwrap();
        assert!(descends_from(place.pid, first.pid()), "{place:?}");
        first_pids.insert(place.pid);
    }
    let second = AgentProcess::start(server.url(), 1, "second");
    let mut second_pids = BTreeSet::new();
    let mut later = 0;
    for result in results.by_ref() {
        let place = result.unwrap();
        later += 1;
        if descends_from(place.pid, second.pid()) {
            second_pids.insert(place.pid);
            break;
        }
        assert!(descends_from(place.pid, first.pid()), "{place:?}");
        first_pids.insert(place.pid);
    }
    drop(results);
    eprintln!(
        "the second agent took a task after {later} more results; workers: first {first_pids:?}, \
         second {second_pids:?}"
    );
    assert!(
        !second_pids.is_empty(),
        "no task ran on the second agent:\n{}",
        second.stderr()
    );
    assert!(first_pids.is_disjoint(&second_pids));
}

/// A process on agents: `start` waits for an agent, and returns the
/// process once one that came late started it; with no agent within
/// `Nats::process_start_limit`, it fails with an error that names the
/// limit.
#[test]
fn a_process_start_waits_for_an_agent_until_its_limit() {
    let _deadline = deadline("processes waiting for an agent", DEADLINE);
    let server = NatsServer::start();
    let limited = Nats::new(server.url()).process_start_limit(Duration::from_secs(1));
    let context = builder(1).nats_options(limited).context().unwrap();
    let err = context.process("square").args((7i64,)).start().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Spawn, "{err}");
    assert!(err.to_string().contains("process_start_limit"), "{err}");

    let context = builder(1).nats(server.url()).context().unwrap();
    let url = server.url().to_string();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        AgentProcess::start(&url, 1, "late")
    });
    let process = context.process("square").args((7i64,)).start().unwrap();
    let _agent = late.join().unwrap();
    assert_ne!(process.pid(), 0, "an agent started its worker");
    process.join();
    assert_eq!(process.exitcode(), Some(0));
    assert_eq!(process.result::<i64>().unwrap().unwrap(), 49);
}

/// An agent's start crossing a process's start limit (the agent stopped,
/// and let go at a random moment either side of the limit): either `start`
/// returns the process, which runs (exit code 0, its one step on a shared
/// count taken), or it fails, and the task never runs (the count
/// untouched, even once the agent ran what it took late): one outcome,
/// never both.
#[test]
fn a_start_crossing_the_start_limit_has_one_outcome() {
    let _deadline = deadline("starts crossing the start limit", LONG_DEADLINE);
    let server = NatsServer::start();
    let agent = AgentProcess::start(server.url(), 1, "stopped");
    let limit = Duration::from_millis(600);
    let limited = Nats::new(server.url()).process_start_limit(limit);
    let context = builder(1).nats_options(limited).context().unwrap();
    // The module compiled on the agent: its starts then take milliseconds.
    let first = context.process("square").args((1i64,)).start().unwrap();
    first.join();
    assert_eq!(first.exitcode(), Some(0), "{:?}", first.result::<i64>());
    let seed = std::env::var("WASMPOOL_HISTORY_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()));
    let mut rng = histories::Rng::new(seed);
    let dict = wasmpool::Manager::new()
        .dict([("steps".to_string(), 0i64)])
        .unwrap();
    let (mut ran, mut failed) = (0, 0);
    for round in 0..12 {
        agent.signal(libc::SIGSTOP);
        // Let go between half the limit and half as much again past it.
        let pause = limit / 2 + Duration::from_millis(rng.below(limit.as_millis() as u64));
        let waking = std::thread::spawn({
            let agent_pid = agent.pid();
            move || {
                std::thread::sleep(pause);
                // SAFETY: kill(2) on the agent, which the test reaps.
                unsafe { libc::kill(agent_pid as libc::pid_t, libc::SIGCONT) };
            }
        });
        let started = context
            .process("count_down")
            .args((dict.clone(), "steps"))
            .start();
        waking.join().unwrap();
        match started {
            Ok(process) => {
                ran += 1;
                assert_ne!(process.pid(), 0);
                process.join();
                assert_eq!(
                    process.exitcode(),
                    Some(0),
                    "round {round} (seed {seed}): {:?}",
                    process.result::<i64>()
                );
            }
            Err(err) => {
                failed += 1;
                assert_eq!(
                    err.kind(),
                    ErrorKind::Spawn,
                    "round {round} (seed {seed}): {err}"
                );
            }
        }
        // What an agent that took the job late ran is not taken.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            dict.get(&"steps".to_string()).unwrap(),
            Some(-ran),
            "round {round} (seed {seed}): {ran} ran, {failed} failed"
        );
    }
    eprintln!("seed {seed}: of 12 starts crossing the limit, {ran} ran and {failed} failed");
}

#[test]
fn a_host_killed_mid_job_leaves_the_agents_ready_for_the_next() {
    let _deadline = deadline("a job after its host was killed", LONG_DEADLINE);
    let server = NatsServer::start();
    let mut agents = [
        AgentProcess::start(server.url(), 2, "one"),
        AgentProcess::start(server.url(), 2, "two"),
    ];
    let fixtures = wasmpool_artifacts::FIXTURES;
    // 400 sleeps of 100 ms on four workers: ten seconds of work.
    let mut host = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
        .args(["map", fixtures, "sleep_ms", "--nats", server.url()])
        .args(["-j", "4", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    host.stdin
        .take()
        .unwrap()
        .write_all("100\n".repeat(400).as_bytes())
        .unwrap();
    let mut stdout = BufReader::new(host.stdout.take().unwrap());
    for _ in 0..8 {
        let mut record = String::new();
        assert!(
            stdout.read_line(&mut record).unwrap() > 0,
            "the host ended early"
        );
        assert!(record.contains("\"ok\":100"), "{record}");
    }
    host.kill().unwrap();
    host.wait().unwrap();

    // A new job on the same agents, through the CLI...
    let input: String = (0..200).map(|i| format!("{i}\n")).collect();
    let out = wasmpool(
        &[
            "map",
            fixtures,
            "square",
            "--nats",
            server.url(),
            "-j",
            "4",
            "--no-progress",
        ],
        &input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records = records(&out);
    records.sort_by_key(|r| r["index"].as_u64());
    assert_eq!(records.len(), 200);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["index"], i as u64, "{record}");
        assert_eq!(record["ok"], (i * i) as u64, "{record}");
    }
    // ... and through a pool.
    let pool = nats_builder(&server, 4).build().expect("the pool starts");
    let squares: Vec<i64> = pool.map("square", 0..300i64, 5).unwrap();
    assert_eq!(squares, (0..300i64).map(|x| x * x).collect::<Vec<_>>());
    drop(pool);
    for agent in &mut agents {
        assert!(
            agent.is_running(),
            "agent {}:\n{}",
            agent.name(),
            agent.stderr()
        );
    }
    // Once the killed host has been silent long enough, the agents drop its
    // job and stop its workers: no process of theirs is left behind.
    for agent in &agents {
        while !descendants(agent.pid()).is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for agent in &mut agents {
        assert!(agent.is_running(), "agent {}", agent.name());
    }
}

#[test]
fn a_wrong_password_is_refused_with_a_clear_error() {
    let _deadline = deadline("logins with wrong and right passwords", DEADLINE);
    let server = NatsServer::with_user("pool", "s3cret");
    let err = builder(1)
        .nats_options(Nats::new(server.url()).user_password("pool", "p4ss-guess"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.message().contains("authorization violation"), "{err}");
    assert!(err.message().contains(server.url()), "{err}");
    assert!(
        !err.message().contains("p4ss-guess"),
        "no password shown: {err}"
    );
    // No credentials at all is refused alike.
    let err = builder(1).nats(server.url()).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.message().contains("authorization violation"), "{err}");

    let login = ["--nats-user", "pool", "--nats-password"];
    let mut refused = AgentProcess::spawn(
        server.url(),
        1,
        "refused",
        &[&login[..], &["p4ss-guess"]].concat(),
    );
    let status = refused.wait_exit(OUTCOME_WAIT);
    assert!(!status.success(), "{status}");
    assert!(
        refused.stderr().contains("authorization violation"),
        "{}",
        refused.stderr()
    );

    let _agent = AgentProcess::start_with(
        server.url(),
        2,
        "let-in",
        &[&login[..], &["s3cret"]].concat(),
    );
    let pool = builder(2)
        .nats_options(Nats::new(server.url()).user_password("pool", "s3cret"))
        .build()
        .expect("the pool starts");
    let squares: Vec<i64> = pool.map("square", 0..50i64, 4).unwrap();
    assert_eq!(squares, (0..50i64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn what_belongs_to_this_machine_is_refused_on_agents() {
    let _deadline = deadline("builds of NATS pools with local things", DEADLINE);
    // Refused before any server is asked: none is needed.
    let url = "nats://127.0.0.1:1";
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "preopened directories",
            builder(1).nats(url).preopen_dir(dir.path(), "/data", true),
        ),
        (
            "shared objects to its initializer",
            builder(1)
                .nats(url)
                .initializer("set_base", (wasmpool::Lock::new(),)),
        ),
    ];
    for (what, pool) in cases {
        let err = pool.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{what}: {err}");
        assert!(err.message().contains(what), "{what}: {err}");
    }
    let err = builder(1)
        .nats_options(Nats::new(url).ack_wait(Duration::from_millis(100)))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("ack wait"), "{err}");
}

#[test]
fn a_server_that_is_not_there_is_named_in_the_error() {
    let _deadline = deadline("a build against no server", DEADLINE);
    // A port nobody listens on: bound and let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let err = builder(1).nats(&url).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.message().contains(&url), "{err}");
    let err = wasmpool::Agent::builder(Nats::new(&url))
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.message().contains(&url), "{err}");
    // A process count past the machine is refused before any connection.
    let err = wasmpool::Agent::builder(Nats::new(&url))
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(100_000)
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.message()
            .starts_with("100000 processes is past what this machine can hold"),
        "{err}"
    );
}

#[test]
fn an_agent_in_process_serves_a_pool_and_stops() {
    let _deadline = deadline("a pool on an in-process agent", DEADLINE);
    let server = NatsServer::start();
    let agent = wasmpool::Agent::builder(Nats::new(server.url()))
        .name("inside")
        .processes(2)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .start()
        .expect("the agent starts");
    assert_eq!(agent.name(), "inside");
    let pool = nats_builder(&server, 2).build().expect("the pool starts");
    let squares: Vec<i64> = pool.map("square", 0..100i64, 10).unwrap();
    assert_eq!(squares, (0..100i64).map(|x| x * x).collect::<Vec<_>>());
    drop(pool);
    agent.stop();
    agent.wait().expect("the agent stops cleanly");
}

#[test]
fn a_stopped_agent_hands_its_chunks_to_another() {
    let _deadline = deadline("a job whose agent is stopped with SIGTERM", DEADLINE);
    let server = NatsServer::start();
    let mut leaving = AgentProcess::start(server.url(), 1, "leaving");
    // An ack wait far past the deadline: only chunks handed back can run
    // on the other agent in time.
    let pool = builder(2)
        .nats_options(Nats::new(server.url()).ack_wait(Duration::from_secs(600)))
        .build()
        .expect("the pool starts");
    let mut results = pool
        .imap::<u64, u64, _>("sleep_ms", vec![200u64; 20], 1)
        .unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 200);
    let _staying = AgentProcess::start(server.url(), 1, "staying");
    leaving.signal(libc::SIGTERM);
    let status = leaving.wait_exit(OUTCOME_WAIT);
    assert_eq!(status.code(), Some(143), "{}", leaving.stderr());
    let rest: Vec<u64> = results.map(Result::unwrap).collect();
    assert_eq!(rest, vec![200u64; 19]);
    assert!(redeliveries(&server) > 0, "the chunks were handed back");
}

#[test]
fn a_task_whose_agents_keep_dying_fails_with_worker_lost() {
    let _deadline = deadline("a task whose agents are killed under it", LONG_DEADLINE);
    let server = NatsServer::start();
    let pool = losing_agents_within_a_second(&server)
        .build()
        .expect("the pool starts");
    let endless = pool
        .apply_async::<u64, _>("sleep_ms", (60_000u64,))
        .unwrap();
    // The chunk runs on agent one, then (its one retry) on agent two: both
    // are killed under it.
    for (deliveries, name) in [(1, "one"), (2, "two")] {
        let mut agent = AgentProcess::start(server.url(), 1, name);
        wait_for_deliveries(&server, deliveries);
        agent.kill();
    }
    // Agent three is handed the chunk a third time: past the retries, the
    // task fails, and the pool goes on.
    let _three = AgentProcess::start(server.url(), 1, "three");
    let err = outcome(&endless, "the task whose agents died").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
    assert!(err.message().contains("lost 2 times"), "{err}");
    assert_eq!(err.task_index(), Some(0));
    let square: i64 = pool.apply("square", (7i64,)).unwrap();
    assert_eq!(square, 49);
}

#[test]
fn what_tasks_write_on_agents_reaches_the_output_handler() {
    let _deadline = deadline("output of tasks on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 1, "talker");
    let (seen_tx, seen) = crossbeam_channel::unbounded();
    let pool = nats_builder(&server, 1)
        .on_output(move |output| {
            let _ = seen_tx.send(output.clone());
        })
        .build()
        .expect("the pool starts");
    let doubled: Vec<i64> = pool.map("chatty", [5i64, 6, 7], Some(1)).unwrap();
    assert_eq!(doubled, [5, 6, 7]);
    let mut lines = HashSet::new();
    while lines.len() < 6 {
        let output = seen
            .recv_timeout(OUTCOME_WAIT)
            .unwrap_or_else(|_| panic!("only this output came back: {lines:?}"));
        assert!(!output.truncated);
        for line in output.text().lines() {
            lines.insert((output.task_index, output.stream, line.to_string()));
        }
    }
    let expected: HashSet<_> = (0..3u64)
        .flat_map(|index| {
            [
                (
                    index,
                    wasmpool::Stream::Stdout,
                    format!("hello from task {index}"),
                ),
                (
                    index,
                    wasmpool::Stream::Stderr,
                    format!("x is {}", 5 + index),
                ),
            ]
        })
        .collect();
    assert_eq!(lines, expected);
}

#[test]
fn wasmpool_agents_lists_the_agents_of_a_server() {
    let _deadline = deadline("wasmpool agents", DEADLINE);
    let server = NatsServer::start();
    let _one = AgentProcess::start(server.url(), 1, "one");
    let _two = AgentProcess::start(server.url(), 3, "two");
    let listed = loop {
        let output = wasmpool(&["agents", "--nats", server.url()], "");
        assert!(output.status.success(), "{output:?}");
        let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() == 2 {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let fields: Vec<Vec<&str>> = listed
        .iter()
        .map(|line| line.split('\t').collect())
        .collect();
    assert_eq!(fields[0][0], "one");
    assert_eq!(fields[0][1], "1");
    assert_eq!(fields[1][0], "two");
    assert_eq!(fields[1][1], "3");
    assert!(
        fields.iter().all(|agent| agent[3] == "0"),
        "no jobs: {listed:?}"
    );
}

#[test]
fn a_python_module_runs_on_agents() {
    // An 18 MB module through the object store; compiled once per machine.
    let _deadline = deadline("a Python module on an agent", LONG_DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 2, "py");
    let pool = Pool::builder()
        .module_file(wasmpool_artifacts::PYFIXTURES)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(2)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let squares: Vec<i64> = pool.map("square", 0..100i64, None).unwrap();
    assert_eq!(squares, (0..100i64).map(|x| x * x).collect::<Vec<_>>());
    let err = pool
        .apply::<i64, _>("raise_value_error", ("no good",))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(err.message().contains("ValueError: no good"), "{err}");
}

/// The SHA-256 of the file at `path`, in hex, as `sha256sum` prints it.
fn sha256_of(path: &str) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success(), "sha256sum {path}");
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}

#[test]
fn an_agent_pinned_to_modules_runs_no_other_and_an_agent_caps_memory() {
    let _deadline = deadline("agents that refuse a job", DEADLINE);
    let server = NatsServer::start();
    let seeds = sha256_of(wasmpool_artifacts::SEEDS);
    let _pinned = AgentProcess::start_with(server.url(), 1, "pinned", &["--allow-module", &seeds]);
    // Its tasks fail with why, rather than wait for an agent that would run
    // them.
    let other = nats_builder(&server, 1).build().expect("the pool starts");
    let err = other.apply::<i64, _>("square", (3i64,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.message().contains("runs only the modules it allows"),
        "{err}"
    );
    drop(other);
    let allowed = Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(1)
        .nats(server.url())
        .build()
        .expect("the pool starts");
    let squares: Vec<i64> = allowed.map("square", 0..10i64, None).unwrap();
    assert_eq!(squares, (0..10i64).map(|x| x * x).collect::<Vec<_>>());
    drop(allowed);

    // An agent whose memory cap is below what the module needs to start
    // fails the job's tasks with the module's need and the cap.
    let server = NatsServer::start();
    let _small = AgentProcess::start_with(server.url(), 1, "small", &["--memory", "64K"]);
    let pool = nats_builder(&server, 1).build().expect("the pool starts");
    let err = pool.apply::<i64, _>("square", (3i64,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{err}");
    assert!(err.message().contains("memory limit"), "{err}");
}

#[test]
fn initializer_and_max_tasks_per_child_keep_their_meaning_on_agents() {
    let _deadline = deadline("an initializer and recycling on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 1, "one");
    let pool = nats_builder(&server, 1)
        .initializer("set_base", (7u64,))
        .max_tasks_per_child(2)
        .build()
        .expect("the pool starts");
    assert_eq!(pool.apply::<u64, _>("get_base", ()).unwrap(), 7);
    // A trap renews the instance, which runs the initializer again.
    let err = pool.apply::<i64, _>("trap_if_negative", (-1,)).unwrap_err();
    assert!(err.is_trap(), "{err}");
    assert_eq!(pool.apply::<u64, _>("get_base", ()).unwrap(), 7);
    // One worker, replaced after every two tasks: no worker runs more than
    // two of six tasks.
    let places: Vec<Place> = pool.map("place", 0..6i64, Some(1)).unwrap();
    let pids: BTreeSet<u32> = places.iter().map(|place| place.pid).collect();
    assert!(pids.len() >= 3, "{places:?}");
    for pid in pids {
        let ran = places.iter().filter(|place| place.pid == pid).count();
        assert!(ran <= 2, "worker {pid} ran {ran} tasks: {places:?}");
    }
}

#[test]
fn a_worker_killed_on_an_agent_fails_its_task_or_retries_it() {
    let _deadline = deadline("workers killed on an agent", DEADLINE);
    let server = NatsServer::start();
    let _agent = AgentProcess::start(server.url(), 1, "one");
    for retries in [0, 1] {
        let pool = nats_builder(&server, 1)
            .retries(retries)
            .build()
            .expect("the pool starts");
        // The agent's one worker for this pool, then a long task on it.
        let worker = pool.apply::<Place, _>("place", (0i64,)).unwrap().pid;
        let slow = pool.apply_async::<u64, _>("sleep_ms", (1_500u64,)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) of the worker this test's agent started; it runs
        // the 1.5 s task, so it has not exited and its pid is not reused.
        assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);
        match (retries, outcome(&slow, "the task whose worker was killed")) {
            (0, Err(err)) => {
                assert_eq!(err.kind(), ErrorKind::WorkerLost, "{err}");
                assert!(err.message().contains(&worker.to_string()), "{err}");
            }
            (1, Ok(slept)) => assert_eq!(slept, 1_500),
            (retries, other) => panic!("with {retries} retries: {other:?}"),
        }
        // A new worker took over.
        let next = pool.apply::<Place, _>("place", (1i64,)).unwrap().pid;
        assert_ne!(next, worker);
    }
}

#[test]
fn a_server_restarted_mid_job_loses_no_task() {
    let _deadline = deadline("a map across a restart of the server", LONG_DEADLINE);
    let mut server = NatsServer::start();
    let mut agent = AgentProcess::start(server.url(), 2, "steady");
    let pool = builder(2)
        .nats_options(Nats::new(server.url()).ack_wait(Duration::from_secs(2)))
        .build()
        .expect("the pool starts");
    let mut results = pool
        .imap::<u64, u64, _>("sleep_ms", vec![20u64; 200], 2)
        .unwrap();
    for _ in 0..20 {
        assert_eq!(results.next().unwrap().unwrap(), 20);
    }
    // The store is kept: the job, its chunks and its reports are still
    // there when the server is back, and both ends reconnect.
    server.restart();
    let rest: Vec<u64> = results.map(Result::unwrap).collect();
    assert_eq!(rest, vec![20u64; 180]);
    assert!(agent.is_running(), "{}", agent.stderr());
}

#[test]
fn an_agent_killed_while_its_tasks_hold_a_lock_lets_the_next_holder_in() {
    let _deadline = deadline("locks held by tasks of killed agents", LONG_DEADLINE);
    const ROUNDS: u64 = 6;
    let server = NatsServer::start();
    let ack_wait = Duration::from_secs(1);
    let pool = builder(2)
        .task_timeout(Duration::from_millis(1500))
        .nats_options(Nats::new(server.url()).ack_wait(ack_wait))
        .build()
        .unwrap();
    let lock = wasmpool::Lock::new();
    let manager = wasmpool::Manager::new();
    let owner = manager.value(&0i64).unwrap();
    let broken = manager.list::<String>([]).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut below = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut released_after = Vec::new();
    for round in 0..ROUNDS {
        let mut doomed = AgentProcess::start(server.url(), 2, &format!("doomed-{round}"));
        // Two tasks take the lock by turns, holding it a few hundred
        // microseconds, until their time limit.
        let tasks: Vec<AsyncResult<u64>> = (1..=2i64)
            .map(|me| {
                let args = (
                    &lock,
                    &owner,
                    me,
                    below(500),
                    Some(1 + below(5)),
                    1_000_000u64,
                    &broken,
                );
                pool.apply_async("guard_lock", args).unwrap()
            })
            .collect();
        let until = std::time::Instant::now() + OUTCOME_WAIT;
        while owner.get().unwrap() == 0 {
            assert!(
                std::time::Instant::now() < until,
                "round {round}: no task took the lock"
            );
        }
        // The agent dies anywhere in their turns: a task holding the lock,
        // waiting for it, or between.
        std::thread::sleep(Duration::from_micros(below(20_000)));
        doomed.kill();
        let killed = std::time::Instant::now();
        let held = lock
            .acquire_timeout(ack_wait * 5)
            .unwrap_or_else(|| panic!("round {round}: the lock of a lost agent stays held"));
        released_after.push(killed.elapsed());
        let before = owner.get().unwrap();
        if before != 0 && !held.previous_holder_died() {
            broken
                .append(&format!(
                    "round {round}: the host took the lock while {before} held it"
                ))
                .unwrap();
        }
        owner.set(&0).unwrap();
        drop(held);
        // Another agent takes the tasks the lost one held, which run to
        // their time limit (or fail as lost): each gets one outcome.
        let _rescuer = AgentProcess::start(server.url(), 2, &format!("rescuer-{round}"));
        for task in &tasks {
            let err = outcome(task, "a guard of a lost agent").unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::Timeout | ErrorKind::WorkerLost),
                "round {round}: {err}"
            );
        }
    }
    assert_eq!(broken.items().unwrap(), Vec::<String>::new());
    eprintln!(
        "the lock came free {released_after:?} after its agent was killed (ack wait {ack_wait:?})"
    );
}

/// An agent killed while its task holds a lock, started again at once with
/// the same key, runs the task again (its chunk comes back after the ack
/// wait): its worker and call numbers start over as its predecessor's did,
/// yet it is another run of the agent, whose calls are its own — the host
/// neither takes them for its predecessor's (answering them from memory)
/// nor lets its signs of life keep its predecessor's lock: the new run
/// takes the lock once the dead run's is let go of, and sets the event
/// itself.
#[test]
fn an_agent_started_again_with_its_key_is_another_run() {
    let _deadline = deadline("a task run again by an agent's next run", DEADLINE);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = command::keygen_in(dir.path());
    let key = key_file.to_str().unwrap();
    let mut first = AgentProcess::start_with(server.url(), 1, "first", &["--key", key]);
    let pool = losing_agents_within_a_second(&server).build().unwrap();
    let (lock, holding) = (wasmpool::Lock::new(), wasmpool::Event::new());
    let holder = pool
        .apply_async::<(), _>("hold_lock", (&lock, &holding, "hang"))
        .unwrap();
    assert!(holding.wait_timeout(OUTCOME_WAIT), "the task took the lock");
    first.kill();
    holding.clear();
    let _again = AgentProcess::start_with(server.url(), 1, "again", &["--key", key]);
    assert!(
        holding.wait_timeout(OUTCOME_WAIT),
        "the task run again took the lock and set the event"
    );
    assert!(lock.try_acquire().is_none(), "the new run holds the lock");
    pool.terminate();
    let err = outcome(&holder, "the task run again").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Terminated, "{err}");
    assert!(lock.acquire_timeout(OUTCOME_WAIT).is_some());
}

/// A program not told of NATS runs on the agents of the server its
/// environment names (`WASMPOOL_NATS`), unchanged: here the command-line
/// tool's `map`, which the agent serves. Empty, the variable names no
/// server, and the tasks run here.
#[test]
fn the_environment_moves_a_program_to_agents() {
    let _deadline = deadline("a map moved to agents by its environment", DEADLINE);
    let server = NatsServer::start();
    let agent = AgentProcess::start(server.url(), 2, "env");
    let input: String = (0..8).map(|i| format!("{i}\n")).collect();
    let fixtures = wasmpool_artifacts::FIXTURES;
    let serving = || agent.stderr().matches(": serving, ").count();
    for (url, jobs) in [(server.url(), 1), ("", 1)] {
        let out = command::wasmpool_with_env(
            &["map", fixtures, "square", "--no-progress"],
            &input,
            &[(wasmpool::NATS_ENV, url)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let squares: Vec<u64> = records(&out)
            .iter()
            .map(|record| record["ok"].as_u64().unwrap())
            .collect();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
        agent.wait_for_line(": serving, ", OUTCOME_WAIT);
        assert_eq!(serving(), jobs, "{url:?}: {}", agent.stderr());
    }
}

/// What tasks on agents ask of the host — its functions, its shared objects —
/// and processes on agents: the cases of `tests/common/calls.rs`, the
/// randomized histories of `tests/common/histories/` and the processes of
/// `tests/common/processes.rs`, which a local pool runs too
/// (`tests/all/here.rs`).
mod on_agents {
    use std::sync::Mutex;

    use super::{AgentProcess, NatsServer, descendants};
    use crate::calls::{Pools, tests_of_calls};
    use crate::common::builder;
    use crate::histories::tests_of_histories;
    use crate::processes::tests_of_processes;
    use wasmpool::{Nats, Pool, PoolBuilder};

    /// Tasks run by agents: each pool gets a server of its own, and one
    /// agent with as many processes as the pool plans.
    struct OnAgents {
        running: Mutex<Vec<(NatsServer, AgentProcess)>>,
        /// Each pool's server and agent stop when the next pool's start:
        /// for cases whose pools come one after another.
        one_at_a_time: bool,
    }

    impl OnAgents {
        fn new() -> Self {
            OnAgents {
                running: Mutex::new(Vec::new()),
                one_at_a_time: false,
            }
        }

        fn one_at_a_time() -> Self {
            OnAgents {
                one_at_a_time: true,
                ..OnAgents::new()
            }
        }
    }

    impl Pools for OnAgents {
        fn builder(&self, processes: usize) -> PoolBuilder {
            let mut running = self.running.lock().unwrap();
            if self.one_at_a_time {
                running.clear();
            }
            let server = NatsServer::start();
            let agent = AgentProcess::start(server.url(), processes, "calls");
            // Trusted, so that the pool may hand it environment variables.
            let nats = Nats::new(server.url()).trust_agent(agent.key());
            let builder = builder(processes).nats_options(nats);
            running.push((server, agent));
            builder
        }

        /// The workers of the agents: a case's pools run nowhere else.
        fn worker_pids(&self, _pool: &Pool) -> Vec<u32> {
            let running = self.running.lock().unwrap();
            let mut pids: Vec<u32> = running
                .iter()
                .flat_map(|(_, agent)| descendants(agent.pid()))
                .collect();
            pids.sort_unstable();
            pids
        }

        /// The last agent started: a case's processes run there.
        fn parent_of_workers(&self) -> u32 {
            let running = self.running.lock().unwrap();
            running.last().map_or(0, |(_, agent)| agent.pid())
        }

        /// A fifth: each history starts a server and an agent.
        fn histories(&self, default: u64) -> u64 {
            default.div_ceil(5)
        }
    }

    tests_of_calls!(OnAgents::new());
    tests_of_histories!(OnAgents::one_at_a_time());
    tests_of_processes!(OnAgents::new());
}
