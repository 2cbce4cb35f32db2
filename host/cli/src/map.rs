//! `wasmpool map`: runs a task on every line of the input, in a pool, and
//! writes a record of each outcome.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::ProgressBar;
use signal_hook::iterator::{Handle, Signals};
use wasmpool::{GuestOutput, Pool, PoolBuilder, Preopen};

use crate::SetupError;
use crate::input::{self, Lines, Source};
use crate::interrupt::{self, Interrupt, Watch};
use crate::json::Form;
use crate::limit_flags::LimitArgs;
use crate::log;
use crate::nats_flags::NatsArgs;
use crate::outcomes::{self, Summary};
use crate::parse::{parse_dir, parse_duration, parse_size};
use crate::progress::Progress;
use crate::records::{Gate, Records};
use crate::resume::{self, Done, ResumeError};

#[derive(Args)]
pub(crate) struct MapArgs {
    /// The task module (a WebAssembly component).
    module: PathBuf,
    /// The most bytes of the module file read; a larger one is refused.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    module_limit: u64,
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
    /// Start as many workers as -j asks even past what this machine can
    /// hold (64 per CPU, or fewer if its process limits or memory say so).
    #[arg(long)]
    force_jobs: bool,
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
    /// Each line is a JSON object of the task's keyword arguments, by
    /// parameter name: {"name": "Ada"} runs greet(name="Ada"), with the
    /// defaults of the parameters it leaves out (see `wasmpool tasks`).
    /// Without it, an object line is one positional argument.
    #[arg(long, conflicts_with = "star")]
    kwargs: bool,
    /// Replace a worker process after it ran N tasks.
    #[arg(long, value_name = "N")]
    max_tasks_per_child: Option<usize>,
    /// Run every task on a fresh instance of the module, so that no task
    /// can see what an earlier one left in the instance's memory.
    #[arg(long)]
    fresh_instance: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// The most bytes of compiled modules kept in the artifact cache; the
    /// least recently used others are removed when a run starts (default 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    cache_limit: Option<u64>,
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
    /// Append to the --output file, running only the input lines it has no
    /// record of yet (error records count as done): finishes a run that was
    /// interrupted.
    #[arg(long)]
    resume: bool,
    /// The most bytes of one task's arguments, or of its result; a longer
    /// input line becomes an error record, and is not kept in memory past
    /// the limit.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    max_payload: u64,
    /// Run the tasks on agents (`wasmpool agent`) reached through this
    /// NATS server (JetStream enabled): nats://HOST:PORT, or
    /// nats://USER:PASSWORD@HOST:PORT. -j is then the parallelism planned
    /// for (the agents choose their own); --dir is refused.
    #[arg(
        long,
        value_name = "URL",
        env = "WASMPOOL_NATS",
        hide_env_values = true
    )]
    nats: Option<String>,
    #[command(flatten)]
    connect: NatsArgs,
    /// With --nats: how long an agent may hold a chunk without a sign of
    /// life before it runs elsewhere (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "nats")]
    ack_wait: Option<Duration>,
    /// With --nats: sign the job and its chunks with the key whose seed is
    /// in this file (`wasmpool keygen FILE` makes one), for agents started
    /// with `--trust-host` its public key (default: a new key each run).
    #[arg(long, value_name = "FILE", requires = "nats")]
    key: Option<PathBuf>,
    /// With --nats: let only the agent with this public key (`U...`, as
    /// `wasmpool keygen` and `wasmpool agents` print it) serve the job, and
    /// take outcomes from no other. Repeatable. Without it, any agent that
    /// asks serves the job. --env values go sealed to these agents only,
    /// and need at least one.
    #[arg(long, value_name = "KEY", requires = "nats")]
    trust_agent: Vec<String>,
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

/// Guest output on stderr, each line attributed to its worker and task,
/// around the progress bar.
fn show_output(bar: &ProgressBar, output: &GuestOutput) {
    let _ = log::to_stderr(bar, output.attributed().as_bytes());
}

/// Reads what `--resume` needs of the output file at `path`.
fn resume(path: &str) -> Result<Done, SetupError> {
    match resume::load(Path::new(path)) {
        Ok(resumed) => {
            if let Some(line) = resumed.cut_line {
                eprintln!(
                    "wasmpool: {path}: cut off line {line}, a partial record left by an \
                     interrupted write"
                );
            }
            Ok(resumed.done)
        }
        Err(ResumeError::Io(err)) => Err(SetupError(format!(
            "--resume: cannot read the output {path}: {err}"
        ))),
        Err(ResumeError::NotARecord(line, why)) => Err(SetupError(format!(
            "--resume: {path} line {line} is not a wasmpool record ({why}); \
             is it the output of an earlier run?"
        ))),
    }
}

/// Opens the output: stdout, a file appended to (`--resume`), or a file
/// made anew.
fn open_output(args: &MapArgs) -> Result<Box<dyn Write>, SetupError> {
    if args.output == "-" {
        return Ok(Box::new(io::stdout().lock()));
    }
    let file = if args.resume {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&args.output)
    } else {
        File::create(&args.output)
    };
    match file {
        Ok(file) => Ok(Box::new(file)),
        Err(err) => Err(SetupError(format!(
            "cannot open the output {}: {err}",
            args.output
        ))),
    }
}

/// Starts the pool the options ask for.
fn build_pool(args: &MapArgs, max_payload: usize, bar: &ProgressBar) -> Result<Pool, SetupError> {
    let mut builder: PoolBuilder = Pool::builder()
        .module_file(&args.module)
        .module_limit(args.module_limit)
        .max_payload(max_payload);
    if let Some(processes) = args.processes {
        builder = builder
            .processes(processes)
            .force_processes(args.force_jobs);
    }
    if let Some(n) = args.max_tasks_per_child {
        builder = builder.max_tasks_per_child(n);
    }
    builder = builder.fresh_instance(args.fresh_instance);
    if let Some(bytes) = args.limits.memory {
        builder = builder.memory_limit(bytes);
    }
    if let Some(bytes) = args.cache_limit {
        builder = builder.cache_limit(bytes);
    }
    if let Some(limit) = args.limits.timeout {
        builder = builder.task_timeout(limit);
    }
    if let Some(fuel) = args.limits.fuel {
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
    // An empty WASMPOOL_NATS names no server.
    if let Some(url) = args.nats.as_deref().filter(|url| !url.is_empty()) {
        let mut nats = args.connect.to_nats(url).map_err(SetupError)?;
        if let Some(wait) = args.ack_wait {
            nats = nats.ack_wait(wait);
        }
        if let Some(path) = &args.key {
            nats = nats.key(wasmpool::SigningKey::from_file(path)?);
        }
        for key in &args.trust_agent {
            nats = nats.trust_agent(key);
        }
        builder = builder.nats_options(nats);
    }
    let shown = bar.clone();
    Ok(builder
        .retries(args.retries)
        .on_output(move |output| show_output(&shown, output))
        .build()?)
}

/// Closes the signal iterator when dropped, ending the thread that waits on
/// it, however the run ends.
struct CloseSignals(Handle);

impl Drop for CloseSignals {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs `wasmpool map`.
pub(crate) fn map(args: MapArgs) -> Result<ExitCode, SetupError> {
    let started = Instant::now();
    if args.resume && args.output == "-" {
        return Err(SetupError(
            "--resume needs --output FILE: it appends to that file the records it lacks".into(),
        ));
    }
    let max_payload = usize::try_from(args.max_payload)
        .map_err(|_| SetupError(format!("--max-payload {} is too large", args.max_payload)))?;
    let source =
        if args.input == "-" {
            Source::Stdin
        } else {
            Source::File(File::open(&args.input).map_err(|err| {
                SetupError(format!("cannot open the input {}: {err}", args.input))
            })?)
        };
    let total = if args.input == "-" {
        None
    } else {
        count_lines(&args.input).ok()
    };
    let done = if args.resume {
        resume(&args.output)?
    } else {
        Done::default()
    };
    let to_run = total.map(|total| total - done.count_below(total));
    let sink = open_output(&args)?;
    let flush_each = args.output == "-" && io::stdout().is_terminal();

    let progress = Progress::new(to_run, args.no_progress || !io::stderr().is_terminal());
    let bar = progress.bar();
    log::init(bar.clone(), "warn");
    let pool = build_pool(&args, max_payload, bar)?;
    let chunksize = args.chunksize.unwrap_or_else(|| match to_run {
        Some(lines) => (lines as usize)
            .div_ceil(pool.processes() * 4)
            .clamp(1, 1024),
        None => 32,
    });

    // Lines are read on a thread of their own, a bounded channel ahead of
    // the pool, so the input streams through in bounded memory; the pool
    // takes them as they come and never waits for input while results are
    // ready, and a read that blocks cannot hold up an interrupt.
    let done = Arc::new(done);
    let form = if args.kwargs {
        Form::Kwargs
    } else if args.star {
        Form::Star
    } else {
        Form::Single
    };
    let (lines, ledger) = input::spawn_reader(source, max_payload, form, done.clone())
        .map_err(|err| SetupError(format!("cannot start the input thread: {err}")))?;
    let signals = Signals::new(interrupt::SIGNALS)
        .map_err(|err| SetupError(format!("cannot handle signals: {err}")))?;
    let close_signals = CloseSignals(signals.handle());
    let gate = Gate::default();
    let records = RefCell::new(Records::new(sink, flush_each, &gate));
    let interrupt = Interrupt::default();
    let watch = Watch {
        interrupt: &interrupt,
        pool: &pool,
        gate: &gate,
        bar,
    };
    let tally = thread::scope(|scope| {
        let _close_signals = close_signals;
        scope.spawn(move || watch.run(signals));
        // The pool pulls its first lines at once: signals are watched from
        // before then.
        // The rate counts from here; the ticker stops (is dropped) before
        // the bar is cleared.
        let _ticker = progress
            .start()
            .map_err(|err| SetupError(format!("cannot start the progress thread: {err}")))?;
        let (task, ordered, counts) = (&args.task, !args.unordered, progress.counts());
        match lines {
            Lines::Positional(lines) => {
                let results = pool.istarmap_stream(task, lines, chunksize, ordered)?;
                outcomes::write_records(results.indexed(), &records, &done, &interrupt, counts)
            }
            Lines::Keywords(lines) => {
                let results = pool.istarmap_kw_stream(task, lines, chunksize, ordered)?;
                outcomes::write_records(results.indexed(), &records, &done, &interrupt, counts)
            }
        }
    })?;
    bar.finish_and_clear();

    let lines = total.map_or(ledger.seen(), |total| total.max(ledger.seen()));
    let signal = interrupt.signal();
    let summary = Summary {
        tally,
        skipped: done.count_below(lines),
        lines,
        signal,
        rest_unread: total.is_none() && !ledger.exhausted(),
        resumable: args.output != "-",
        elapsed: started.elapsed(),
    };
    eprintln!("{}", summary.line());
    if let Some(signal) = signal {
        return Ok(ExitCode::from(interrupt::exit_status(signal)));
    }
    if let Some(err) = ledger.take_read_error() {
        return Err(SetupError(format!(
            "reading the input failed after {} lines: {err}",
            ledger.seen()
        )));
    }
    Ok(if summary.tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
