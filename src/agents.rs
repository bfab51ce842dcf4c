//! Agents' sign-in secrets. An admin gets a worker's secret once, when the worker is created
//! through the REST API or when the secret is issued again; the agent signs in to the agent page
//! with their name and that secret.
//!
//! Only a digest is stored: HMAC-SHA1 of the secret keyed by the worker's SID. A secret is 128
//! random bits, so a fast keyed digest is enough (there is no password to guess), and the SID as
//! key makes a digest useless for any other worker.

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
    let secret_digest = digest.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
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

/// Creates a worker and its sign-in secret in one durable write; answers the worker's SID and
/// the secret.
pub async fn create_worker(engine: &LiveEngine, new: NewWorker) -> Result<(Sid, String), AgentError> {
    let secret = random_hex().map_err(AgentError::Random)?;
    let now = crate::live::now();
    let (_, stored) = engine
        .execute_with(Command::CreateWorker(new), |created| {
            record(created.expect("a worker creation that succeeds names the worker"), &secret, now)
        })
        .await?;
    let AgentRecord::V1(agent) = stored;
    Ok((agent.worker, secret))
}

/// Issues `worker` a new secret, replacing the old one.
pub async fn issue(engine: &LiveEngine, worker: Sid) -> Result<String, AgentError> {
    let secret = random_hex().map_err(AgentError::Random)?;
    engine.put(&record(worker, &secret, crate::live::now())).await?;
    Ok(secret)
}

/// The worker named `name` (ignoring case) if `secret` is theirs.
pub fn sign_in(engine: &LiveEngine, name: &str, secret: &str) -> Result<Option<Sid>, StoreError> {
    let Some(worker) = engine.read(|engine| engine.worker_by_name(name).map(|worker| worker.sid)) else {
        return Ok(None);
    };
    let records = engine.stored::<AgentRecord>()?;
    let found = records.iter().find(|AgentRecord::V1(agent)| agent.worker == worker);
    Ok(found.filter(|record| verify(record, secret)).map(|_| worker))
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
}
