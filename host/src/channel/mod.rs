//! The channel between the pool and a worker process: the messages, and
//! ([`codec`]) how they travel as frames. Both sides speak it; neither side's
//! code lives here. The codec does no I/O ([`io`] does, for both sides).
//!
//! # The conversation
//!
//! 1. The worker says [`FromWorker::Hello`]; the pool answers
//!    [`ToWorker::Setup`]; the worker answers [`FromWorker::Ready`] (or
//!    [`FromWorker::SetupFailed`]).
//! 2. The pool sends [`ToWorker::Run`] batches, numbered per worker, a few
//!    ahead of what the worker runs (bounded by count, bytes and expected
//!    time: see `backend::local::schedule`).
//! 3. Outcomes stream: the worker sends [`FromWorker::Outcomes`] for
//!    consecutive tasks of a batch as they finish. What finishes close
//!    together travels in one frame (coalesced for at most
//!    `worker::outbox::LINGER`, or until `worker::outbox::FLUSH_BYTES`), so
//!    a million tiny tasks are a few hundred writes; a task that finishes
//!    after a quiet spell goes out at once. A task's [`FromWorker::Output`]
//!    comes before its outcome.
//! 4. Both directions are multiplexed: while a batch runs, the pool may send
//!    [`ToWorker::Withdraw`] (take back a batch not started: the worker
//!    answers [`FromWorker::Withdrawn`], or nothing if it started it), and a
//!    running task may send a [`FromWorker::Request`] — a call of a host
//!    function — or a [`FromWorker::Invoke`] — an operation on a shared
//!    object — and wait for its [`ToWorker::Reply`], matched by id, while
//!    the rest of the pool goes on; a task stopped while it waits sends
//!    [`FromWorker::Cancel`].
//! 5. [`ToWorker::Shutdown`] (or the end of the channel) ends the worker once
//!    what it holds is done.
//!
//! Everything a worker sends is bounded ([`bounds`]): payloads by the pool's
//! limit, names and error messages by fixed sizes, frames by what those
//! add up to. A worker past a bound broke the protocol: the pool stops
//! reading it and replaces it.
//!
//! When a worker dies, the pool knows from the outcomes it received which
//! tasks finished (they keep their outcomes), which one ran (it fails with
//! `WorkerLost`), and which never started (they run elsewhere).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::Error;

pub(crate) mod bounds;
pub(crate) mod codec;
pub(crate) mod io;

/// The version of this protocol; pool and worker must agree on it.
pub(crate) const VERSION: u32 = 5;

/// Settings the wasmtime engines of the pool and of its workers share; an
/// artifact compiled under one set loads only under the same set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct EngineSettings {
    /// The most linear memory one instance may have, in bytes.
    pub(crate) max_memory: u64,
    /// Compiled with epoch checks, for task timeouts. They cost compute-bound
    /// guests a third of their speed, so only a pool with a task time limit
    /// pays for them.
    pub(crate) epochs: bool,
    /// Compiled with fuel metering, for fuel budgets.
    pub(crate) fuel: bool,
}

/// Limits on what a module runs, enforced inside the worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Limits {
    /// Wall-clock time one task may take.
    pub(crate) task_timeout: Option<Duration>,
    /// Wall-clock time a fresh instance may take to start, and `describe`
    /// to answer.
    pub(crate) startup_timeout: Duration,
    /// Wall-clock time one run of the initializer may take.
    pub(crate) initializer_timeout: Duration,
    /// Fuel (roughly, wasm instructions) one task may burn.
    pub(crate) fuel: Option<u64>,
    /// The most bytes one task's encoded result, or one host call's
    /// arguments or reply, may take.
    pub(crate) max_payload: u64,
}

/// A host directory a guest may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// What a guest is granted beyond clocks and randomness.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grants {
    pub(crate) dirs: Vec<Preopen>,
    pub(crate) env: Vec<(String, String)>,
    /// The shared objects in the initializer's arguments, by id: every task
    /// may use them, as the initializer may have kept them.
    pub(crate) objects: Vec<u64>,
}

/// A call of a task with encoded arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Call {
    pub(crate) task: String,
    pub(crate) args: ByteBuf,
}

/// A precompiled module on disk, named by its path and identified by the
/// file the pool checked, so that a worker loads that file or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArtifactFile {
    pub(crate) path: PathBuf,
    /// The device and inode of the file.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// What a worker needs to start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Setup {
    /// The precompiled module to load.
    pub(crate) artifact: ArtifactFile,
    pub(crate) engine: EngineSettings,
    /// Run once on every fresh instance, before its first task.
    pub(crate) initializer: Option<Call>,
    /// The most bytes of stdout (and of stderr) kept from one task.
    pub(crate) output_limit: u32,
    pub(crate) limits: Limits,
    pub(crate) grants: Grants,
    /// Check, once sandboxed, that the worker cannot exec, open sockets or
    /// open files it was not granted.
    pub(crate) probe_sandbox: bool,
    /// Run every task on an instance of its own, thrown away after it.
    pub(crate) fresh_instance: bool,
}

/// A batch of tasks of one kind, with consecutive indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// Numbers the batches sent to one worker, so answers can be checked.
    pub(crate) seq: u64,
    pub(crate) task: String,
    pub(crate) first_index: u64,
    /// The tasks' MessagePack argument arrays, concatenated.
    pub(crate) args: ByteBuf,
    /// Where each task's arguments end in `args`.
    pub(crate) ends: Vec<u32>,
    /// The shared objects handed to each task, as (task index, object id):
    /// a task may use those, and the initializer's, while it runs.
    pub(crate) handed: Vec<(u64, u64)>,
}

/// A message from the pool to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    Setup(Setup),
    Run(Batch),
    /// Take back batch `seq` if it has not started: answered with
    /// [`FromWorker::Withdrawn`], or not at all if it has.
    Withdraw {
        seq: u64,
    },
    /// The answer to [`FromWorker::Request`] or [`FromWorker::Invoke`]
    /// `call`: the MessagePack-encoded result, or why the call failed.
    Reply {
        call: u64,
        result: Result<ByteBuf, Failure>,
    },
    /// Finish what was sent, then exit.
    Shutdown,
}

/// Why a task's call of the host (a host function, or an operation on a
/// shared object) did not do what it asked; `objects.object-error` in
/// `wit/wasmpool.wit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// The call was refused or failed; the message says why.
    Refused(String),
    /// A wait ran out of time with nothing done.
    TimedOut,
    /// The other end of a pipe is closed and nothing is left to read, or a
    /// queue is closed to `put`.
    Closed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(why) => f.write_str(why),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Closed(why) => write!(f, "closed: {why}"),
        }
    }
}

/// One task offered by a module.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<ParamInfo>,
}

impl TaskInfo {
    /// How many positional arguments it takes: one per parameter.
    pub fn arity(&self) -> usize {
        self.params.len()
    }
}

/// One parameter of a task, as its module declares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The name a caller passes it by as a keyword argument; `None` for a
    /// positional-only parameter.
    pub name: Option<String>,
    /// Its default value, MessagePack-encoded; `None` if it is required.
    #[serde(with = "serde_bytes")]
    pub default: Option<Vec<u8>>,
}

/// Which output stream of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
}

/// The outcomes of consecutive tasks, packed so that many results cost
/// one allocation, not one per task: the encoded results of the tasks that
/// succeeded back to back, and the failures by position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcomes {
    bytes: ByteBuf,
    /// For each task, where its result ends in `bytes` (for a failed task,
    /// where the one before ended).
    ends: Vec<u32>,
    /// The failed tasks' positions and errors, in order.
    failures: Vec<(u32, Error)>,
}

impl Outcomes {
    pub(crate) fn with_capacity(tasks: usize) -> Self {
        Outcomes {
            bytes: ByteBuf::new(),
            ends: Vec::with_capacity(tasks),
            failures: Vec::new(),
        }
    }

    /// How many tasks' outcomes this holds.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn push_ok(&mut self, result: &[u8]) {
        self.bytes.extend_from_slice(result);
        self.ends.push(self.bytes.len() as u32);
    }

    pub(crate) fn push_err(&mut self, error: Error) {
        self.failures.push((self.ends.len() as u32, error));
        self.ends.push(self.bytes.len() as u32);
    }

    /// The failures among the outcomes.
    pub(crate) fn failures(&self) -> impl Iterator<Item = &Error> {
        self.failures.iter().map(|(_, error)| error)
    }

    /// Whether this holds no outcome.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Roughly how many bytes this takes encoded.
    pub(crate) fn encoded_len(&self) -> usize {
        self.bytes.len() + 5 * self.ends.len()
    }

    /// Each task's outcome, in order.
    #[cfg(test)]
    pub(crate) fn into_results(self) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        let Outcomes {
            bytes,
            ends,
            failures,
        } = self;
        let mut failures = failures.into_iter().peekable();
        let mut start = 0usize;
        ends.into_iter().enumerate().map(move |(i, end)| {
            let end = end as usize;
            let range = start..end;
            start = end;
            match failures.next_if(|(at, _)| *at as usize == i) {
                Some((_, err)) => Err(err),
                None => Ok(bytes[range].to_vec()),
            }
        })
    }

    /// Whether the results and failures are where the ends say: what
    /// [`iter`](Self::iter) relies on, for outcomes that came over a network.
    #[cfg(feature = "nats")]
    pub(crate) fn is_well_formed(&self) -> bool {
        let ends_rise = self
            .ends
            .iter()
            .try_fold(0u32, |previous, &end| (end >= previous).then_some(end))
            .is_some_and(|last| last as usize == self.bytes.len());
        let failures_in_order = self
            .failures
            .iter()
            .try_fold(None::<u32>, |previous, (at, _)| {
                let after = previous.is_none_or(|previous| *at > previous);
                (after && (*at as usize) < self.ends.len()).then_some(Some(*at))
            })
            .is_some();
        ends_rise && failures_in_order
    }

    /// The outcomes after the first `skip`.
    #[cfg(feature = "nats")]
    pub(crate) fn skip(&self, skip: usize) -> Outcomes {
        let mut rest = Outcomes::with_capacity(self.len().saturating_sub(skip));
        for outcome in self.iter().skip(skip) {
            match outcome {
                Ok(result) => rest.push_ok(result),
                Err(err) => rest.push_err(err.clone()),
            }
        }
        rest
    }

    /// Each task's outcome, in order, borrowing the results.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<&[u8], &Error>> {
        let mut failures = self.failures.iter().peekable();
        let mut start = 0usize;
        self.ends.iter().enumerate().map(move |(i, end)| {
            let end = *end as usize;
            let range = start..end;
            start = end;
            match failures.next_if(|(at, _)| *at as usize == i) {
                Some((_, err)) => Err(err),
                None => Ok(&self.bytes[range]),
            }
        })
    }
}

/// A message from a worker to the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    Hello {
        version: u32,
        pid: u32,
    },
    Ready {
        tasks: Vec<TaskInfo>,
        /// What the sandbox probe found still possible (empty: all refused).
        escapes: Vec<String>,
    },
    SetupFailed {
        error: Error,
    },
    /// The module is stuck outside a task (starting, `describe`, the
    /// initializer) past its time limit, where nothing could stop it: the
    /// worker ends right after this message.
    Stuck {
        error: Error,
    },
    /// What a task wrote to stdout or stderr (bounded; `truncated` if more was
    /// written than kept).
    Output {
        index: u64,
        stream: Stream,
        bytes: ByteBuf,
        truncated: bool,
    },
    /// The outcomes of consecutive tasks of batch `seq`, from its task
    /// `first` (a position in the batch) on.
    Outcomes {
        seq: u64,
        first: u32,
        outcomes: Outcomes,
    },
    /// Batch `seq` was taken back before it started: none of its tasks ran.
    Withdrawn {
        seq: u64,
    },
    /// Task `index` calls the host function `name` with `args` (a
    /// MessagePack array of positional arguments) and waits for the
    /// [`ToWorker::Reply`] to `call`.
    Request {
        call: u64,
        index: u64,
        name: String,
        args: ByteBuf,
    },
    /// Task `index` runs operation `op` of the shared object `object` with
    /// `args` and waits for the [`ToWorker::Reply`] to `call`.
    Invoke {
        call: u64,
        index: u64,
        object: u64,
        op: String,
        args: ByteBuf,
    },
    /// The task that made `call` no longer waits for its reply (it was
    /// stopped by its time limit): a wait the call started is given up.
    Cancel {
        call: u64,
    },
    /// The reply to `call` came after its task stopped waiting for it:
    /// `result` is what it carried (an item taken from a queue, ...), for
    /// the pool to put back.
    Unclaimed {
        call: u64,
        result: ByteBuf,
    },
}

impl FromWorker {
    /// The message's name, for an error about a message out of place (never
    /// its contents: a worker that breaks the protocol may send anything).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            FromWorker::Hello { .. } => "Hello",
            FromWorker::Ready { .. } => "Ready",
            FromWorker::SetupFailed { .. } => "SetupFailed",
            FromWorker::Stuck { .. } => "Stuck",
            FromWorker::Output { .. } => "Output",
            FromWorker::Outcomes { .. } => "Outcomes",
            FromWorker::Withdrawn { .. } => "Withdrawn",
            FromWorker::Request { .. } => "Request",
            FromWorker::Invoke { .. } => "Invoke",
            FromWorker::Cancel { .. } => "Cancel",
            FromWorker::Unclaimed { .. } => "Unclaimed",
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ErrorKind;

    #[cfg(feature = "nats")]
    #[test]
    fn outcomes_skip_and_check_their_shape() {
        let mut outcomes = Outcomes::default();
        outcomes.push_ok(b"one");
        outcomes.push_err(Error::new(ErrorKind::Failed, "two"));
        outcomes.push_ok(b"three");
        assert!(outcomes.is_well_formed());
        let rest = outcomes.skip(1);
        assert_eq!(rest.len(), 2);
        assert!(rest.is_well_formed());
        assert_eq!(rest.iter().nth(1).unwrap().unwrap(), b"three");
        assert!(outcomes.skip(3).is_empty());

        let mut forged = outcomes.clone();
        forged.ends[1] = 100;
        assert!(!forged.is_well_formed());
        let mut forged = outcomes.clone();
        forged
            .failures
            .push((9, Error::new(ErrorKind::Failed, "far")));
        assert!(!forged.is_well_formed());
        let mut forged = outcomes;
        forged.bytes.push(0);
        assert!(!forged.is_well_formed());
    }

    #[test]
    fn outcomes_keep_order() {
        let mut outcomes = Outcomes::default();
        outcomes.push_ok(b"one");
        outcomes.push_err(Error::new(ErrorKind::Failed, "two"));
        outcomes.push_ok(b"");
        assert_eq!(outcomes.len(), 3);
        let seen: Vec<Result<&[u8], ErrorKind>> =
            outcomes.iter().map(|o| o.map_err(Error::kind)).collect();
        assert_eq!(
            seen,
            [Ok(&b"one"[..]), Err(ErrorKind::Failed), Ok(&b""[..])]
        );
        let owned: Vec<Result<Vec<u8>, Error>> = outcomes.into_results().collect();
        assert_eq!(owned[0], Ok(b"one".to_vec()));
    }

    /// An outcome: a result's bytes, or a failure's message.
    fn outcome() -> impl Strategy<Value = Result<Vec<u8>, String>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Ok),
            ".{0,20}".prop_map(Err),
        ]
    }

    proptest! {
        #[test]
        fn packed_outcomes_come_back_as_they_went(items in proptest::collection::vec(outcome(), 0..60)) {
            let mut packed = Outcomes::default();
            for item in &items {
                match item {
                    Ok(bytes) => packed.push_ok(bytes),
                    Err(message) => packed.push_err(Error::new(ErrorKind::Failed, message.clone())),
                }
            }
            let unpacked: Vec<Result<Vec<u8>, String>> = packed
                .into_results()
                .map(|o| o.map_err(|e| e.message().to_string()))
                .collect();
            prop_assert_eq!(unpacked, items);
        }
    }
}
