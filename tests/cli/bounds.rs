//! The command's bounds on what a user may ask: module files read only
//! within their limit, memory limits up to what wasm addresses.

use crate::command::wasmpool;
use crate::common::{DEADLINE, deadline};
use wasmpool_artifacts::FIXTURES;

/// The status and stderr of `wasmpool ARGS`.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = wasmpool(args, "1\n");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_module_past_its_limit_or_not_a_file_is_refused_before_it_is_read() {
    let _deadline = deadline("`wasmpool` on modules that are not files", DEADLINE);
    for args in [&["tasks", "/dev/zero"][..], &["map", "/dev/zero", "square"]] {
        let (status, stderr) = refused(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the module /dev/zero is not a regular file but a character device"),
            "{args:?}: {stderr}"
        );
    }
    let size = std::fs::metadata(FIXTURES).unwrap().len();
    let said = format!("takes {size} bytes, over the module limit of 1024 bytes");
    for args in [
        &["tasks", "--module-limit", "1K", FIXTURES][..],
        &["map", "--module-limit", "1K", FIXTURES, "square"],
    ] {
        let (status, stderr) = refused(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&said), "{args:?}: {stderr}");
        assert!(stderr.contains("--module-limit"), "{args:?}: {stderr}");
    }
}

#[test]
fn memory_sizes_up_to_4g_work_and_more_is_refused_naming_the_largest() {
    let _deadline = deadline("`wasmpool map --memory` around 4G", DEADLINE);
    let out = wasmpool(&["map", "--memory", "4G", FIXTURES, "square"], "3\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"index\":0,\"ok\":9}\n"
    );
    let (status, stderr) = refused(&["map", "--memory", "5G", FIXTURES, "square"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("4 GiB (4294967296 bytes, 4G) is the largest"),
        "{stderr}"
    );
}
