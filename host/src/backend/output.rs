//! What guests write to stdout and stderr, attributed to the task that wrote it.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
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
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// `text` as it is safe to show on a terminal: every control character but
/// newline and tab — escape sequences, carriage returns, backspaces, C1
/// controls — and every bidirectional override is written out as an escape
/// (`\x1b`, `\x0d`, `\u{9b}`, `\u{202e}`), so that text of a task's making
/// can neither act on the terminal (retitle it, clear it, move its cursor)
/// nor overwrite or reorder what was printed before it on its line, such as
/// the `[worker … task …]` prefix. Text without any comes back as it was.
///
/// The pool's default output handler and [`PoolBuilder::plain_output`]
/// apply it when they write to a terminal; an [output
/// handler](crate::PoolBuilder::on_output) gets the bytes as written.
///
/// [`PoolBuilder::plain_output`]: crate::PoolBuilder::plain_output
///
/// ```
/// assert_eq!(
///     wasmpool::escape_controls("\x1b]0;owned\x07\rok\tdone\n"),
///     "\\x1b]0;owned\\x07\\x0dok\tdone\n"
/// );
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminals) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !acts_on_terminals(c) => escaped.push(c),
            c if c.is_ascii() => escaped.push_str(&format!("\\x{:02x}", c as u32)),
            c => escaped.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(escaped)
}

/// Whether `c` acts on a terminal rather than shows: a control character
/// other than newline and tab, or a bidirectional embedding, override or
/// isolate.
fn acts_on_terminals(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text`, escaped if `terminal`.
fn shown(text: &[u8], terminal: bool) -> Cow<'_, [u8]> {
    if !terminal {
        return Cow::Borrowed(text);
    }
    match escape_controls(&String::from_utf8_lossy(text)) {
        Cow::Borrowed(_) if std::str::from_utf8(text).is_ok() => Cow::Borrowed(text),
        escaped => Cow::Owned(escaped.into_owned().into_bytes()),
    }
}

/// Receives guest output; called on the thread that reads the worker's
/// channel, so it should be quick.
pub(crate) type OutputHandler = Arc<dyn Fn(&GuestOutput) + Send + Sync>;

/// The default: each line to the host's stderr, prefixed with its worker and
/// task, so that output of concurrent tasks never interleaves mid-line and
/// never mixes into the host's stdout.
///
/// On a terminal, control characters are escaped ([`escape_controls`]).
pub(crate) fn to_stderr(output: &GuestOutput) {
    let stderr = std::io::stderr();
    let attributed = output.attributed();
    let _ = stderr
        .lock()
        .write_all(&shown(attributed.as_bytes(), stderr.is_terminal()));
}

/// Each stream to the host's own, as the guest wrote it (on a terminal,
/// with control characters escaped: [`escape_controls`]).
pub(crate) fn plain(output: &GuestOutput) {
    let _ = match output.stream {
        Stream::Stdout => {
            let stdout = std::io::stdout();
            let bytes = shown(&output.bytes, stdout.is_terminal());
            stdout.lock().write_all(&bytes)
        }
        Stream::Stderr => {
            let stderr = std::io::stderr();
            let bytes = shown(&output.bytes, stderr.is_terminal());
            stderr.lock().write_all(&bytes)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_acts_on_a_terminal_is_escaped_and_the_rest_kept() {
        assert!(matches!(
            escape_controls("plain, naïve, 名前\ttab\n"),
            Cow::Borrowed(_)
        ));
        for (text, shown) in [
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
            ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
            (
                "\r[worker 1 task 0 out] forged",
                "\\x0d[worker 1 task 0 out] forged",
            ),
            ("back\x08\x7f", "back\\x08\\x7f"),
            ("c1 \u{9b}2J", "c1 \\u{9b}2J"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            ("\u{2066}isolate\u{2069}", "\\u{2066}isolate\\u{2069}"),
            ("\0nul", "\\x00nul"),
        ] {
            assert_eq!(escape_controls(text), shown, "{text:?}");
        }
    }

    #[test]
    fn bytes_are_kept_unless_shown_on_a_terminal() {
        let raw = b"\x1b[2Jclear\xff";
        assert_eq!(&*shown(raw, false), raw);
        assert_eq!(&*shown(raw, true), "\\x1b[2Jclear\u{fffd}".as_bytes());
        // Invalid UTF-8 is never shown raw: a lone 0x9b is a C1 control to
        // some terminals.
        assert_eq!(&*shown(b"\x9b2J", true), "\u{fffd}2J".as_bytes());
        assert!(matches!(shown(b"ok\n", true), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        #[test]
        fn nothing_escaped_acts_on_a_terminal(text in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}\\u{202a}-\\u{202e}a-z]*") {
            let escaped = escape_controls(&text);
            proptest::prop_assert!(!escaped.chars().any(acts_on_terminals));
            proptest::prop_assert_eq!(escaped.lines().count(), text.lines().count());
        }
    }
}
