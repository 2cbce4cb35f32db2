//! The limits of each task, for `map` and `agent`: `map`'s are its pool's,
//! an agent's cap whatever the jobs it runs ask.

use std::time::Duration;

use clap::Args;

use crate::parse::{parse_duration, parse_size};

/// What one task may use.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct LimitArgs {
    /// The most linear memory one task's instance may have (e.g. 256M, 1G;
    /// at most 4G, all a wasm memory can address).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory: Option<u64>,
    /// The wall-clock time one task may take (e.g. 500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// A deterministic budget per task, in fuel (about one unit per wasm
    /// instruction).
    #[arg(long, value_name = "N")]
    pub(crate) fuel: Option<u64>,
}
