//! [`Pipe`]: two [`Connection`]s, each the end of a channel of messages; an
//! end is closed once nothing holds it (its host handle dropped or closed,
//! no task holding it), and then the other end reads end-of-file.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::channel::Failure;
use crate::objects::handle::serialize_as_handle;
use crate::objects::wait::{Monitor, Patience, Wait};
use crate::objects::{Holder, Kind, Object, args, encode, next_id, unknown_op};

/// The most bytes of messages waiting in one direction of a pipe: a send
/// waits beyond it until the other end reads.
pub const PIPE_BYTES: usize = 16 << 20;

/// Why a receive did not return a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The other end is closed and every message was read: Python's
    /// `EOFError`.
    Eof,
    /// No message came in time.
    TimedOut,
    /// A message did not decode to the type asked for.
    Decode(String),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Eof => f.write_str("end of file: the other end of the pipe is closed"),
            RecvError::TimedOut => f.write_str("no message came in time"),
            RecvError::Decode(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RecvError {}

#[derive(Debug, Default)]
struct State {
    /// The messages waiting to be read at each end.
    inbox: [VecDeque<Vec<u8>>; 2],
    bytes: [usize; 2],
    /// Whether anything holds each end.
    open: [bool; 2],
}

#[derive(Debug)]
struct PipeCore {
    duplex: bool,
    state: Monitor<State>,
}

/// One end of a pipe. Dropped when nothing holds it any more, which closes
/// it.
#[derive(Debug)]
pub(crate) struct End {
    id: u64,
    side: usize,
    core: Arc<PipeCore>,
}

impl End {
    fn peer(&self) -> usize {
        1 - self.side
    }

    fn may_send(&self) -> Result<(), Failure> {
        if !self.core.duplex && self.side == 0 {
            return Err(Failure::Refused(
                "this end of a one-way pipe only receives".into(),
            ));
        }
        Ok(())
    }

    fn may_recv(&self) -> Result<(), Failure> {
        if !self.core.duplex && self.side == 1 {
            return Err(Failure::Refused(
                "this end of a one-way pipe only sends".into(),
            ));
        }
        Ok(())
    }

    fn send(&self, message: Vec<u8>, wait: &Wait) -> Result<(), Failure> {
        self.may_send()?;
        let peer = self.peer();
        let mut message = Some(message);
        self.core
            .state
            .wait_for(Patience::Forever, wait, |state| {
                if !state.open[peer] {
                    return Some(Err(Failure::Closed(
                        "the other end of the pipe is closed".into(),
                    )));
                }
                let size = message.as_ref().map_or(0, Vec::len);
                if !state.inbox[peer].is_empty() && state.bytes[peer] + size > PIPE_BYTES {
                    return None;
                }
                state.bytes[peer] += size;
                state.inbox[peer].extend(message.take());
                Some(Ok(()))
            })??;
        self.core.state.notify();
        Ok(())
    }

    fn recv(&self, patience: Patience, wait: &Wait) -> Result<Vec<u8>, Failure> {
        self.may_recv()?;
        let (side, peer) = (self.side, self.peer());
        let message = self.core.state.wait_for(patience, wait, |state| {
            if let Some(next) = state.inbox[side].front() {
                if let Err(failure) = wait.fits(next.len()) {
                    return Some(Err(failure));
                }
                let message = state.inbox[side].pop_front()?;
                state.bytes[side] -= message.len();
                return Some(Ok(message));
            }
            (!state.open[peer]).then(|| {
                Err(Failure::Closed(
                    "end of file: the other end of the pipe is closed".into(),
                ))
            })
        })??;
        self.core.state.notify();
        Ok(message)
    }

    /// Whether a receive would return at once (a message, or end-of-file).
    fn poll(&self, patience: Patience, wait: &Wait) -> Result<bool, Failure> {
        self.may_recv()?;
        let (side, peer) = (self.side, self.peer());
        self.core.state.wait_until(patience, wait, |state| {
            !state.inbox[side].is_empty() || !state.open[peer]
        })
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.core.state.lock().open[self.side] = false;
        self.core.state.notify();
    }
}

impl Object for End {
    fn id(&self) -> u64 {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::Connection
    }

    fn may_wait(&self, op: &str) -> bool {
        matches!(op, "send" | "recv" | "poll")
    }

    fn invoke(
        &self,
        _holder: Holder,
        op: &str,
        bytes: &[u8],
        wait: &Wait,
    ) -> Result<Vec<u8>, Failure> {
        match op {
            "send" => {
                let (message,): (ByteBuf,) = args(Kind::Connection, op, bytes)?;
                self.send(message.into_vec(), wait)?;
                encode(&())
            }
            "recv" => {
                let () = args(Kind::Connection, op, bytes)?;
                let message = self.recv(Patience::Forever, wait)?;
                encode(&ByteBuf::from(message))
            }
            "poll" => {
                let (timeout,): (Option<u64>,) = args(Kind::Connection, op, bytes)?;
                let patience = match timeout {
                    Some(0) => Patience::None,
                    timeout => Patience::from_millis(true, timeout),
                };
                encode(&self.poll(patience, wait)?)
            }
            // "close" is the grant's, not the end's: see `backend/calls/objects.rs`.
            _ => Err(unknown_op(Kind::Connection, op)),
        }
    }

    fn give_back(&self, _holder: Holder, op: &str, result: &[u8], _took: u64) {
        if op != "recv" {
            return;
        }
        if let Ok(message) = rmp_serde::from_slice::<ByteBuf>(result) {
            let mut state = self.core.state.lock();
            state.bytes[self.side] += message.len();
            state.inbox[self.side].push_front(message.into_vec());
            drop(state);
            self.core.state.notify();
        }
    }
}

/// A pipe: Python's `multiprocessing.Pipe`. [`Pipe::new`] returns its two
/// ends.
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// A pipe's two ends. With `duplex`, both send and receive; without,
    /// the first only receives and the second only sends, as in Python.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(duplex: bool) -> (Connection, Connection) {
        let core = Arc::new(PipeCore {
            duplex,
            state: Monitor::new(State {
                open: [true, true],
                ..State::default()
            }),
        });
        let end = |side| Connection {
            end: Arc::new(End {
                id: next_id(),
                side,
                core: core.clone(),
            }),
        };
        (end(0), end(1))
    }
}

/// One end of a [`Pipe`]. Pass it to a task as an argument; the task holds
/// it until it ends (or closes it). The end is closed once neither the host
/// (this handle: [`close`](Self::close) or drop it) nor a task holds it; the
/// other end then reads what was sent and then end-of-file
/// ([`RecvError::Eof`]).
#[derive(Debug)]
pub struct Connection {
    end: Arc<End>,
}

serialize_as_handle!(Connection, end);

impl Connection {
    /// Sends `message` (any serde value, as MessagePack).
    ///
    /// # Errors
    ///
    /// The other end is closed (Python's `BrokenPipeError`), this end only
    /// receives, or the message does not encode.
    pub fn send<T: Serialize>(&self, message: &T) -> Result<(), crate::Error> {
        let bytes = rmp_serde::to_vec_named(message).map_err(|err| {
            crate::Error::new(
                crate::ErrorKind::BadArguments,
                format!("the message does not encode: {err}"),
            )
        })?;
        self.send_bytes(&bytes)
    }

    /// Sends `bytes` as one message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), crate::Error> {
        self.end
            .send(bytes.to_vec(), &Wait::forever())
            .map_err(|failure| crate::Error::new(crate::ErrorKind::Failed, failure.to_string()))
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Eof`] once the other end is closed and every message was
    /// read; [`RecvError::Decode`] if the message is not a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        let bytes = self.recv_bytes()?;
        rmp_serde::from_slice(&bytes).map_err(|err| {
            RecvError::Decode(format!(
                "a message does not decode to {}: {err}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Receives the next message as bytes.
    ///
    /// # Errors
    ///
    /// [`RecvError::Eof`], as [`recv`](Self::recv).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.end
            .recv(Patience::Forever, &Wait::forever())
            .map_err(recv_error)
    }

    /// Receives the next message as bytes, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::TimedOut`], as [`recv_bytes`](Self::recv_bytes) else.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.end
            .recv(Patience::new(true, Some(timeout)), &Wait::forever())
            .map_err(recv_error)
    }

    /// Whether a message (or end-of-file) can be received now, waiting at
    /// most `timeout` for one (`None`: without end).
    pub fn poll(&self, timeout: Option<Duration>) -> bool {
        self.end
            .poll(Patience::new(true, timeout), &Wait::forever())
            .unwrap_or(false)
    }

    /// Closes the host's hold on this end (as dropping it does).
    pub fn close(self) {}
}

fn recv_error(failure: Failure) -> RecvError {
    match failure {
        Failure::Closed(_) => RecvError::Eof,
        Failure::TimedOut => RecvError::TimedOut,
        Failure::Refused(why) => RecvError::Decode(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_end_reads_what_was_sent_then_end_of_file() {
        let (parent, child) = Pipe::new(true);
        parent.send(&"hello").unwrap();
        parent.close();
        assert_eq!(child.recv::<String>().unwrap(), "hello");
        assert_eq!(child.recv::<String>(), Err(RecvError::Eof));
        assert!(child.send(&1).is_err(), "the other end is closed");
    }

    #[test]
    fn a_one_way_pipe_sends_from_its_second_end_only() {
        let (reader, writer) = Pipe::new(false);
        assert!(reader.send(&1).is_err());
        writer.send(&2).unwrap();
        assert!(reader.poll(Some(Duration::ZERO)));
        assert_eq!(reader.recv::<i32>().unwrap(), 2);
        assert!(!reader.poll(Some(Duration::from_millis(1))));
    }
}
