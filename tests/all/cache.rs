//! The artifact cache holds native code: only a cache private to the user is
//! trusted, and a worker loads only the file the pool checked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{DEADLINE, WORKER_PROGRAM, deadline};
use wasmpool::Pool;
use wasmpool_artifacts::{FIXTURES, PYFIXTURES, PYTASKS, SEEDS};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpool-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn task_names(module: &str, cache: &Path) -> Vec<String> {
    let pool = Pool::builder()
        .module_file(module)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(cache)
        .build()
        .unwrap();
    pool.tasks().iter().map(|task| task.name.clone()).collect()
}

/// The files in `dir` named `*.{extension}`, by name.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    files(dir, "cwasm")
}

/// The packs of compiled functions in `dir`, by name.
fn packs(dir: &Path) -> Vec<PathBuf> {
    files(dir, "functions")
}

/// The pack in `dir` other than `first`: what a second module compiled.
fn pack_beside(dir: &Path, first: &Path) -> PathBuf {
    packs(dir)
        .into_iter()
        .find(|pack| pack != first)
        .expect("the second module compiled functions of its own")
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Makes the file at `path` look last used at `time`.
fn set_used(path: &Path, time: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_accessed(time))
        .unwrap();
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
    let written = std::fs::metadata(&artifact).unwrap();
    assert_eq!(written.permissions().mode() & 0o777, 0o600);
    // Made to look long unused.
    let long_ago = SystemTime::now() - Duration::from_secs(86_400);
    set_used(&artifact, long_ago);
    // The second pool loads what the first compiled, and marks it used.
    assert_eq!(task_names(FIXTURES, &dir), first);
    let used = std::fs::metadata(&artifact).unwrap();
    assert_eq!(used.ino(), written.ino());
    assert_eq!(used.modified().unwrap(), written.modified().unwrap());
    assert!(used.accessed().unwrap() > long_ago);
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn the_cache_keeps_to_its_limit_but_never_evicts_an_artifact_in_use() {
    let _deadline = deadline("pools evicting from a full cache", DEADLINE);
    let dir = fresh_dir("evicting-cache");
    // A live pool whose workers are replaced after every task: each new
    // one loads the artifact again.
    let recycled = Pool::builder()
        .module_file(FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .max_tasks_per_child(1)
        .cache_dir(&dir)
        .build()
        .unwrap();
    let [in_use] = artifacts(&dir).try_into().unwrap();
    // Artifacts of modules no pool uses any more, the least recently used
    // first; the one in use looks older than all.
    let day = Duration::from_secs(86_400);
    set_used(&in_use, SystemTime::now() - 10 * day);
    let stale: Vec<PathBuf> = (1..=3u8)
        .map(|n| {
            let path = dir.join(format!("{}.cwasm", format!("{n:02x}").repeat(32)));
            std::fs::write(&path, vec![0; 1 << 20]).unwrap();
            set_used(&path, SystemTime::now() - u32::from(4 - n) * day);
            path
        })
        .collect();

    // Room for one more megabyte than the new pool's own artifact and the
    // one in use: the two least recently used go.
    let sizes = |paths: &[&PathBuf]| -> u64 {
        paths
            .iter()
            .map(|path| std::fs::metadata(path).unwrap().len())
            .sum()
    };
    let first = Pool::builder()
        .module_file(SEEDS)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(&dir)
        .context()
        .unwrap();
    let seeds = artifacts(&dir)
        .into_iter()
        .find(|path| *path != in_use && !stale.contains(path))
        .unwrap();
    drop(first);
    // The packs of compiled functions count too.
    let packs = packs(&dir);
    let limit = sizes(&[&in_use, &seeds]) + sizes(&packs.iter().collect::<Vec<_>>()) + (1 << 20);
    let seeds_pool = Pool::builder()
        .module_file(SEEDS)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(&dir)
        .cache_limit(limit)
        .build()
        .unwrap();
    assert!(!seeds_pool.tasks().is_empty());
    let mut kept = vec![in_use.clone(), seeds.clone(), stale[2].clone()];
    kept.sort();
    assert_eq!(artifacts(&dir), kept, "the two least recently used went");

    // At 0, all but the artifacts in use go; the pool in use goes on
    // starting workers from its artifact.
    let pool = Pool::builder()
        .module_file(SEEDS)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(&dir)
        .cache_limit(0)
        .build()
        .unwrap();
    let mut kept = vec![in_use.clone(), seeds.clone()];
    kept.sort();
    assert_eq!(artifacts(&dir), kept);
    for n in 0..3i64 {
        assert_eq!(recycled.apply::<i64, _>("square", (n,)).unwrap(), n * n);
    }
    // Once its pool is gone, it goes too. (The pool lets go of it with the
    // last of its threads, which may end a moment after the pool is
    // dropped: a build evicts until then.)
    drop(recycled);
    drop(pool);
    let waiting = Instant::now();
    loop {
        let _context = Pool::builder()
            .module_file(SEEDS)
            .worker_program(WORKER_PROGRAM)
            .cache_dir(&dir)
            .cache_limit(0)
            .context()
            .unwrap();
        if artifacts(&dir) == [seeds.clone()] {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the artifact of a dropped pool was not evicted: {:?}",
            artifacts(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_compilation_is_told_as_it_starts_and_ends_and_a_cached_artifact_tells_nothing() {
    let _deadline = deadline("pools compiling, then loading from the cache", DEADLINE);
    let dir = fresh_dir("told");
    let told = || {
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let hearing = heard.clone();
        let pool = Pool::builder()
            .module_file(FIXTURES)
            .worker_program(WORKER_PROGRAM)
            .processes(1)
            .cache_dir(&dir)
            .on_compile(move |compiling| {
                let said = match compiling {
                    wasmpool::Compiling::Started { module } => format!("started {module}"),
                    wasmpool::Compiling::Finished { module, took } => {
                        assert!(*took > Duration::ZERO);
                        format!("finished {module}")
                    }
                    other => panic!("a module that compiles is not told {other:?}"),
                };
                hearing.lock().unwrap().push(said);
            })
            .build()
            .unwrap();
        drop(pool);
        heard.lock().unwrap().clone()
    };
    let first = told();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0].starts_with("started ") && first[1].starts_with("finished "));
    assert_eq!(told(), Vec::<String>::new(), "the artifact was cached");
    // A module that does not compile: told it started, then that it failed.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x0d\0\x01\0 and then no component").unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hearing = heard.clone();
    let built = Pool::builder()
        .module_file(&junk)
        .worker_program(WORKER_PROGRAM)
        .cache_dir(&dir)
        .on_compile(move |compiling| {
            let said = match compiling {
                wasmpool::Compiling::Started { .. } => "started",
                wasmpool::Compiling::Failed { .. } => "failed",
                _ => "other",
            };
            hearing.lock().unwrap().push(said);
        })
        .build();
    assert!(built.is_err());
    assert_eq!(*heard.lock().unwrap(), ["started", "failed"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_python_module_compiles_little_but_its_own_code() {
    let _deadline = deadline("two Python modules compiled one after the other", DEADLINE);
    let dir = fresh_dir("functions-python");
    task_names(PYTASKS, &dir);
    let [first] = packs(&dir).try_into().unwrap();
    // The second carries the same CPython, compiled already.
    let pool = Pool::builder()
        .module_file(PYFIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(&dir)
        .build()
        .unwrap();
    let square: i64 = pool.apply("square", (7,)).unwrap();
    assert_eq!(square, 49);
    drop(pool);
    let second = pack_beside(&dir, &first);
    assert!(
        size(&second) * 4 < size(&first),
        "the second Python module compiled {} bytes of functions, the first {}",
        size(&second),
        size(&first)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn functions_from_the_cache_make_the_same_native_code() {
    let _deadline = deadline("modules compiled alone and after another", DEADLINE);
    let alone = fresh_dir("functions-alone");
    let fixtures_tasks = task_names(FIXTURES, &alone);
    let [artifact_alone] = artifacts(&alone).try_into().unwrap();
    let [pack_alone] = packs(&alone).try_into().unwrap();

    // After the seeds, with which they share some of the standard library.
    let shared = fresh_dir("functions-shared");
    task_names(SEEDS, &shared);
    let [seeds_pack] = packs(&shared).try_into().unwrap();
    assert_eq!(task_names(FIXTURES, &shared), fixtures_tasks);
    let pack_after = pack_beside(&shared, &seeds_pack);
    assert!(
        size(&pack_after) < size(&pack_alone),
        "the fixtures took no function from the seeds' ({} bytes compiled, {} alone)",
        size(&pack_after),
        size(&pack_alone)
    );
    let artifact_after = shared.join(artifact_alone.file_name().unwrap());
    assert!(
        std::fs::read(&artifact_after).unwrap() == std::fs::read(&artifact_alone).unwrap(),
        "the fixtures compiled with functions from the cache differ from those compiled alone"
    );
    let pool = Pool::builder()
        .module_file(FIXTURES)
        .worker_program(WORKER_PROGRAM)
        .processes(1)
        .cache_dir(&shared)
        .build()
        .unwrap();
    let sum: i64 = pool.apply("add", (2, 40)).unwrap();
    assert_eq!(sum, 42);
    drop(pool);
    std::fs::remove_dir_all(&alone).unwrap();
    std::fs::remove_dir_all(&shared).unwrap();
}
