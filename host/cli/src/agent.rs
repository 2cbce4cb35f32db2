//! `wasmpool agent`: runs the chunks of jobs published on a NATS server, on
//! sandboxed workers of this machine, until SIGINT or SIGTERM; and
//! `wasmpool agents`, which lists the agents of a server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use clap::Args;
use signal_hook::iterator::Signals;
use wasmpool::Agent;

use crate::SetupError;
use crate::interrupt::{SIGNALS, exit_status};
use crate::limit_flags::LimitArgs;
use crate::nats_flags::NatsArgs;

#[derive(Args)]
pub(crate) struct AgentArgs {
    /// The NATS server (JetStream enabled): nats://HOST:PORT, or
    /// nats://USER:PASSWORD@HOST:PORT; several separated by commas.
    #[arg(
        long,
        value_name = "URL",
        env = "WASMPOOL_NATS",
        hide_env_values = true
    )]
    nats: String,
    #[command(flatten)]
    connect: NatsArgs,
    /// How many worker processes each job gets here (default: the
    /// available parallelism).
    #[arg(long = "processes", short = 'j', value_name = "N")]
    processes: Option<usize>,
    /// Give each job as many workers as -j asks even past what this machine
    /// can hold (64 per CPU, or fewer if its process limits or memory say
    /// so).
    #[arg(long)]
    force_jobs: bool,
    /// Serve at most N jobs at once (default: as many as are published);
    /// the others wait for one to end.
    #[arg(long, value_name = "N")]
    max_jobs: Option<usize>,
    /// The agent's name in logs (default: HOSTNAME-PID).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    // Caps on what the jobs run here ask of their tasks.
    #[command(flatten)]
    limits: LimitArgs,
    /// Where compiled modules are kept.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Run only jobs whose module has this SHA-256 (hex, as `sha256sum`
    /// prints it). Repeatable. Without it, any job the server lets a host
    /// publish runs here.
    #[arg(long, value_name = "SHA256")]
    allow_module: Vec<String>,
    /// Sign reports, output and calls with the key whose seed is in this file
    /// (`wasmpool keygen FILE` makes one), whose public key hosts trust
    /// with `--trust-agent` (default: a new key each run).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Serve only the jobs signed by this host key (`U...`, as `wasmpool
    /// keygen` prints it). Repeatable. Without it, the jobs of any host the
    /// server lets publish them run here.
    #[arg(long, value_name = "KEY")]
    trust_host: Vec<String>,
}

/// Prints the agents of the server at `url`.
pub(crate) fn agents(url: &str, connect: &NatsArgs) -> Result<ExitCode, SetupError> {
    let nats = connect.to_nats(url).map_err(SetupError)?;
    for agent in nats.agents()? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            wasmpool::escape_controls(&agent.name),
            agent.processes,
            agent.pid,
            agent.jobs,
            wasmpool::escape_controls(&agent.key)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes a new signing key, writes its seed to the new file `path`, and
/// prints its public key.
pub(crate) fn keygen(path: &std::path::Path) -> Result<ExitCode, SetupError> {
    let key = wasmpool::SigningKey::write_new(path)?;
    eprintln!(
        "wasmpool keygen: wrote a new key to {} (keep it secret); its public key:",
        path.display()
    );
    println!("{}", key.public_key());
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent until a signal: the first hands the chunks it holds back
/// to the server and stops its workers; a second exits at once.
pub(crate) fn agent(args: AgentArgs) -> Result<ExitCode, SetupError> {
    // What the agent does, and every warning, to stderr.
    crate::log::init(indicatif::ProgressBar::hidden(), "warn,wasmpool=info");
    let mut nats = args.connect.to_nats(&args.nats).map_err(SetupError)?;
    if let Some(path) = &args.key {
        nats = nats.key(wasmpool::SigningKey::from_file(path)?);
    }
    let processes = match args
        .processes
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from))
    {
        1 => "1 process".to_string(),
        n => format!("{n} processes"),
    };
    let mut builder = Agent::builder(nats);
    if let Some(processes) = args.processes {
        builder = builder
            .processes(processes)
            .force_processes(args.force_jobs);
    }
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(jobs) = args.max_jobs {
        builder = builder.max_jobs(jobs);
    }
    if let Some(bytes) = args.limits.memory {
        builder = builder.memory_limit(bytes);
    }
    if let Some(limit) = args.limits.timeout {
        builder = builder.task_timeout(limit);
    }
    if let Some(fuel) = args.limits.fuel {
        builder = builder.fuel(fuel);
    }
    if let Some(dir) = args.cache_dir {
        builder = builder.cache_dir(dir);
    }
    for hash in args.allow_module {
        builder = builder.allow_module(hash);
    }
    for key in args.trust_host {
        builder = builder.trust_host(key);
    }
    let mut signals = Signals::new(SIGNALS)
        .map_err(|err| SetupError(format!("cannot watch for signals: {err}")))?;
    let agent = builder.start()?;
    eprintln!(
        "wasmpool agent {}: ready, {processes} per job, key {}",
        crate::log::shown_on_stderr(agent.name()),
        agent.public_key()
    );
    let stopped = thread::scope(|scope| {
        let handle = signals.handle();
        let agent = &agent;
        let watcher = scope.spawn(move || {
            let mut first = None;
            for signal in signals.forever() {
                if first.is_some() {
                    eprintln!("wasmpool agent: interrupted again: exiting at once");
                    std::process::exit(i32::from(exit_status(signal)));
                }
                first = Some(signal);
                eprintln!(
                    "wasmpool agent: stopping: handing the chunks it holds back to the \
                     server (interrupt again to exit at once)"
                );
                agent.stop();
            }
            first
        });
        let ended = agent.wait();
        handle.close();
        (ended, watcher.join().ok().flatten())
    });
    match stopped {
        (Ok(()), Some(signal)) => Ok(ExitCode::from(exit_status(signal))),
        (Ok(()), None) => Ok(ExitCode::SUCCESS),
        (Err(err), _) => {
            eprintln!(
                "wasmpool agent: {}",
                crate::log::shown_on_stderr(&err.to_string())
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
