//! Bounded capture of a guest's stdout and stderr, drained task by task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What a stream captured since it was last drained.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    /// More was written than `limit` allowed; the rest was dropped.
    truncated: bool,
}

/// A guest output stream that keeps at most `limit` bytes per task and drops
/// the rest, so a guest that prints without end fills no memory and does not
/// trap either.
#[derive(Clone, Debug)]
pub(crate) struct Capture {
    captured: Arc<Mutex<Captured>>,
    /// Set on a write, cleared by a drain: checking for output costs no lock.
    written: Arc<AtomicBool>,
    limit: usize,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            captured: Arc::default(),
            written: Arc::default(),
            limit,
        }
    }

    /// Takes what was written since the last call: the bytes, and whether some
    /// were dropped. `None` if nothing was written.
    pub(crate) fn drain(&self) -> Option<(Vec<u8>, bool)> {
        if !self.written.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        if captured.bytes.is_empty() && !captured.truncated {
            return None;
        }
        let truncated = std::mem::take(&mut captured.truncated);
        Some((std::mem::take(&mut captured.bytes), truncated))
    }

    /// Whether anything was written since the last drain.
    pub(crate) fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.limit.saturating_sub(captured.bytes.len());
        if bytes.len() > room {
            captured.truncated = true;
        }
        captured
            .bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.written.store(true, Ordering::Release);
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

    #[test]
    fn keeps_at_most_the_limit_and_says_so() {
        let capture = Capture::new(4);
        capture.push(b"abc");
        capture.push(b"def");
        assert_eq!(capture.drain(), Some((b"abcd".to_vec(), true)));
        assert_eq!(capture.drain(), None);
        capture.push(b"xy");
        assert_eq!(capture.drain(), Some((b"xy".to_vec(), false)));
    }
}
