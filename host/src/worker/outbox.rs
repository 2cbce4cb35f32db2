//! The worker's end of the channel towards the pool. Outcomes stream out as
//! tasks finish: what finishes close together is coalesced into one frame,
//! and nothing waits for the rest of its batch.
//!
//! The thread running the guest only appends to a buffer (no system call per
//! task). The [ticker](super::ticker) writes what waits on its every tick
//! while a batch runs, so an outcome leaves soon after its task's end even
//! while the next task runs for minutes; the end of a batch, a host call and
//! a buffer past [`FLUSH_BYTES`] are written at once by the thread that
//! caused them. Frames keep their order: whoever writes holds the pipe while
//! it takes what waits.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::channel::{FromWorker, Outcomes};
use crate::channel::{bounds, codec};
use crate::error::Error;

/// Bytes waiting past which they are written at once, which bounds every
/// frame a worker sends to this plus one result.
pub(crate) const FLUSH_BYTES: usize = 1 << 20;

/// What waits to be written.
struct State {
    /// Encoded frames, in order.
    frames: Vec<u8>,
    /// The batch whose outcomes are being reported.
    seq: u64,
    /// The position in that batch of the first outcome in `outcomes`.
    first: u32,
    /// Outcomes not yet sealed into a frame.
    outcomes: Outcomes,
}

impl State {
    fn waiting(&self) -> usize {
        self.frames.len() + self.outcomes.encoded_len()
    }

    /// Turns the pending outcomes into a frame after the frames waiting.
    fn seal(&mut self) {
        if self.outcomes.is_empty() {
            return;
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        let first = self.first;
        self.first += outcomes.len() as u32;
        codec::encode(
            &FromWorker::Outcomes {
                seq: self.seq,
                first,
                outcomes,
            },
            &mut self.frames,
        );
    }
}

/// Where a worker's messages to the pool go; shared by the thread running
/// the guest, the ticker, and the backstop.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The channel to the pool, and whether it broke.
    pipe: Mutex<(Box<dyn Write + Send>, Option<io::ErrorKind>)>,
}

impl Outbox {
    /// An outbox writing to `out`.
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                frames: Vec::new(),
                seq: 0,
                first: 0,
                outcomes: Outcomes::default(),
            }),
            pipe: Mutex::new((out, None)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message` after everything before it.
    pub(crate) fn send(&self, message: &FromWorker) {
        let mut state = self.state();
        state.seal();
        codec::encode(message, &mut state.frames);
    }

    /// Queues `message` and writes everything out now.
    pub(crate) fn send_now(&self, message: &FromWorker) -> io::Result<()> {
        self.send(message);
        self.flush()
    }

    /// Starts reporting the outcomes of batch `seq`.
    pub(crate) fn begin(&self, seq: u64) {
        let mut state = self.state();
        state.seal();
        state.seq = seq;
        state.first = 0;
    }

    /// The next task of the batch succeeded with `result`.
    pub(crate) fn ok(&self, result: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        state.outcomes.push_ok(result);
        self.flush_if_full(state)
    }

    /// The next task of the batch failed: with `error` cut to the bounds
    /// of the channel.
    pub(crate) fn err(&self, error: Error) -> io::Result<()> {
        let error = bounds::bounded(error);
        let mut state = self.state();
        state.outcomes.push_err(error);
        self.flush_if_full(state)
    }

    fn flush_if_full(&self, state: MutexGuard<'_, State>) -> io::Result<()> {
        if state.waiting() < FLUSH_BYTES {
            return Ok(());
        }
        drop(state);
        self.flush()
    }

    /// Writes everything waiting, in order.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut pipe = self.pipe.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kind) = pipe.1 {
            return Err(kind.into());
        }
        let frames = {
            let mut state = self.state();
            state.seal();
            if state.frames.is_empty() {
                return Ok(());
            }
            std::mem::take(&mut state.frames)
        };
        let written = pipe.0.write_all(&frames).and_then(|()| pipe.0.flush());
        if let Err(err) = &written {
            pipe.1 = Some(err.kind());
        }
        written
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::channel::io::FrameReader;

    /// A pipe end that keeps what is written, to read it back.
    #[derive(Clone, Default)]
    pub(crate) struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Kept {
        pub(crate) fn messages(&self) -> Vec<FromWorker> {
            let bytes = self.0.lock().unwrap().clone();
            let mut reader = FrameReader::new(&bytes[..], usize::MAX);
            let mut messages = Vec::new();
            while let Some(message) = reader.read().unwrap() {
                messages.push(message);
            }
            messages
        }
    }

    #[test]
    fn outcomes_of_a_batch_come_in_order_with_their_positions() {
        let kept = Kept::default();
        let outbox = Outbox::new(Box::new(kept.clone()));
        outbox.begin(4);
        outbox.ok(b"a").unwrap();
        outbox.ok(b"b").unwrap();
        outbox.flush().unwrap();
        outbox.send(&FromWorker::Withdrawn { seq: 5 });
        outbox
            .err(Error::new(crate::ErrorKind::Failed, "c"))
            .unwrap();
        outbox.flush().unwrap();
        let positions: Vec<(u64, u32, usize)> = kept
            .messages()
            .into_iter()
            .filter_map(|message| match message {
                FromWorker::Outcomes {
                    seq,
                    first,
                    outcomes,
                } => Some((seq, first, outcomes.len())),
                _ => None,
            })
            .collect();
        assert_eq!(positions, [(4, 0, 2), (4, 2, 1)]);
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        let kept = Kept::default();
        let outbox = Outbox::new(Box::new(kept.clone()));
        outbox.begin(0);
        outbox.ok(&vec![7; FLUSH_BYTES]).unwrap();
        assert_eq!(kept.messages().len(), 1);
    }
}
