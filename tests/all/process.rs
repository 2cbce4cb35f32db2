//! `Process` on this machine: what only a local one shows — its compiled
//! artifact shared, and its types. The cases every place runs are in
//! `tests/common/processes.rs` (here: `here.rs`).

use std::collections::HashSet;

use crate::common::{DEADLINE, builder, deadline};
use wasmpool::{Context, Process};

#[test]
fn many_processes_start_from_one_artifact() {
    let _deadline = deadline("twenty processes reporting their pids", DEADLINE);
    let dir = std::env::temp_dir().join(format!("wasmpool-test-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let context = builder(1).cache_dir(&dir).context().unwrap();
    let processes: Vec<Process> = (0..20)
        .map(|_| context.process("pid").args((0,)).start().unwrap())
        .collect();
    let mut pids = HashSet::new();
    for p in &processes {
        p.join();
        assert_eq!(p.result::<u32>().unwrap().unwrap(), p.pid());
        pids.insert(p.pid());
    }
    assert_eq!(pids.len(), 20);
    let artifacts = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|entry| {
            let path = entry.as_ref().unwrap().path();
            path.extension().is_some_and(|ext| ext == "cwasm")
        })
        .count();
    assert_eq!(artifacts, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn processes_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Process>();
    send_sync::<Context>();
}
