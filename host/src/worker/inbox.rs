//! The worker's end of the channel from the pool. No thread of its own waits
//! on the pipe: the thread that runs the guest reads it when it has nothing
//! else to do, so a batch sent to an idle worker is a single wake-up away
//! from running. While a batch runs, the pipe is read without waiting — by
//! the [ticker](super::ticker) on its every tick and by a task waiting for
//! the reply to its host call — so a withdraw, or a reply, is seen while a
//! task runs. Batches wait here, in order, until the guest's thread takes
//! them.
//!
//! The pipe is non-blocking; whoever reads it holds the state's lock, and
//! decodes and handles every whole frame it read before letting go.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_bytes::ByteBuf;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::channel::codec::{self, FRAME_LIMIT, HEADER_LEN};
use crate::channel::{Batch, Failure, FromWorker, ToWorker};
use crate::worker::outbox::Outbox;

/// The reply to a call of the host.
pub(crate) type Reply = Result<ByteBuf, Failure>;

/// Bytes read from the pipe at a time, at least.
const READ_SIZE: usize = 1 << 16;

/// What the thread running the guest does next.
pub(crate) enum Next {
    Run(Batch),
    /// The pool is done with this worker.
    Shutdown,
    /// The channel broke.
    Failed(String),
}

/// Bytes read off the pipe and not decoded yet.
struct Unread {
    buffer: Vec<u8>,
    /// Where the next frame starts.
    start: usize,
    /// How much of `buffer` holds bytes read.
    filled: usize,
}

impl Unread {
    /// Room after the bytes read for at least `more` bytes; moves the
    /// undecoded bytes to the front first.
    fn room(&mut self, more: usize) -> &mut [u8] {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let needed = self.filled + more;
        if self.buffer.len() < needed {
            self.buffer.resize(needed, 0);
        }
        &mut self.buffer[self.filled..]
    }

    /// Called when the pipe holds nothing more: lets go of the room a large
    /// frame took.
    fn settle(&mut self) {
        if self.start == self.filled && self.buffer.len() > 4 * READ_SIZE {
            self.buffer = vec![0; READ_SIZE];
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Where the next frame's body lies, if all of it was read (and steps
    /// past it), else how many more bytes it needs; `Err` for a header that
    /// announces more than a frame may hold.
    fn next_frame(&mut self) -> Result<Frame, String> {
        let ready = self.filled - self.start;
        if ready < HEADER_LEN {
            return Ok(Frame::Missing(HEADER_LEN - ready));
        }
        let header = self.buffer[self.start..self.start + HEADER_LEN]
            .try_into()
            .expect("a header's length");
        let len = codec::decode_header(header, FRAME_LIMIT).map_err(|err| err.to_string())?;
        if ready - HEADER_LEN < len {
            return Ok(Frame::Missing(len - (ready - HEADER_LEN)));
        }
        let body = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
        self.start = body.end;
        Ok(Frame::Whole(body))
    }
}

/// What the bytes read hold next.
enum Frame {
    /// A whole frame, whose body lies here in the buffer.
    Whole(Range<usize>),
    /// Part of one, missing this many bytes.
    Missing(usize),
}

struct State {
    unread: Unread,
    batches: VecDeque<Batch>,
    /// Why no more batches will come, once that is known.
    end: Option<Result<(), String>>,
    /// The host call waiting for its reply.
    waiting: Option<(u64, oneshot::Sender<Reply>)>,
    /// The guest's thread runs a batch: others read the pipe for it. While
    /// it does not, only it reads (it waits for the pipe to be readable, a
    /// wake-up nobody else may consume).
    busy: bool,
}

/// Messages from the pool, read as they come.
pub(crate) struct Inbox {
    pipe: AsyncFd<File>,
    state: Mutex<State>,
    /// Where withdrawals are answered.
    outbox: Arc<Outbox>,
}

impl Inbox {
    /// The inbox of `pipe`, which already delivered `unread` (bytes read
    /// ahead of the setup); withdrawals are answered on `outbox`. Must be
    /// called within the async runtime that will wait on the pipe.
    pub(crate) fn new(pipe: File, unread: Vec<u8>, outbox: Arc<Outbox>) -> io::Result<Arc<Inbox>> {
        rustix::io::ioctl_fionbio(&pipe, true)?;
        let filled = unread.len();
        let mut buffer = unread;
        buffer.resize(filled.max(READ_SIZE), 0);
        // SAFETY: a `File` owns its descriptor, keeps it open as long as it
        // lives, and always names that one.
        let pipe = unsafe { AsyncFd::register_with_interest(pipe, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)?;
        Ok(Arc::new(Inbox {
            pipe,
            state: Mutex::new(State {
                unread: Unread {
                    buffer,
                    start: 0,
                    filled,
                },
                batches: VecDeque::new(),
                end: None,
                waiting: None,
                busy: false,
            }),
            outbox,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads and handles every message the pipe holds now, without waiting.
    fn pump(&self, state: &mut State) {
        while state.end.is_none() {
            let missing = match state.unread.next_frame() {
                Ok(Frame::Whole(body)) => {
                    match codec::decode_body::<ToWorker>(&state.unread.buffer[body]) {
                        Ok(message) => self.take(message, state),
                        Err(err) => {
                            state.end = Some(Err(format!("bad message from the pool: {err}")))
                        }
                    }
                    continue;
                }
                Ok(Frame::Missing(missing)) => missing,
                Err(why) => {
                    state.end = Some(Err(format!("bad frame from the pool: {why}")));
                    continue;
                }
            };
            let room = state.unread.room(missing.max(READ_SIZE));
            match self.pipe.get_ref().read(room) {
                Ok(0) => {
                    let whole = state.unread.start == state.unread.filled;
                    state.end = Some(match whole {
                        true => Ok(()),
                        false => Err("the channel from the pool ended within a frame".into()),
                    });
                }
                Ok(n) => state.unread.filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return state.unread.settle();
                }
                Err(err) => state.end = Some(Err(format!("cannot read from the pool: {err}"))),
            }
        }
        // A host call waiting now gets no reply: its receiver fails rather
        // than waits.
        state.waiting = None;
    }

    /// Handles one message.
    fn take(&self, message: ToWorker, state: &mut State) {
        match message {
            ToWorker::Run(batch) => state.batches.push_back(batch),
            ToWorker::Withdraw { seq } => {
                // Not there: it started (or ran) already, and its outcomes
                // answer for it.
                if let Some(at) = state.batches.iter().position(|batch| batch.seq == seq) {
                    state.batches.remove(at);
                    // Sent while the batches are locked: the thread running
                    // the guest takes a later batch, and reports on it, only
                    // after this, so the pool hears of the withdrawal first.
                    if self
                        .outbox
                        .send_now(&FromWorker::Withdrawn { seq })
                        .is_err()
                    {
                        state.end = Some(Err("cannot write to the pool".into()));
                    }
                }
            }
            ToWorker::Reply { call, result } => {
                let unclaimed = if state.waiting.as_ref().is_some_and(|(id, _)| *id == call) {
                    let (_, tx) = state.waiting.take().expect("checked");
                    tx.send(result).err()
                } else {
                    Some(result)
                };
                // A reply to a call given up (its task timed out) finds no
                // one waiting: what it carried (an item taken from a queue,
                // a lock) goes back to the pool to put back.
                if let Some(Ok(result)) = unclaimed {
                    let _ = self
                        .outbox
                        .send_now(&FromWorker::Unclaimed { call, result });
                }
            }
            ToWorker::Shutdown => state.end = Some(Ok(())),
            ToWorker::Setup(_) => state.end = Some(Err("setup sent twice".into())),
        }
    }

    /// The next batch, or why there is none; waits for it. Called by the
    /// thread running the guest, which ends its previous batch by calling.
    pub(crate) async fn next(&self) -> Next {
        loop {
            {
                let mut state = self.lock();
                state.busy = false;
                // With a batch waiting, no system call: what else came
                // meanwhile (a withdraw) the ticker reads within a tick.
                if state.batches.is_empty() {
                    self.pump(&mut state);
                }
                if let Some(batch) = state.batches.pop_front() {
                    state.busy = true;
                    return Next::Run(batch);
                }
                match &state.end {
                    Some(Ok(())) => return Next::Shutdown,
                    Some(Err(why)) => return Next::Failed(why.clone()),
                    None => {}
                }
            }
            if let Err(err) = self.readable().await {
                return Next::Failed(format!("cannot wait for the pool: {err}"));
            }
        }
    }

    /// Waits until the pipe may have something to read.
    async fn readable(&self) -> io::Result<()> {
        // Readiness is cleared here and the pipe read after: bytes that come
        // in between are read, and make it ready again, which costs a turn of
        // the loop but loses nothing.
        self.pipe.readable().await?.clear_ready();
        Ok(())
    }

    /// Reads what the pool sent while a batch runs, without waiting: a
    /// withdraw, a reply. Nothing, while the guest's thread waits for the
    /// pipe itself.
    pub(crate) fn read_while_busy(&self) {
        let mut state = self.lock();
        if state.busy {
            self.pump(&mut state);
        }
    }

    /// Registers host call `call` as waiting; its reply arrives on the
    /// returned receiver (which fails if the channel ends first).
    pub(crate) fn expect_reply(&self, call: u64) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        if state.end.is_none() {
            state.waiting = Some((call, tx));
        }
        rx
    }

    /// Waits for the reply on `reply`, reading the pipe meanwhile; `None` if
    /// the channel ended first.
    pub(crate) async fn reply(&self, reply: &mut oneshot::Receiver<Reply>) -> Option<Reply> {
        loop {
            self.pump(&mut self.lock());
            // Whoever read the reply (this loop or the ticker) sent it on.
            tokio::select! {
                result = &mut *reply => return result.ok(),
                readable = self.readable() => readable.ok()?,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;
    use crate::worker::outbox::tests::Kept;

    /// An inbox on a pipe, and the pipe's writing end.
    pub(crate) fn on_pipe(
        outbox: &Arc<Outbox>,
        runtime: &tokio::runtime::Runtime,
    ) -> (Arc<Inbox>, File) {
        let (reading, writing) = std::io::pipe().unwrap();
        let _entered = runtime.enter();
        let reading = File::from(std::os::fd::OwnedFd::from(reading));
        let inbox = Inbox::new(reading, Vec::new(), outbox.clone()).unwrap();
        (inbox, File::from(std::os::fd::OwnedFd::from(writing)))
    }

    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub(crate) fn batch(seq: u64) -> ToWorker {
        ToWorker::Run(Batch {
            seq,
            task: "t".into(),
            first_index: 0,
            args: Default::default(),
            ends: vec![],
            handed: vec![],
        })
    }

    pub(crate) fn send(pipe: &mut File, message: &ToWorker) {
        let mut frame = Vec::new();
        codec::encode(message, &mut frame);
        pipe.write_all(&frame).unwrap();
    }

    #[test]
    fn a_frame_larger_than_a_read_arrives_whole() {
        let kept = Kept::default();
        let outbox = Arc::new(Outbox::new(Box::new(kept.clone())));
        let runtime = runtime();
        let (inbox, mut pipe) = on_pipe(&outbox, &runtime);
        let args: Vec<u8> = (0..5 * READ_SIZE).map(|i| i as u8).collect();
        let sent = ToWorker::Run(Batch {
            seq: 7,
            task: "big".into(),
            first_index: 3,
            args: ByteBuf::from(args.clone()),
            ends: vec![args.len() as u32],
            handed: vec![],
        });
        // Written in pieces, so that the reader meets a frame cut anywhere.
        let writer = std::thread::spawn(move || {
            let mut frame = Vec::new();
            codec::encode(&sent, &mut frame);
            frame.extend_from_slice(&frame.clone());
            for piece in frame.chunks(1000) {
                pipe.write_all(piece).unwrap();
            }
        });
        for _ in 0..2 {
            let Next::Run(batch) = runtime.block_on(inbox.next()) else {
                panic!("no batch");
            };
            assert_eq!((batch.seq, batch.first_index), (7, 3));
            assert!(
                batch.args.as_slice() == args.as_slice(),
                "the arguments changed"
            );
        }
        writer.join().unwrap();
        assert!(matches!(runtime.block_on(inbox.next()), Next::Shutdown));
        assert!(kept.messages().is_empty());
    }

    #[test]
    fn a_frame_cut_short_or_too_long_fails_the_channel() {
        let outbox = Arc::new(Outbox::new(Box::new(Kept::default())));
        let runtime = runtime();
        let (inbox, mut pipe) = on_pipe(&outbox, &runtime);
        let mut frame = Vec::new();
        codec::encode(&batch(0), &mut frame);
        pipe.write_all(&frame[..frame.len() - 1]).unwrap();
        drop(pipe);
        let Next::Failed(why) = runtime.block_on(inbox.next()) else {
            panic!("a cut frame was taken");
        };
        assert!(why.contains("ended within a frame"), "{why}");

        let (oversized, mut pipe) = on_pipe(&outbox, &runtime);
        pipe.write_all(&u32::MAX.to_le_bytes()).unwrap();
        let Next::Failed(why) = runtime.block_on(oversized.next()) else {
            panic!("an oversized frame was taken");
        };
        assert!(why.contains("exceeds the limit"), "{why}");
    }

    #[test]
    fn a_host_call_gets_its_reply_and_others_go_back() {
        let kept = Kept::default();
        let outbox = Arc::new(Outbox::new(Box::new(kept.clone())));
        let runtime = runtime();
        let (inbox, mut pipe) = on_pipe(&outbox, &runtime);
        let mut reply = inbox.expect_reply(5);
        for call in [4, 5] {
            let result = Ok(ByteBuf::from(vec![call as u8]));
            send(&mut pipe, &ToWorker::Reply { call, result });
        }
        let got = runtime.block_on(inbox.reply(&mut reply));
        assert_eq!(got, Some(Ok(ByteBuf::from(vec![5]))));
        // A reply nobody waits for goes back.
        let sent = kept.messages();
        assert!(
            sent.contains(&FromWorker::Unclaimed {
                call: 4,
                result: ByteBuf::from(vec![4])
            }),
            "{sent:?}"
        );
        // The channel ends while a call waits: it gets no reply.
        let mut reply = inbox.expect_reply(6);
        drop(pipe);
        assert_eq!(runtime.block_on(inbox.reply(&mut reply)), None);
    }
}
