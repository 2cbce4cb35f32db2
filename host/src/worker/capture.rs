//! Bounded capture of a guest's stdout and stderr, streamed as it is
//! written: each completed line goes to the outbox at once, attributed to
//! the running task (the ticker writes it out within a millisecond), and
//! what is left of a line when the task ends goes out ahead of its outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_bytes::ByteBuf;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::channel::{FromWorker, Stream};
use crate::worker::outbox::Outbox;

/// What a stream captured of the running task.
#[derive(Debug, Default)]
struct Captured {
    /// Written and not sent yet: the start of a line.
    bytes: Vec<u8>,
    /// Bytes kept of the running task so far, sent or not.
    kept: usize,
    /// More was written than `limit` allowed; the rest was dropped.
    truncated: bool,
}

/// A guest output stream that keeps at most `limit` bytes per task and drops
/// the rest, so a guest that prints without end fills no memory and does not
/// trap either. Whole lines go to the outbox as they are written.
#[derive(Clone)]
pub(crate) struct Capture {
    captured: Arc<Mutex<Captured>>,
    /// Set on a write, cleared at the end of a task: checking for output
    /// costs no lock.
    written: Arc<AtomicBool>,
    /// How many writes the stream has seen, ever.
    writes: Arc<AtomicU64>,
    limit: usize,
    stream: Stream,
    outbox: Arc<Outbox>,
    /// The index of the running task, shared with the worker's state.
    task: Arc<AtomicU64>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Captures `stream` into `outbox`, attributed to the task `task` names.
    pub(crate) fn new(
        stream: Stream,
        limit: usize,
        outbox: Arc<Outbox>,
        task: Arc<AtomicU64>,
    ) -> Self {
        Capture {
            captured: Arc::default(),
            written: Arc::default(),
            writes: Arc::default(),
            limit,
            stream,
            outbox,
            task,
        }
    }

    /// The running task ends: sends what is left of its output (a line not
    /// ended, and whether some was dropped), and starts counting afresh for
    /// the next task.
    pub(crate) fn end_task(&self) {
        if !self.written.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        captured.kept = 0;
        let truncated = std::mem::take(&mut captured.truncated);
        if captured.bytes.is_empty() && !truncated {
            return;
        }
        let bytes = std::mem::take(&mut captured.bytes);
        self.send(bytes, truncated);
    }

    fn send(&self, bytes: Vec<u8>, truncated: bool) {
        self.outbox.send(&FromWorker::Output {
            index: self.task.load(Ordering::Relaxed),
            stream: self.stream,
            bytes: ByteBuf::from(bytes),
            truncated,
        });
    }

    /// How many writes the stream has seen: a task that wrote since some
    /// moment showed what it had then.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.limit.saturating_sub(captured.kept);
        if bytes.len() > room {
            captured.truncated = true;
        }
        let kept = &bytes[..bytes.len().min(room)];
        captured.kept += kept.len();
        captured.bytes.extend_from_slice(kept);
        self.written.store(true, Ordering::Release);
        // Whole lines go now; the start of the next waits for its end, or
        // for the end of the task. Sent under the lock, so that nothing the
        // task wrote later can overtake them.
        if let Some(last) = kept.iter().rposition(|&byte| byte == b'\n') {
            let rest = captured.bytes.len() - (kept.len() - last - 1);
            let rest = captured.bytes.split_off(rest);
            let lines = std::mem::replace(&mut captured.bytes, rest);
            self.send(lines, false);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: what does not fit is counted as dropped.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::outbox::tests::Kept;

    fn capture(limit: usize) -> (Capture, Arc<Outbox>, Kept, Arc<AtomicU64>) {
        let kept = Kept::default();
        let outbox = Arc::new(Outbox::new(Box::new(kept.clone())));
        let task = Arc::new(AtomicU64::new(7));
        let capture = Capture::new(Stream::Stdout, limit, outbox.clone(), task.clone());
        (capture, outbox, kept, task)
    }

    /// The output messages sent, as (task, bytes, truncated).
    fn sent(outbox: &Outbox, kept: &Kept) -> Vec<(u64, Vec<u8>, bool)> {
        outbox.flush().unwrap();
        kept.messages()
            .into_iter()
            .map(|message| match message {
                FromWorker::Output {
                    index,
                    bytes,
                    truncated,
                    ..
                } => (index, bytes.into_vec(), truncated),
                other => panic!("not output: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn keeps_at_most_the_limit_per_task_and_says_so() {
        let (capture, outbox, kept, task) = capture(4);
        capture.push(b"abc");
        capture.push(b"def");
        capture.end_task();
        capture.end_task();
        task.store(8, Ordering::Relaxed);
        capture.push(b"xy");
        capture.end_task();
        assert_eq!(
            sent(&outbox, &kept),
            [(7, b"abcd".to_vec(), true), (8, b"xy".to_vec(), false)]
        );
    }

    #[test]
    fn whole_lines_go_out_while_the_task_runs() {
        let (capture, outbox, kept, _) = capture(64);
        capture.push(b"one\ntw");
        assert_eq!(sent(&outbox, &kept), [(7, b"one\n".to_vec(), false)]);
        capture.push(b"o\nthree");
        capture.end_task();
        assert_eq!(
            sent(&outbox, &kept),
            [
                (7, b"one\n".to_vec(), false),
                (7, b"two\n".to_vec(), false),
                (7, b"three".to_vec(), false),
            ]
        );
    }
}
