//! The library's warnings and errors on stderr, as `wasmpool: warning: ...`,
//! around the progress bar (and, for an agent, what it does, as
//! `wasmpool: info: ...`). `RUST_LOG` picks more (e.g. `RUST_LOG=debug`).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, IsTerminal, Write};

use indicatif::ProgressBar;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Sends log events to stderr from now on, around `bar`: those `default`
/// picks (an `EnvFilter` directive, such as `warn`) unless `RUST_LOG` says
/// otherwise.
pub(crate) fn init(bar: ProgressBar, default: &str) {
    // RUST_LOG, read leniently (a directive it cannot parse is skipped).
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::builder().parse_lossy(directives);
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(Compact)
        .with_writer(move || AroundBar(bar.clone()))
        .finish();
    // Only `main` sets one, once.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// One line per event: `wasmpool: LEVEL: message` (the library logs no
/// spans).
struct Compact;

impl<S, N> FormatEvent<S, N> for Compact
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "wasmpool: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Writes to stderr with the progress bar out of the way.
struct AroundBar(ProgressBar);

impl Write for AroundBar {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        to_stderr(&self.0, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Writes `bytes` to stderr with the progress bar `bar` out of the way; on
/// a terminal, with control characters escaped (guest output and messages
/// carry text of a task's making).
pub(crate) fn to_stderr(bar: &ProgressBar, bytes: &[u8]) -> io::Result<()> {
    if !io::stderr().is_terminal() {
        return bar.suspend(|| io::stderr().lock().write_all(bytes));
    }
    let text = String::from_utf8_lossy(bytes);
    let shown = wasmpool::escape_controls(&text);
    bar.suspend(|| io::stderr().lock().write_all(shown.as_bytes()))
}

/// `text` as stderr should show it: on a terminal, with control characters
/// escaped ([`wasmpool::escape_controls`]).
pub(crate) fn shown_on_stderr(text: &str) -> Cow<'_, str> {
    if io::stderr().is_terminal() {
        wasmpool::escape_controls(text)
    } else {
        Cow::Borrowed(text)
    }
}
