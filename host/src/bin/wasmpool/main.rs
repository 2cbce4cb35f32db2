//! The `wasmpool` command: pushes JSON Lines through a task of a module, each
//! line one task, in a pool of sandboxed worker processes.

mod json;
mod log;
mod parse;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wasmpool::{GuestOutput, Pool, PoolBuilder, Preopen};

use json::{Line, record};
use parse::{parse_dir, parse_duration, parse_size};

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
    /// JSON (with --star, a JSON array of its positional arguments). Writes
    /// one JSON record per line: {"index": N, "ok": VALUE} or
    /// {"index": N, "error": {"kind": ..., "message": ...}}.
    ///
    /// Exit status: 0 if every task succeeded, 1 if any failed (every line
    /// is still processed), 2 for a usage or set-up error.
    Map(Box<MapArgs>),
    /// List the tasks a module exports, with how many arguments each takes.
    Tasks {
        /// The task module (a WebAssembly component).
        module: PathBuf,
    },
}

#[derive(Args)]
struct MapArgs {
    /// The task module (a WebAssembly component).
    module: PathBuf,
    /// The task to run.
    task: String,
    /// Where to read JSON Lines from (- for stdin).
    #[arg(long, short, default_value = "-")]
    input: String,
    /// Where to write the results (- for stdout).
    #[arg(long, short, default_value = "-")]
    output: String,
    /// How many worker processes (default: the available parallelism).
    #[arg(long = "jobs", short = 'j', value_name = "N")]
    processes: Option<usize>,
    /// How many lines a worker takes at once (default: from the input's
    /// size, as CPython's map does, or 32 for a stream).
    #[arg(long, value_name = "N")]
    chunksize: Option<usize>,
    /// Write results as they finish, not in input order.
    #[arg(long)]
    unordered: bool,
    /// Each line is a JSON array of the task's positional arguments.
    #[arg(long)]
    star: bool,
    /// Replace a worker process after it ran N tasks.
    #[arg(long, value_name = "N")]
    max_tasks_per_child: Option<usize>,
    /// The most linear memory one instance may have (e.g. 256M, 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// The wall-clock time one task may take (e.g. 500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// A deterministic budget per task, in fuel (about one unit per wasm
    /// instruction).
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Let tasks use a host directory: HOST, HOST:GUEST, or with :ro at the
    /// end read-only (e.g. ./data:/data:ro). Repeatable.
    #[arg(long, value_name = "HOST[:GUEST][:ro]", value_parser = parse_dir)]
    dir: Vec<Preopen>,
    /// Give tasks the host's environment variable NAME. Repeatable.
    #[arg(long, value_name = "NAME")]
    env: Vec<String>,
    /// Run tasks whose worker died again, up to N times.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// A usage or set-up error: printed, exit status 2.
struct SetupError(String);

impl From<wasmpool::Error> for SetupError {
    fn from(err: wasmpool::Error) -> Self {
        SetupError(err.to_string())
    }
}

fn main() -> ExitCode {
    wasmpool::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Map(args) => map(*args),
        Command::Tasks { module } => tasks(module),
    };
    match result {
        Ok(code) => code,
        Err(SetupError(message)) => {
            eprintln!("wasmpool: {message}");
            ExitCode::from(2)
        }
    }
}

fn tasks(module: PathBuf) -> Result<ExitCode, SetupError> {
    log::init(ProgressBar::hidden());
    let pool = Pool::builder().module_file(&module).processes(1).build()?;
    for task in pool.tasks() {
        println!("{}\t{}", task.name, task.arity);
    }
    Ok(ExitCode::SUCCESS)
}

/// How many lines a file has, for the progress bar and the chunk size.
fn count_lines(path: &str) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buffer[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

fn progress_bar(total: Option<u64>, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{bar:30} {pos}/{len} lines, {per_sec}, ETA {eta} {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {pos} lines, {per_sec} {msg}",
        ),
    };
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    bar
}

/// Guest output on stderr, each line attributed to its worker and task,
/// around the progress bar.
fn show_output(bar: &ProgressBar, output: &GuestOutput) {
    let lines = output.attributed();
    bar.suspend(|| {
        let _ = io::stderr().lock().write_all(lines.as_bytes());
    });
}

fn map(args: MapArgs) -> Result<ExitCode, SetupError> {
    let started = Instant::now();
    let input: Box<dyn BufRead> = if args.input == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.input)
            .map_err(|err| SetupError(format!("cannot open the input {}: {err}", args.input)))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let total = if args.input == "-" {
        None
    } else {
        count_lines(&args.input).ok()
    };
    let output: Box<dyn Write> = if args.output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::create(&args.output).map_err(|err| {
            SetupError(format!("cannot create the output {}: {err}", args.output))
        })?)
    };
    let flush_each = args.output == "-" && io::stdout().is_terminal();
    let mut output = BufWriter::with_capacity(1 << 16, output);

    let bar = progress_bar(total, args.no_progress || !io::stderr().is_terminal());
    log::init(bar.clone());
    let mut builder: PoolBuilder = Pool::builder().module_file(&args.module);
    if let Some(processes) = args.processes {
        builder = builder.processes(processes);
    }
    if let Some(n) = args.max_tasks_per_child {
        builder = builder.max_tasks_per_child(n);
    }
    if let Some(bytes) = args.memory {
        builder = builder.memory_limit(bytes);
    }
    if let Some(limit) = args.timeout {
        builder = builder.task_timeout(limit);
    }
    if let Some(fuel) = args.fuel {
        builder = builder.fuel(fuel);
    }
    for dir in &args.dir {
        builder = builder.preopen_dir(&dir.host, &dir.guest, dir.read_only);
    }
    for name in &args.env {
        let value = std::env::var(name)
            .map_err(|_| SetupError(format!("--env {name}: the variable is not set")))?;
        builder = builder.env(name, &value);
    }
    builder = builder.retries(args.retries);
    let shown = bar.clone();
    let pool = builder
        .on_output(move |output| show_output(&shown, output))
        .build()?;
    let chunksize = args.chunksize.unwrap_or_else(|| match total {
        Some(total) => (total as usize)
            .div_ceil(pool.processes() * 4)
            .clamp(1, 1024),
        None => 32,
    });

    // Lines are read as the pool asks for them, so the input streams through
    // in bounded memory. A read error ends the input.
    let read_error = RefCell::new(None);
    let lines = input
        .split(b'\n')
        .enumerate()
        .map_while(|(i, line)| match line {
            Ok(bytes) => Some(Line::parse(&bytes, i as u64 + 1, args.star)),
            Err(err) => {
                *read_error.borrow_mut() = Some(err);
                None
            }
        });
    let results =
        pool.istarmap::<rmpv::Value, _, _>(&args.task, lines, chunksize, !args.unordered)?;
    let (mut ok, mut failed) = (0u64, 0u64);
    for (index, outcome) in results.indexed() {
        match &outcome {
            Ok(_) => ok += 1,
            Err(_) => {
                failed += 1;
                bar.set_message(format!("{failed} failed"));
            }
        }
        let written = serde_json::to_writer(&mut output, &record(index, outcome))
            .map_err(io::Error::from)
            .and_then(|()| output.write_all(b"\n"))
            .and_then(|()| if flush_each { output.flush() } else { Ok(()) });
        if let Err(err) = written {
            return Err(SetupError(format!("cannot write the output: {err}")));
        }
        bar.inc(1);
    }
    output
        .flush()
        .map_err(|err| SetupError(format!("cannot write the output: {err}")))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    eprintln!(
        "wasmpool: {ok} ok, {failed} failed in {elapsed:.2?} ({:.0} tasks/s)",
        (ok + failed) as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(err) = read_error.into_inner() {
        return Err(SetupError(format!(
            "reading the input failed after {} lines: {err}",
            ok + failed
        )));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
