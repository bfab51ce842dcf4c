//! Agents' sign-in secrets. An admin gets a worker's secret once, when the worker is created
//! through the REST API or when the secret is issued again; the agent signs in to the agent page
//! with their name and that secret.
//!
//! A signed-in browser (agent or admin page) holds a [`Session`] in a cookie, signed rather
//! than stored: a restart keeps everyone signed in. A session ends, at once and for good, when:
//!
//! - it expires;
//! - its browser signs out: the session's nonce is stored (`store::SignOutRecord`) until the
//!   session would have expired, and kept in memory, so that a copy of the cookie is refused,
//!   after a restart too. Only that browser is signed out: an agent who leaves one desk, or a
//!   supervisor who closes one screen, keeps their other sessions (a wallboard, another tab);
//! - the agent is issued a new secret, or their worker is deleted (the MAC is keyed by the
//!   secret's digest, which is gone or changed): every session of that agent ends, which is the
//!   "sign out everywhere" for a lost or shared device;
//! - the auth token changes (it keys every MAC): every session ends.
//!
//! Checking a session reads memory only ([`Agents::check_session`]: a MAC and two map lookups).
//! Live streams watch [`Agents::ended`] to end as soon as their session does.
//!
//! Only a digest is stored: HMAC-SHA1 of the secret keyed by the worker's SID. A secret is 128
//! random bits, so a fast keyed digest is enough (there is no password to guess), and the SID as
//! key makes a digest useless for any other worker.

use std::collections::HashMap;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio::sync::watch;

use crate::config::Credentials;
use crate::live::{ExecuteError, LiveEngine, hex, random_hex};
use crate::routing::{Command, Millis, NewWorker, Sid, SidKind};
use crate::store::{AgentRecord, AgentV1, SignOutRecord, SignOutV1, Store, StoreError};

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

/// The agents' secrets (their digests) and the signed-out sessions, kept in memory after start
/// so that a sign-in or a session check reads no disk; every change is written through.
pub struct Agents {
    records: RwLock<HashMap<Sid, AgentRecord>>,
    /// Signed-out sessions by nonce, with when each would have expired; pruned by
    /// [`Agents::sweep`] after that. Only a valid session can be signed out, so this grows with
    /// real sign-outs, not with what an attacker sends.
    signed_out: RwLock<HashMap<String, Millis>>,
    /// Moves on whenever sessions end before their expiry (a sign-out, a new secret, a worker
    /// forgotten), so that live streams check theirs at once rather than at their next push.
    ended: watch::Sender<u64>,
}

/// Why a session cookie does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// Not a session of this role (malformed, or the other role's).
    NotSignedIn,
    /// A session of someone who is no longer there: another account, a deleted worker.
    SignInAgain,
    /// Forged, expired, signed out, or under keys that changed since (new secret, auth token).
    Ended,
}

impl Agents {
    /// The stored secrets of the workers that exist (a worker deleted just before a crash may
    /// have left one behind) and the signed-out sessions.
    pub fn load(engine: &LiveEngine) -> Result<Agents, StoreError> {
        let records = engine.stored::<AgentRecord>()?;
        let exists = |record: &AgentRecord| engine.read(|engine| engine.worker(record.worker()).is_some());
        let records = records.into_iter().filter(exists).map(|record| (record.worker(), record)).collect();
        let signed_out = engine.stored::<SignOutRecord>()?;
        let signed_out = signed_out
            .into_iter()
            .map(|SignOutRecord::V1(session)| (session.nonce, session.expires))
            .collect();
        Ok(Agents {
            records: RwLock::new(records),
            signed_out: RwLock::new(signed_out),
            ended: watch::Sender::new(0),
        })
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
        write(&self.records).insert(worker, stored);
        Ok((worker, secret))
    }

    /// Issues `worker` a new secret, replacing the old one (and ending its sessions).
    pub async fn issue(&self, engine: &LiveEngine, worker: Sid) -> Result<String, AgentError> {
        let secret = random_hex().map_err(AgentError::Random)?;
        let issued = record(worker, &secret, crate::live::now());
        engine.put(&issued).await?;
        write(&self.records).insert(worker, issued);
        self.ended.send_modify(|generation| *generation += 1);
        Ok(secret)
    }

    /// Forgets a deleted worker's secret, which ends their sessions at once.
    pub async fn forget(&self, engine: &LiveEngine, worker: Sid) -> Result<(), StoreError> {
        write(&self.records).remove(&worker);
        self.ended.send_modify(|generation| *generation += 1);
        engine.delete::<AgentRecord>(&worker.to_string()).await
    }

    /// The worker named `name` (ignoring case) if `secret` is theirs.
    pub fn sign_in(&self, engine: &LiveEngine, name: &str, secret: &str) -> Option<Sid> {
        let worker = engine.read(|engine| engine.worker_by_name(name).map(|worker| worker.sid))?;
        let records = read(&self.records);
        records.get(&worker).filter(|record| verify(record, secret)).map(|_| worker)
    }

    /// The digest of `worker`'s current secret: sessions are bound to it, so that issuing a new
    /// secret ends them.
    pub fn secret_digest(&self, worker: Sid) -> Option<String> {
        read(&self.records).get(&worker).map(|AgentRecord::V1(agent)| agent.secret_digest.clone())
    }

    /// The `role` session in cookie value `token`, if it holds at `now`: signed under the
    /// current keys (the auth token; for an agent, their current secret's digest), for the
    /// account or an existing worker, not expired, not signed out. Answers the session and what
    /// its CSRF token is bound to. Reads memory only.
    pub fn check_session(
        &self,
        token: &str,
        role: Role,
        credentials: &Credentials,
        now: Millis,
    ) -> Result<(Session, String), SessionRefusal> {
        let (session, mac) = Session::parse(token).ok_or(SessionRefusal::NotSignedIn)?;
        if session.role != role {
            return Err(SessionRefusal::NotSignedIn);
        }
        let bound_to = match role {
            Role::Admin if session.subject == credentials.account_sid => String::new(),
            Role::Admin => return Err(SessionRefusal::SignInAgain),
            Role::Agent => Sid::parse(&session.subject, SidKind::Worker)
                .ok()
                .and_then(|worker| self.secret_digest(worker))
                .ok_or(SessionRefusal::SignInAgain)?,
        };
        if !session.verify(mac, &credentials.auth_token, &bound_to, now)
            || read(&self.signed_out).contains_key(&session.nonce)
        {
            return Err(SessionRefusal::Ended);
        }
        Ok((session, bound_to))
    }

    /// Ends `session` (one that [`Agents::check_session`] accepted) for good: refused at once,
    /// and after a restart once the answer is given.
    pub async fn sign_out(&self, engine: &LiveEngine, session: &Session) -> Result<(), StoreError> {
        self.refuse(session);
        let signed_out = SignOutV1 {
            nonce: session.nonce.clone(),
            subject: session.subject.clone(),
            expires: session.expires,
        };
        engine.put(&SignOutRecord::V1(signed_out)).await
    }

    /// Refuses `session` from now on, and tells the live streams.
    fn refuse(&self, session: &Session) {
        write(&self.signed_out).insert(session.nonce.clone(), session.expires);
        self.ended.send_modify(|generation| *generation += 1);
    }

    /// Forgets the signed-out sessions that have expired by `now` (their cookies are refused as
    /// expired anyway), in memory and in the store; answers how many.
    pub async fn sweep(&self, engine: &LiveEngine, now: Millis) -> Result<usize, StoreError> {
        let expired: Vec<String> = {
            let mut signed_out = write(&self.signed_out);
            let expired: Vec<String> = signed_out
                .iter()
                .filter(|(_, expires)| **expires <= now)
                .map(|(nonce, _)| nonce.clone())
                .collect();
            for nonce in &expired {
                signed_out.remove(nonce);
            }
            expired
        };
        if !expired.is_empty() {
            let deletions =
                expired.iter().map(|nonce| (Store::key_of::<SignOutRecord>(nonce), None)).collect();
            engine.put_together(deletions).await?;
        }
        Ok(expired.len())
    }

    /// Changes whenever sessions may have ended before their expiry: a stream that watches this
    /// checks its session again ([`Agents::check_session`]) at once.
    pub fn ended(&self) -> watch::Receiver<u64> {
        self.ended.subscribe()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Whether the `role` session `token` holds at `now` for `agents` under the test account.
    fn check(agents: &Agents, token: &str, role: Role, now: Millis, expected: Result<(), SessionRefusal>) {
        let credentials = Credentials {
            account_sid: "AC1".to_owned(),
            auth_token: "auth".to_owned(),
            generated_token: false,
        };
        let checked = agents.check_session(token, role, &credentials, now).map(|_| ());
        assert_eq!(checked, expected, "{role:?} {token} at {now}");
    }

    #[test]
    fn a_session_holds_until_it_expires_is_signed_out_or_its_keys_change() {
        let alice = Sid::parse(&format!("WK{}", "1".repeat(32)), SidKind::Worker).unwrap();
        let issued = record(alice, "secret", 0);
        let AgentRecord::V1(agent) = &issued;
        let agents = Agents {
            records: RwLock::new(HashMap::from([(alice, issued.clone())])),
            signed_out: RwLock::new(HashMap::new()),
            ended: watch::Sender::new(0),
        };
        let session = Session::new(Role::Agent, &alice.to_string(), 1_000).unwrap();
        let token = session.token("auth", &agent.secret_digest);
        let admin = Session::new(Role::Admin, "AC1", 1_000).unwrap();
        let admin_token = admin.token("auth", "");
        let other_account = Session::new(Role::Admin, "AC2", 1_000).unwrap().token("auth", "");
        let unknown_worker = format!("WK{}", "2".repeat(32));
        let stranger = Session::new(Role::Agent, &unknown_worker, 1_000).unwrap().token("auth", "x");
        use SessionRefusal::*;
        check(&agents, &token, Role::Agent, 999, Ok(()));
        check(&agents, &token, Role::Agent, 1_000, Err(Ended));
        check(&agents, &token, Role::Admin, 0, Err(NotSignedIn));
        check(&agents, "agent.garbage", Role::Agent, 0, Err(NotSignedIn));
        check(&agents, &session.token("old auth", &agent.secret_digest), Role::Agent, 0, Err(Ended));
        check(&agents, &session.token("auth", "old digest"), Role::Agent, 0, Err(Ended));
        check(&agents, &stranger, Role::Agent, 0, Err(SignInAgain));
        check(&agents, &admin_token, Role::Admin, 0, Ok(()));
        check(&agents, &other_account, Role::Admin, 0, Err(SignInAgain));

        // Signed out: that session only, whatever copy of its cookie is sent.
        let ended = agents.ended();
        agents.refuse(&session);
        assert!(ended.has_changed().unwrap(), "live streams are told");
        check(&agents, &token, Role::Agent, 0, Err(Ended));
        check(&agents, &admin_token, Role::Admin, 0, Ok(()));
        let again = Session::new(Role::Agent, &alice.to_string(), 1_000).unwrap();
        check(&agents, &again.token("auth", &agent.secret_digest), Role::Agent, 0, Ok(()));

        // A worker forgotten: every session of theirs.
        write(&agents.records).remove(&alice);
        check(&agents, &again.token("auth", &agent.secret_digest), Role::Agent, 0, Err(SignInAgain));
    }

    #[tokio::test]
    async fn a_sign_out_is_kept_across_a_restart_until_the_session_would_have_expired() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::StoreSettings { data_dir: dir.path().to_owned(), ..Default::default() };
        let workspace = crate::workspace::WorkspaceFile::default();
        let open = || LiveEngine::open(&settings, &workspace, "", 0).unwrap();
        let (signed_out, kept) = (
            Session::new(Role::Admin, "AC1", 1_000).unwrap(),
            Session::new(Role::Admin, "AC1", 1_000).unwrap(),
        );
        let credentials = Credentials {
            account_sid: "AC1".to_owned(),
            auth_token: "auth".to_owned(),
            generated_token: false,
        };
        let holds = |agents: &Agents, session: &Session, now| {
            agents.check_session(&session.token("auth", ""), Role::Admin, &credentials, now).is_ok()
        };
        {
            let engine = open();
            let agents = Agents::load(&engine).unwrap();
            agents.sign_out(&engine, &signed_out).await.unwrap();
            assert_eq!((holds(&agents, &signed_out, 0), holds(&agents, &kept, 0)), (false, true));
        }
        let engine = open();
        let agents = Agents::load(&engine).unwrap();
        assert_eq!(
            (holds(&agents, &signed_out, 0), holds(&agents, &kept, 0)),
            (false, true),
            "after a restart"
        );
        assert_eq!(agents.sweep(&engine, 999).await.unwrap(), 0, "kept while the cookie could still be used");
        assert_eq!(agents.sweep(&engine, 1_000).await.unwrap(), 1);
        assert!(engine.stored::<SignOutRecord>().unwrap().is_empty(), "forgotten once expired");
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
