//! The bounds on what crosses the channel besides payloads: the names a
//! guest gives (its tasks, their parameters, the host functions and object
//! operations it calls) and the messages it fails with. A worker applies
//! them before it sends anything, so that no string of a guest's making
//! reaches the pool unbounded; the pool checks them again, since a worker
//! may be a guest that escaped.

use crate::channel::{FromWorker, Setup};
use crate::error::Error;
use crate::worker::outbox::FLUSH_BYTES;

/// The most bytes of a name: a task's or a parameter's, a host function's
/// or an object operation's.
pub const NAME_BYTES: usize = 256;

/// The most bytes of an error message a worker sends: a longer one keeps
/// its first and last halves, and says how much was cut between them.
pub const MESSAGE_BYTES: usize = 64 << 10;

/// The most bytes a module's list of its tasks may take: their names, and
/// their parameters' names and defaults (each default also within the
/// payload limit).
pub const DESCRIPTION_BYTES: usize = 16 << 20;

/// The most frames of a trap's backtrace a worker sends (the innermost),
/// each name cut to [`NAME_BYTES`]; a backtrace cut short ends with a frame
/// saying `… more frames`.
pub const BACKTRACE_FRAMES: usize = 20;

/// The frame that ends a backtrace cut short.
const MORE_FRAMES: &str = "… more frames";

/// How much of a name too long to use a refusal quotes.
const QUOTED_BYTES: usize = 40;

/// Checks that `name`, the name of `what`, is within [`NAME_BYTES`] and
/// holds no control character (a name is shown on terminals: an escape
/// sequence in it would act there); the refusal quotes its start only,
/// escaped.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let quoted = || {
        let start = floor_char_boundary(name, QUOTED_BYTES);
        let more = if start < name.len() { "…" } else { "" };
        format!("{}{more}", name[..start].escape_debug())
    };
    if name.len() > NAME_BYTES {
        return Err(format!(
            "the name of {what} takes {} bytes, over the limit of {NAME_BYTES} bytes: `{}`",
            name.len(),
            quoted()
        ));
    }
    if let Some((at, control)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "the name of {what} holds a control character, {}, at byte {at}: `{}`",
            control.escape_unicode(),
            quoted()
        ));
    }
    Ok(())
}

/// `text` cut to at most `limit` bytes: its first and last halves, with a
/// line between them saying how many bytes were cut.
pub(crate) fn cut(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let marker_room = 48;
    let half = limit.saturating_sub(marker_room) / 2;
    let head_end = floor_char_boundary(&text, half);
    let tail_start = ceil_char_boundary(&text, text.len() - half);
    format!(
        "{}\n[… {} bytes cut …]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// `name` cut to [`NAME_BYTES`], marked as cut.
fn cut_name(name: String) -> String {
    if name.len() <= NAME_BYTES {
        return name;
    }
    let end = floor_char_boundary(&name, NAME_BYTES - 3);
    format!("{}…", &name[..end])
}

/// `error` within the bounds: its message cut to [`MESSAGE_BYTES`], its
/// backtrace to [`BACKTRACE_FRAMES`] frames of names within [`NAME_BYTES`].
pub(crate) fn bounded(mut error: Error) -> Error {
    if is_bounded(&error) {
        return error;
    }
    let (message, trap) = error.texts_mut();
    *message = cut(std::mem::take(message), MESSAGE_BYTES);
    if let Some(trap) = trap {
        trap.code = trap.code.take().map(cut_name);
        let frames = trap.backtrace.len();
        trap.backtrace.truncate(BACKTRACE_FRAMES);
        for frame in &mut trap.backtrace {
            *frame = cut_name(std::mem::take(frame));
        }
        if frames > BACKTRACE_FRAMES {
            trap.backtrace.push(MORE_FRAMES.to_string());
        }
    }
    error
}

/// Whether `error` is within the bounds a worker applies.
pub(crate) fn is_bounded(error: &Error) -> bool {
    error.message().len() <= MESSAGE_BYTES
        && error.trap_details().is_none_or(|trap| {
            trap.backtrace.len() <= BACKTRACE_FRAMES + 1
                && trap
                    .code
                    .as_ref()
                    .is_none_or(|code| code.len() <= NAME_BYTES)
                && trap.backtrace.iter().all(|frame| frame.len() <= NAME_BYTES)
        })
}

/// The largest frame a worker that keeps the protocol sends under `setup`:
/// outcomes coalesced up to the outbox's flush size, then one more result
/// (or one task's output, or its module's description) at the payload
/// limit, or one failure.
pub(crate) fn frame_limit(setup: &Setup) -> usize {
    let payload = usize::try_from(setup.limits.max_payload).unwrap_or(usize::MAX);
    let one = payload
        .max(setup.output_limit as usize)
        .max(DESCRIPTION_BYTES);
    let failure = MESSAGE_BYTES + (BACKTRACE_FRAMES + 2) * NAME_BYTES;
    one.saturating_add(FLUSH_BYTES + failure + (64 << 10))
}

/// Checks the strings in `message` from a worker against the bounds the
/// worker applies: `Err` says which one a worker broke.
pub(crate) fn check(message: &FromWorker) -> Result<(), String> {
    let error_bounded = |error: &Error| {
        if is_bounded(error) {
            Ok(())
        } else {
            Err(format!(
                "sent a failure of {} bytes, over the limit of {MESSAGE_BYTES} bytes",
                error.message().len()
            ))
        }
    };
    match message {
        FromWorker::Request { name, .. } => check_name("a host function", name),
        FromWorker::Invoke { op, .. } => check_name("an object operation", op),
        FromWorker::Outcomes { outcomes, .. } => outcomes.failures().try_for_each(error_bounded),
        FromWorker::SetupFailed { error } | FromWorker::Stuck { error } => error_bounded(error),
        FromWorker::Ready { tasks, escapes } => {
            for task in tasks {
                check_name("a task", &task.name)?;
                for param in &task.params {
                    check_name("a parameter", param.name.as_deref().unwrap_or_default())?;
                }
            }
            match escapes.iter().find(|escape| escape.len() > MESSAGE_BYTES) {
                Some(escape) => Err(format!(
                    "named a sandbox escape in {} bytes, over the limit of {MESSAGE_BYTES} bytes",
                    escape.len()
                )),
                None => Ok(()),
            }
        }
        FromWorker::Hello { .. }
        | FromWorker::Output { .. }
        | FromWorker::Withdrawn { .. }
        | FromWorker::Cancel { .. }
        | FromWorker::Unclaimed { .. } => Ok(()),
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn ceil_char_boundary(text: &str, at: usize) -> usize {
    (at..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_long_name_is_refused_quoting_its_start() {
        assert!(check_name("a task", &"n".repeat(NAME_BYTES)).is_ok());
        let why = check_name("a task", &"é".repeat(NAME_BYTES)).unwrap_err();
        assert!(
            why.contains("512 bytes, over the limit of 256 bytes"),
            "{why}"
        );
        assert!(why.len() < 200, "{why}");
    }

    #[test]
    fn a_name_with_a_control_character_is_refused_quoting_it_escaped() {
        assert!(check_name("a task", "naïve_名前").is_ok());
        for (name, control, at) in [
            ("title\u{1b}]0;owned\u{7}", "\\u{1b}", 5),
            ("\rforged", "\\u{d}", 0),
            ("c1\u{9b}2J", "\\u{9b}", 2),
        ] {
            let why = check_name("a task", name).unwrap_err();
            assert!(
                why.contains(&format!("a control character, {control}, at byte {at}")),
                "{why}"
            );
            assert!(!why.chars().any(char::is_control), "{why:?}");
        }
    }

    #[test]
    fn a_cut_message_keeps_both_ends_and_says_how_much_went() {
        let message = format!("start{}end", "x".repeat(100 << 20));
        let cut = cut(message.clone(), MESSAGE_BYTES);
        assert!(cut.len() <= MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.starts_with("start") && cut.ends_with("end"));
        let said: usize = cut
            .split("[… ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let marker = cut.len() - (message.len() - said);
        assert!(marker <= 48, "the marker takes {marker} bytes");
    }

    #[test]
    fn a_bounded_trap_keeps_its_innermost_frames() {
        let frames = (0..1000)
            .map(|i| format!("f{i}{}", "g".repeat(i)))
            .collect();
        let error = Error::trap(
            "x".repeat(MESSAGE_BYTES + 1),
            crate::TrapDetails {
                code: None,
                backtrace: frames,
            },
        );
        assert!(!is_bounded(&error));
        let error = bounded(error.with_index(3));
        assert!(is_bounded(&error));
        assert_eq!(error.kind(), ErrorKind::Trap);
        assert_eq!(error.task_index(), Some(3));
        let backtrace = &error.trap_details().unwrap().backtrace;
        assert_eq!(backtrace[0], "f0");
        assert_eq!(backtrace[BACKTRACE_FRAMES], MORE_FRAMES);
    }

    #[test]
    fn the_pool_finds_a_lying_worker_out() {
        let long = "x".repeat(NAME_BYTES + 1);
        let invoke = |op: &str| FromWorker::Invoke {
            call: 1,
            index: 0,
            object: 1,
            op: op.to_string(),
            args: Default::default(),
        };
        assert!(check(&invoke("get")).is_ok());
        let why = check(&invoke(&long)).unwrap_err();
        assert!(why.contains("the name of an object operation takes 257 bytes"));
        let request = FromWorker::Request {
            call: 1,
            index: 0,
            name: long.clone(),
            args: Default::default(),
        };
        assert!(check(&request).is_err());
        let ready = FromWorker::Ready {
            tasks: vec![crate::TaskInfo {
                name: long,
                params: Vec::new(),
            }],
            escapes: Vec::new(),
        };
        assert!(check(&ready).is_err());
        let mut outcomes = crate::channel::Outcomes::default();
        outcomes.push_ok(b"fine");
        let failure = Error::new(ErrorKind::Failed, "m".repeat(MESSAGE_BYTES + 1));
        outcomes.push_err(bounded(failure.clone()));
        let told = |outcomes| FromWorker::Outcomes {
            seq: 0,
            first: 0,
            outcomes,
        };
        assert!(check(&told(outcomes.clone())).is_ok());
        outcomes.push_err(failure.clone());
        assert!(check(&told(outcomes)).is_err());
        assert!(check(&FromWorker::Stuck { error: failure }).is_err());
    }

    proptest! {
        #[test]
        fn cutting_stays_within_the_limit(text in ".{0,300}", limit in 60usize..200) {
            let cut = cut(text.clone(), limit);
            prop_assert!(cut.len() <= limit);
            if text.len() <= limit {
                prop_assert_eq!(cut, text);
            }
        }
    }
}
