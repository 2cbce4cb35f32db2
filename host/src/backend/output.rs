//! What guests write to stdout and stderr, attributed to the task that wrote it.

use std::io::Write;
use std::sync::Arc;

pub use crate::channel::Stream;

/// Output a task wrote, captured by its worker.
///
/// A task's output comes in pieces as it runs: whole lines as they are
/// written, and what is left of a line when the task ends. At most the
/// pool's output limit is kept per task and stream; `truncated` says that
/// more was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOutput {
    /// The worker process that ran the task.
    pub pid: u32,
    /// The task's index.
    pub task_index: u64,
    /// Which stream it wrote to.
    pub stream: Stream,
    /// What it wrote.
    pub bytes: Vec<u8>,
    /// Whether more was written than kept.
    pub truncated: bool,
}

impl GuestOutput {
    /// The output as lines prefixed with where they came from,
    /// `[worker PID task INDEX out] ...` (or `err`), one per line, ending with
    /// a note when output was truncated.
    pub fn attributed(&self) -> String {
        let stream = match self.stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let prefix = format!("[worker {} task {} {stream}]", self.pid, self.task_index);
        let mut lines = String::new();
        for line in self.text().lines() {
            lines.push_str(&format!("{prefix} {line}\n"));
        }
        if self.truncated {
            lines.push_str(&format!("{prefix} (output truncated)\n"));
        }
        lines
    }

    /// The output as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Receives guest output; called on the thread that reads the worker's
/// channel, so it should be quick.
pub(crate) type OutputHandler = Arc<dyn Fn(&GuestOutput) + Send + Sync>;

/// The default: each line to the host's stderr, prefixed with its worker and
/// task, so that output of concurrent tasks never interleaves mid-line and
/// never mixes into the host's stdout.
pub(crate) fn to_stderr(output: &GuestOutput) {
    let _ = std::io::stderr()
        .lock()
        .write_all(output.attributed().as_bytes());
}

/// Each stream to the host's own, as the guest wrote it.
pub(crate) fn plain(output: &GuestOutput) {
    let _ = match output.stream {
        Stream::Stdout => std::io::stdout().lock().write_all(&output.bytes),
        Stream::Stderr => std::io::stderr().lock().write_all(&output.bytes),
    };
    if output.truncated {
        let _ = writeln!(
            std::io::stderr().lock(),
            "[worker {} task {}: output truncated]",
            output.pid,
            output.task_index
        );
    }
}
