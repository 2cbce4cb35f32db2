//! A task module written against `wit/wasmpool.wit` by hand, without the
//! guest SDK, to misbehave where the SDK never would. What it does is chosen
//! by the `HOSTILE` environment variable a pool grants it:
//!
//! - unset: its `describe` spins for ever instead of listing its tasks (a
//!   pool must refuse it within its startup time limit rather than wait);
//! - `tasks`: it lists tasks that send the host what no bound allows: a
//!   100 MiB object operation name (`long_op`), host function name
//!   (`long_call`) or error message (`long_error`), a trap 10,000 frames
//!   deep in a function whose name takes 64 KiB (`deep_trap`); `grab`,
//!   which finds every lock handed to any task of its batch and tries to
//!   take each (without waiting), answering how many it took; and `ok`,
//!   which answers `nil`;
//! - `long_task_name`, `long_param_name`: it lists a task whose name, or
//!   whose parameter's name, takes 1 MiB;
//! - `big_description`: it lists 300 tasks with a 64 KiB default each.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "task-module",
});

use exports::wasmpool::task::tasks::{Guest, TaskInfo};
use wasmpool::task::objects::{self, ObjectError};
use wasmpool::task::types::{ErrorKind, ParamInfo, TaskError};
use wasmpool::task::{host, outcomes};

/// The size of the strings the hostile tasks send.
const HUGE: usize = 100 << 20;

struct Hostile;

fn task(name: String, params: Vec<ParamInfo>) -> TaskInfo {
    TaskInfo { name, params }
}

impl Guest for Hostile {
    fn describe() -> Vec<TaskInfo> {
        match std::env::var("HOSTILE").as_deref() {
            Ok("tasks") => {
                let lock = ParamInfo {
                    name: Some("lock".into()),
                    default: None,
                };
                let mut tasks: Vec<_> = ["long_op", "long_call", "long_error", "deep_trap", "ok"]
                    .into_iter()
                    .map(|name| task(name.into(), Vec::new()))
                    .collect();
                tasks.push(task("grab".into(), vec![lock]));
                tasks
            }
            Ok("long_task_name") => vec![task("t".repeat(1 << 20), Vec::new())],
            Ok("long_param_name") => {
                let param = ParamInfo {
                    name: Some("p".repeat(1 << 20)),
                    default: None,
                };
                vec![task("ok".into(), vec![param])]
            }
            Ok("big_description") => {
                // A MessagePack bin 16 of 64 KiB - 1 bytes.
                let mut default = vec![0xc5, 0xff, 0xff];
                default.resize(3 + 0xffff, 0);
                (0..300)
                    .map(|i| {
                        let param = ParamInfo {
                            name: Some("x".into()),
                            default: Some(default.clone()),
                        };
                        task(format!("t{i}"), vec![param])
                    })
                    .collect()
            }
            _ => {
                // A loop that never calls the host: only epoch interruption
                // stops it.
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
        }
    }

    fn run(task: String, _first_index: u64, args: Vec<u8>, ends: Vec<u32>) {
        for _ in ends {
            let failed = |message: String| {
                outcomes::finish(Err(&TaskError {
                    kind: ErrorKind::Failed,
                    message,
                }))
            };
            match task.as_str() {
                "long_op" => match objects::invoke(1, &"o".repeat(HUGE), &[0x90]) {
                    Err(ObjectError::Refused(why) | ObjectError::Closed(why)) => failed(why),
                    Err(ObjectError::TimedOut) => failed("timed out".into()),
                    Ok(_) => failed("the operation was run".into()),
                },
                "long_call" => match host::call(&"c".repeat(HUGE), &[0x90]) {
                    Err(why) => failed(why),
                    Ok(_) => failed("the call was run".into()),
                },
                "long_error" => failed(format!("start{}end", "e".repeat(HUGE))),
                "deep_trap" => {
                    deep(10_000);
                }
                "grab" => {
                    // acquire(block=false, timeout=nil), on every handle of
                    // the batch: 1 (or 2, from a holder that died) if taken.
                    let taken = handles(&args)
                        .filter(|&id| {
                            objects::invoke(id, "acquire", &[0x92, 0xc2, 0xc0])
                                .is_ok_and(|answer| answer == [1] || answer == [2])
                        })
                        .count();
                    outcomes::finish(Ok(&[taken as u8]));
                }
                _ => outcomes::finish(Ok(&[0xc0])),
            }
        }
    }
}

/// The ids of the handles in `args`: MessagePack `ext 8` of type 87 ('W')
/// holding a kind byte and a big-endian id (see `wit/wasmpool.wit`).
fn handles(args: &[u8]) -> impl Iterator<Item = u64> + '_ {
    args.windows(12)
        .filter(|bytes| bytes[..3] == [0xc7, 9, 87])
        .map(|bytes| u64::from_be_bytes(bytes[4..12].try_into().unwrap()))
}

include!(concat!(env!("OUT_DIR"), "/long_name.rs"));

/// Recurses `depth` frames deep, then traps in a function whose name takes
/// 64 KiB.
#[inline(never)]
fn deep(depth: u32) -> u32 {
    if depth == 0 {
        long_named_trap();
    }
    std::hint::black_box(deep(std::hint::black_box(depth - 1))) + 1
}

export!(Hostile);
