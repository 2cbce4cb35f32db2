//! Tasks on their way from a call to a worker and back: a call's [`Submission`],
//! the [`Chunk`]s its tasks travel in, and the [`Sink`] their outcomes go to.
//!
//! A [`Chunk`] owns the promise that each of its tasks gets exactly one
//! outcome: outcomes are delivered to it as the worker reports them, task by
//! task; what is left is failed with an error, or, if the chunk is dropped
//! (the pool shut down under it), failed as terminated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::args;
use crate::channel::{Outcomes, ParamInfo, TaskInfo};
use crate::error::{Error, ErrorKind};
use crate::objects::{ObjectRef, handle};

/// The most bytes of arguments one chunk carries (it always carries at least
/// one task): a chunk is one frame to a worker, and one guest call.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// Where the outcomes of a submission's tasks go.
pub(crate) trait Sink: Send + Sync {
    /// The outcomes of the tasks `first_index..first_index + outcomes.len()`.
    fn deliver(&self, first_index: u64, outcomes: Outcomes);
}

/// One call's tasks, as the chunks that carry them see it: where their
/// outcomes go, and whether the caller still wants them.
pub(crate) struct Submission {
    sink: Arc<dyn Sink>,
    withdrawn: AtomicBool,
    /// Wakes the slots when the submission is withdrawn.
    withdrawals: Arc<Withdrawals>,
}

impl Submission {
    pub(crate) fn new(sink: Arc<dyn Sink>, withdrawals: Arc<Withdrawals>) -> Arc<Self> {
        Arc::new(Submission {
            sink,
            withdrawn: AtomicBool::new(false),
            withdrawals,
        })
    }

    /// Nobody waits for this submission's outcomes any more: its tasks that have not
    /// started are taken back, wherever they are (queued, or handed to a
    /// worker ahead of what it runs), and fail with
    /// [`ErrorKind::Cancelled`]. Tasks running finish.
    pub(crate) fn withdraw(&self) {
        if !self.withdrawn.swap(true, Ordering::SeqCst) {
            self.withdrawals.announce();
        }
    }

    pub(crate) fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }
}

/// Tells every slot that a submission was withdrawn, so that each takes back the
/// submission's chunks its worker holds and has not started.
#[derive(Debug)]
pub(crate) struct Withdrawals {
    slots: Vec<Sender<()>>,
}

impl Withdrawals {
    /// One sender per slot, each on a channel of capacity one: a slot that
    /// has not looked yet is told once, however many submissions were withdrawn.
    pub(crate) fn new(slots: Vec<Sender<()>>) -> Arc<Self> {
        Arc::new(Withdrawals { slots })
    }

    fn announce(&self) {
        for slot in &self.slots {
            let _ = slot.try_send(());
        }
    }
}

/// The error of a task taken back before it started.
pub(crate) fn withdrawn_error() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "the task was withdrawn before it started: its caller no longer waits for it",
    )
}

/// Consecutive tasks of one submission, run by one worker in one guest call.
pub(crate) struct Chunk {
    pub(crate) task: Arc<str>,
    pub(crate) first_index: u64,
    /// The tasks' MessagePack argument arrays, concatenated.
    pub(crate) args: Vec<u8>,
    /// Where each task's arguments end in `args`.
    pub(crate) ends: Vec<u32>,
    /// How many times the chunk was run again after its worker died.
    pub(crate) retries: u32,
    /// The shared objects its tasks' arguments hold: granted to the worker
    /// that runs it, for as long as it holds the chunk.
    pub(crate) objects: Vec<ObjectRef>,
    /// Which task each was handed to, as (task index, object id): the worker
    /// lets a task use only those (and the initializer's) while it runs.
    pub(crate) handed: Vec<(u64, u64)>,
    /// The number of the chunk an agent runs this for in its job on the
    /// host, which its tasks' calls name there.
    pub(crate) origin: Option<u64>,
    /// How many of its tasks (from the first) have their outcome.
    done: usize,
    submission: Option<Arc<Submission>>,
}

impl Chunk {
    /// The tasks of the chunk numbered `origin` by the host of a job on
    /// agents, whose arguments the host encoded (`handed` says which task
    /// was handed which of its shared objects): their outcomes go to
    /// `submission`.
    #[cfg(feature = "nats")]
    pub(crate) fn encoded(
        origin: u64,
        batch: crate::channel::Batch,
        submission: Arc<Submission>,
    ) -> Chunk {
        Chunk {
            task: batch.task.into(),
            first_index: batch.first_index,
            args: batch.args.into_vec(),
            ends: batch.ends,
            retries: 0,
            objects: Vec::new(),
            handed: batch.handed,
            origin: Some(origin),
            done: 0,
            submission: Some(submission),
        }
    }

    /// The tasks without an outcome: the index of the first, and their
    /// arguments with where each ends.
    #[cfg(feature = "nats")]
    pub(crate) fn unfinished(&self) -> (u64, &[u8], Vec<u32>) {
        let base = match self.done {
            0 => 0,
            done => self.ends[done - 1],
        };
        let ends = self.ends[self.done..]
            .iter()
            .map(|end| end - base)
            .collect();
        (
            self.first_index + self.done as u64,
            &self.args[base as usize..],
            ends,
        )
    }

    /// How many tasks the chunk holds.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// How many of its tasks have no outcome yet.
    pub(crate) fn remaining(&self) -> usize {
        self.len() - self.done
    }

    /// How many of its tasks have their outcome.
    pub(crate) fn done(&self) -> usize {
        self.done
    }

    /// Whether its caller withdrew it.
    pub(crate) fn is_withdrawn(&self) -> bool {
        self.submission
            .as_ref()
            .is_some_and(|submission| submission.is_withdrawn())
    }

    /// Delivers the outcomes of the next tasks, in order. The caller checked
    /// that they fit.
    pub(crate) fn deliver(&mut self, outcomes: Outcomes) {
        debug_assert!(outcomes.len() <= self.remaining());
        let n = outcomes.len();
        if let Some(submission) = &self.submission {
            submission
                .sink
                .deliver(self.first_index + self.done as u64, outcomes);
        }
        self.done += n;
        if self.done == self.len() {
            self.submission = None;
        }
    }

    /// Fails the next task (the one a worker was running) with `error`.
    pub(crate) fn fail_next(&mut self, error: &Error) {
        if self.remaining() == 0 {
            return;
        }
        self.deliver(failed(self.first_index + self.done as u64, 1, error));
    }

    /// Fails every task without an outcome with `error`.
    pub(crate) fn fail(mut self, error: &Error) {
        if let Some(submission) = self.submission.take() {
            fail_all(
                &*submission.sink,
                self.first_index + self.done as u64,
                self.remaining(),
                error,
            );
        }
    }

    /// The tasks without an outcome, as a chunk of their own (none if every
    /// task has one).
    pub(crate) fn rest(mut self) -> Option<Chunk> {
        if self.remaining() == 0 {
            self.submission = None;
            return None;
        }
        if self.done == 0 {
            return Some(self);
        }
        let rest = self.split_off(self.done);
        self.submission = None;
        Some(rest)
    }

    /// Splits the chunk at task `at` (past the tasks done): `self` keeps the
    /// tasks before it and the returned chunk holds the rest.
    pub(crate) fn split_off(&mut self, at: usize) -> Chunk {
        debug_assert!(0 < at && self.done <= at && at < self.len());
        let base = self.ends[at - 1];
        let args = self.args.split_off(base as usize);
        let ends = self
            .ends
            .split_off(at)
            .into_iter()
            .map(|end| end - base)
            .collect();
        Chunk {
            task: self.task.clone(),
            first_index: self.first_index + at as u64,
            args,
            ends,
            retries: self.retries,
            objects: self.objects.clone(),
            handed: self.handed.clone(),
            origin: self.origin,
            done: 0,
            submission: self.submission.clone(),
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(submission) = self.submission.take() {
            let error = Error::new(
                ErrorKind::Terminated,
                "the pool shut down before this task finished",
            );
            fail_all(
                &*submission.sink,
                self.first_index + self.done as u64,
                self.remaining(),
                &error,
            );
        }
    }
}

fn fail_all(sink: &dyn Sink, first_index: u64, len: usize, error: &Error) {
    if len > 0 {
        sink.deliver(first_index, failed(first_index, len, error));
    }
}

/// The outcomes of `len` tasks from `first_index` on, each failed with `error`.
fn failed(first_index: u64, len: usize, error: &Error) -> Outcomes {
    let mut outcomes = Outcomes::with_capacity(len);
    for i in 0..len as u64 {
        outcomes.push_err(error.clone().with_index(first_index + i));
    }
    outcomes
}

/// How the items of a call carry their task's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Each item is the task's single argument (`map`, `imap`).
    Single,
    /// Each item is a tuple of the task's positional arguments (`apply`,
    /// `starmap`).
    Star,
    /// Each item is a pair: a tuple of positional arguments and a map of
    /// keyword arguments, bound to the task's parameters (`apply_kw`,
    /// `starmap_kw`).
    Keywords,
}

/// Encodes a submission's tasks into chunks of at most `chunksize` tasks and
/// about [`CHUNK_BYTES`] of arguments.
///
/// A task whose arguments cannot be encoded, are too large, have the wrong
/// number of positional arguments or do not bind to the task's parameters
/// fails on its own, at once; the others go on.
pub(crate) struct Chunker {
    task: Arc<str>,
    arity: u32,
    shape: Shape,
    /// The task's parameters, kept for a call with keywords only.
    params: Vec<ParamInfo>,
    chunksize: usize,
    max_payload: usize,
    submission: Arc<Submission>,
    next_index: u64,
    current: Option<Chunk>,
}

impl Chunker {
    pub(crate) fn new(
        info: &TaskInfo,
        shape: Shape,
        chunksize: usize,
        max_payload: usize,
        submission: Arc<Submission>,
    ) -> Self {
        let params = match shape {
            Shape::Keywords => info.params.clone(),
            Shape::Single | Shape::Star => Vec::new(),
        };
        Chunker {
            task: info.name.as_str().into(),
            arity: u32::try_from(info.arity()).unwrap_or(u32::MAX),
            shape,
            params,
            chunksize: chunksize.max(1),
            max_payload,
            submission,
            next_index: 0,
            current: None,
        }
    }

    /// The index the next task will get.
    pub(crate) fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Adds a task with `item`, its arguments in the chunker's [`Shape`].
    /// Returns a chunk when one is full.
    pub(crate) fn push<A: Serialize + ?Sized>(&mut self, item: &A) -> Option<Chunk> {
        let index = self.next_index;
        self.next_index += 1;
        let chunk = self.current.get_or_insert_with(|| Chunk {
            task: self.task.clone(),
            first_index: index,
            args: Vec::new(),
            ends: Vec::new(),
            retries: 0,
            objects: Vec::new(),
            handed: Vec::new(),
            origin: None,
            done: 0,
            submission: Some(self.submission.clone()),
        });
        let start = chunk.args.len();
        let (encoded, objects) = handle::collecting(|| match self.shape {
            Shape::Single => args::encode(&mut chunk.args, &(item,)),
            Shape::Star => args::encode(&mut chunk.args, item),
            Shape::Keywords => args::encode_call(&self.params, item, &mut chunk.args),
        });
        let encoded =
            encoded.and_then(|()| args::check(&chunk.args[start..], self.arity, self.max_payload));
        if encoded.is_ok() {
            chunk
                .handed
                .extend(objects.iter().map(|object| (index, object.id())));
            chunk.objects.extend(objects);
        }
        match encoded {
            Ok(()) => {
                chunk.ends.push(chunk.args.len() as u32);
                if chunk.len() >= self.chunksize || chunk.args.len() >= CHUNK_BYTES {
                    return self.current.take();
                }
                None
            }
            Err(message) => {
                chunk.args.truncate(start);
                // The tasks before this one form a chunk of their own, so that
                // every chunk holds consecutive indices.
                let before = self.current.take().filter(|chunk| chunk.len() > 0);
                let error = Error::new(
                    ErrorKind::BadArguments,
                    format!("task `{}`: {message}", self.task),
                );
                fail_all(&*self.submission.sink, index, 1, &error);
                before
            }
        }
    }

    /// How many tasks the chunk being filled holds.
    pub(crate) fn pending(&self) -> usize {
        self.current.as_ref().map_or(0, Chunk::len)
    }

    /// The last, partly filled chunk.
    pub(crate) fn finish(&mut self) -> Option<Chunk> {
        self.current.take().filter(|chunk| chunk.len() > 0)
    }
}

/// Decodes a task's result into the type the caller asked for.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(index: u64, bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|err| {
        Error::new(
            ErrorKind::BadResult,
            format!(
                "the result does not decode to {}: {err}",
                std::any::type_name::<T>()
            ),
        )
        .with_index(index)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Each task's index and outcome, as delivered.
    type Delivered = Vec<(u64, Result<Vec<u8>, Error>)>;

    #[derive(Default)]
    struct Record(Mutex<Delivered>);

    fn ok(n: usize) -> Outcomes {
        let mut outcomes = Outcomes::default();
        (0..n).for_each(|_| outcomes.push_ok(b""));
        outcomes
    }

    impl Sink for Record {
        fn deliver(&self, first_index: u64, outcomes: Outcomes) {
            let mut seen = self.0.lock().unwrap();
            for (i, outcome) in outcomes.into_results().enumerate() {
                seen.push((first_index + i as u64, outcome));
            }
        }
    }

    fn submission(record: &Arc<Record>) -> Arc<Submission> {
        Submission::new(record.clone(), Withdrawals::new(Vec::new()))
    }

    /// Task `t`, with `arity` required parameters named `p0`, `p1`, ...
    fn task(arity: usize) -> TaskInfo {
        TaskInfo {
            name: "t".into(),
            params: (0..arity)
                .map(|i| ParamInfo {
                    name: Some(format!("p{i}")),
                    default: None,
                })
                .collect(),
        }
    }

    fn chunker(arity: usize, chunksize: usize) -> (Arc<Record>, Chunker) {
        let record = Arc::new(Record::default());
        let chunker = Chunker::new(
            &task(arity),
            Shape::Star,
            chunksize,
            1 << 20,
            submission(&record),
        );
        (record, chunker)
    }

    /// The indices and kinds of what `record` got, in order.
    fn seen(record: &Record) -> Vec<(u64, Option<ErrorKind>)> {
        let seen = record.0.lock().unwrap();
        seen.iter()
            .map(|(index, outcome)| (*index, outcome.as_ref().err().map(Error::kind)))
            .collect()
    }

    #[test]
    fn chunks_hold_consecutive_tasks_and_split_cleanly() {
        let (_, mut chunker) = chunker(1, 3);
        let mut chunks: Vec<Chunk> = (0..7i64).filter_map(|i| chunker.push(&(i,))).collect();
        chunks.extend(chunker.finish());
        let sizes: Vec<usize> = chunks.iter().map(Chunk::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let mut first = chunks.remove(0);
        let tail = first.split_off(1);
        assert_eq!((first.first_index, first.len()), (0, 1));
        assert_eq!((tail.first_index, tail.len()), (1, 2));
        let arg: (i64,) = rmp_serde::from_slice(&tail.args[..tail.ends[0] as usize]).unwrap();
        assert_eq!(arg, (1,));
        for mut chunk in chunks.into_iter().chain([first, tail]) {
            let n = chunk.len();
            chunk.deliver(ok(n));
        }
    }

    #[test]
    fn a_wrong_arity_fails_that_task_only() {
        let (record, mut chunker) = chunker(2, 10);
        assert!(chunker.push(&(1, 2)).is_none());
        let before = chunker
            .push(&(1,))
            .expect("the tasks before the bad one are flushed");
        assert_eq!(before.len(), 1);
        assert!(chunker.push(&(3, 4)).is_none());
        let after = chunker.finish().unwrap();
        assert_eq!(after.first_index, 2);
        let seen = record.0.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 1);
        let err = seen[0].1.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArguments);
        assert!(
            err.message()
                .contains("takes 2 arguments, but 1 were given"),
            "{err}"
        );
        drop(seen);
        let (mut before, mut after) = (before, after);
        before.deliver(ok(1));
        after.deliver(ok(1));
    }

    #[test]
    fn a_call_that_does_not_bind_fails_alone() {
        let record = Arc::new(Record::default());
        let mut chunker = Chunker::new(&task(2), Shape::Keywords, 10, 1 << 20, submission(&record));
        let kw = |k: &str| std::collections::BTreeMap::from([(k.to_string(), 2)]);
        assert!(chunker.push(&((1,), kw("p1"))).is_none());
        let before = chunker.push(&((1,), kw("q"))).expect("flushed");
        assert!(chunker.push(&((), kw("p0"))).is_none(), "nothing before it");
        assert!(chunker.push(&((1, 2), ())).is_none());
        let mut last = chunker.finish().unwrap();
        assert_eq!((last.first_index, last.len()), (3, 1));
        let bound: (i64, i64) = rmp_serde::from_slice(&before.args).unwrap();
        assert_eq!(bound, (1, 2));
        let errors: Vec<String> = record
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(i, o)| format!("{i}: {}", o.as_ref().unwrap_err().message()))
            .collect();
        assert_eq!(
            errors,
            [
                "1: task `t`: unexpected keyword argument `q`; the task's parameters are: \
                 `p0`, `p1`",
                "2: task `t`: missing required argument: `p1`"
            ]
        );
        let mut before = before;
        before.deliver(ok(1));
        last.deliver(ok(1));
    }

    #[test]
    fn a_dropped_chunk_fails_its_tasks_as_terminated() {
        let (record, mut chunker) = chunker(1, 10);
        chunker.push(&(1,));
        chunker.push(&(2,));
        drop(chunker.finish());
        let seen = record.0.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter()
                .all(|(_, o)| o.as_ref().unwrap_err().is_terminated())
        );
    }

    #[test]
    fn outcomes_arrive_in_parts_and_the_rest_runs_elsewhere() {
        let (record, mut chunker) = chunker(1, 5);
        let mut full: Vec<Chunk> = (0..5i64).filter_map(|i| chunker.push(&(i,))).collect();
        let mut chunk = full.pop().expect("five tasks fill the chunk");
        chunk.deliver(ok(2));
        assert_eq!((chunk.done(), chunk.remaining()), (2, 3));
        // The worker died running task 2: it fails, 3 and 4 run elsewhere.
        chunk.fail_next(&Error::new(ErrorKind::WorkerLost, "gone"));
        let mut rest = chunk.rest().expect("two tasks left");
        assert_eq!((rest.first_index, rest.len()), (3, 2));
        let arg: (i64,) = rmp_serde::from_slice(&rest.args[..rest.ends[0] as usize]).unwrap();
        assert_eq!(arg, (3,));
        rest.deliver(ok(2));
        assert_eq!(
            seen(&record),
            [
                (0, None),
                (1, None),
                (2, Some(ErrorKind::WorkerLost)),
                (3, None),
                (4, None)
            ]
        );
    }

    #[test]
    fn failing_a_partly_done_chunk_fails_only_what_is_left() {
        let (record, mut chunker) = chunker(1, 3);
        chunker.push(&(1,));
        chunker.push(&(2,));
        let mut chunk = chunker.push(&(3,)).expect("full");
        chunk.deliver(ok(1));
        chunk.fail(&withdrawn_error());
        assert_eq!(
            seen(&record),
            [
                (0, None),
                (1, Some(ErrorKind::Cancelled)),
                (2, Some(ErrorKind::Cancelled))
            ]
        );
    }

    #[test]
    fn withdrawing_a_job_marks_its_chunks_and_tells_every_slot_once() {
        let record = Arc::new(Record::default());
        let (tx, rx) = crossbeam_channel::bounded(1);
        let submission = Submission::new(record.clone(), Withdrawals::new(vec![tx]));
        let mut chunker = Chunker::new(&task(1), Shape::Star, 1, 1 << 20, submission.clone());
        let chunk = chunker.push(&(1,)).expect("full");
        assert!(!chunk.is_withdrawn());
        submission.withdraw();
        submission.withdraw();
        assert!(chunk.is_withdrawn());
        assert_eq!(rx.len(), 1);
        chunk.fail(&withdrawn_error());
    }

    #[test]
    fn chunks_are_bounded_by_bytes_too() {
        let (_, mut chunker) = chunker(1, usize::MAX);
        let big = serde_bytes::ByteBuf::from(vec![0u8; CHUNK_BYTES / 5]);
        let full: Vec<Chunk> = (0..12).filter_map(|_| chunker.push(&(&big,))).collect();
        let sizes: Vec<usize> = full.iter().map(Chunk::len).collect();
        assert_eq!(sizes, [5, 5]);
        assert!(
            full.iter()
                .all(|chunk| chunk.args.len() < CHUNK_BYTES + CHUNK_BYTES / 5)
        );
        for mut chunk in full.into_iter().chain(chunker.finish()) {
            let n = chunk.len();
            chunk.deliver(ok(n));
        }
    }
}
