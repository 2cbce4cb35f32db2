//! The messages between the pool and its worker processes, and their framing.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of a
//! postcard-encoded message. This module does no I/O: it turns messages into
//! bytes and bytes into messages, and it never allocates more than the
//! configured frame limit for a length read off the wire.
//!
//! The conversation: the worker says [`FromWorker::Hello`]; the pool answers
//! [`ToWorker::Setup`]; the worker answers [`FromWorker::Ready`] (or
//! [`FromWorker::SetupFailed`]). Then the pool sends [`ToWorker::Run`] batches,
//! several ahead, and the worker answers each with a [`FromWorker::Done`], in
//! order, preceded by the [`FromWorker::Output`] its tasks wrote.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::Error;

/// The version of this protocol; pool and worker must agree on it.
pub(crate) const VERSION: u32 = 2;

/// Bytes of the length prefix of a frame.
pub(crate) const HEADER_LEN: usize = 4;

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
    /// The most bytes one task's encoded result may take.
    pub(crate) max_result: u64,
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
}

/// A message from the pool to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    Setup(Setup),
    Run(Batch),
    /// Finish what was sent, then exit.
    Shutdown,
}

/// One task offered by a module.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// How many positional arguments it takes.
    pub arity: u32,
}

/// Which output stream of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
}

/// The outcomes of consecutive tasks, packed so that a chunk's results cost
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

    /// Whether the last outcome is a failure of `kind`.
    pub(crate) fn last_failed_with(&self, kind: crate::ErrorKind) -> bool {
        matches!(self.failures.last(), Some((at, err)) if *at as usize + 1 == self.len() && err.kind() == kind)
    }

    /// Appends `other`'s outcomes after these.
    pub(crate) fn append(&mut self, other: Outcomes) {
        let (base, offset) = (self.bytes.len() as u32, self.ends.len() as u32);
        self.bytes.extend_from_slice(&other.bytes);
        self.ends
            .extend(other.ends.into_iter().map(|end| end + base));
        self.failures.extend(
            other
                .failures
                .into_iter()
                .map(|(at, err)| (at + offset, err)),
        );
    }

    /// Each task's outcome, in order.
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
    /// The outcomes of batch `seq`, one per task, in order.
    Done {
        seq: u64,
        outcomes: Outcomes,
    },
}

/// A frame that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Appends `message` as one frame to `out`.
pub(crate) fn encode<M: Serialize>(message: &M, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Writing into a Vec cannot fail, and every message type serialises.
    *out = postcard::to_extend(message, std::mem::take(out)).expect("message encodes");
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
}

/// Reads a frame header: how many bytes of body follow.
pub(crate) fn decode_header(header: [u8; HEADER_LEN], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

/// Decodes a frame body.
pub(crate) fn decode_body<'de, M: Deserialize<'de>>(body: &'de [u8]) -> Result<M, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|err| FrameError::Malformed(err.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} bytes left over after the message",
            rest.len()
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn outcomes_keep_order_across_appends() {
        let mut a = Outcomes::with_capacity(2);
        a.push_ok(b"one");
        a.push_err(Error::new(ErrorKind::Failed, "two"));
        let mut b = Outcomes::default();
        b.push_ok(b"");
        b.push_ok(b"four");
        b.push_err(Error::new(ErrorKind::Panic, "five"));
        assert!(b.last_failed_with(ErrorKind::Panic));
        a.append(b);
        assert_eq!(a.len(), 5);
        let seen: Vec<Result<&[u8], ErrorKind>> =
            a.iter().map(|o| o.map_err(Error::kind)).collect();
        assert_eq!(
            seen,
            [
                Ok(&b"one"[..]),
                Err(ErrorKind::Failed),
                Ok(&b""[..]),
                Ok(&b"four"[..]),
                Err(ErrorKind::Panic)
            ]
        );
        let owned: Vec<Result<Vec<u8>, Error>> = a.clone().into_results().collect();
        assert_eq!(owned[3], Ok(b"four".to_vec()));
    }

    use proptest::prelude::*;

    /// An outcome: a result's bytes, or a failure's message.
    fn outcome() -> impl Strategy<Value = Result<Vec<u8>, String>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Ok),
            ".{0,20}".prop_map(Err),
        ]
    }

    proptest! {
        #[test]
        fn packed_outcomes_come_back_as_they_went(
            first in proptest::collection::vec(outcome(), 0..30),
            second in proptest::collection::vec(outcome(), 0..30),
        ) {
            let pack = |items: &[Result<Vec<u8>, String>]| {
                let mut outcomes = Outcomes::default();
                for item in items {
                    match item {
                        Ok(bytes) => outcomes.push_ok(bytes),
                        Err(message) => outcomes.push_err(Error::new(ErrorKind::Failed, message.clone())),
                    }
                }
                outcomes
            };
            let mut packed = pack(&first);
            packed.append(pack(&second));
            let unpacked: Vec<Result<Vec<u8>, String>> = packed
                .into_results()
                .map(|o| o.map_err(|e| e.message().to_string()))
                .collect();
            let expected: Vec<_> = first.into_iter().chain(second).collect();
            prop_assert_eq!(unpacked, expected);
        }

        #[test]
        fn batches_survive_a_frame(
            seq in any::<u64>(),
            task in "[a-z_]{1,12}",
            first_index in any::<u64>(),
            args in proptest::collection::vec(any::<u8>(), 0..200),
            ends in proptest::collection::vec(any::<u32>(), 0..20),
        ) {
            let message = ToWorker::Run(Batch { seq, task, first_index, args: ByteBuf::from(args), ends });
            let mut frame = vec![0xAA];
            encode(&message, &mut frame);
            let len = decode_header(frame[1..1 + HEADER_LEN].try_into().unwrap(), usize::MAX).unwrap();
            prop_assert_eq!(len, frame.len() - 1 - HEADER_LEN);
            prop_assert_eq!(decode_body::<ToWorker>(&frame[1 + HEADER_LEN..]), Ok(message));
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_body::<FromWorker>(&body);
            let _ = decode_body::<ToWorker>(&body);
        }
    }

    #[test]
    fn frames_round_trip_and_refuse_oversized_lengths() {
        let mut frame = Vec::new();
        let mut outcomes = Outcomes::default();
        outcomes.push_ok(&[1, 2, 3]);
        let message = FromWorker::Done { seq: 7, outcomes };
        encode(&message, &mut frame);
        let len = decode_header(frame[..HEADER_LEN].try_into().unwrap(), 1 << 20).unwrap();
        assert_eq!(len, frame.len() - HEADER_LEN);
        assert_eq!(decode_body::<FromWorker>(&frame[HEADER_LEN..]), Ok(message));
        assert_eq!(
            decode_header(u32::MAX.to_le_bytes(), 1 << 20),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                limit: 1 << 20
            })
        );
        assert!(decode_body::<FromWorker>(&frame[HEADER_LEN..frame.len() - 1]).is_err());
    }
}
