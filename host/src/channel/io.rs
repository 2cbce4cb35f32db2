//! Reading frames off a byte stream: the blocking I/O around
//! [`super::codec`], used by the pool's reader threads and by a worker until
//! its setup is read (after that, its inbox reads without blocking; writing
//! is each side's own: the pool's outbound end, the worker's outbox).

use std::io::{self, BufReader, Read};

use serde::de::DeserializeOwned;

use super::codec::{self, HEADER_LEN};

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

    /// The stream, and the bytes read from it ahead of the frames returned.
    pub(crate) fn into_parts(self) -> (R, Vec<u8>) {
        let unread = self.inner.buffer().to_vec();
        (self.inner.into_inner(), unread)
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
        let len = codec::decode_header(header, self.limit)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        // `len` is within the limit, so this allocation is bounded.
        self.body.resize(len, 0);
        self.inner.read_exact(&mut self.body)?;
        codec::decode_body(&self.body)
            .map(Some)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }
}
