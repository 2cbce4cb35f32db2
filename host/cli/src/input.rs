//! The input side of a run: a thread reads lines, each at most the payload
//! limit long, into a bounded channel that the pool takes its tasks from as
//! they come (a stream: results flow while the input waits), and notes the
//! input line of each task in a [`Ledger`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::json::{Form, Line};
use crate::resume::Done;

/// Lines read ahead of the pool, at most.
const READ_AHEAD: usize = 256;
/// The buffer a line is read into shrinks back to this after a long line.
const LINE_BUFFER: usize = 64 << 10;

/// Where the lines come from.
pub(crate) enum Source {
    /// Standard input (`--input -`).
    Stdin,
    /// An input file, opened.
    File(File),
}

/// A line as the [`LineReader`] found it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// The line is in the buffer, without its newline.
    Line,
    /// The line was longer than the limit: its bytes were passed over, and
    /// this is its length.
    TooLong(u64),
}

/// Reads lines of at most `limit` bytes. A longer line is not kept: its
/// bytes are passed over up to its newline, so memory stays bounded whatever
/// the input, a stream without newlines included.
pub(crate) struct LineReader<R> {
    reader: R,
    limit: usize,
}

impl<R: BufRead> LineReader<R> {
    /// Reads lines of `reader`, each at most `limit` bytes long.
    pub(crate) fn new(reader: R, limit: usize) -> Self {
        LineReader { reader, limit }
    }

    /// Reads the next line into `line` (cleared first). `None` at the end of
    /// the input. The last line may lack its newline; an empty input has no
    /// lines.
    pub(crate) fn read(&mut self, line: &mut Vec<u8>) -> io::Result<Option<Fetched>> {
        line.clear();
        let mut length = 0u64;
        let mut started = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if available.is_empty() {
                return Ok(started.then(|| self.fetched(length)));
            }
            started = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let part = &available[..newline.unwrap_or(available.len())];
            length += part.len() as u64;
            if length <= self.limit as u64 {
                line.extend_from_slice(part);
            } else {
                line.clear();
            }
            let used = part.len() + usize::from(newline.is_some());
            self.reader.consume(used);
            if newline.is_some() {
                return Ok(Some(self.fetched(length)));
            }
        }
    }

    /// What a line of `length` bytes is.
    fn fetched(&self, length: u64) -> Fetched {
        if length > self.limit as u64 {
            Fetched::TooLong(length)
        } else {
            Fetched::Line
        }
    }
}

/// The pool's stream of tasks, one per input line not done: calls with
/// positional arguments, or (`--kwargs`) with keyword arguments.
pub(crate) enum Lines {
    Positional(Receiver<Line>),
    Keywords(Receiver<((), Line)>),
}

/// Starts the thread that reads `source` line by line, passes over the lines
/// `done` holds, and parses the others (each holding `form`; a line over
/// `limit` bytes becomes a malformed line) into the stream returned, telling
/// how far it got in the ledger returned. The `n`th line sent is task `n`
/// (see [`Done::line_of`]). The thread is not joined: a read of stdin may
/// block for ever, and must not keep the command from ending; it ends when
/// the stream is let go.
pub(crate) fn spawn_reader(
    source: Source,
    limit: usize,
    form: Form,
    done: Arc<Done>,
) -> io::Result<(Lines, Arc<Ledger>)> {
    Ok(match form {
        Form::Kwargs => {
            let (rx, ledger) = spawn(source, limit, form, done, |line| ((), line))?;
            (Lines::Keywords(rx), ledger)
        }
        Form::Single | Form::Star => {
            let (rx, ledger) = spawn(source, limit, form, done, |line| line)?;
            (Lines::Positional(rx), ledger)
        }
    })
}

/// [`spawn_reader`], each line sent as `item` makes it.
fn spawn<T: Send + 'static>(
    source: Source,
    limit: usize,
    form: Form,
    done: Arc<Done>,
    item: fn(Line) -> T,
) -> io::Result<(Receiver<T>, Arc<Ledger>)> {
    let (tx, rx) = bounded(READ_AHEAD);
    let ledger = Arc::new(Ledger::default());
    let noted = ledger.clone();
    let read = Read { limit, form, item };
    thread::Builder::new()
        .name("wasmpool-input".into())
        .spawn(move || match source {
            Source::Stdin => read.all(io::stdin().lock(), &done, &tx, &noted),
            Source::File(file) => read.all(
                BufReader::with_capacity(LINE_BUFFER, file),
                &done,
                &tx,
                &noted,
            ),
        })?;
    Ok((rx, ledger))
}

/// How the reader thread reads: lines of at most `limit` bytes, each holding
/// `form`, sent as `item` makes them.
struct Read<T> {
    limit: usize,
    form: Form,
    item: fn(Line) -> T,
}

impl<T> Read<T> {
    /// The reader thread's work: every line of `reader` not `done` to `tx`,
    /// then how the input ended, in `ledger`.
    fn all(&self, reader: impl BufRead, done: &Done, tx: &Sender<T>, ledger: &Ledger) {
        let limit = self.limit;
        let mut reader = LineReader::new(reader, limit);
        let mut bytes = Vec::new();
        let mut index = 0u64;
        let end = loop {
            let fetched = match reader.read(&mut bytes) {
                Ok(Some(fetched)) => fetched,
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            };
            ledger.seen.store(index + 1, Ordering::Relaxed);
            if !done.contains(index) {
                let number = index + 1;
                let line = match fetched {
                    Fetched::Line => Line::parse(&bytes, number, self.form),
                    Fetched::TooLong(length) => Line::Malformed(format!(
                        "input line {number} is {length} bytes, over the payload limit of \
                         {limit} bytes"
                    )),
                };
                if tx.send((self.item)(line)).is_err() {
                    // The pool let the stream go: it was terminated.
                    return;
                }
            }
            if bytes.capacity() > LINE_BUFFER {
                bytes = Vec::with_capacity(LINE_BUFFER);
            }
            index += 1;
        };
        match end {
            Ok(()) => ledger.exhausted.store(true, Ordering::SeqCst),
            Err(err) => {
                *ledger
                    .read_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(err);
            }
        }
    }
}

/// How far the reader thread got.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Input lines read so far, sent or skipped.
    seen: AtomicU64,
    /// The input was read to its end.
    exhausted: AtomicBool,
    read_error: Mutex<Option<io::Error>>,
}

impl Ledger {
    /// Input lines read so far, sent or skipped.
    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// Whether the input was read to its end.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::SeqCst)
    }

    /// The error that ended the reading, if one did.
    pub(crate) fn take_read_error(&self) -> Option<io::Error> {
        self.read_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `input` read with `limit`, as text or its length if too
    /// long; `capacity` is the reader's buffer size.
    fn lines(input: &[u8], limit: usize, capacity: usize) -> Vec<Result<String, u64>> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input), limit);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(fetched) = reader.read(&mut line).unwrap() {
            out.push(match fetched {
                Fetched::Line => Ok(String::from_utf8(line.clone()).unwrap()),
                Fetched::TooLong(length) => {
                    assert!(line.is_empty(), "a long line's bytes were kept");
                    Err(length)
                }
            });
        }
        out
    }

    #[test]
    fn lines_within_the_limit_come_whole_and_longer_ones_by_length() {
        let input = b"1\n\n12345\r\n123456\n[1]";
        for capacity in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(input, 6, capacity),
                vec![
                    Ok("1".to_string()),
                    Ok(String::new()),
                    Ok("12345\r".to_string()),
                    Ok("123456".to_string()),
                    Ok("[1]".to_string()),
                ],
                "buffer of {capacity}"
            );
            assert_eq!(
                lines(input, 5, capacity),
                vec![
                    Ok("1".to_string()),
                    Ok(String::new()),
                    Err(6),
                    Err(6),
                    Ok("[1]".to_string()),
                ],
                "buffer of {capacity}"
            );
        }
        assert_eq!(lines(b"", 5, 8), vec![]);
        assert_eq!(lines(b"\n", 5, 8), vec![Ok(String::new())]);
        assert_eq!(lines(b"abcdefgh", 5, 3), vec![Err(8)]);
    }

    /// Reads lines of at most `limit` bytes, each a single argument.
    fn single(limit: usize) -> Read<Line> {
        Read {
            limit,
            form: Form::Single,
            item: |line| line,
        }
    }

    #[test]
    fn the_reader_skips_done_lines_and_tells_how_far_it_got() {
        let done = Arc::new(Done::from_indices([1, 3]));
        let input = "10\n11\n12\n13\n14\n".as_bytes();
        let (tx, rx) = bounded(READ_AHEAD);
        let ledger = Ledger::default();
        single(64).all(input, &done, &tx, &ledger);
        drop(tx);
        let sent: Vec<String> = rx
            .iter()
            .map(|line| match line {
                Line::Args(args) => args[0].to_string(),
                Line::Kwargs(_) => unreachable!("lines are single arguments"),
                Line::Malformed(why) => why,
            })
            .collect();
        assert_eq!(sent, ["10", "12", "14"]);
        assert!(ledger.exhausted());
        assert_eq!(ledger.seen(), 5);
    }

    #[test]
    fn the_reader_stops_when_the_stream_is_let_go() {
        let (tx, rx) = bounded(1);
        drop(rx);
        let ledger = Ledger::default();
        single(64).all("1\n2\n".as_bytes(), &Done::default(), &tx, &ledger);
        assert!(!ledger.exhausted(), "it stopped at the first line");
        assert_eq!(ledger.seen(), 1);
    }
}
