//! What the benchmarks share: timing, and the section of `BENCHMARKS.md`
//! that `cargo bench --bench python` writes and `--bench peer` keeps.

use std::time::Instant;

/// The heading of the section `cargo bench --bench python` writes in
/// `BENCHMARKS.md`. (Not every benchmark that shares these helpers needs it.)
#[allow(dead_code)]
pub(crate) const PYTHON_SECTION: &str = "## Tasks in Python";

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
