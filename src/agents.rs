//! Agents' sign-in secrets. An admin gets a worker's secret once, when the worker is created
//! through the REST API or when the secret is issued again; the agent signs in to the agent page
//! with their name and that secret.
//!
//! A signed-in browser (agent or admin page) holds a [`Session`] in a cookie, signed rather
//! than stored: a restart keeps everyone signed in, and issuing a new secret (or changing the
//! auth token) signs them out.
//!
//! Only a digest is stored: HMAC-SHA1 of the secret keyed by the worker's SID. A secret is 128
//! random bits, so a fast keyed digest is enough (there is no password to guess), and the SID as
//! key makes a digest useless for any other worker.

use std::collections::HashMap;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::live::{ExecuteError, LiveEngine, random_hex};
use crate::routing::{Command, Millis, NewWorker, Sid};
use crate::store::{AgentRecord, AgentV1, StoreError};

type HmacSha1 = Hmac<Sha1>;

/// Why a secret could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no random source to generate the secret from: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

fn mac(worker: Sid) -> HmacSha1 {
    HmacSha1::new_from_slice(worker.to_string().as_bytes()).expect("HMAC accepts any key length")
}

/// The record that lets `worker` sign in with `secret`.
pub fn record(worker: Sid, secret: &str, now: Millis) -> AgentRecord {
    let mut digest = mac(worker);
    digest.update(secret.as_bytes());
    let secret_digest = hex(&digest.finalize().into_bytes());
    AgentRecord::V1(AgentV1 { worker, secret_digest, issued_at: now })
}

/// Whether `secret` is the one `record` was issued for (in constant time).
pub fn verify(record: &AgentRecord, secret: &str) -> bool {
    let AgentRecord::V1(agent) = record;
    let Some(expected) = decode_hex(&agent.secret_digest) else { return false };
    let mut digest = mac(agent.worker);
    digest.update(secret.as_bytes());
    digest.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

/// The agents' secrets (their digests), kept in memory after start so that a sign-in or a
/// session check reads no disk; every change is written through.
#[derive(Default)]
pub struct Agents {
    records: RwLock<HashMap<Sid, AgentRecord>>,
}

impl Agents {
    /// The stored secrets.
    pub fn load(engine: &LiveEngine) -> Result<Agents, StoreError> {
        let records = engine.stored::<AgentRecord>()?;
        let records = records.into_iter().map(|record| (record.worker(), record)).collect();
        Ok(Agents { records: RwLock::new(records) })
    }

    /// Creates a worker and its sign-in secret in one durable write; answers the worker's SID
    /// and the secret.
    pub async fn create_worker(
        &self,
        engine: &LiveEngine,
        new: NewWorker,
    ) -> Result<(Sid, String), AgentError> {
        let secret = random_hex().map_err(AgentError::Random)?;
        let now = crate::live::now();
        let (_, stored) = engine
            .execute_with(Command::CreateWorker(new), |created| {
                record(created.expect("a worker creation that succeeds names the worker"), &secret, now)
            })
            .await?;
        let worker = stored.worker();
        self.write().insert(worker, stored);
        Ok((worker, secret))
    }

    /// Issues `worker` a new secret, replacing the old one (and ending its sessions).
    pub async fn issue(&self, engine: &LiveEngine, worker: Sid) -> Result<String, AgentError> {
        let secret = random_hex().map_err(AgentError::Random)?;
        let issued = record(worker, &secret, crate::live::now());
        engine.put(&issued).await?;
        self.write().insert(worker, issued);
        Ok(secret)
    }

    /// Forgets a deleted worker's secret.
    pub async fn forget(&self, engine: &LiveEngine, worker: Sid) -> Result<(), StoreError> {
        engine.delete::<AgentRecord>(&worker.to_string()).await?;
        self.write().remove(&worker);
        Ok(())
    }

    /// The worker named `name` (ignoring case) if `secret` is theirs.
    pub fn sign_in(&self, engine: &LiveEngine, name: &str, secret: &str) -> Option<Sid> {
        let worker = engine.read(|engine| engine.worker_by_name(name).map(|worker| worker.sid))?;
        let records = self.records.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.get(&worker).filter(|record| verify(record, secret)).map(|_| worker)
    }

    /// The digest of `worker`'s current secret: sessions are bound to it, so that issuing a new
    /// secret ends them.
    pub fn secret_digest(&self, worker: Sid) -> Option<String> {
        let records = self.records.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.get(&worker).map(|AgentRecord::V1(agent)| agent.secret_digest.clone())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Sid, AgentRecord>> {
        self.records.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The account's owner: the admin page.
    Admin,
    /// A worker: the agent page.
    Agent,
}

/// A signed-in browser session, carried in an HttpOnly cookie as
/// `{role}.{subject}.{expires}.{nonce}.{mac}`. The MAC is keyed by the auth token and, for an
/// agent, their secret's digest: changing either ends the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub role: Role,
    /// The account SID (admin) or the worker's SID (agent).
    pub subject: String,
    pub expires: Millis,
    nonce: String,
}

impl Session {
    /// A new session for `subject`, valid until `expires`.
    pub fn new(role: Role, subject: &str, expires: Millis) -> Result<Session, getrandom::Error> {
        Ok(Session { role, subject: subject.to_owned(), expires, nonce: random_hex()? })
    }

    fn payload(&self) -> String {
        let role = match self.role {
            Role::Admin => "admin",
            Role::Agent => "agent",
        };
        format!("{role}.{}.{}.{}", self.subject, self.expires, self.nonce)
    }

    fn mac(&self, auth_token: &str, bound_to: &str, purpose: &str) -> HmacSha1 {
        let mut mac = HmacSha1::new_from_slice(format!("{auth_token}\n{bound_to}").as_bytes())
            .expect("HMAC accepts any key length");
        mac.update(purpose.as_bytes());
        mac.update(self.payload().as_bytes());
        mac
    }

    /// The cookie value: the payload and its MAC.
    pub fn token(&self, auth_token: &str, bound_to: &str) -> String {
        let mac = hex(&self.mac(auth_token, bound_to, "session").finalize().into_bytes());
        format!("{}.{mac}", self.payload())
    }

    /// The session in cookie value `token`, unverified: its subject says which key checks it.
    pub fn parse(token: &str) -> Option<(Session, &str)> {
        let mut parts = token.splitn(5, '.');
        let role = match parts.next()? {
            "admin" => Role::Admin,
            "agent" => Role::Agent,
            _ => return None,
        };
        let subject = parts.next()?.to_owned();
        let expires = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_owned();
        let mac = parts.next()?;
        Some((Session { role, subject, expires, nonce }, mac))
    }

    /// Whether `mac` (from [`Session::parse`]) is this session's under these keys, and the
    /// session has not expired at `now`. Constant time.
    pub fn verify(&self, mac: &str, auth_token: &str, bound_to: &str, now: Millis) -> bool {
        let Some(given) = decode_hex(mac) else { return false };
        now < self.expires && self.mac(auth_token, bound_to, "session").verify_slice(&given).is_ok()
    }

    /// The token a page sends back in `X-CSRF-Token` with every write: derived from the
    /// session, so another site, which cannot read the page, cannot forge it.
    pub fn csrf_token(&self, auth_token: &str, bound_to: &str) -> String {
        hex(&self.mac(auth_token, bound_to, "csrf").finalize().into_bytes())
    }

    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, given: &str, auth_token: &str, bound_to: &str) -> bool {
        decode_hex(given)
            .is_some_and(|given| self.mac(auth_token, bound_to, "csrf").verify_slice(&given).is_ok())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::SidKind;

    #[test]
    fn a_secret_verifies_only_for_its_worker() {
        let alice = Sid::parse(&format!("WK{}", "1".repeat(32)), SidKind::Worker).unwrap();
        let bob = Sid::parse(&format!("WK{}", "2".repeat(32)), SidKind::Worker).unwrap();
        let issued = record(alice, "0123456789abcdef0123456789abcdef", 5);
        let AgentRecord::V1(agent) = &issued;
        assert_eq!(agent.secret_digest.len(), 40);
        assert!(!agent.secret_digest.contains("0123456789abcdef"), "the secret itself is not stored");
        let cases = [
            (&issued, "0123456789abcdef0123456789abcdef", true),
            (&issued, "0123456789abcdef0123456789abcdee", false),
            (&issued, "", false),
        ];
        for (record, secret, expected) in cases {
            assert_eq!(verify(record, secret), expected, "{secret}");
        }
        let AgentRecord::V1(mut moved) = issued.clone();
        moved.worker = bob;
        assert!(!verify(&AgentRecord::V1(moved), "0123456789abcdef0123456789abcdef"), "keyed by the worker");
        let AgentRecord::V1(mut damaged) = issued;
        damaged.secret_digest = "zz".into();
        assert!(!verify(&AgentRecord::V1(damaged), "0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn a_session_verifies_until_it_expires_and_only_under_its_keys() {
        let session = Session::new(Role::Agent, "WK1", 1_000).unwrap();
        let token = session.token("auth", "digest");
        let (parsed, mac) = Session::parse(&token).unwrap();
        assert_eq!(parsed, session);
        let cases = [
            ("auth", "digest", 999, true),
            ("auth", "digest", 1_000, false),
            ("other auth", "digest", 0, false),
            ("auth", "reissued digest", 0, false),
        ];
        for (auth_token, bound_to, now, expected) in cases {
            assert_eq!(
                parsed.verify(mac, auth_token, bound_to, now),
                expected,
                "{auth_token} {bound_to} {now}"
            );
        }
        let forged = token.replacen("agent.WK1", "admin.WK1", 1);
        let (forged, mac) = Session::parse(&forged).unwrap();
        assert!(!forged.verify(mac, "auth", "digest", 0), "the role is signed");
        for bad in ["", "agent", "root.WK1.5.n.m", "agent.WK1.soon.n.m"] {
            assert_eq!(Session::parse(bad), None, "{bad}");
        }
        let csrf = session.csrf_token("auth", "digest");
        assert!(session.csrf_ok(&csrf, "auth", "digest"));
        assert!(!session.csrf_ok(&csrf, "auth", "reissued digest"));
        assert!(!session.csrf_ok("", "auth", "digest"));
        assert_ne!(csrf, mac, "the CSRF token is not the cookie's MAC");
    }
}
