//! The artifact cache holds native code: only a cache private to the user is
//! trusted, and a worker loads only the file the pool checked.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{DEADLINE, deadline};
use wasmpool::Pool;
use wasmpool_artifacts::{FIXTURES, SEEDS};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpool-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn task_names(module: &str, cache: &Path) -> Vec<String> {
    let pool = Pool::builder()
        .module_file(module)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(1)
        .cache_dir(cache)
        .build()
        .unwrap();
    pool.tasks().iter().map(|task| task.name.clone()).collect()
}

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_foreign_artifact_planted_in_a_shared_cache_is_not_loaded() {
    let _deadline = deadline("pools on a shared cache with a planted artifact", DEADLINE);
    let dir = fresh_dir("shared-cache");
    let seeds_tasks = task_names(SEEDS, &dir);
    let seeds_artifact = artifacts(&dir).pop().unwrap();
    let fixtures_tasks = task_names(FIXTURES, &dir);
    assert_ne!(seeds_tasks, fixtures_tasks);
    let fixtures_artifact = artifacts(&dir)
        .into_iter()
        .find(|path| *path != seeds_artifact)
        .unwrap();
    // Someone who may write the directory puts the fixtures' native code
    // under the name of the seeds' artifact.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::copy(&fixtures_artifact, &seeds_artifact).unwrap();

    // The seeds module lists its own tasks: the planted code was not loaded.
    assert_eq!(task_names(SEEDS, &dir), seeds_tasks);
    // Nor written into: the pool compiled elsewhere.
    assert_eq!(
        std::fs::read(&seeds_artifact).unwrap(),
        std::fs::read(&fixtures_artifact).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_private_cache_is_made_and_used() {
    let _deadline = deadline("two pools on a private cache", DEADLINE);
    let dir = fresh_dir("private-cache").join("nested");
    let first = task_names(FIXTURES, &dir);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "made private");
    let [artifact] = artifacts(&dir).try_into().unwrap();
    let written = std::fs::metadata(&artifact).unwrap().modified().unwrap();
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The second pool loads what the first compiled.
    assert_eq!(task_names(FIXTURES, &dir), first);
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().modified().unwrap(),
        written
    );
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}
