//! The boundary between the store's shared machinery (group commit, tickets, "a failed group
//! is final", publishing events once durable, in `mod.rs`) and the medium that holds the data.
//! Everything that touches the medium is a [`Backend`] method; sled's is [`super::SledBackend`],
//! the default. A backend shared by several nodes will implement the same trait, checking its
//! fence in [`Backend::write_group`].

use crate::routing::Snapshot;

use super::{KeyedWrite, Recovered, StoreError};

/// One group of changes, as the flusher gathers them: written atomically, so that a crash keeps
/// or loses it whole.
#[derive(Debug, Default)]
pub struct Group {
    /// The commands' log record (a JSON array), keyed by the last one's sequence.
    pub commands: Option<(u64, Vec<u8>)>,
    /// Their events (a JSON array), keyed by the first one's sequence.
    pub events: Option<(u64, Vec<u8>)>,
    /// Keyed records to put (`Some`) or delete (`None`), in order.
    pub records: Vec<KeyedWrite>,
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Stored event groups, `(key, value)` with the group's first event sequence in the key, in
/// the order asked for; read lazily, a group at a time.
pub type EventGroups<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + Send + 'a>;

/// What a storage medium does for the store. Errors from the write path are plain messages:
/// the store makes them final (`StoreError::Write`).
pub trait Backend: Send + Sync + 'static {
    /// Reads the snapshot, the commands logged since and the last event's sequence, setting
    /// the medium up on a first start.
    fn recover(&self) -> Result<Recovered, StoreError>;

    /// Writes one group atomically; durable once [`Backend::sync`] returns after it.
    fn write_group(&self, group: Group) -> Result<(), String>;

    /// Makes every group written so far durable.
    fn sync(&self) -> Result<(), String>;

    /// The value under `key`, among what is written.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every `(key, value)` under `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;

    /// The event groups whose first event is numbered below `below` (all, with `None`), newest
    /// or oldest first.
    fn event_groups(&self, below: Option<u64>, newest_first: bool) -> EventGroups<'_>;

    /// The value kept under `name`; on first use, `generated`, made durable before it is
    /// returned.
    fn kept_value(&self, name: &str, generated: String) -> Result<String, StoreError>;

    /// The value kept under `name`, if one was.
    fn kept(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Makes `snapshot`, taken after command `seq`, the one recovery starts from, and drops
    /// the commands it covers. Every group written before is in place, and is durable once
    /// this returns.
    fn write_snapshot(&self, seq: u64, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// Deletes the event groups whose first events are `firsts` (the oldest, as
    /// [`super::Store::prune_events`] chose them).
    fn delete_event_groups(&self, firsts: &[u64]) -> Result<(), StoreError>;

    /// Every key and value, in key order, for tests and for looking at the data by hand.
    fn dump(&self) -> Vec<Entry>;

    /// A value that does not decode, named by where it is.
    fn corrupt(&self, key: &[u8], message: String) -> StoreError;

    /// The backend itself, for tests that look inside it.
    fn as_any(&self) -> &dyn std::any::Any;
}
