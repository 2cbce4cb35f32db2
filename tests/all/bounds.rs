//! Every bound on what crosses from a guest holds, against a module written
//! from the WIT that sends what the SDK never would (`tests/guests/hostile`):
//! names and messages of 100 MiB, a trap 10,000 frames deep, a description
//! past its limit; a module file is read only within its limit, and a process
//! count only within what the machine holds.

use std::path::Path;

use crate::common::{DEADLINE, builder, deadline};
use wasmpool::{
    BACKTRACE_FRAMES, ErrorKind, MESSAGE_BYTES, MODULE_BYTES, NAME_BYTES, Pool, PoolBuilder,
};

/// A pool of one worker on the hostile module, doing `mode` (see the
/// module's docs).
fn hostile(mode: &str) -> PoolBuilder {
    builder(1)
        .module_file(wasmpool_artifacts::HOSTILE)
        .env("HOSTILE", mode)
}

/// The failure of the hostile task `task`.
fn failure(pool: &Pool, task: &str) -> wasmpool::Error {
    pool.apply::<(), _>(task, ()).unwrap_err()
}

#[test]
fn a_name_past_its_bound_is_refused_in_the_worker_quoting_only_its_start() {
    let _deadline = deadline("calls under names of 100 MiB", DEADLINE);
    let pool = hostile("tasks").build().unwrap();
    for (task, what) in [
        ("long_op", "an operation of object 1"),
        ("long_call", "a host function"),
    ] {
        let err = failure(&pool, task);
        assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
        let said = format!(
            "the name of {what} takes {} bytes, over the limit of {NAME_BYTES} bytes",
            100 << 20
        );
        assert!(err.message().starts_with(&said), "{task}: {err}");
        assert!(err.message().len() < said.len() + 64, "{task}: {err}");
    }
    // The worker and the pool go on.
    pool.apply::<(), _>("ok", ()).unwrap();
    assert_eq!(pool.worker_pids().len(), 1);
}

#[test]
fn an_error_message_past_its_bound_keeps_both_ends_and_says_what_was_cut() {
    let _deadline = deadline("a task failing with a message of 100 MiB", DEADLINE);
    let pool = hostile("tasks").build().unwrap();
    let err = failure(&pool, "long_error");
    assert_eq!(err.kind(), ErrorKind::Failed);
    let message = err.message();
    assert!(message.len() <= MESSAGE_BYTES, "{} bytes", message.len());
    assert!(message.starts_with("starteee"), "{}", &message[..20]);
    assert!(message.ends_with("eeeend"));
    let full = (100 << 20) + "startend".len();
    let kept = message.len() - message.lines().nth(1).unwrap().len() - 2;
    let said = format!("[… {} bytes cut …]", full - kept);
    assert_eq!(message.lines().nth(1), Some(said.as_str()), "kept {kept}");
    pool.apply::<(), _>("ok", ()).unwrap();
}

#[test]
fn a_trap_keeps_its_innermost_frames() {
    let _deadline = deadline("a trap 10,000 frames deep", DEADLINE);
    let pool = hostile("tasks").build().unwrap();
    let err = failure(&pool, "deep_trap");
    assert_eq!(err.kind(), ErrorKind::Trap, "{err}");
    let backtrace = &err.trap_details().unwrap().backtrace;
    assert!(backtrace.len() <= BACKTRACE_FRAMES + 1, "{backtrace:?}");
    assert!(backtrace.iter().all(|frame| frame.len() <= NAME_BYTES));
    // The function it trapped in, its name of 64 KiB cut and marked.
    let long = backtrace
        .iter()
        .find(|frame| frame.contains("trap_nnnn"))
        .unwrap_or_else(|| panic!("the trapping function is named: {backtrace:?}"));
    assert!(long.ends_with("nnn…"), "{long}");
    assert_eq!(backtrace.last().map(String::as_str), Some("… more frames"));
    pool.apply::<(), _>("ok", ()).unwrap();
}

#[test]
fn a_module_listing_names_or_defaults_past_their_bounds_is_refused_at_build() {
    let _deadline = deadline("builds of modules with huge names", DEADLINE);
    let name = format!("takes 1048576 bytes, over the limit of {NAME_BYTES} bytes");
    for (mode, said) in [
        ("long_task_name", ["the name of a task", &name]),
        (
            "long_param_name",
            ["the module's task `ok`: the name of a parameter", &name],
        ),
        (
            "big_description",
            [
                "the module's list of its tasks takes 19",
                "bytes, over the limit of 16777216 bytes",
            ],
        ),
    ] {
        let err = hostile(mode).max_payload(1 << 20).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadModule, "{mode}: {err}");
        for said in said {
            assert!(err.message().contains(said), "{mode}: {err}");
        }
        assert!(err.message().len() < 1000, "{mode}: {err}");
    }
}

#[test]
fn a_module_file_past_its_limit_or_not_a_file_is_refused_before_it_is_read() {
    let _deadline = deadline("builds from module files that are not", DEADLINE);
    let dir = tempfile::Builder::new()
        .prefix("wasmpool-bounds-")
        .tempdir()
        .unwrap();
    // A sparse file of 2 GiB: refused by its size, not read.
    let sparse = dir.path().join("sparse.wasm");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let fifo = dir.path().join("fifo.wasm");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path in a directory of this test.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let fixtures = std::fs::metadata(wasmpool_artifacts::FIXTURES)
        .unwrap()
        .len();
    let cases: [(&Path, u64, String); 5] = [
        (
            &sparse,
            MODULE_BYTES,
            format!(
                "takes {} bytes, over the module limit of {MODULE_BYTES} bytes",
                2u64 << 30
            ),
        ),
        (
            Path::new("/dev/zero"),
            MODULE_BYTES,
            "is not a regular file but a character device".into(),
        ),
        // With no writer, opening it would wait for ever.
        (
            &fifo,
            MODULE_BYTES,
            "is not a regular file but a FIFO".into(),
        ),
        (
            dir.path(),
            MODULE_BYTES,
            "is not a regular file but a directory".into(),
        ),
        (
            Path::new(wasmpool_artifacts::FIXTURES),
            1000,
            format!("takes {fixtures} bytes, over the module limit of 1000 bytes"),
        ),
    ];
    for (path, limit, said) in cases {
        let err = builder(1)
            .module_file(path)
            .module_limit(limit)
            .build()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::BadModule,
            "{}: {err}",
            path.display()
        );
        assert!(err.message().contains(&said), "{}: {err}", path.display());
        assert!(err.message().contains(&path.display().to_string()), "{err}");
    }
    let bytes = std::fs::read(wasmpool_artifacts::FIXTURES).unwrap();
    let err = builder(1)
        .module_bytes(bytes.clone())
        .module_limit(1000)
        .build()
        .unwrap_err();
    assert!(
        err.message()
            .contains("over the module limit of 1000 bytes"),
        "{err}"
    );
    // At its limit, a module is taken.
    let pool = builder(1)
        .module_bytes(bytes)
        .module_limit(fixtures)
        .build();
    assert!(pool.is_ok());
}

#[test]
fn a_memory_limit_of_4_gib_holds_and_more_is_refused_naming_the_largest() {
    let _deadline = deadline("pools with memory limits around 4 GiB", DEADLINE);
    let pool = builder(1).memory_limit(4 << 30).build().unwrap();
    assert_eq!(pool.apply::<i64, _>("square", (7,)).unwrap(), 49);
    assert_eq!(pool.apply::<u64, _>("allocate", (64u64,)).unwrap(), 64);
    let err = builder(1).memory_limit((4 << 30) + 1).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.message()
            .contains("4 GiB (4294967296 bytes, 4G) is the largest"),
        "{err}"
    );
}

#[test]
fn a_process_count_past_the_machine_is_refused_by_pools_and_contexts() {
    let _deadline = deadline("pools of 100,000 processes", DEADLINE);
    let past = "100000 processes is past what this machine can hold";
    let err = builder(100_000).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().starts_with(past), "{err}");
    assert!(err.message().contains("force_processes"), "{err}");
    let context = builder(1).context().unwrap();
    let err = context.pool(100_000).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().starts_with(past), "{err}");
    // A process is one worker, always within the bound.
    let process = context.process("square").args((3,)).start().unwrap();
    process.join();
    assert_eq!(process.exitcode(), Some(0));
}
