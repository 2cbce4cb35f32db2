//! The `wasmpool` command: runs tasks of a module over JSON Lines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run untrusted WebAssembly tasks in a pool of sandboxed worker processes.
#[derive(Parser)]
#[command(name = "wasmpool", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the tasks a module exports.
    Tasks {
        /// The task module (a WebAssembly component).
        module: PathBuf,
    },
}

fn main() -> ExitCode {
    wasmpool::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Tasks { module } => {
            let pool = match wasmpool::Pool::builder()
                .module_file(&module)
                .processes(1)
                .build()
            {
                Ok(pool) => pool,
                Err(err) => {
                    eprintln!("wasmpool: {err}");
                    return ExitCode::from(2);
                }
            };
            for task in pool.tasks() {
                println!("{}\t{}", task.name, task.arity);
            }
            ExitCode::SUCCESS
        }
    }
}
