//! `--resume`: which input lines an output file already has records of.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::de::{Deserialize, Deserializer, IgnoredAny};

/// The indices (0-based input line numbers) of the lines done already,
/// sorted.
#[derive(Debug, Default)]
pub(crate) struct Done(Vec<u64>);

impl Done {
    /// The lines `indices` done.
    pub(crate) fn from_indices(indices: impl IntoIterator<Item = u64>) -> Self {
        let mut sorted: Vec<u64> = indices.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        Done(sorted)
    }

    /// Whether line `index` is done.
    pub(crate) fn contains(&self, index: u64) -> bool {
        self.0.binary_search(&index).is_ok()
    }

    /// How many of the lines before line `end` are done.
    pub(crate) fn count_below(&self, end: u64) -> u64 {
        self.0.partition_point(|&index| index < end) as u64
    }

    /// The input line that task `task` runs: the lines not done are the
    /// tasks, in order, so it is line number `task` among those.
    pub(crate) fn line_of(&self, task: u64) -> u64 {
        // The done line at position i has i done lines before it, so
        // `index - i` (non-decreasing) counts the lines to run before it:
        // the done lines before the task's line are those where that count
        // is at most `task`.
        let (mut low, mut high) = (0, self.0.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.0[middle] - middle as u64 <= task {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        task + low as u64
    }
}

/// What a line must be to count as a record: `{"index": N, "ok": ...}` or
/// `{"index": N, "error": ...}`.
#[derive(serde::Deserialize)]
struct Record {
    /// The input line's 0-based number.
    index: u64,
    /// Whether the record has `ok`, whatever its value.
    #[serde(default, deserialize_with = "present")]
    ok: bool,
    /// Whether the record has `error`.
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

/// A field that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Why an output file cannot be resumed.
#[derive(Debug)]
pub(crate) enum ResumeError {
    /// The file could not be read, or cut.
    Io(io::Error),
    /// A complete line (1-based number) that is not a record, and why.
    NotARecord(u64, String),
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) struct Resumed {
    /// The lines that have a record.
    pub(crate) done: Done,
    /// The 1-based number of a partial last line that was cut off.
    pub(crate) cut_line: Option<u64>,
}

/// Reads the records of the output file at `path`, if there is one: every
/// record counts, error records too. A last line without its newline (the
/// remains of an interrupted write) is cut off the file, so that records can
/// be appended after it.
pub(crate) fn load(path: &Path) -> Result<Resumed, ResumeError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(Resumed {
                done: Done::default(),
                cut_line: None,
            });
        }
        Err(err) => return Err(ResumeError::Io(err)),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut indices = Vec::new();
    let (mut line, mut number, mut complete_bytes) = (Vec::new(), 0u64, 0u64);
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(ResumeError::Io)?
            == 0
        {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(complete_bytes))
                .map_err(ResumeError::Io)?;
            return Ok(Resumed {
                done: Done::from_indices(indices),
                cut_line: Some(number),
            });
        }
        let record: Record = serde_json::from_slice(&line)
            .map_err(|err| ResumeError::NotARecord(number, err.to_string()))?;
        if record.ok == record.error {
            return Err(ResumeError::NotARecord(
                number,
                "a record has either \"ok\" or \"error\"".into(),
            ));
        }
        indices.push(record.index);
        complete_bytes += line.len() as u64;
    }
    Ok(Resumed {
        done: Done::from_indices(indices),
        cut_line: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_map_to_the_lines_not_done() {
        for done in [vec![], vec![0], vec![1, 3], vec![0, 1, 2, 7, 8, 20]] {
            let set = Done::from_indices(done.iter().copied());
            let expected: Vec<u64> = (0..30).filter(|line| !done.contains(line)).collect();
            let mapped: Vec<u64> = (0..expected.len() as u64)
                .map(|task| set.line_of(task))
                .collect();
            assert_eq!(mapped, expected, "done {done:?}");
            assert_eq!(
                set.count_below(8),
                done.iter().filter(|&&l| l < 8).count() as u64
            );
        }
    }

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "wasmpool-resume-{}-{name}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn records_of_every_kind_count_and_a_partial_last_line_is_cut_off() {
        let path = file(
            "partial",
            "{\"index\":3,\"ok\":9}\n{\"index\":0,\"error\":{\"kind\":\"failed\"}}\n\
             {\"index\":5,\"ok\":null}\n{\"index\":1,\"o",
        );
        let resumed = load(&path).unwrap();
        assert_eq!(resumed.cut_line, Some(4));
        assert!([0, 3, 5].iter().all(|&i| resumed.done.contains(i)));
        assert!(!resumed.done.contains(1));
        assert_eq!(resumed.done.count_below(4), 2);
        let left = std::fs::read_to_string(&path).unwrap();
        assert!(left.ends_with("{\"index\":5,\"ok\":null}\n"), "{left}");
        std::fs::remove_file(&path).unwrap();

        let missing = load(Path::new("/no/such/output.jsonl")).unwrap();
        assert_eq!(
            (missing.done.count_below(u64::MAX), missing.cut_line),
            (0, None)
        );
    }

    #[test]
    fn a_line_that_is_not_a_record_is_named_by_its_number() {
        for (name, bad) in [
            ("text", "hello"),
            ("noindex", "{\"ok\":1}"),
            ("both", "{\"index\":1,\"ok\":1,\"error\":{}}"),
            ("neither", "{\"index\":1}"),
            ("empty", ""),
        ] {
            let path = file(name, &format!("{{\"index\":0,\"ok\":1}}\n{bad}\n"));
            match load(&path) {
                Err(ResumeError::NotARecord(2, _)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
}
