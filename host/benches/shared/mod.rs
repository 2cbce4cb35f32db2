//! What the benchmarks share: timing, running a CPython peer, and the
//! section of `BENCHMARKS.md` that `cargo bench --bench python` writes and
//! `--bench peer` keeps.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// Runs the CPython peer `benches/SCRIPT` with `args`, and returns the
/// JSON it prints. (Not every benchmark that shares these helpers needs
/// it.)
#[allow(dead_code)]
pub(crate) fn python_peer(script: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the peer prints JSON")
}

/// The heading of the section `cargo bench --bench python` writes in
/// `BENCHMARKS.md`. (Not every benchmark that shares these helpers needs it.)
#[allow(dead_code)]
pub(crate) const PYTHON_SECTION: &str = "## Tasks in Python";

/// Writes `section` (which starts with `heading`) into `BENCHMARKS.md`: in
/// place of the section of that heading, or at the end. The other sections
/// stay. (Not every benchmark that shares these helpers needs it.)
#[allow(dead_code)]
pub(crate) fn write_section(heading: &str, section: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let (before, rest) = current
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or((current.as_str(), ""));
    let after = rest.find("\n## ").map_or("", |at| &rest[at..]);
    std::fs::write(&path, format!("{}\n\n{section}{after}", before.trim_end()))
        .expect("BENCHMARKS.md is writable");
    eprintln!("written to {}", path.display());
}

/// The median of `samples`.
pub(crate) fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The median wall time of `runs` runs of `f`, in seconds.
pub(crate) fn time_runs(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}
