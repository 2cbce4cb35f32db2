//! The pool's sending end of one worker's channel. Sending never blocks,
//! whatever the worker does with its input: a message goes straight into the
//! pipe when it has room and nothing waits before it (no thread hop on the
//! way to an idle worker), and otherwise waits for the worker's writer
//! thread, which writes it as the pipe drains.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crossbeam_channel::Sender;
use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;

use crate::channel::{ToWorker, codec};
use crate::supervisor::process::Event;

/// What waits to be written.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread holds bytes taken from here and is writing them:
    /// nothing may be written before they are.
    writing: bool,
    /// The channel is done (the worker is gone, or the pipe broke): what is
    /// sent from now on is dropped.
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    more: Condvar,
    pipe: File,
}

/// Sends messages to one worker; cheap to clone (host calls reply through
/// it from threads of their own).
#[derive(Clone)]
pub(crate) struct Outbound {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// The sending end of `pipe`, with its writer thread, which reports a
    /// broken pipe on `events` as the end of the channel.
    pub(crate) fn start(pipe: File, events: Sender<Event>, pid: u32) -> io::Result<Outbound> {
        let flags = rustix::fs::fcntl_getfl(&pipe)?;
        rustix::fs::fcntl_setfl(&pipe, flags | OFlags::NONBLOCK)?;
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            more: Condvar::new(),
            pipe,
        });
        let writer = shared.clone();
        thread::Builder::new()
            .name(format!("wasmpool-writer-{pid}"))
            .spawn(move || {
                if let Err(err) = writer.write_pending() {
                    let _ = events.send(Event::Closed(Some(format!("cannot send it work: {err}"))));
                }
            })?;
        Ok(Outbound { shared })
    }

    /// Sends `message`, now if the pipe has room, else as soon as it has.
    pub(crate) fn send(&self, message: &ToWorker) {
        let mut frame = Vec::new();
        codec::encode(message, &mut frame);
        let mut pending = self.shared.lock();
        if pending.closed {
            return;
        }
        let mut from = 0;
        if !pending.writing && pending.bytes.is_empty() {
            match write_some(&self.shared.pipe, &frame) {
                Ok(written) if written == frame.len() => return,
                Ok(written) => from = written,
                // The writer thread meets the error again and reports it.
                Err(_) => {}
            }
        }
        pending.bytes.extend_from_slice(&frame[from..]);
        self.shared.more.notify_one();
    }

    /// Drops whatever is sent from now on, and ends the writer thread.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.more.notify_one();
    }
}

impl Shared {
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
