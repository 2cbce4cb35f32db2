//! Writes a function whose name takes 64 KiB, for a trap whose backtrace
//! names it.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("long_name.rs");
    let name = format!("trap_{}", "n".repeat(64 << 10));
    let code = format!(
        "/// Traps, under a name of 64 KiB.\n\
         #[inline(never)]\n\
         #[allow(non_snake_case)]\n\
         fn {name}() -> ! {{ std::process::abort() }}\n\
         /// Calls the function with the long name.\n\
         fn long_named_trap() -> ! {{ {name}() }}\n"
    );
    std::fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
