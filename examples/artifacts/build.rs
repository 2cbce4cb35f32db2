//! Builds the guest crates of `examples/guests` and `tests/guests` for
//! wasm32-wasip2 with a nested cargo, and tells the crate where the modules are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest workspaces and the modules each builds.
const GUESTS: &[(&str, &[&str])] = &[
    ("examples/guests", &["seeds", "processes"]),
    ("tests/guests", &["fixtures", "hostile"]),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: build the guests
    // in <target>/wasm-guests, shared by every profile.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-guests");
    for watched in ["guest-sdk", "wit", "examples/guests", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let mut consts = String::new();
    for (workspace, modules) in GUESTS {
        build(&root.join(workspace), &target_dir);
        for module in *modules {
            let path = target_dir
                .join("wasm32-wasip2/release")
                .join(format!("{module}.wasm"));
            assert!(path.exists(), "{} was not built", path.display());
            consts.push_str(&format!(
                "/// The `{module}` guest module, built from `{workspace}/{module}`.\n\
                 pub const {}: &str = {:?};\n",
                module.to_uppercase(),
                path.display().to_string()
            ));
        }
    }
    std::fs::write(out_dir.join("modules.rs"), consts).unwrap();
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // What the outer build set up for the host does not apply to the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests in {} failed; is the target installed? \
         (rustup target add wasm32-wasip2)",
        workspace.display()
    );
}
