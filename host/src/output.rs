//! What guests write to stdout and stderr, attributed to the task that wrote it.

use std::io::Write;
use std::sync::Arc;

pub use crate::protocol::Stream;

/// Output a task wrote, captured by its worker.
///
/// At most the pool's output limit is kept per task and stream; `truncated`
/// says that more was written.
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
    /// The output as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Receives guest output; called on the thread of the worker's slot, so it
/// should be quick.
pub(crate) type OutputHandler = Arc<dyn Fn(&GuestOutput) + Send + Sync>;

/// The default: each line to the host's stderr, prefixed with its worker and
/// task, so that output of concurrent tasks never interleaves mid-line and
/// never mixes into the host's stdout.
pub(crate) fn to_stderr(output: &GuestOutput) {
    let stream = match output.stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    };
    let text = output.text();
    let mut buffer = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        buffer.push_str(&format!(
            "[worker {} task {} {stream}] {line}\n",
            output.pid, output.task_index
        ));
    }
    if output.truncated {
        buffer.push_str(&format!(
            "[worker {} task {} {stream}] (output truncated)\n",
            output.pid, output.task_index
        ));
    }
    let _ = std::io::stderr().lock().write_all(buffer.as_bytes());
}
