//! [`Throttle`]: a warning that repeats (a stream that is not there, a
//! server that does not answer) let through at most every few seconds,
//! saying how many were held back.

use std::time::{Duration, Instant};

/// The least time between two warnings let through.
const EVERY: Duration = Duration::from_secs(5);

/// Lets a repeated warning through at most every [`EVERY`].
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// Whether to warn now: `Some` with a note of how many warnings were
    /// held back since the last (empty if none), or `None` to hold this one.
    pub(crate) fn pass(&mut self) -> Option<String> {
        self.pass_at(Instant::now())
    }

    fn pass_at(&mut self, now: Instant) -> Option<String> {
        if self.last.is_some_and(|last| now < last + EVERY) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        let note = match std::mem::take(&mut self.held) {
            0 => String::new(),
            held => format!(" ({held} more like it held back)"),
        };
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_passes_every_few_seconds_counting_the_rest() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.pass_at(start).as_deref(), Some(""));
        for ms in [1, 100, 4_999] {
            assert_eq!(throttle.pass_at(start + Duration::from_millis(ms)), None);
        }
        let later = start + EVERY;
        assert_eq!(
            throttle.pass_at(later).as_deref(),
            Some(" (3 more like it held back)")
        );
        assert_eq!(throttle.pass_at(later + Duration::from_millis(1)), None);
    }
}
