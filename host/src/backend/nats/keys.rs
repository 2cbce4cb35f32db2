//! Who said what on the server: [`SigningKey`], the key a host signs its
//! job and chunks with and an agent its requests, calls and output, and the
//! checks of those signatures; and [`ReportKey`], the key an agent and its
//! job's host share, that the agent's reports carry a tag of.
//!
//! Keys are NATS nkeys (ed25519): a seed (`SU...`) kept in a file, and its
//! public half (`U...`), which the other side is told to trust. What is
//! signed is the SHA-256 of what the message is (its [`Domain`]), the job it
//! belongs to, and its bytes: a signature is good for that message of that
//! job only.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

/// The key a host signs its jobs with, or an agent its reports: an nkey
/// (ed25519) seed. Its [`public_key`](Self::public_key) is what the other
/// side trusts: [`Nats::trust_agent`](crate::Nats::trust_agent) on a pool,
/// [`AgentBuilder::trust_host`](crate::AgentBuilder::trust_host) on an
/// agent.
///
/// `wasmpool keygen FILE` makes one and prints its public key; give it to a
/// pool or agent with [`Nats::key`](crate::Nats::key). A pool or agent
/// given none makes a new one when it starts.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<nkeys::KeyPair>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the seed.
        f.debug_tuple("SigningKey")
            .field(&self.public_key())
            .finish()
    }
}

impl SigningKey {
    /// A new key, from the system's source of randomness.
    pub fn generate() -> SigningKey {
        SigningKey {
            pair: Arc::new(nkeys::KeyPair::new_user()),
        }
    }

    /// The key of an nkey seed (`SU...`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if `seed` is not the seed of a signing nkey.
    pub fn from_seed(seed: &str) -> Result<SigningKey, Error> {
        let seed = seed.trim();
        let refuse = |why: String| {
            Error::new(
                ErrorKind::Config,
                format!("not an nkey seed (as `wasmpool keygen` writes): {why}"),
            )
        };
        if seed.starts_with("SX") {
            return Err(refuse("a curve (encryption) key cannot sign".to_string()));
        }
        let pair = nkeys::KeyPair::from_seed(seed).map_err(|err| refuse(err.to_string()))?;
        Ok(SigningKey {
            pair: Arc::new(pair),
        })
    }

    /// The key whose seed is in the file at `path` (as
    /// [`write_new`](Self::write_new) and `wasmpool keygen` write it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if the file cannot be read or does not hold a
    /// seed, naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SigningKey, Error> {
        let path = path.as_ref();
        let named = |why: String| {
            Error::new(
                ErrorKind::Config,
                format!("the key file {}: {why}", path.display()),
            )
        };
        let metadata = std::fs::metadata(path).map_err(|err| named(err.to_string()))?;
        if !metadata.is_file() || metadata.len() > 1024 {
            return Err(named(
                "not a key file (a seed is one line of 58 characters)".to_string(),
            ));
        }
        let seed = std::fs::read_to_string(path).map_err(|err| named(err.to_string()))?;
        SigningKey::from_seed(&seed).map_err(|err| named(err.message().to_string()))
    }

    /// Makes a new key and writes its seed to a new file at `path`, which
    /// only its owner may read; a file already there is left as it is.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if the file exists or cannot be written.
    pub fn write_new(path: impl AsRef<Path>) -> Result<SigningKey, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        let key = SigningKey::generate();
        let seed = key.pair.seed().map_err(|err| {
            Error::new(ErrorKind::Config, format!("cannot encode the seed: {err}"))
        })?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| {
                file.write_all(seed.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()
            })
            .map_err(|err| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot write the key file {}: {err}", path.display()),
                )
            })?;
        Ok(key)
    }

    /// The public half (`U...`): what the other side trusts.
    pub fn public_key(&self) -> String {
        self.pair.public_key()
    }

    /// The signature of `body`, as a message of `domain` of `job`.
    pub(crate) fn sign(&self, domain: Domain, job: &str, body: &[u8]) -> Vec<u8> {
        // Cannot fail: the key has its seed.
        self.pair
            .sign(&digest(domain, job, body))
            .expect("a signing key signs")
    }
}

/// What a signed message is: part of what is signed, so that a signature
/// of one kind of message is no good for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Domain {
    /// A job's record, by its host.
    Job,
    /// A chunk, by its job's host.
    Chunk,
    /// A report, by the agent that ran the chunk.
    Report,
    /// What a task wrote, by its agent.
    Output,
    /// An agent's request to serve a job.
    Enroll,
    /// The host's answer to it.
    Enrolled,
    /// A task's call on the host, by its agent.
    Call,
    /// The host's answer to a call.
    Answer,
    /// The host's word to the agent running its process.
    Control,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Job => b"wasmpool job",
            Domain::Chunk => b"wasmpool chunk",
            Domain::Report => b"wasmpool report",
            Domain::Output => b"wasmpool output",
            Domain::Enroll => b"wasmpool enroll",
            Domain::Enrolled => b"wasmpool enrolled",
            Domain::Call => b"wasmpool call",
            Domain::Answer => b"wasmpool answer",
            Domain::Control => b"wasmpool control",
        }
    }
}

/// What a signature or a tag is of: `body` as a message of `domain` of
/// `job`, in the pieces hashed one after the other.
fn framed<'a>(domain: Domain, job: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [domain.tag(), &[0], job.as_bytes(), &[0], body]
}

/// What is signed of `body`.
fn digest(domain: Domain, job: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for piece in framed(domain, job, body) {
        hash.update(piece);
    }
    hash.finalize().into()
}

/// Checks that `signature` is `key`'s of `body`, as a message of `domain`
/// of `job`.
pub(crate) fn verify(
    key: &str,
    domain: Domain,
    job: &str,
    body: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    let pair = nkeys::KeyPair::from_public_key(key).map_err(|_| {
        Error::new(
            ErrorKind::Remote,
            "signed by something that is not a public nkey",
        )
    })?;
    pair.verify(&digest(domain, job, body), signature)
        .map_err(|_| {
            Error::new(
                ErrorKind::Remote,
                format!("its signature is not {}'s", short(key)),
            )
        })
}

/// A key one agent and its job's host share, which the agent's reports
/// carry a tag of (HMAC-SHA256 of the report's [`Domain`], job and bytes):
/// made by the host when the job admits the agent, and sealed to the
/// agent's request with the job's secrets, so that nobody else holds it.
/// A report costs the agent and the host about a microsecond each that
/// way, where a signature costs 30 (`cargo bench --bench parts`).
#[derive(Clone)]
pub(crate) struct ReportKey([u8; 32]);

impl ReportKey {
    /// A key made afresh from the system's randomness.
    pub(crate) fn generate() -> ReportKey {
        let mut key = [0; 32];
        getrandom::getrandom(&mut key).expect("the system gives randomness");
        ReportKey(key)
    }

    /// The key of `bytes`, as [`as_bytes`](Self::as_bytes) gave them.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<ReportKey, Error> {
        let key = bytes.try_into().map_err(|_| {
            Error::new(
                ErrorKind::Remote,
                format!("a report key of {} bytes, not 32", bytes.len()),
            )
        })?;
        Ok(ReportKey(key))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, domain: Domain, job: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any size");
        for piece in framed(domain, job, body) {
            mac.update(piece);
        }
        mac
    }

    /// The tag of `body`, as a message of `domain` of `job`.
    pub(crate) fn tag(&self, domain: Domain, job: &str, body: &[u8]) -> Vec<u8> {
        self.mac(domain, job, body).finalize().into_bytes().to_vec()
    }

    /// Checks that `tag` is this key's of `body`, as a message of `domain`
    /// of `job` (in constant time).
    pub(crate) fn check(&self, domain: Domain, job: &str, body: &[u8], tag: &[u8]) -> bool {
        self.mac(domain, job, body).verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for ReportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.write_str("ReportKey")
    }
}

/// Checks that `key` is a public signing nkey (`U...`), for a list of
/// trusted keys.
pub(crate) fn check_public_key(key: &str) -> Result<(), Error> {
    let usable = !key.starts_with('X')
        && !key.starts_with('S')
        && nkeys::KeyPair::from_public_key(key).is_ok();
    if usable {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "`{}` is not a public key (as `wasmpool keygen` prints it: U followed by 55 \
                 letters and digits)",
                crate::escape_controls(&key.chars().take(64).collect::<String>())
            ),
        ))
    }
}

/// A curve key made for one exchange, whose public half (`X...`) is sent
/// signed: what secrets are sealed to.
pub(crate) fn exchange_key() -> nkeys::XKey {
    nkeys::XKey::new()
}

/// `plain` sealed to the curve key `recipient` (`X...`): the public half of
/// the curve key made to seal it, and the sealed bytes.
pub(crate) fn seal(plain: &[u8], recipient: &str) -> Result<(String, Vec<u8>), Error> {
    let recipient = nkeys::XKey::from_public_key(recipient).map_err(|_| {
        Error::new(
            ErrorKind::Remote,
            "the key to seal secrets to is not a curve nkey",
        )
    })?;
    let own = exchange_key();
    let sealed = own
        .seal(plain, &recipient)
        .map_err(|err| Error::new(ErrorKind::Remote, format!("cannot seal: {err}")))?;
    Ok((own.public_key(), sealed))
}

/// What `sender` (`X...`) sealed to `own`.
pub(crate) fn unseal(sealed: &[u8], own: &nkeys::XKey, sender: &str) -> Result<Vec<u8>, Error> {
    let unsealable = |why: String| Error::new(ErrorKind::Remote, format!("cannot unseal: {why}"));
    let sender = nkeys::XKey::from_public_key(sender).map_err(|err| unsealable(err.to_string()))?;
    own.open(sealed, &sender)
        .map_err(|err| unsealable(err.to_string()))
}

/// `key` as messages show it: its first 12 characters, as NATS tools do.
pub(crate) fn short(key: &str) -> String {
    let shown: String = key.chars().take(12).collect();
    format!("{}…", crate::escape_controls(&shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_message_of_its_job_only() {
        let key = SigningKey::generate();
        let public = key.public_key();
        let signature = key.sign(Domain::Report, "job1", b"outcomes");
        assert!(verify(&public, Domain::Report, "job1", b"outcomes", &signature).is_ok());
        for (domain, job, body) in [
            (Domain::Report, "job1", &b"outcomez"[..]),
            (Domain::Report, "job2", b"outcomes"),
            (Domain::Chunk, "job1", b"outcomes"),
        ] {
            assert!(verify(&public, domain, job, body, &signature).is_err());
        }
        let other = SigningKey::generate().public_key();
        let err = verify(&other, Domain::Report, "job1", b"outcomes", &signature).unwrap_err();
        assert!(err.message().contains(&other[..12]), "{err}");
        assert!(verify("junk", Domain::Report, "job1", b"outcomes", &signature).is_err());
    }

    #[test]
    fn what_is_sealed_opens_with_its_recipients_key_only() {
        let agent = exchange_key();
        let (sender, sealed) = seal(b"TOKEN=s3cret", &agent.public_key()).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(unseal(&sealed, &agent, &sender).unwrap(), b"TOKEN=s3cret");
        let stranger = exchange_key();
        assert!(unseal(&sealed, &stranger, &sender).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(unseal(&tampered, &agent, &sender).is_err());
        assert!(seal(b"x", &SigningKey::generate().public_key()).is_err());
    }

    #[test]
    fn a_key_file_round_trips_and_is_not_overwritten_nor_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.nk");
        let key = SigningKey::write_new(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let read = SigningKey::from_file(&path).unwrap();
        assert_eq!(read.public_key(), key.public_key());
        assert!(key.public_key().starts_with('U'));
        let again = SigningKey::write_new(&path).unwrap_err();
        assert!(again.message().contains("host.nk"), "{again}");
        let seed = std::fs::read_to_string(&path).unwrap();
        assert!(!format!("{key:?}").contains(seed.trim()));
    }

    #[test]
    fn what_is_not_a_key_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk");
        std::fs::write(&path, "not a seed").unwrap();
        let err = SigningKey::from_file(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("junk"), "{err}");
        assert!(SigningKey::from_file("/dev/zero").is_err());
        assert!(SigningKey::from_file(dir.path().join("missing")).is_err());
        let public = SigningKey::generate().public_key();
        assert!(check_public_key(&public).is_ok());
        assert!(check_public_key("UABC").is_err());
        let seed = SigningKey::generate().pair.seed().unwrap();
        assert!(check_public_key(&seed).is_err(), "a seed is no public key");
        assert!(SigningKey::from_seed(&public).is_err());
    }
}
