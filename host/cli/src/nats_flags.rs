//! The options that reach a NATS server, for `map --nats` and `agent`.

use std::path::PathBuf;

use clap::Args;
use wasmpool::Nats;

/// How to connect to a NATS server.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct NatsArgs {
    /// Log in as this user (or give it in the URL: nats://USER:PASSWORD@HOST).
    #[arg(long, value_name = "USER", requires = "nats")]
    pub(crate) nats_user: Option<String>,
    /// The user's password; better from the environment than the command
    /// line, which other users can see.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "WASMPOOL_NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub(crate) nats_password: Option<String>,
    /// Log in with this token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WASMPOOL_NATS_TOKEN",
        hide_env_values = true,
        requires = "nats"
    )]
    pub(crate) nats_token: Option<String>,
    /// Log in with the nkey whose seed is in this file.
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_nkey: Option<PathBuf>,
    /// Log in with this credentials file (a user JWT and its nkey seed).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// Check the server's TLS certificate against this PEM root, and
    /// require TLS.
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_ca: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[arg(long, requires = "nats")]
    pub(crate) nats_tls: bool,
}

impl NatsArgs {
    /// The server at `url`, with these options.
    pub(crate) fn to_nats(&self, url: &str) -> Result<Nats, String> {
        let mut nats = Nats::new(url);
        if let Some(user) = &self.nats_user {
            let password = self.nats_password.clone().unwrap_or_default();
            nats = nats.user_password(user, password);
        }
        if let Some(token) = &self.nats_token {
            nats = nats.token(token);
        }
        if let Some(path) = &self.nats_nkey {
            let seed = std::fs::read_to_string(path).map_err(|err| {
                format!(
                    "--nats-nkey: cannot read the seed file {}: {err}",
                    path.display()
                )
            })?;
            nats = nats.nkey(seed.trim());
        }
        if let Some(path) = &self.nats_creds {
            nats = nats.credentials_file(path);
        }
        if let Some(path) = &self.nats_ca {
            nats = nats.root_certificate(path).require_tls(true);
        }
        if self.nats_tls {
            nats = nats.require_tls(true);
        }
        Ok(nats)
    }
}
