//! [`Imap`]: the lazy results of [`Pool::imap`] and [`Pool::imap_unordered`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, NextTimeout};
use crate::job::{Chunk, Chunker, Sink, decode};
use crate::pool::Pool;
use crate::protocol::Outcomes;

/// Chunks per worker in the window an `Imap` keeps submitted: enough for a
/// worker to hold as many quick chunks as it may (see `supervisor`).
const CHUNKS_PER_PROCESS: usize = 24;

/// A task's index and its outcome.
pub type Entry<R> = (u64, Result<R, Error>);

/// Sends each delivered outcome, decoded, to the iterator.
struct Forward<R> {
    tx: Sender<Vec<Entry<R>>>,
    _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned + Send + 'static> Sink for Forward<R> {
    fn deliver(&self, first_index: u64, outcomes: Outcomes) {
        let entries = outcomes
            .iter()
            .enumerate()
            .map(|(i, outcome)| {
                let index = first_index + i as u64;
                let result = match outcome {
                    Ok(bytes) => decode(index, bytes),
                    Err(err) => Err(err.clone()),
                };
                (index, result)
            })
            .collect();
        // The iterator may have been dropped; then nobody wants these.
        let _ = self.tx.send(entries);
    }
}

/// The results of [`Pool::imap`], [`Pool::imap_unordered`] or
/// [`Pool::istarmap`]: each task's own outcome, in input order or as they
/// come.
///
/// The input is pulled as results are consumed, a window of chunks ahead, so
/// memory stays bounded however long the input. Work stops when the iterator
/// is not consumed, and resumes when it is.
///
/// If the pool is closed while inputs remain, the tasks not yet submitted
/// fail with [`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed).
pub struct Imap<'p, R, T, I> {
    pool: &'p Pool,
    input: Option<I>,
    chunker: Chunker,
    rx: Receiver<Vec<Entry<R>>>,
    ordered: bool,
    /// Items are tuples of positional arguments (`istarmap`), not single
    /// arguments.
    star: bool,
    /// Ordered: results waiting for the ones before them.
    waiting: BTreeMap<u64, Result<R, Error>>,
    /// Unordered: results in the order they came.
    ready: VecDeque<Entry<R>>,
    next_index: u64,
    yielded: u64,
    chunksize: usize,
    window: usize,
    _item: PhantomData<fn(T)>,
}

impl<R, T, I> fmt::Debug for Imap<'_, R, T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("submitted", &self.chunker.next_index())
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}

impl<'p, R, T, I> Imap<'p, R, T, I>
where
    R: DeserializeOwned + Send + 'static,
    T: Serialize,
    I: Iterator<Item = T>,
{
    pub(crate) fn new(
        pool: &'p Pool,
        task: &str,
        input: I,
        chunksize: usize,
        ordered: bool,
        star: bool,
    ) -> Result<Self, Error> {
        let chunksize = chunksize.max(1);
        let (tx, rx) = unbounded();
        let sink: Arc<dyn Sink> = Arc::new(Forward {
            tx,
            _result: PhantomData,
        });
        let chunker = pool.chunker(task, chunksize, sink)?;
        let window = chunksize * pool.processes() * CHUNKS_PER_PROCESS;
        let mut imap = Imap {
            pool,
            input: Some(input),
            chunker,
            rx,
            ordered,
            star,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            next_index: 0,
            yielded: 0,
            chunksize,
            window,
            _item: PhantomData,
        };
        imap.top_up();
        Ok(imap)
    }

    /// Tasks submitted (or failed at submission) and not yet yielded.
    fn outstanding(&self) -> u64 {
        self.chunker.next_index() - self.yielded
    }

    /// Submits whole chunks while the window has room for one.
    fn top_up(&mut self) {
        while self.input.is_some()
            && self.window as u64 >= self.outstanding() + self.chunksize as u64
        {
            let input = self.input.as_mut().expect("checked");
            let mut chunk = None;
            for _ in 0..self.chunksize {
                match input.next() {
                    Some(item) => {
                        let full = if self.star {
                            self.chunker.push(&item)
                        } else {
                            self.chunker.push(&(item,))
                        };
                        if let Some(full) = full {
                            chunk = Some(full);
                            break;
                        }
                    }
                    None => {
                        self.input = None;
                        break;
                    }
                }
            }
            let chunk = chunk.or_else(|| self.chunker.finish());
            if let Some(chunk) = chunk {
                self.send(chunk);
            }
        }
    }

    fn send(&mut self, chunk: Chunk) {
        match self.pool.sender() {
            Ok(sender) => self.pool.send(&sender, chunk),
            Err(err) => {
                chunk.fail(&err);
                // Drain the rest of the input as failures would take forever
                // on an endless input: stop pulling instead.
                self.input = None;
                if let Some(rest) = self.chunker.finish() {
                    rest.fail(&err);
                }
            }
        }
    }

    fn pop(&mut self) -> Option<Entry<R>> {
        let entry = if self.ordered {
            let result = self.waiting.remove(&self.next_index)?;
            let index = self.next_index;
            self.next_index += 1;
            (index, result)
        } else {
            self.ready.pop_front()?
        };
        self.yielded += 1;
        Some(entry)
    }

    fn store(&mut self, entries: Vec<Entry<R>>) {
        if self.ordered {
            self.waiting.extend(entries);
        } else {
            self.ready.extend(entries);
        }
    }

    /// The next result with its task's index, waiting at most until `deadline`.
    fn next_entry(&mut self, deadline: Option<Instant>) -> Result<Option<Entry<R>>, NextTimeout> {
        loop {
            if let Some(entry) = self.pop() {
                self.top_up();
                return Ok(Some(entry));
            }
            self.top_up();
            if self.input.is_none() && self.outstanding() == 0 {
                return Ok(None);
            }
            let received = match deadline {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => self.rx.recv_deadline(deadline),
            };
            match received {
                Ok(entries) => self.store(entries),
                Err(RecvTimeoutError::Timeout) => return Err(NextTimeout),
                // Cannot happen: this iterator's chunker holds a sender.
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }

    /// The next result, waiting at most `timeout` (CPython's `next(timeout)`).
    /// `Ok(None)` when every result was yielded.
    ///
    /// # Errors
    ///
    /// [`NextTimeout`] if no result came in time; the iterator goes on.
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Result<R, Error>>, NextTimeout> {
        Ok(self
            .next_entry(Instant::now().checked_add(timeout))?
            .map(|(_, result)| result))
    }

    /// The same results, each with its task's index (its position in the
    /// input), which is what tells the results of an `imap_unordered` apart.
    pub fn indexed(self) -> Indexed<'p, R, T, I> {
        Indexed(self)
    }
}

impl<R, T, I> Iterator for Imap<'_, R, T, I>
where
    R: DeserializeOwned + Send + 'static,
    T: Serialize,
    I: Iterator<Item = T>,
{
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry(None)
            .unwrap_or(None)
            .map(|(_, result)| result)
    }
}

/// [`Imap`] with each result's task index; from [`Imap::indexed`].
#[derive(Debug)]
pub struct Indexed<'p, R, T, I>(Imap<'p, R, T, I>);

impl<R, T, I> Indexed<'_, R, T, I>
where
    R: DeserializeOwned + Send + 'static,
    T: Serialize,
    I: Iterator<Item = T>,
{
    /// As [`Imap::next_timeout`], with the task's index.
    ///
    /// # Errors
    ///
    /// [`NextTimeout`] if no result came in time; the iterator goes on.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Entry<R>>, NextTimeout> {
        self.0.next_entry(Instant::now().checked_add(timeout))
    }
}

impl<R, T, I> Iterator for Indexed<'_, R, T, I>
where
    R: DeserializeOwned + Send + 'static,
    T: Serialize,
    I: Iterator<Item = T>,
{
    type Item = Entry<R>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_entry(None).unwrap_or(None)
    }
}
