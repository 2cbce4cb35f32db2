//! Entry points for the fuzz targets (`host/fuzz/`) and the micro-benchmarks
//! (`host/benches/parts.rs`), behind the `internals` feature: the pieces that
//! take untrusted bytes, and the worker's runtime run in-process. Not public
//! API.

use std::path::Path;

use serde_bytes::ByteBuf;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use crate::channel::io::FrameReader;
use crate::channel::{self, EngineSettings, FromWorker, Grants, Limits, Outcomes, ToWorker, codec};
use crate::engine::{self, Role};
use crate::worker::outbox::Outbox;
use crate::worker::runtime::{Runner, RunnerConfig};

fn settings() -> EngineSettings {
    EngineSettings {
        max_memory: 1 << 30,
        epochs: false,
        fuel: false,
    }
}

/// Decodes frames from `bytes` as a pool reads a worker's answers and as a
/// worker reads its pool's requests, until the bytes run out or do not
/// decode. Must never panic, and never allocate more than `limit` for a
/// frame whatever its header claims.
pub fn decode_frames(bytes: &[u8], limit: usize) {
    let mut from_worker = FrameReader::new(bytes, limit);
    while let Ok(Some(_)) = from_worker.read::<FromWorker>() {}
    let mut to_worker = FrameReader::new(bytes, limit);
    while let Ok(Some(_)) = to_worker.read::<ToWorker>() {}
}

/// Runs the module loader on `bytes`: the checks of the pool, compiling,
/// and checking the result against the wasmpool world (without running
/// it). Returns whether the module was accepted; must never panic.
pub fn load_module(bytes: &[u8]) -> bool {
    let Ok(engine) = engine::engine(&settings(), Role::Compile) else {
        return false;
    };
    crate::module::validate(&engine, bytes, "the input").is_ok()
}

/// A worker's answer to a batch of `tasks` small results, as a frame.
pub fn answer_frame(tasks: usize) -> Vec<u8> {
    let mut outcomes = Outcomes::with_capacity(tasks);
    for i in 0..tasks {
        outcomes.push_ok(&rmp_serde::to_vec(&(i as i64 * 7919)).expect("an integer encodes"));
    }
    let mut frame = Vec::new();
    let answer = FromWorker::Outcomes {
        seq: 1,
        first: 0,
        outcomes,
    };
    codec::encode(&answer, &mut frame);
    frame
}

/// A batch of `tasks` one-argument tasks, as a frame.
pub fn batch_frame(tasks: usize) -> Vec<u8> {
    let mut args = Vec::new();
    let mut ends = Vec::with_capacity(tasks);
    for i in 0..tasks {
        crate::args::encode(&mut args, &(i as i64,)).expect("a tuple encodes");
        ends.push(args.len() as u32);
    }
    let batch = channel::Batch {
        seq: 1,
        task: "square".into(),
        first_index: 0,
        args: ByteBuf::from(args),
        ends,
        handed: Vec::new(),
    };
    let mut frame = Vec::new();
    codec::encode(&ToWorker::Run(batch), &mut frame);
    frame
}

/// Decodes a frame made by [`answer_frame`] or [`batch_frame`]; returns how
/// many tasks it carries.
pub fn decode_frame(frame: &[u8]) -> usize {
    let body = &frame[codec::HEADER_LEN..];
    match codec::decode_body::<FromWorker>(body) {
        Ok(FromWorker::Outcomes { outcomes, .. }) => outcomes.len(),
        _ => match codec::decode_body::<ToWorker>(body) {
            Ok(ToWorker::Run(batch)) => batch.ends.len(),
            _ => 0,
        },
    }
}

/// A worker's runtime, in this process and without its sandbox: for
/// measuring guest calls and instantiation.
pub struct Guest {
    runtime: tokio::runtime::Runtime,
    runner: Runner,
    outbox: Arc<Outbox>,
    /// What the outbox wrote.
    sent: Sent,
}

/// Keeps what is written, to count the outcomes.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<u8>>>);

impl Write for Sent {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Guest {
    /// Compiles `module` (cached in `cache_dir`) and loads it as a worker does.
    pub fn load(module: &Path, cache_dir: &Path) -> Result<Self, crate::Error> {
        let bytes = crate::module::read_file(module, crate::module::MODULE_BYTES)?;
        let cache = Arc::new(crate::cache::CacheDir::open(cache_dir)?);
        let sent = Sent::default();
        let outbox = Arc::new(Outbox::new(Box::new(sent.clone())));
        let artifact = crate::module::prepare(&settings(), &bytes, "the module", &cache, None)?;
        let config = RunnerConfig {
            pid: std::process::id(),
            output_limit: 1 << 16,
            max_memory: 1 << 30,
            initializer: None,
            limits: Limits {
                task_timeout: None,
                startup_timeout: std::time::Duration::from_secs(5),
                initializer_timeout: std::time::Duration::from_secs(30),
                fuel: None,
                max_payload: 1 << 26,
            },
            grants: Grants::default(),
            fresh_instance: false,
            backstop: None,
            outbox: outbox.clone(),
        };
        let engine = engine::engine(&settings(), Role::Run)?;
        // SAFETY: `prepare` just wrote the artifact for these settings.
        let runner = unsafe { Runner::load(engine, &artifact, config) }?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| crate::Error::new(crate::ErrorKind::Spawn, err.to_string()))?;
        Ok(Guest {
            runtime,
            runner,
            outbox,
            sent,
        })
    }

    /// Throws the instance away and makes a fresh one.
    pub fn renew(&mut self) -> Result<(), crate::Error> {
        self.runner.renew();
        self.runtime.block_on(self.runner.describe()).map(drop)
    }

    /// Runs `task` once per element of `args` (each a MessagePack argument
    /// array) in one guest call, its outcomes sent through an outbox as a
    /// worker's are; returns how many succeeded.
    pub fn run(&mut self, task: &str, args: &[u8], ends: &[u32]) -> usize {
        self.outbox.begin(0);
        self.runtime
            .block_on(self.runner.run(task, 0, args, ends, &[]));
        if self.outbox.flush().is_err() {
            return 0;
        }
        let sent = std::mem::take(&mut *self.sent.0.lock().unwrap_or_else(PoisonError::into_inner));
        let mut frames = FrameReader::new(&sent[..], usize::MAX);
        let mut succeeded = 0;
        while let Ok(Some(message)) = frames.read::<FromWorker>() {
            if let FromWorker::Outcomes { outcomes, .. } = message {
                succeeded += outcomes.iter().filter(|outcome| outcome.is_ok()).count();
            }
        }
        succeeded
    }
}

/// A report that task 0 of chunk 0 of `job` returned `result`, as the
/// agent of `key` publishes it (tagged with a report key, see
/// [`report_key`]), signed with `key` as the host's chunks are, or only
/// encoded: what [`open_report`] takes. For the benchmark of what a
/// report's authentication costs.
#[cfg(feature = "nats")]
pub fn report(key: &crate::SigningKey, job: &str, result: &[u8], how: Authentication) -> Vec<u8> {
    use crate::backend::nats::keys::Domain;
    use crate::backend::nats::wire::{self, Report, Signed, Tagged};
    let mut outcomes = Outcomes::with_capacity(1);
    outcomes.push_ok(result);
    let report = Report::Outcomes {
        chunk: 0,
        first_index: 0,
        outcomes,
    };
    match how {
        Authentication::None => wire::encode(&report),
        Authentication::Signature => Signed::encode(key, Domain::Report, job, &report),
        Authentication::Tag => Tagged::encode(&key.public_key(), report_key(), job, &report),
    }
}

/// How a benchmarked report is authenticated.
#[cfg(feature = "nats")]
#[derive(Clone, Copy, Debug)]
pub enum Authentication {
    /// Not: only encoded.
    None,
    /// Signed (ed25519), as chunks are.
    Signature,
    /// Tagged (HMAC-SHA256) with the key the agent shares with the host,
    /// as reports are.
    Tag,
}

/// The one report key of the benchmarks.
#[cfg(feature = "nats")]
fn report_key() -> &'static crate::backend::nats::keys::ReportKey {
    static KEY: std::sync::OnceLock<crate::backend::nats::keys::ReportKey> =
        std::sync::OnceLock::new();
    KEY.get_or_init(crate::backend::nats::keys::ReportKey::generate)
}

/// Takes a report [`report`] made of `job`, authenticated `how`: checks
/// it and decodes it; whether it held.
#[cfg(feature = "nats")]
pub fn open_report(job: &str, payload: &[u8], how: Authentication) -> bool {
    use crate::backend::nats::keys::Domain;
    use crate::backend::nats::wire::{self, Report, Signed, Tagged};
    match how {
        Authentication::None => wire::decode::<Report>(payload, "report").is_ok(),
        Authentication::Signature => {
            Signed::open::<Report>(payload, Domain::Report, job, "report").is_ok()
        }
        Authentication::Tag => Tagged::open(payload, job, |_| Some(report_key().clone())).is_ok(),
    }
}

/// What a lying client publishes of the chunk `chunk` (as it crossed the
/// server) of `job`, as a report tagged as the agent of public key `agent`
/// (with a report key of its own: not the one the host sealed to that
/// agent): that every task of it returned `result` (encoded). None if
/// `chunk` is not a chunk. For the tests of a pool's trust in its agents.
#[cfg(feature = "nats")]
pub fn forged_report(agent: &str, job: &str, chunk: &[u8], result: &[u8]) -> Option<Vec<u8>> {
    use crate::backend::nats::keys::ReportKey;
    use crate::backend::nats::wire::{self, ChunkMessage, Report, Signed, Tagged};
    let signed: Signed = wire::decode(chunk, "chunk").ok()?;
    let chunk: ChunkMessage = wire::decode(&signed.body, "chunk").ok()?;
    let mut outcomes = Outcomes::with_capacity(chunk.tasks.ends.len());
    for _ in &chunk.tasks.ends {
        outcomes.push_ok(result);
    }
    let report = Report::Outcomes {
        chunk: chunk.tasks.seq,
        first_index: chunk.tasks.first_index,
        outcomes,
    };
    Some(Tagged::encode(agent, &ReportKey::generate(), job, &report))
}

/// What a lying peer that signs with `key` sends in place of the call
/// `captured` (a task's call on the host, as it crossed the server, of
/// `job`): the same call with a number of its own (`call`), and, if given,
/// another object id or chunk number. None if `captured` is not a call.
/// For the tests of a host's trust in its agents' calls.
#[cfg(feature = "nats")]
pub fn forged_call(
    key: &crate::SigningKey,
    job: &str,
    captured: &[u8],
    call: u64,
    object: Option<u64>,
    chunk: Option<u64>,
) -> Option<Vec<u8>> {
    use crate::backend::calls::Asked;
    use crate::backend::nats::keys::Domain;
    use crate::backend::nats::wire::{self, CallMessage, Calling, Signed};
    let signed: Signed = wire::decode(captured, "call").ok()?;
    let Calling { session, message } = wire::decode(&signed.body, "call").ok()?;
    let CallMessage::Call {
        worker,
        chunk: their_chunk,
        index,
        mut asked,
        ..
    } = message
    else {
        return None;
    };
    if let (Asked::Invoke { object: id, .. }, Some(object)) = (&mut asked, object) {
        *id = object;
    }
    let message = CallMessage::Call {
        worker,
        chunk: chunk.or(their_chunk),
        index,
        call,
        asked,
    };
    let calling = Calling { session, message };
    Some(Signed::encode(key, Domain::Call, job, &calling))
}

/// Whether `payload` (a message on a job's calls subject) is a task's call
/// of operation `op`.
#[cfg(feature = "nats")]
pub fn is_call_of(payload: &[u8], op: &str) -> bool {
    use crate::backend::calls::Asked;
    use crate::backend::nats::wire::{self, CallMessage, Calling, Signed};
    let Ok(signed) = wire::decode::<Signed>(payload, "call") else {
        return false;
    };
    matches!(
        wire::decode(&signed.body, "call"),
        Ok(Calling {
            message: CallMessage::Call { asked: Asked::Invoke { op: of, .. }, .. },
            ..
        }) if of == op
    )
}

/// What the host's answer `payload` to a call says: the result, or why it
/// was refused (its signature unchecked). None if it is no answer.
#[cfg(feature = "nats")]
pub fn answer_of(payload: &[u8]) -> Option<Result<Vec<u8>, String>> {
    use crate::backend::nats::wire::{self, Answer, Signed};
    let signed: Signed = wire::decode(payload, "answer").ok()?;
    let answer: Answer = wire::decode(&signed.body, "answer").ok()?;
    Some(
        answer
            .result
            .map(serde_bytes::ByteBuf::into_vec)
            .map_err(|failure| failure.to_string()),
    )
}

/// The id of the shared object `handle` (a lock, a queue, a managed dict,
/// ...) names in its tasks' arguments; None for what is not one.
pub fn object_id<T: serde::Serialize>(handle: &T) -> Option<u64> {
    let ((), objects) = crate::objects::handle::collecting(|| {
        let _ = rmp_serde::to_vec(handle);
    });
    objects.first().map(|object| object.id())
}
