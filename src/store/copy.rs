//! `switchboard store copy`: everything a stopped Switchboard keeps, from one store to another,
//! empty one (a sled directory into PostgreSQL, or back): the routing state as a snapshot at the
//! source's last command, every keyed record (calls, conversations, outbox, agents' secrets,
//! idempotency keys...), the kept credentials, and the stored events. The target then starts
//! exactly where the source stopped.

use crate::routing::Engine;

use super::backend::{Backend, Group};
use super::{
    AgentRecord, CallRecord, ConversationRecord, Keyed, MessagePageRecord, OnceRecord, OutboxRecord,
    SignOutRecord, StoreError,
};

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The command the copied state was taken after.
    pub seq: u64,
    pub records: usize,
    pub event_groups: usize,
}

/// The kept values a store may hold (generated credentials).
const KEPT: [&str; 2] = ["account_sid", "auth_token"];

/// Records written per group.
const BATCH: usize = 500;

/// Copies what `from` holds into `to`, which must hold nothing.
pub fn copy(from: &dyn Backend, to: &dyn Backend) -> Result<Copied, StoreError> {
    let target = to.recover()?;
    let prefixes = [
        CallRecord::PREFIX,
        ConversationRecord::PREFIX,
        MessagePageRecord::PREFIX,
        AgentRecord::PREFIX,
        SignOutRecord::PREFIX,
        OutboxRecord::PREFIX,
        OnceRecord::PREFIX,
    ];
    let mut target_records = 0;
    for prefix in prefixes {
        target_records += to.scan_prefix(prefix)?.len();
    }
    if target.snapshot.is_some() || !target.commands.is_empty() || target.last_event > 0 || target_records > 0
    {
        return Err(StoreError::Write(
            "the target already holds data: copy into a new sled directory or an unused PostgreSQL workspace"
                .to_owned(),
        ));
    }
    let source = from.recover()?;
    let snapshot = source
        .snapshot
        .ok_or_else(|| StoreError::Write("the source holds no workspace: nothing to copy".to_owned()))?;
    let mut engine = Engine::import(snapshot)
        .map_err(|err| StoreError::Write(format!("the source does not load: {err}")))?;
    let mut seq = source.snapshot_seq;
    for (at_seq, at, command) in &source.commands {
        engine.apply(command, *at).map_err(|err| {
            StoreError::Write(format!("the source's command {at_seq} does not replay: {err}"))
        })?;
        engine.take_events();
        seq = *at_seq;
    }
    for name in KEPT {
        if let Some(value) = from.kept(name)? {
            to.kept_value(name, value)?;
        }
    }
    let mut records = 0;
    for prefix in prefixes {
        for batch in from.scan_prefix(prefix)?.chunks(BATCH) {
            records += batch.len();
            let records = batch.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect();
            to.write_group(Group { records, ..Group::default() }).map_err(StoreError::Write)?;
        }
    }
    let mut event_groups = 0;
    for group in from.event_groups(None, false) {
        let (key, events) = group?;
        let first = super::u64_from(key.get(2..).unwrap_or_default())
            .ok_or_else(|| from.corrupt(&key, "an event group's key without its sequence".to_owned()))?;
        to.write_group(Group { events: Some((first, events)), ..Group::default() })
            .map_err(StoreError::Write)?;
        event_groups += 1;
    }
    // Last: a target with a snapshot is one a server would start on.
    to.write_snapshot(seq, &engine.export())?;
    to.sync().map_err(StoreError::Write)?;
    Ok(Copied { seq, records, event_groups })
}
