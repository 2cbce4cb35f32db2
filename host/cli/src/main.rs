//! The `wasmpool` command: pushes JSON Lines through a task of a module, each
//! line one task, in a pool of sandboxed worker processes.

mod agent;
mod estimate;
mod input;
mod interrupt;
mod json;
mod limit_flags;
mod log;
mod map;
mod nats_flags;
mod outcomes;
mod parse;
mod progress;
mod records;
mod resume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use wasmpool::Pool;

/// Run untrusted WebAssembly tasks in a pool of sandboxed worker processes.
#[derive(Parser)]
#[command(name = "wasmpool", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run TASK on every line of the input: each line one task's argument as
    /// JSON (with --star, a JSON array of its positional arguments; with
    /// --kwargs, a JSON object of its keyword arguments, parameters left out
    /// taking their defaults). Writes
    /// one JSON record per line: {"index": N, "ok": VALUE} or
    /// {"index": N, "error": {"kind": ..., "message": ...}}.
    ///
    /// Exit status: 0 if every task succeeded, 1 if any failed (every line
    /// is still processed), 2 for a usage or set-up error, 130 after SIGINT
    /// (Ctrl-C) and 143 after SIGTERM.
    ///
    /// On SIGINT or SIGTERM no more input is read, tasks still running are
    /// stopped, and the records of those that finished are written; the
    /// lines that did not run get no record, so --resume runs them. A second
    /// signal exits at once. Records reach the output at least every half
    /// second.
    Map(Box<map::MapArgs>),
    /// List the tasks a module exports: per line its name, how many arguments
    /// it takes, and its parameters (a default as JSON after `=`; #N for a
    /// positional-only parameter).
    Tasks {
        /// The task module (a WebAssembly component).
        module: PathBuf,
        /// The most bytes of the module file read; a larger one is refused.
        #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse::parse_size)]
        module_limit: u64,
    },
    /// Run the tasks of pools on other machines (`map --nats`, or a
    /// program's Pool built with .nats(URL)): pulls their chunks from the
    /// NATS server, runs them on sandboxed worker processes here, and
    /// publishes the outcomes. Agents may start and stop at any time.
    /// --memory, --timeout and --fuel cap whatever a job asks.
    ///
    /// On SIGINT or SIGTERM the chunks it holds go back to the server for
    /// other agents, and it exits with 130 or 143; a second signal exits
    /// at once. Exit status 1 if it lost the server, 2 for a set-up error.
    Agent(Box<agent::AgentArgs>),
    /// List the agents of a NATS server that showed they live in the last
    /// 16 s: per line its name, its processes per job, its pid on its
    /// machine, how many jobs it serves, and the public key it signs with.
    Agents {
        /// The NATS server: nats://HOST:PORT, or nats://USER:PASSWORD@HOST:PORT.
        #[arg(
            long,
            value_name = "URL",
            env = "WASMPOOL_NATS",
            hide_env_values = true
        )]
        nats: String,
        #[command(flatten)]
        connect: nats_flags::NatsArgs,
    },
    /// Make a signing key for a host (`map --nats --key FILE`) or an agent
    /// (`agent --key FILE`): writes its seed to FILE, which must not exist,
    /// readable by its owner only, and prints its public key, which the
    /// other side trusts (`agent --trust-host KEY`, `map --trust-agent
    /// KEY`).
    Keygen {
        /// Where to write the seed.
        file: PathBuf,
    },
}

/// A usage or set-up error: printed, exit status 2.
struct SetupError(String);

impl From<wasmpool::Error> for SetupError {
    fn from(err: wasmpool::Error) -> Self {
        SetupError(err.to_string())
    }
}

fn main() -> ExitCode {
    // Workers run in a process group of their own, so a Ctrl-C on the
    // terminal reaches this process only, which decides what they do.
    wasmpool::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Map(args) => map::map(*args),
        Command::Tasks {
            module,
            module_limit,
        } => tasks(module, module_limit),
        Command::Agent(args) => agent::agent(*args),
        Command::Agents { nats, connect } => agent::agents(&nats, &connect),
        Command::Keygen { file } => agent::keygen(&file),
    };
    match result {
        Ok(code) => code,
        Err(SetupError(message)) => {
            eprintln!("wasmpool: {}", log::shown_on_stderr(&message));
            ExitCode::from(2)
        }
    }
}

fn tasks(module: PathBuf, module_limit: u64) -> Result<ExitCode, SetupError> {
    log::init(ProgressBar::hidden(), "warn");
    let pool = Pool::builder()
        .module_file(&module)
        .module_limit(module_limit)
        .processes(1)
        .build()?;
    for task in pool.tasks() {
        let params: Vec<String> = task
            .params
            .iter()
            .enumerate()
            .map(|(at, param)| {
                let name = param.name.clone().unwrap_or_else(|| format!("#{}", at + 1));
                match param
                    .default
                    .as_deref()
                    .map(|mut bytes| rmpv::decode::read_value(&mut bytes))
                {
                    Some(Ok(value)) => format!("{name}={}", json::to_json(value)),
                    Some(Err(_)) | None => name,
                }
            })
            .collect();
        println!("{}\t{}\t{}", task.name, task.arity(), params.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
