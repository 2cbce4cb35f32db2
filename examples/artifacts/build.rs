//! Builds the guest crates of `examples/guests` and `tests/guests` for
//! wasm32-wasip2 with a nested cargo, and the Python guests with the Python
//! guest SDK's build command, and tells the crate where the modules are.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use sha2::{Digest, Sha256};

/// Guest workspaces and the modules each builds.
const GUESTS: &[(&str, &[&str])] = &[
    ("examples/guests", &["seeds", "processes"]),
    ("tests/guests", &["fixtures", "hostile"]),
];

/// Python guests (a module file each) and the constant naming each module.
const PYTHON_GUESTS: &[(&str, &str)] = &[
    ("examples/guests/python/pytasks.py", "PYTASKS"),
    ("tests/guests/python/pyfixtures.py", "PYFIXTURES"),
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
    build_python(&root, &target_dir.join("python"));
    for (path, name) in PYTHON_GUESTS {
        consts.push_str(&format!(
            "/// The `{}` Python guest module, built from `{path}`.\n\
             pub const {name}: &str = {:?};\n",
            name.to_lowercase(),
            target_dir
                .join("python")
                .join(format!("{}.wasm", name.to_lowercase()))
                .display()
                .to_string()
        ));
    }
    std::fs::write(out_dir.join("modules.rs"), consts).unwrap();
}

/// Builds the Python guests into `out` with `python -m wasmpool_guest build`
/// run from the SDK's source (so the SDK of this checkout is the one built
/// in), at once. A module whose sources (its own, the SDK's, the contract)
/// have not changed since its last build is kept: building one takes seconds.
fn build_python(root: &Path, out: &Path) {
    println!("cargo:rerun-if-env-changed=PYTHON");
    std::fs::create_dir_all(out).unwrap();
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let sdk = root.join("guest-sdk/python");
    let mut sdk_files = vec![root.join("wit/wasmpool.wit")];
    let mut listing: Vec<_> = std::fs::read_dir(sdk.join("wasmpool_guest"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
        .collect();
    listing.sort();
    sdk_files.extend(listing);
    let mut builds: Vec<(Child, &str, PathBuf, String)> = Vec::new();
    for (source, name) in PYTHON_GUESTS {
        let source_path = root.join(source);
        let wasm = out.join(format!("{}.wasm", name.to_lowercase()));
        let stamp = wasm.with_extension("wasm.sha256");
        let mut hasher = Sha256::new();
        for file in sdk_files.iter().chain([&source_path]) {
            hasher.update(file.display().to_string().as_bytes());
            hasher.update(std::fs::read(file).unwrap());
        }
        let key = format!("{:x}", hasher.finalize());
        if wasm.exists() && std::fs::read_to_string(&stamp).is_ok_and(|old| old == key) {
            continue;
        }
        let _ = std::fs::remove_file(&stamp);
        let child = Command::new(&python)
            .args(["-m", "wasmpool_guest", "build", "--quiet"])
            .arg(&source_path)
            .arg("-o")
            .arg(&wasm)
            .env("PYTHONPATH", &sdk)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} to build the Python guests ({err}); install Python 3.10 or \
                     later, then: pip install guest-sdk/python (or set PYTHON)",
                    python.to_string_lossy()
                )
            });
        builds.push((child, source, stamp, key));
    }
    for (mut child, source, stamp, key) in builds {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "building the Python guest {source} failed (see above); is componentize-py \
             installed? (pip install guest-sdk/python)"
        );
        std::fs::write(stamp, key).unwrap();
    }
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
