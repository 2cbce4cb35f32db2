//! The tests of the `wasmpool` command, in one binary: the command as a user
//! runs it, chaos under it (`stress`), and Python tasks (`python`), whose
//! pools start the command as their workers. They are this package's, the
//! only one whose tests have the command's binary; the NATS suite, which
//! needs a `nats-server`, is a binary apart (`tests/nats.rs`).
//!
//! The modules share one process, so none may count on being alone in it:
//! a test that measures memory measures its own child (wait4), not every
//! child of the process.

#[path = "../common/command.rs"]
mod command;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/terminal.rs"]
mod terminal;

mod as_a_user;
mod bounds;
mod python;
mod stress;
