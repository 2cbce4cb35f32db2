//! The pool's sending end of one worker's channel. Sending never blocks,
//! whatever the worker does with its input: a message goes straight into the
//! pipe when it has room and nothing waits before it (no thread hop on the
//! way to an idle worker), and otherwise waits for the worker's writer
//! thread, which writes it as the pipe drains. That thread starts the first
//! time the pipe is full; most workers never need it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crossbeam_channel::Sender;
use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use serde_bytes::ByteBuf;

use crate::backend::KillHandle;
use crate::backend::calls::Replies;
use crate::backend::local::event::Event;
use crate::channel::{Failure, ToWorker, codec};

/// What waits to be written.
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread holds bytes taken from here and is writing them:
    /// nothing may be written before they are.
    writing: bool,
    /// The channel is done (the worker is gone, or the pipe broke): what is
    /// sent from now on is dropped.
    closed: bool,
    /// What the writer thread needs, until it is started: where to report a
    /// broken pipe, and the worker's pid to name the thread.
    unstarted: Option<(Sender<Event>, u32)>,
}

/// What the clones of an [`Outbound`] and its writer thread share.
struct Writer {
    pending: Mutex<Pending>,
    more: Condvar,
    pipe: File,
}

/// Sends messages to one worker; cheap to clone (host calls reply through
/// it from threads of their own).
#[derive(Clone)]
pub(crate) struct Outbound {
    writer: Arc<Writer>,
    /// The worker: a reply to one that has ended is not sent.
    worker: KillHandle,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// The sending end of `pipe` to `worker`; a broken pipe is reported on
    /// `events` as the end of the channel.
    pub(crate) fn new(
        pipe: File,
        events: Sender<Event>,
        worker: KillHandle,
    ) -> io::Result<Outbound> {
        let pid = worker.pid();
        let flags = rustix::fs::fcntl_getfl(&pipe)?;
        rustix::fs::fcntl_setfl(&pipe, flags | OFlags::NONBLOCK)?;
        let writer = Arc::new(Writer {
            pending: Mutex::new(Pending {
                bytes: Vec::new(),
                writing: false,
                closed: false,
                unstarted: Some((events, pid)),
            }),
            more: Condvar::new(),
            pipe,
        });
        Ok(Outbound { writer, worker })
    }

    /// Sends `message`, now if the pipe has room, else as soon as it has.
    /// Whether it may reach the worker: false when the channel is closed,
    /// or the pipe refused it (the worker is gone) — then it never will.
    pub(crate) fn send(&self, message: &ToWorker) -> bool {
        let mut frame = Vec::new();
        codec::encode(message, &mut frame);
        let mut pending = self.writer.lock();
        if pending.closed {
            return false;
        }
        let mut from = 0;
        let mut refused = false;
        if !pending.writing && pending.bytes.is_empty() {
            match write_some(&self.writer.pipe, &frame) {
                Ok(written) if written == frame.len() => return true,
                Ok(written) => from = written,
                // The writer thread meets the error again and reports it.
                Err(_) => refused = true,
            }
        }
        pending.bytes.extend_from_slice(&frame[from..]);
        match pending.unstarted.take() {
            Some((events, pid)) => self.start_writer(&mut pending, events, pid),
            None => self.writer.more.notify_one(),
        }
        !refused
    }

    /// Starts the writer thread, which writes what waits as the pipe drains.
    fn start_writer(&self, pending: &mut Pending, events: Sender<Event>, pid: u32) {
        let writer = self.writer.clone();
        let reporting = events.clone();
        let started = thread::Builder::new()
            .name(format!("wasmpool-writer-{pid}"))
            .spawn(move || {
                if let Err(err) = writer.write_pending() {
                    let why = format!("cannot send it work: {err}");
                    let _ = reporting.send(Event::Closed(Some(why)));
                }
            });
        if let Err(err) = started {
            pending.closed = true;
            let why = format!("cannot start the thread that writes to it: {err}");
            let _ = events.send(Event::Closed(Some(why)));
        }
    }

    /// Drops whatever is sent from now on, and ends the writer thread.
    pub(crate) fn close(&self) {
        self.writer.lock().closed = true;
        self.writer.more.notify_one();
    }
}

impl Replies for Outbound {
    fn reply(
        &self,
        call: u64,
        result: Result<ByteBuf, Failure>,
    ) -> Option<Result<ByteBuf, Failure>> {
        // An ended worker reads nothing: what the answer carries goes back.
        // (Its pipe refuses the answer too, unless a process another thread
        // forks at that moment holds a copy of its end for an instant.)
        if self.worker.has_ended() {
            return Some(result);
        }
        let message = ToWorker::Reply { call, result };
        match (self.send(&message), message) {
            (false, ToWorker::Reply { result, .. }) => Some(result),
            _ => None,
        }
    }
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: writes what waits, waiting for room in the pipe,
    /// until the channel is closed.
    fn write_pending(&self) -> io::Result<()> {
        let mut pending = self.lock();
        loop {
            if pending.closed {
                return Ok(());
            }
            if pending.bytes.is_empty() {
                pending = self
                    .more
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let bytes = std::mem::take(&mut pending.bytes);
            pending.writing = true;
            drop(pending);
            let written = self.write_all(&bytes);
            pending = self.lock();
            pending.writing = false;
            if let Err(err) = written {
                pending.closed = true;
                return Err(err);
            }
        }
    }

    /// Writes all of `bytes`, waiting for the pipe to have room.
    fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let written = write_some(&self.pipe, bytes)?;
            bytes = &bytes[written..];
            if written == 0 {
                let mut fds = [PollFd::new(&self.pipe, PollFlags::OUT)];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(())
    }
}

/// Writes what the pipe takes now: 0 if it is full.
fn write_some(mut pipe: &File, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match pipe.write(bytes) {
            Ok(written) => return Ok(written),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}
