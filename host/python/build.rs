//! Builds the worker program the package ships: `wasmpool-worker`, the
//! hardened Rust worker (seccomp, rlimits, no environment), never a Python
//! interpreter. The extension embeds it, and writes it out once, by its
//! hash, to run workers from (`src/worker.rs`).
//!
//! It is built by a cargo of its own, in a target directory of its own
//! (`target/python-worker` at the repository's root): this build holds the
//! lock of its own. `WASMPOOL_WORKER_PROGRAM` names one built already
//! instead (CI gives the one its tests built, rather than build wasmtime a
//! third time).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("wasmpool-worker");
    println!("cargo:rerun-if-env-changed=WASMPOOL_WORKER_PROGRAM");
    if let Some(given) = env::var_os("WASMPOOL_WORKER_PROGRAM") {
        let given = PathBuf::from(given);
        println!("cargo:rerun-if-changed={}", given.display());
        std::fs::copy(&given, &out).unwrap_or_else(|err| {
            panic!(
                "WASMPOOL_WORKER_PROGRAM={}: cannot copy it: {err}",
                given.display()
            )
        });
    } else {
        build(&out);
    }
    name_by_hash(&out);
}

/// Tells the extension the name the worker program at `out` is written out
/// under, from its hash: computed here once rather than over its 100 MB at
/// every start of a program.
fn name_by_hash(out: &Path) {
    let program = std::fs::read(out).expect("the worker program is readable");
    let hash = Sha256::digest(&program);
    let name: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=WASMPOOL_WORKER_NAME=wasmpool-worker-{name}");
}

/// Builds the worker program with a cargo of its own and copies it to `out`.
fn build(out: &Path) {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let host = manifest
        .parent()
        .expect("host/python is in host/")
        .to_path_buf();
    let root = host
        .parent()
        .expect("host/ is in the repository")
        .to_path_buf();
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = root.join("target").join("python-worker");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--bin", "wasmpool-worker", "--no-default-features"])
        .arg("--manifest-path")
        .arg(host.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // What this build was given for itself (a Python extension's
        // flags, its target directory) is not the worker's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .expect("cargo runs to build the worker program");
    assert!(status.success(), "building wasmpool-worker failed");
    let built = target_dir
        .join(if release { "release" } else { "debug" })
        .join("wasmpool-worker");
    std::fs::copy(&built, out).expect("the worker program is copied");
    for watched in ["src", "Cargo.toml", "../wit", "../Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", host.join(watched).display());
    }
}
