//! Paths of the guest modules the examples and tests use, built from source
//! by this crate's build script.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));
