//! [`Imap`]: the lazy results of [`Pool::imap`](crate::Pool::imap) and [`Pool::imap_unordered`](crate::Pool::imap_unordered).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, unbounded};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::Outcomes;
use crate::chunk::{Chunk, Chunker, Shape, Sink, Submission, decode};
use crate::error::{Error, NextTimeout};
use crate::pool::submit::Submitter;

/// Chunks per worker in the window an `Imap` keeps submitted: enough for a
/// worker to hold as many quick chunks as it may (see
/// `backend::local::schedule`), and some queued behind them.
const CHUNKS_PER_PROCESS: usize = 24;

/// How long a stream's partly filled chunk waits for more items before it
/// goes out as it is: long enough for a producer that is only a little
/// behind to fill it (a chunk per item would cost a round trip each), short
/// next to any task worth a pool.
const LINGER: Duration = Duration::from_millis(1);

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

/// Where the items of an [`Imap`] come from.
pub(crate) enum Items<I, T> {
    /// An iterator, pulled on the consumer's thread while the window has
    /// room.
    Pulled(I),
    /// A channel, taken from as items arrive, never waited on while results
    /// are ready.
    Streamed(Receiver<T>),
}

/// What asking the input for an item gave.
enum Pull<T> {
    Item(T),
    /// A stream with nothing in it right now.
    NotYet,
    Ended,
}

/// The results of [`Pool::imap`](crate::Pool::imap), [`Pool::imap_unordered`](crate::Pool::imap_unordered),
/// [`Pool::istarmap`](crate::Pool::istarmap) or [`Pool::istarmap_stream`](crate::Pool::istarmap_stream): each task's own outcome,
/// in input order or as they come.
///
/// The input is pulled as results are consumed, a window of chunks ahead, so
/// memory stays bounded however long the input. Work stops when the iterator
/// is not consumed, and resumes when it is.
///
/// If the pool is closed while inputs remain, the tasks not yet submitted
/// fail with [`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed) (a
/// stream's items are no longer taken once the pool is closed or terminated).
///
/// Dropping an `Imap` withdraws its work: its tasks that have not started —
/// queued, or handed to a worker ahead of what it runs — are taken back, so
/// abandoned work does not hold up the pool's other callers. Tasks running
/// finish.
pub struct Imap<'p, R, T, I> {
    pool: &'p Submitter,
    submission: Arc<Submission>,
    input: Option<Items<I, T>>,
    chunker: Chunker,
    rx: Receiver<Vec<Entry<R>>>,
    ordered: bool,
    /// Ordered: results waiting for the ones before them.
    waiting: BTreeMap<u64, Result<R, Error>>,
    /// Unordered: results in the order they came.
    ready: VecDeque<Entry<R>>,
    next_index: u64,
    yielded: u64,
    chunksize: usize,
    window: usize,
    /// Since when a stream's partly filled chunk waits for more items.
    lingering: Option<Instant>,
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
        pool: &'p Submitter,
        task: &str,
        input: Items<I, T>,
        chunksize: usize,
        ordered: bool,
        shape: Shape,
    ) -> Result<Self, Error> {
        let chunksize = chunksize.max(1);
        let (tx, rx) = unbounded();
        let sink: Arc<dyn Sink> = Arc::new(Forward {
            tx,
            _result: PhantomData,
        });
        let submission = pool.submission(sink);
        let chunker = pool.chunker(task, shape, chunksize, submission.clone())?;
        let window = chunksize * pool.processes() * CHUNKS_PER_PROCESS;
        let mut imap = Imap {
            pool,
            submission,
            input: Some(input),
            chunker,
            rx,
            ordered,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            next_index: 0,
            yielded: 0,
            chunksize,
            window,
            lingering: None,
            _item: PhantomData,
        };
        imap.top_up();
        Ok(imap)
    }

    /// Tasks submitted (or failed at submission) and not yet yielded.
    fn outstanding(&self) -> u64 {
        self.chunker.next_index() - self.yielded
    }

    /// Whether the window has room for another chunk.
    fn has_room(&self) -> bool {
        self.window as u64 >= self.outstanding() + self.chunksize as u64
    }

    /// The next item of the input, without waiting for a stream.
    fn pull(&mut self) -> Pull<T> {
        match &mut self.input {
            None => Pull::Ended,
            Some(Items::Pulled(items)) => items.next().map_or(Pull::Ended, Pull::Item),
            Some(Items::Streamed(items)) => match items.try_recv() {
                Ok(item) => Pull::Item(item),
                Err(TryRecvError::Empty) => Pull::NotYet,
                Err(TryRecvError::Disconnected) => Pull::Ended,
            },
        }
    }

    /// Submits chunks while the window has room for one: whole chunks, or
    /// what there is when the input ends. A stream with nothing more yet
    /// keeps its partly filled chunk for at most [`LINGER`].
    fn top_up(&mut self) {
        while self.input.is_some() && self.has_room() {
            let mut chunk = None;
            let mut starved = false;
            for _ in 0..self.chunksize {
                match self.pull() {
                    Pull::Item(item) => {
                        if let Some(full) = self.chunker.push(&item) {
                            chunk = Some(full);
                            break;
                        }
                    }
                    Pull::NotYet => {
                        starved = true;
                        break;
                    }
                    Pull::Ended => {
                        self.input = None;
                        break;
                    }
                }
            }
            if starved && chunk.is_none() {
                if self.chunker.pending() == 0 {
                    // Nothing waits to go out: no linger to time.
                    self.lingering = None;
                    return;
                }
                let since = *self.lingering.get_or_insert_with(Instant::now);
                if since.elapsed() < LINGER {
                    return;
                }
            }
            let chunk = chunk.or_else(|| self.chunker.finish());
            if let Some(chunk) = chunk {
                self.lingering = None;
                self.send(chunk);
            }
            if starved {
                return;
            }
        }
    }

    /// Waits until results come, a stream has an item for a window with
    /// room, or the pool is terminated; false if `deadline` passed first.
    fn wait(&mut self, deadline: Option<Instant>) -> bool {
        if self.pool.is_closed() && matches!(self.input, Some(Items::Streamed(_))) {
            // A stream's items are no longer taken: none of them is a task.
            // Whatever is outstanding is still awaited, on the next round.
            self.input = None;
            return true;
        }
        let room = self.has_room();
        let stop = self.pool.terminated_signal();
        let mut select = Select::new();
        let results = select.recv(&self.rx);
        if let Some(Items::Streamed(items)) = &self.input
            && room
        {
            select.recv(items);
            select.recv(stop);
        }
        // A lingering chunk goes out when its time is up: wake for it.
        let linger_end = self
            .lingering
            .filter(|_| self.chunker.pending() > 0)
            .map(|since| since + LINGER);
        let wake = match (deadline, linger_end) {
            (Some(deadline), Some(linger)) => Some(deadline.min(linger)),
            (deadline, linger) => deadline.or(linger),
        };
        let ready = match wake {
            None => select.ready(),
            Some(wake) => match select.ready_deadline(wake) {
                Ok(ready) => ready,
                // The linger ended: the next top-up sends the chunk.
                Err(_) if linger_end == Some(wake) => return true,
                Err(_) => return false,
            },
        };
        if ready == results {
            // Cannot be disconnected: this iterator's chunker holds a sender.
            if let Ok(entries) = self.rx.try_recv() {
                self.store(entries);
            }
        }
        // Otherwise an item came (taken by the next top-up) or the pool was
        // terminated (seen by the check above on the next round).
        true
    }

    fn send(&mut self, chunk: Chunk) {
        match self.pool.sender() {
            Ok(sender) => self.pool.send(&sender, chunk),
            Err(err) => {
                chunk.fail(&err);
                // Draining the rest of the input as failures would take
                // forever on an endless input: stop pulling instead.
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
            if !self.wait(deadline) {
                return Err(NextTimeout);
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

impl<R, T, I> Drop for Imap<'_, R, T, I> {
    fn drop(&mut self) {
        self.submission.withdraw();
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
