//! [`Nats`]: where the NATS server is and how to log in to it, and the
//! settings of the jobs a pool runs through it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::keys::{self, SigningKey};
use super::store::{AgentInfo, Store};
use super::{block_on, runtime};
use crate::error::{Error, ErrorKind};

/// The default time an agent may hold a chunk without a sign of life
/// before JetStream hands it to another agent.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// The default number of times a chunk whose agent was lost runs again.
const DEFAULT_AGENT_RETRIES: u32 = 2;
/// The default time a process on agents may wait for an agent to start it.
const DEFAULT_PROCESS_START_LIMIT: Duration = Duration::from_secs(60);

/// A NATS server, and how to connect to it: for
/// [`PoolBuilder::nats_options`](crate::PoolBuilder::nats_options) and
/// [`Agent`](crate::Agent).
///
/// The URL may carry credentials (`nats://user:password@host:4222`, or
/// `nats://token@host:4222`); the methods below set them otherwise. With
/// `tls://` or [`require_tls`](Self::require_tls) the connection is TLS,
/// checked against the system's roots or [`root_certificate`](Self::root_certificate).
///
/// ```no_run
/// let nats = wasmpool::Nats::new("nats://10.0.0.5:4222")
///     .user_password("pool", "secret")
///     .require_tls(true);
/// let pool = wasmpool::Pool::builder()
///     .module_file("tasks.wasm")
///     .nats_options(nats)
///     .build()?;
/// # Ok::<(), wasmpool::Error>(())
/// ```
#[derive(Clone)]
pub struct Nats {
    pub(crate) url: String,
    user_password: Option<(String, String)>,
    token: Option<String>,
    nkey: Option<String>,
    credentials: Option<PathBuf>,
    root_certificate: Option<PathBuf>,
    require_tls: bool,
    pub(crate) ack_wait: Duration,
    pub(crate) window: Option<usize>,
    pub(crate) agent_retries: u32,
    pub(crate) process_start_limit: Duration,
    pub(crate) key: Option<SigningKey>,
    pub(crate) trusted_agents: Vec<String>,
}

impl fmt::Debug for Nats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No secrets: neither the password nor the token nor the seed.
        f.debug_struct("Nats")
            .field("url", &redact_url(&self.url))
            .field("user", &self.user_password.as_ref().map(|(user, _)| user))
            .field("credentials", &self.credentials)
            .field("require_tls", &self.require_tls)
            .field("ack_wait", &self.ack_wait)
            .field("window", &self.window)
            .field("agent_retries", &self.agent_retries)
            .field("process_start_limit", &self.process_start_limit)
            .field("key", &self.key)
            .field("trusted_agents", &self.trusted_agents)
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// The server at `url` (`nats://host:port`, `tls://host:port`, or a
    /// comma-separated list of them).
    pub fn new(url: impl Into<String>) -> Self {
        Nats {
            url: url.into(),
            user_password: None,
            token: None,
            nkey: None,
            credentials: None,
            root_certificate: None,
            require_tls: false,
            ack_wait: DEFAULT_ACK_WAIT,
            window: None,
            agent_retries: DEFAULT_AGENT_RETRIES,
            process_start_limit: DEFAULT_PROCESS_START_LIMIT,
            key: None,
            trusted_agents: Vec::new(),
        }
    }

    /// Signs with `key`: a pool its job and chunks, an agent its reports
    /// and what its tasks write. Unless set, each pool and agent makes a
    /// key of its own when it starts; give one to be trusted across runs
    /// (agents started with `--trust-host` serve only the jobs of the host
    /// keys they name).
    ///
    /// ```no_run
    /// let key = wasmpool::SigningKey::from_file("host.nk")?;
    /// let nats = wasmpool::Nats::new("nats://10.0.0.5:4222").key(key);
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    pub fn key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Takes outcomes only from agents that sign with this public key
    /// (`U...`, as `wasmpool keygen` and `wasmpool agents` print it); may
    /// be given many times. Only these agents may serve the pool's job: any
    /// other is refused when it asks, and serves none of it. The job's
    /// environment variables ([`PoolBuilder::env`](crate::PoolBuilder::env))
    /// go sealed to these agents only.
    ///
    /// Unless given, any agent that asks serves the job, and the outcomes
    /// it signs are taken: on a server where anyone may publish, anyone may
    /// serve the job (see "Deploying safely" in the README), and a pool
    /// with environment variables is refused, as they would go to whoever
    /// asks.
    pub fn trust_agent(mut self, key: impl Into<String>) -> Self {
        self.trusted_agents.push(key.into().trim().to_string());
        self
    }

    /// Logs in with a user name and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user_password = Some((user.into(), password.into()));
        self
    }

    /// Logs in with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Logs in with an nkey: its seed (`SU...`).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.nkey = Some(seed.into());
        self
    }

    /// Logs in with a credentials file (a user JWT and its nkey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials = Some(path.into());
        self
    }

    /// Checks the server's TLS certificate against this PEM root (a private
    /// certificate authority) rather than the system's.
    pub fn root_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificate = Some(path.into());
        self
    }

    /// Refuses to connect unless the connection is TLS.
    pub fn require_tls(mut self, require: bool) -> Self {
        self.require_tls = require;
        self
    }

    /// How long an agent may hold a chunk without a sign of life before
    /// JetStream hands it to another agent (30 s unless set). Agents send
    /// a sign of life three times in this while a chunk runs, so a chunk of
    /// long tasks is not handed out twice; an agent that dies has its
    /// chunks run elsewhere after at most this long.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// The most chunks a pool keeps out at once, queued or running on
    /// agents (unless set, 16 per process of the pool): what bounds memory
    /// on every side, whatever the length of a call. Each chunk is out for
    /// at least a round trip to its agent, so the window must cover the
    /// link: with agents 50 ms away (a round trip), a window of 8 ran
    /// waiting tasks at 61% of what the workers could, one of 64 at 91%.
    pub fn window(mut self, chunks: usize) -> Self {
        self.window = Some(chunks);
        self
    }

    /// How many times the task an agent was running when it was lost runs
    /// again on another agent before it fails with
    /// [`ErrorKind::WorkerLost`] (2 unless set).
    ///
    /// Why 2: an agent is lost for reasons of its machine far more often
    /// than of its task (a redeploy, a reboot, the network), and the task
    /// should ride that out, as it would a rolling restart of the agents;
    /// but a task that takes down every agent it runs on (exhausting its
    /// machine's memory, say) must not take down the whole fleet one agent
    /// at a time, so it is run three times at most. A worker that dies on
    /// its agent is [`PoolBuilder::retries`](crate::PoolBuilder::retries)'s
    /// business, as on a local pool.
    ///
    /// Only the first task without an outcome of each chunk the lost agent
    /// held counts as running (the host cannot tell which had started); the
    /// others run elsewhere, however often agents are lost.
    pub fn agent_retries(mut self, retries: u32) -> Self {
        self.agent_retries = retries;
        self
    }

    /// How long the `start` of a [`Process`](crate::Process) on agents
    /// waits for an agent to start it (60 s unless set): to take its job,
    /// fetch and compile its module (the first time it sees it) and start
    /// its worker. Past it, `start` fails with [`ErrorKind::Spawn`] rather
    /// than wait for an agent that may never come, and the job is over: an
    /// agent's start that crosses the limit either comes first (`start`
    /// returns the process) or finds the job over (the agent's worker is
    /// stopped, and its task's calls refused) — never both.
    pub fn process_start_limit(mut self, limit: Duration) -> Self {
        self.process_start_limit = limit;
        self
    }

    /// Connects, as `name` (what the server's monitoring shows).
    pub(crate) async fn connect(&self, name: &str) -> Result<async_nats::Client, Error> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(10))
            .require_tls(self.require_tls);
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        } else if self.token.is_none() {
            // The client library reads no credentials from the URL itself.
            match url_credentials(&self.url) {
                Some((user, Some(password))) => options = options.user_and_password(user, password),
                Some((token, None)) => options = options.token(token),
                None => {}
            }
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &self.nkey {
            options = options.nkey(seed.clone());
        }
        if let Some(path) = &self.credentials {
            options = options.credentials_file(path).await.map_err(|err| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "cannot read the NATS credentials file {}: {err}",
                        path.display()
                    ),
                )
            })?;
        }
        if let Some(path) = &self.root_certificate {
            options = options.add_root_certificates(path.clone());
        }
        options
            .connect(self.url.as_str())
            .await
            .map_err(|err| connect_error(&self.url, &err))
    }

    /// The agents of this server that showed they live in the last 16 s
    /// (what `wasmpool agents` prints); [`Pool::agents`](crate::Pool::agents)
    /// asks the same of a pool's server.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Remote`] if the server cannot be reached or asked.
    pub fn agents(&self) -> Result<Vec<AgentInfo>, Error> {
        self.check()?;
        let runtime = runtime(1, "wasmpool-nats")?;
        block_on(runtime.handle(), async {
            Store::open(self, "wasmpool agents").await?.agents().await
        })
    }

    /// Checks what can be checked before connecting.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.ack_wait < Duration::from_millis(300) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the NATS ack wait of {:?} is too short: it must be at least 300 ms",
                    self.ack_wait
                ),
            ));
        }
        for key in &self.trusted_agents {
            keys::check_public_key(key)?;
        }
        if self.window == Some(0) {
            return Err(Error::new(
                ErrorKind::Config,
                "the NATS window must be at least one chunk",
            ));
        }
        Ok(())
    }
}

/// The error of a connection that failed, naming the server and why.
fn connect_error(url: &str, err: &async_nats::ConnectError) -> Error {
    use async_nats::ConnectErrorKind as Kind;
    let url = redact_url(url);
    let why = match err.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => {
            "the server refused the credentials (authorization violation): check the user \
             and password, token, nkey or credentials file"
                .to_string()
        }
        Kind::TimedOut => "no answer within 10 s".to_string(),
        Kind::Tls => format!("TLS failed: {err}"),
        Kind::ServerParse => format!("the address does not parse: {err}"),
        _ => err.to_string(),
    };
    Error::new(
        ErrorKind::Remote,
        format!("cannot connect to the NATS server at {url}: {why}"),
    )
}

/// The user and password (`nats://user:password@host`), or the token
/// (`nats://token@host`), the URL `url` carries: the first of its servers'
/// that has any.
fn url_credentials(url: &str) -> Option<(String, Option<String>)> {
    url.split(',').find_map(|server| {
        let server: async_nats::ServerAddr = server.trim().parse().ok()?;
        let user = server.username()?;
        let password = server.password().map(str::to_string);
        Some((user.to_string(), password))
    })
}

/// `url` without the password or token it may carry, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let auth = &one[scheme + 3..at];
                let user = auth.split(':').next().filter(|_| auth.contains(':'));
                match user {
                    Some(user) => format!("{}{user}:***{}", &one[..scheme + 3], &one[at..]),
                    None => format!("{}***{}", &one[..scheme + 3], &one[at..]),
                }
            }
            _ => one.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_read() {
        assert_eq!(
            url_credentials("nats://host-a:change-me@127.0.0.1:4222"),
            Some(("host-a".to_string(), Some("change-me".to_string())))
        );
        assert_eq!(
            url_credentials("nats://s3cret@host:4222"),
            Some(("s3cret".to_string(), None))
        );
        assert_eq!(
            url_credentials("nats://one:1,nats://ann:pw@two:2"),
            Some(("ann".to_string(), Some("pw".to_string())))
        );
        assert_eq!(url_credentials("nats://host:4222"), None);
    }

    #[test]
    fn secrets_in_a_url_are_not_shown() {
        assert_eq!(
            redact_url("nats://ann:hunter2@host:4222"),
            "nats://ann:***@host:4222"
        );
        assert_eq!(
            redact_url("nats://s3cret@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
        assert_eq!(
            redact_url("nats://a:b@one:1,nats://two:2"),
            "nats://a:***@one:1,nats://two:2"
        );
        let shown = format!(
            "{:?}",
            Nats::new("nats://a:pw@h:1").user_password("u", "pw2")
        );
        assert!(!shown.contains("pw"), "{shown}");
    }
}
