//! The output: records written whole, at least every half second, behind a
//! gate that an exit at once waits at, so that no record is cut in half.

use std::io::{self, Write};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::json::record;

/// Records reach the output at least this often while a run goes on.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Records are written out when this many bytes of them are waiting.
const BUFFER: usize = 64 << 10;

/// Where records go: whole lines, written out when a buffer fills, when the
/// last write is [`FLUSH_EVERY`] old, or each at once (for a terminal).
pub(crate) struct Records<'g> {
    sink: Box<dyn Write>,
    /// Whole records not written out yet.
    pending: Vec<u8>,
    last_flush: Instant,
    /// Write each record out at once (the output is a terminal).
    flush_each: bool,
    gate: &'g Gate,
    /// A failed write breaks the output for good: what follows it would not
    /// line up with what reached the file.
    broken: Option<String>,
}

impl<'g> Records<'g> {
    /// Records to `sink`, each flushed at once if `flush_each`, written
    /// through `gate`.
    pub(crate) fn new(sink: Box<dyn Write>, flush_each: bool, gate: &'g Gate) -> Self {
        Records {
            sink,
            pending: Vec::with_capacity(BUFFER),
            last_flush: Instant::now(),
            flush_each,
            gate,
            broken: None,
        }
    }

    /// Writes the record of input line `index`.
    ///
    /// # Errors
    ///
    /// Why the output could not be written.
    pub(crate) fn write(
        &mut self,
        index: u64,
        outcome: Result<rmpv::Value, wasmpool::Error>,
    ) -> Result<(), String> {
        serde_json::to_writer(&mut self.pending, &record(index, outcome))
            .map_err(|err| err.to_string())?;
        self.pending.push(b'\n');
        // Whether they are due by time is the caller's to ask (see
        // `due_in`), once per round rather than once per record.
        if self.flush_each || self.pending.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// How long until the records waiting must be written out
    /// ([`FLUSH_EVERY`] when none wait).
    pub(crate) fn due_in(&self) -> Duration {
        if self.pending.is_empty() {
            return FLUSH_EVERY;
        }
        FLUSH_EVERY.saturating_sub(self.last_flush.elapsed())
    }

    /// Writes out every record waiting.
    ///
    /// # Errors
    ///
    /// Why the output could not be written, now or before.
    pub(crate) fn flush(&mut self) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let (sink, pending) = (&mut self.sink, &self.pending);
        // A closed gate means the process is exiting: nothing more is written.
        let written = self
            .gate
            .pass(|| sink.write_all(pending).and_then(|()| sink.flush()))
            .unwrap_or(Ok(()));
        self.pending.clear();
        written.map_err(|err: io::Error| {
            let why = err.to_string();
            self.broken = Some(why.clone());
            why
        })
    }
}

/// Lets writes through until it is closed; closing waits for the write going
/// through to end.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Notified when a write ends.
    idle: Condvar,
}

/// Whether the gate is closed, and whether a write is going through.
#[derive(Default)]
struct GateState {
    closed: bool,
    writing: bool,
}

impl Gate {
    /// Runs `write` unless the gate is closed (then `None`).
    pub(crate) fn pass<T>(&self, write: impl FnOnce() -> T) -> Option<T> {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.closed {
                return None;
            }
            state.writing = true;
        }
        let result = write();
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writing = false;
        self.idle.notify_all();
        Some(result)
    }

    /// Closes the gate: no write starts after this, and a write under way
    /// ends first, unless it takes longer than `patience` (a write to a pipe
    /// nobody reads may never end).
    pub(crate) fn close(&self, patience: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        let _ = self
            .idle
            .wait_timeout_while(state, patience, |state| state.writing)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A sink whose bytes the test can see.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_wait_until_due_or_go_at_once_to_a_terminal() {
        let gate = Gate::default();
        let sink = Shared::default();
        let created = Instant::now();
        let mut records = Records::new(Box::new(sink.clone()), false, &gate);
        assert_eq!(records.due_in(), FLUSH_EVERY);
        records.write(0, Ok(rmpv::Value::from(1))).unwrap();
        if created.elapsed() < FLUSH_EVERY {
            assert!(sink.0.borrow().is_empty(), "written before it was due");
        }
        assert!(records.due_in() <= FLUSH_EVERY);
        records.flush().unwrap();
        assert_eq!(*sink.0.borrow(), b"{\"index\":0,\"ok\":1}\n");

        let sink = Shared::default();
        let mut records = Records::new(Box::new(sink.clone()), true, &gate);
        records.write(4, Ok(rmpv::Value::Nil)).unwrap();
        assert_eq!(*sink.0.borrow(), b"{\"index\":4,\"ok\":null}\n");

        // Past the gate's closing, nothing more is written.
        gate.close(Duration::ZERO);
        records.write(5, Ok(rmpv::Value::Nil)).unwrap();
        assert_eq!(sink.0.borrow().len(), 22);
    }

    #[test]
    fn closing_the_gate_waits_for_the_write_going_through() {
        let gate = &Gate::default();
        let (entered, wait_entered) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        let (closed, wait_closed) = mpsc::channel();
        thread::scope(|scope| {
            let writer = scope.spawn(move || {
                gate.pass(|| {
                    entered.send(()).unwrap();
                    wait_release.recv().unwrap();
                    "written"
                })
            });
            wait_entered.recv().unwrap();
            scope.spawn(move || {
                gate.close(Duration::from_secs(600));
                closed.send(()).unwrap();
            });
            assert!(
                wait_closed
                    .recv_timeout(Duration::from_millis(200))
                    .is_err(),
                "the gate closed while a write was going through"
            );
            release.send(()).unwrap();
            wait_closed.recv().unwrap();
            assert_eq!(writer.join().unwrap(), Some("written"));
        });
        assert_eq!(gate.pass(|| ()), None);
    }
}
