//! Frames over a byte stream: the blocking I/O around [`crate::protocol`].

use std::io::{self, BufReader, BufWriter, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{self, HEADER_LEN};

/// Bytes buffered on each side of a channel.
const BUFFER: usize = 1 << 16;

/// Reads frames, refusing any longer than its limit.
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    body: Vec<u8>,
    limit: usize,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(BUFFER, inner),
            body: Vec::new(),
            limit,
        }
    }

    /// The next message; `None` at a clean end of the stream.
    pub(crate) fn read<M: DeserializeOwned>(&mut self) -> io::Result<Option<M>> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match self.inner.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let len = protocol::decode_header(header, self.limit)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        // `len` is within the limit, so this allocation is bounded.
        self.body.resize(len, 0);
        self.inner.read_exact(&mut self.body)?;
        protocol::decode_body(&self.body)
            .map(Some)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }
}

/// Writes frames through a buffer.
pub(crate) struct FrameWriter<W: Write> {
    inner: BufWriter<W>,
    frame: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        FrameWriter {
            inner: BufWriter::with_capacity(BUFFER, inner),
            frame: Vec::new(),
        }
    }

    /// Queues one message; it reaches the stream when the buffer fills or on
    /// [`flush`](Self::flush).
    pub(crate) fn send<M: Serialize>(&mut self, message: &M) -> io::Result<()> {
        self.frame.clear();
        protocol::encode(message, &mut self.frame);
        self.inner.write_all(&self.frame)
    }

    /// Pushes everything queued to the stream.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The stream written to.
    pub(crate) fn get_ref(&self) -> &W {
        self.inner.get_ref()
    }
}
