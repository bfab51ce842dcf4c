//! Durable storage: the only module that imports sled (in `sled_backend.rs`).
//!
//! The engine is deterministic, so what is stored is a snapshot of its state plus the log of
//! commands applied since (with their times and the events they produced). Recovery loads the
//! snapshot and replays the log. Commands are logged in groups: each group is one atomic `Batch`
//! written by the flusher, so a crash keeps or loses a group whole, and the log on disk is
//! always a prefix of the commands applied in memory.
//!
//! What touches the medium is behind [`backend::Backend`]: sled in the data directory
//! ([`SledBackend`], whose module doc has the key layout) unless configured otherwise. The group
//! commit, the tickets, "a failed group is final" and publishing events once durable are here,
//! shared by every backend.
//!
//! Durability: a command or record is acknowledged when a flush covering it has finished: each
//! append or put returns a [`Ticket`] to wait on. Appending only queues the encoded command in
//! memory; one flusher thread writes everything queued as one
//! group (one log record and one events record, however many commands), makes it durable
//! ([`backend::Backend::sync`]), and wakes every waiter whose command it covered (group commit).
//! Concurrent commands share both the writes and the sync.

pub mod backend;
pub mod copy;
mod postgres_backend;
mod postgres_lease;
mod records;
mod sled_backend;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::watch;

use crate::routing::{Command, Event, Millis, Sid, Snapshot};
use backend::Backend;
pub use copy::{Copied, copy};
#[cfg(test)]
pub use postgres_backend::IDLE_CHECK_FOR_TESTS;
pub use postgres_backend::{FOLLOW_POLL, LeaseSettings, PostgresBackend};
pub use records::{
    AgentRecord, AgentV1, CallRecord, CallV1, CommandRecord, ConversationRecord, ConversationV1,
    ConversationV2, EventRecord, Keyed, MediaV1, MessagePageRecord, MessagePageV1, MessageV1, OnceRecord,
    OnceV1, OutboxRecord, OutboxV1, RecordError, SignOutRecord, SignOutV1, SnapshotEncoding, SnapshotRecord,
};
pub use sled_backend::SledBackend;

/// sled's page cache, unless configured: sled's own default (1 GiB) dwarfs the routing state,
/// which lives in memory anyway; sled's cache only serves recovery and the event history.
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 20;

/// How acknowledged commands are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after a flush that covers the command (group commit).
    Flush,
    /// Acknowledge at once; flush every `interval`. A crash loses up to `interval` of commands.
    Periodic { interval: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled cannot open or read the data directory (damaged, truncated, locked by another
    /// process...).
    #[error("cannot open the data directory {dir}: {message}")]
    Open { dir: PathBuf, message: String },
    /// A record does not decode: the directory was damaged or written by another program.
    #[error("the data directory {dir} holds a damaged record at key {key}: {message}")]
    Corrupt { dir: PathBuf, key: String, message: String },
    /// A record read from a database does not decode.
    #[error("the store at {place} holds a damaged record at key {key}: {message}")]
    Damaged { place: String, key: String, message: String },
    /// The snapshot file is missing or does not decode.
    #[error("the snapshot file {path} is damaged or missing: {message}")]
    DamagedFile { path: PathBuf, message: String },
    /// A write or flush failed; the server stops rather than acknowledge what may be lost.
    #[error("storage failure: {0}")]
    Write(String),
    /// Another node leads the workspace now: this one writes and answers nothing more.
    #[error("this node no longer leads: {0}")]
    LostLease(String),
}

/// What the directory held: the latest snapshot (none on a first start) and the commands since.
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    pub snapshot_seq: u64,
    /// `(sequence, time, command)` in log order.
    pub commands: Vec<(u64, Millis, Command)>,
    /// The highest event sequence stored.
    pub last_event: u64,
}

/// The open store. Cheap to share behind an `Arc`.
pub struct Store {
    backend: Arc<dyn Backend>,
    flusher: Arc<Flusher>,
    thread: Mutex<Option<JoinHandle<()>>>,
    durability: Durability,
}

/// The group-commit flusher's shared state.
struct Flusher {
    backend: Arc<dyn Backend>,
    /// Commands appended but not yet written to sled.
    pending: Mutex<Pending>,
    /// Held while a group is written, so that `written` only ever moves past whole groups.
    writing: Mutex<()>,
    /// The last ticket handed out (tickets count appends and puts, in queue order).
    issued: AtomicU64,
    /// The highest ticket written to sled: a flush covers everything written before it starts,
    /// so it acknowledges up to here, not only up to what was asked for when it woke.
    written: AtomicU64,
    /// The highest ticket someone waits to see durable, and whether to stop.
    requested: Mutex<(u64, bool)>,
    wake: Condvar,
    /// The highest ticket made durable, or the flush error that stopped everything.
    flushed: watch::Sender<Result<u64, String>>,
    /// Flushes done and the time they took, for the benchmarks' group-commit figures.
    flushes: AtomicU64,
    flush_nanos: AtomicU64,
    /// Each written command's events with its ticket, in log order, until a flush covers it.
    written_events: Mutex<VecDeque<(u64, Vec<Event>)>>,
    /// Held while events are handed to `publish`, so that they leave in log order whichever
    /// thread's flush covered them.
    publishing: Mutex<()>,
    /// Where events go once on disk ([`Store::publish_when_durable`]); dropped without one.
    publish: OnceLock<Publisher>,
    /// Told of each group commit: the writes it made durable, and its time ([`Store::on_flush`]).
    on_flush: OnceLock<FlushObserver>,
    /// The sequence of the newest event written to sled, for pruning by count.
    last_event: AtomicU64,
    /// The sequence of the newest event published: on disk, and announced. The Events API
    /// reads no further, so it never shows what a crash could still take back.
    published_event: AtomicU64,
}

/// What receives each command's events once the group that holds the command is on disk.
pub type Publisher = Box<dyn Fn(Vec<Event>) + Send + Sync>;

/// One keyed record to put (`Some` value) or delete (`None`), encoded by [`Store::encode`]
/// or named by [`Store::key_of`].
pub type KeyedWrite = (Vec<u8>, Option<Vec<u8>>);

/// Stored events in order ([`Store::events_newest_first`], [`Store::events_oldest_first`]):
/// one group of events decoded at a time, an error (a record that does not decode) ending it.
pub struct StoredEvents<'a> {
    backend: &'a dyn Backend,
    groups: backend::EventGroups<'a>,
    /// The rest of the group being read, in the iterator's order.
    group: std::vec::IntoIter<EventRecord>,
    newest_first: bool,
    before: Option<u64>,
    /// Set after an error: nothing follows a record that does not decode.
    failed: bool,
}

impl Iterator for StoredEvents<'_> {
    type Item = Result<EventRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.group.next() {
                let EventRecord::V1 { sequence, .. } = &record;
                if self.before.is_none_or(|before| *sequence < before) {
                    return Some(Ok(record));
                }
                continue;
            }
            if self.failed {
                return None;
            }
            let decoded = self.groups.next()?.and_then(|(key, value)| {
                serde_json::from_slice::<Vec<EventRecord>>(&value)
                    .map_err(|err| self.backend.corrupt(&key, err.to_string()))
            });
            match decoded {
                Ok(mut records) => {
                    if self.newest_first {
                        records.reverse();
                    }
                    self.group = records.into_iter();
                }
                Err(err) => {
                    self.failed = true;
                    return Some(Err(err));
                }
            }
        }
    }
}

/// What a caller waits on to know that an append or a put is durable ([`Store::durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "a change is durable only once its ticket is"]
pub struct Ticket(u64);

/// The next group: consecutive commands' encoded records and events, comma-separated, ready to
/// become two JSON arrays, and the other records written with them.
#[derive(Default)]
struct Pending {
    last_ticket: u64,
    /// Records to put (`Some`) or delete (`None`), in order.
    records: Vec<KeyedWrite>,
    last_seq: u64,
    commands: Vec<u8>,
    first_event: Option<u64>,
    events: Vec<u8>,
    /// The events, to publish once durable: `(ticket, events)` per command, in log order.
    to_publish: Vec<(u64, Vec<Event>)>,
}

/// What group commit did since the store opened.
/// What [`Store::on_flush`] is given: the writes a group commit made durable, and its time.
pub type FlushObserver = Box<dyn Fn(u64, Duration) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushStatistics {
    pub flushes: u64,
    pub total: Duration,
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads what it holds.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Store, Recovered), StoreError> {
        Store::open_with_cache(dir, durability, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_bytes`.
    pub fn open_with_cache(
        dir: &Path,
        durability: Durability,
        cache_bytes: u64,
    ) -> Result<(Store, Recovered), StoreError> {
        Store::open_on(Arc::new(SledBackend::open(dir, cache_bytes)?), durability)
    }

    /// The store on `backend`, and what it holds.
    pub fn open_on(
        backend: Arc<dyn Backend>,
        durability: Durability,
    ) -> Result<(Store, Recovered), StoreError> {
        let store = Store::start(backend, durability);
        // Everything stored before the start is on disk.
        let recovered = store.recover()?;
        Ok((store, recovered))
    }

    /// Reads what the medium holds again (a standby starting over from a newer snapshot).
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let recovered = self.backend.recover()?;
        self.adopt_events(recovered.last_event);
        Ok(recovered)
    }

    /// Takes `last_event` as the newest event stored and announced: events a standby replayed,
    /// or those its leader stored, which it adopts when it takes over.
    pub fn adopt_events(&self, last_event: u64) {
        self.flusher.last_event.fetch_max(last_event, Ordering::SeqCst);
        self.flusher.published_event.fetch_max(last_event, Ordering::SeqCst);
    }

    fn start(backend: Arc<dyn Backend>, durability: Durability) -> Store {
        let (flushed, _) = watch::channel(Ok(0));
        let flusher = Arc::new(Flusher {
            backend: backend.clone(),
            pending: Mutex::new(Pending::default()),
            writing: Mutex::new(()),
            issued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            requested: Mutex::new((0, false)),
            wake: Condvar::new(),
            flushed,
            flushes: AtomicU64::new(0),
            flush_nanos: AtomicU64::new(0),
            written_events: Mutex::new(VecDeque::new()),
            publishing: Mutex::new(()),
            publish: OnceLock::new(),
            on_flush: OnceLock::new(),
            last_event: AtomicU64::new(0),
            published_event: AtomicU64::new(0),
        });
        let thread = {
            let flusher = flusher.clone();
            std::thread::Builder::new()
                .name("store-flusher".to_owned())
                .spawn(move || flusher.run(durability))
                .expect("the flusher thread starts")
        };
        Store { backend, flusher, thread: Mutex::new(Some(thread)), durability }
    }

    /// Logs command `seq` and its events, atomically, after every command appended before.
    /// Not yet durable: see [`Store::durable`].
    pub fn append(
        &self,
        seq: u64,
        at: Millis,
        command: &Command,
        events: &[Event],
    ) -> Result<Ticket, StoreError> {
        self.append_encoded(seq, &Store::encode_command(at, command)?, events.to_vec(), None)
    }

    /// The key and value of a keyed record, for [`Store::append_encoded`].
    pub fn encode<R: Keyed>(record: &R) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let value = serde_json::to_vec(record).map_err(|err| StoreError::Write(err.to_string()))?;
        Ok((keyed::<R>(&record.id()), value))
    }

    /// The log record of `command` applied at `at`, encoded ahead of [`Store::append_encoded`]
    /// so that callers can do it outside their locks.
    pub fn encode_command(at: Millis, command: &Command) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&CommandRecord::new(at, command)).map_err(|err| StoreError::Write(err.to_string()))
    }

    /// [`Store::append`] with the command already encoded by [`Store::encode_command`], and
    /// `also` a keyed record ([`Store::encode`]) written in the same group. Callers append in
    /// sequence order, one at a time (the engine lock). The events go to the publisher once
    /// the group is on disk.
    pub fn append_encoded(
        &self,
        seq: u64,
        record: &[u8],
        events: Vec<Event>,
        also: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Ticket, StoreError> {
        let mut encoded_events = Vec::new();
        for event in &events {
            if !encoded_events.is_empty() {
                encoded_events.push(b',');
            }
            serde_json::to_writer(&mut encoded_events, &EventRecord::from(event))
                .map_err(|err| StoreError::Write(err.to_string()))?;
        }
        let mut pending = self.flusher.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let ticket = self.flusher.issue(&mut pending);
        pending.last_seq = seq;
        if !pending.commands.is_empty() {
            pending.commands.push(b',');
        }
        pending.commands.extend_from_slice(record);
        // Event sequences are consecutive, so a group's events are one record keyed by the
        // first one's sequence, and counts follow from the keys alone.
        if let Some(first) = events.first() {
            if pending.first_event.is_some() {
                pending.events.push(b',');
            }
            pending.first_event.get_or_insert(first.sequence);
            pending.events.extend_from_slice(&encoded_events);
        }
        if let Some((key, value)) = also {
            pending.records.push((key, Some(value)));
        }
        if !events.is_empty() {
            pending.to_publish.push((ticket.0, events));
        }
        Ok(ticket)
    }

    /// Hands every command's events to `publisher` once the group that holds the command is
    /// on disk, in log order, from whichever thread's flush covered it (the flusher's, as a
    /// rule). Nothing is announced that a crash could still take back. Set once, before the
    /// first append; without a publisher, events are only stored.
    pub fn publish_when_durable(&self, publisher: Publisher) {
        if self.flusher.publish.set(publisher).is_err() {
            tracing::error!("the store's event publisher was set twice; the first one stays");
        }
    }

    /// Has `observer` told of every group commit from now on: how many writes it made durable,
    /// and how long it took (monitoring). Set once.
    pub fn on_flush(&self, observer: FlushObserver) {
        if self.flusher.on_flush.set(observer).is_err() {
            tracing::error!("the store's flush observer was set twice; the first one stays");
        }
    }

    /// Stores `record` under its key, in the next group. Durable once the ticket is.
    pub fn put<R: Keyed>(&self, record: &R) -> Result<Ticket, StoreError> {
        let (key, value) = Store::encode(record)?;
        Ok(self.flusher.queue_record(key, Some(value)))
    }

    /// Stores records encoded by [`Store::encode`] (`None`: delete the key), all in the same
    /// group: a crash keeps all of them or none.
    pub fn put_together(&self, records: Vec<KeyedWrite>) -> Ticket {
        let mut pending = self.flusher.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.records.extend(records);
        self.flusher.issue(&mut pending)
    }

    /// The key of the record of kind `R` with key `id`, for [`Store::put_together`].
    pub fn key_of<R: Keyed>(id: &str) -> Vec<u8> {
        keyed::<R>(id)
    }

    /// Deletes the record of kind `R` with key `id`, in the next group.
    pub fn delete<R: Keyed>(&self, id: &str) -> Ticket {
        self.flusher.queue_record(keyed::<R>(id), None)
    }

    /// The record of kind `R` with key `id`, if there is one. For records written once and
    /// never changed (a conversation's sealed pages): one found in sled is current, and only
    /// one not found there may still be queued.
    pub fn get<R: Keyed>(&self, id: &str) -> Result<Option<R>, StoreError> {
        let key = keyed::<R>(id);
        let value = match self.backend.get(&key)? {
            Some(value) => Some(value),
            None => {
                self.flusher.write_pending().map_err(StoreError::Write)?;
                self.backend.get(&key)?
            }
        };
        value
            .map(|value| {
                serde_json::from_slice(&value).map_err(|err| self.backend.corrupt(&key, err.to_string()))
            })
            .transpose()
    }

    /// Every record of kind `R`, in key order.
    pub fn all<R: Keyed>(&self) -> Result<Vec<R>, StoreError> {
        self.flusher.write_pending().map_err(StoreError::Write)?;
        let mut records = Vec::new();
        for (key, value) in self.backend.scan_prefix(R::PREFIX)? {
            records.push(
                serde_json::from_slice(&value).map_err(|err| self.backend.corrupt(&key, err.to_string()))?,
            );
        }
        Ok(records)
    }

    /// The stored events, newest first, read one stored group at a time as the iterator is
    /// advanced: a caller that stops early reads no further. With `before`, only the events
    /// numbered below it (the scan starts at the group holding `before - 1`).
    pub fn events_newest_first(&self, before: Option<u64>) -> Result<StoredEvents<'_>, StoreError> {
        // Only what is published: written and flushed is not enough until it is announced,
        // and written alone could still be lost.
        let published = self.flusher.published_event.load(Ordering::SeqCst).saturating_add(1);
        let before = Some(before.map_or(published, |before| before.min(published)));
        Ok(StoredEvents {
            backend: &*self.backend,
            groups: self.backend.event_groups(before, true),
            group: Vec::new().into_iter(),
            newest_first: true,
            before,
            failed: false,
        })
    }

    /// The stored events, oldest first, one stored group at a time (the statistics read them
    /// once at start).
    pub fn events_oldest_first(&self) -> Result<StoredEvents<'_>, StoreError> {
        self.flusher.write_pending().map_err(StoreError::Write)?;
        Ok(StoredEvents {
            backend: &*self.backend,
            groups: self.backend.event_groups(None, false),
            group: Vec::new().into_iter(),
            newest_first: false,
            before: None,
            failed: false,
        })
    }

    /// Flushes done by the group-commit flusher, and their total time.
    pub fn flush_statistics(&self) -> FlushStatistics {
        FlushStatistics {
            flushes: self.flusher.flushes.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.flusher.flush_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Completes when what `ticket` was handed out for (and everything queued before it) is on
    /// disk. With periodic durability it completes at once.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), StoreError> {
        if self.durability != Durability::Flush {
            // Acknowledged at once, but not after a write that failed.
            return match &*self.flusher.flushed.borrow() {
                Ok(_) => Ok(()),
                Err(message) => Err(StoreError::Write(message.clone())),
            };
        }
        self.on_disk(ticket).await
    }

    /// Completes when what `ticket` was handed out for is on disk, whatever the durability
    /// mode: for what must not reach the outside world before it is (a text to send).
    pub async fn on_disk(&self, ticket: Ticket) -> Result<(), StoreError> {
        let Ticket(seq) = ticket;
        self.flusher.request(seq);
        let mut flushed = self.flusher.flushed.subscribe();
        let state = flushed.wait_for(|state| state.as_ref().map_or(true, |&done| done >= seq)).await;
        match state.map(|state| state.clone()) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Write(message)),
            Err(_) => Err(StoreError::Write("the flusher stopped".to_owned())),
        }
    }

    /// The value kept under `name`; on first use, `generated`, stored and flushed before it is
    /// returned (generated credentials must not change on a restart).
    pub fn kept_value(&self, name: &str, generated: String) -> Result<String, StoreError> {
        self.backend.kept_value(name, generated)
    }

    /// Blocking form of [`Store::durable`] for everything appended so far, for start-up and tools.
    pub fn flush(&self) -> Result<(), StoreError> {
        let covered = self.flusher.write_pending().map_err(StoreError::Write)?;
        self.backend.sync().map_err(StoreError::Write)?;
        self.flusher.publish_through(covered);
        Ok(())
    }

    /// Replaces the snapshot with `snapshot`, taken after command `seq`, and drops the commands
    /// it covers (see the backend's [`Backend::write_snapshot`]).
    pub fn write_snapshot(&self, seq: u64, snapshot: &Snapshot) -> Result<(), StoreError> {
        // The commands it covers must be written to be dropped with the rest of their group.
        let covered = self.flusher.write_pending().map_err(StoreError::Write)?;
        // Durable when it returns, and with it everything written before.
        self.backend.write_snapshot(seq, snapshot)?;
        self.flusher.publish_through(covered);
        Ok(())
    }

    /// Deletes the events older than `before`, and the oldest beyond the newest `keep`, whole
    /// groups at a time, a bounded number of groups per call (called again and again, it keeps
    /// up with the appends without ever holding a large batch). Returns how many events went.
    pub fn prune_events(&self, before: Millis, keep: u64) -> Result<u64, StoreError> {
        let last_event = self.flusher.last_event.load(Ordering::SeqCst);
        let (mut firsts, mut removed) = (Vec::new(), 0);
        for entry in self.backend.event_groups(None, false).take(PRUNE_BATCH) {
            let (key, value) = entry?;
            let first =
                u64_from(&key[2..]).ok_or_else(|| self.backend.corrupt(&key, "bad key".to_owned()))?;
            let stored = last_event.saturating_sub(first) + 1;
            let records: Vec<EventRecord> =
                serde_json::from_slice(&value).map_err(|err| self.backend.corrupt(&key, err.to_string()))?;
            let newest = records
                .iter()
                .map(|EventRecord::V1 { timestamp, .. }| *timestamp)
                .max()
                .unwrap_or(Millis::MIN);
            if stored <= keep && newest >= before {
                break;
            }
            firsts.push(first);
            removed += records.len() as u64;
        }
        if !firsts.is_empty() {
            self.backend.delete_event_groups(&firsts)?;
        }
        Ok(removed)
    }

    /// Every key and value, in key order, as text: for tests and for looking at a data
    /// directory by hand.
    pub fn debug_dump(&self) -> String {
        let mut out = String::new();
        if let Err(err) = self.flusher.write_pending() {
            out.push_str(&format!("(the commands not yet written could not be: {err})\n"));
        }
        for (key, value) in self.backend.dump() {
            out.push_str(&printable_key(&key));
            out.push_str(" = ");
            out.push_str(&String::from_utf8_lossy(&value));
            out.push('\n');
        }
        out
    }

    /// The backend, for tests that look inside it.
    #[cfg(test)]
    fn sled(&self) -> &SledBackend {
        self.backend.as_any().downcast_ref().expect("the tests' stores are sled's")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.flusher.stop();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut thread| thread.take()) {
            let _ = thread.join();
        }
        let _ = self.flush();
    }
}

impl Flusher {
    /// The next ticket, for what is being queued in `pending` (whose lock the caller holds).
    fn issue(&self, pending: &mut Pending) -> Ticket {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        pending.last_ticket = ticket;
        Ticket(ticket)
    }

    fn queue_record(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Ticket {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.records.push((key, value));
        self.issue(&mut pending)
    }

    fn request(&self, seq: u64) {
        let mut requested = self.requested.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seq > requested.0 {
            requested.0 = seq;
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        self.requested.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1 = true;
        self.wake.notify_one();
    }

    /// Writes the pending commands, their events and the queued records as one group; returns
    /// the highest ticket now in sled.
    fn write_pending(&self) -> Result<u64, String> {
        let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // After a failed group, nothing more is written or acknowledged: the log on disk must
        // stay a prefix of what was applied, without a hole where that group was.
        if let Err(message) = &*self.flushed.borrow() {
            return Err(message.clone());
        }
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if pending.last_ticket == 0 {
            return Ok(self.written.load(Ordering::SeqCst));
        }
        let array = |items: Vec<u8>| [b"[".as_slice(), &items, b"]"].concat();
        let group = backend::Group {
            commands: (!pending.commands.is_empty()).then(|| (pending.last_seq, array(pending.commands))),
            events: pending.first_event.map(|first| (first, array(pending.events))),
            records: pending.records,
        };
        if let Err(message) = self.backend.write_group(group) {
            let _previous = self.flushed.send_replace(Err(message.clone()));
            return Err(message);
        }
        if let Some(last) = pending.to_publish.last().and_then(|(_, events)| events.last()) {
            self.last_event.store(last.sequence, Ordering::SeqCst);
        }
        // Still under `writing`: the queue keeps the log order.
        self.written_events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(pending.to_publish);
        self.written.store(pending.last_ticket, Ordering::SeqCst);
        Ok(pending.last_ticket)
    }

    /// Publishes the events of every command up to ticket `covered`, which a finished flush
    /// has put on disk, oldest first.
    fn publish_through(&self, covered: u64) {
        let _publishing = self.publishing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let next = {
                let mut written = self.written_events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match written.front() {
                    Some((ticket, _)) if *ticket <= covered => written.pop_front(),
                    _ => None,
                }
            };
            let Some((_, events)) = next else { return };
            let newest = events.last().map(|event| event.sequence);
            if let Some(publish) = self.publish.get() {
                // A publisher that panics must not take the flusher thread with it: every
                // waiter would then wait forever on a server that looks healthy. The failure
                // is final, as a failed write is, and stops the server.
                let published = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| publish(events)));
                if published.is_err() {
                    let message = "publishing durable events failed (a panic in a subscriber)".to_owned();
                    tracing::error!("{message}");
                    let _previous = self.flushed.send_replace(Err(message));
                    return;
                }
            }
            if let Some(newest) = newest {
                self.published_event.fetch_max(newest, Ordering::SeqCst);
            }
        }
    }

    fn run(&self, durability: Durability) {
        let mut flushed = 0;
        loop {
            // Wait until someone waits for a command not yet flushed (or the interval passes).
            {
                let mut requested = self.requested.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                loop {
                    if requested.1 {
                        return;
                    }
                    match durability {
                        Durability::Flush if requested.0 > flushed => break,
                        Durability::Flush => {
                            requested =
                                self.wake.wait(requested).unwrap_or_else(|poisoned| poisoned.into_inner());
                        }
                        Durability::Periodic { interval } => {
                            let (guard, _) = self
                                .wake
                                .wait_timeout(requested, interval)
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                            requested = guard;
                            if !requested.1 {
                                break;
                            }
                        }
                    }
                }
            }
            let started = std::time::Instant::now();
            // Everything written before the flush starts is covered by it.
            let result = self.write_pending().and_then(|written| self.backend.sync().map(|()| written));
            self.flushes.fetch_add(1, Ordering::Relaxed);
            let took = started.elapsed();
            self.flush_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            if took >= SLOW_FLUSH {
                // A request waits for up to two flushes: this is where a slow answer starts.
                tracing::warn!(ms = took.as_millis() as u64, "a group took long to write and flush");
            }
            match result {
                Ok(covered) => {
                    if let Some(observe) = self.on_flush.get() {
                        observe(covered.saturating_sub(flushed), took);
                    }
                    self.publish_through(covered);
                    flushed = flushed.max(covered);
                    // A failure reported meanwhile by another writer stays: it is final.
                    self.flushed.send_if_modified(|state| match state {
                        Ok(_) => {
                            *state = Ok(flushed);
                            true
                        }
                        Err(_) => false,
                    });
                }
                Err(err) => {
                    let _previous = self.flushed.send_replace(Err(err));
                    return;
                }
            }
        }
    }
}

/// A flush this slow is logged.
const SLOW_FLUSH: Duration = Duration::from_millis(50);

/// The most event groups one [`Store::prune_events`] call deletes.
const PRUNE_BATCH: usize = 1_000;

/// The commands logged after `snapshot_seq`, from the log's groups in order (`(key, last
/// sequence, value)`: a JSON array, or a single object in the first layout), checked to have no
/// gap. A group written while a snapshot was taken may straddle it.
fn commands_after(
    snapshot_seq: u64,
    groups: impl Iterator<Item = Result<(Vec<u8>, u64, Vec<u8>), StoreError>>,
    backend: &dyn Backend,
) -> Result<Vec<(u64, Millis, Command)>, StoreError> {
    let mut commands: Vec<(u64, Millis, Command)> = Vec::new();
    for group in groups {
        let (key, last, value) = group?;
        let group: Vec<CommandRecord> = if value.first() == Some(&b'[') {
            serde_json::from_slice(&value)
        } else {
            serde_json::from_slice(&value).map(|record| vec![record])
        }
        .map_err(|err| backend.corrupt(&key, err.to_string()))?;
        let first = (last + 1)
            .checked_sub(group.len() as u64)
            .ok_or_else(|| backend.corrupt(&key, "more commands than sequence numbers".to_owned()))?;
        for (seq, record) in (first..).zip(group) {
            if seq > snapshot_seq {
                let expected = commands.last().map_or(snapshot_seq + 1, |(last, _, _)| last + 1);
                if seq != expected {
                    return Err(backend.corrupt(&key, format!("command {expected} is missing from the log")));
                }
                let (at, command) = record.into_command();
                commands.push((seq, at, command));
            }
        }
    }
    Ok(commands)
}

/// The sequence of the last event in a stored event group.
fn last_event_in(key: &[u8], value: &[u8], backend: &dyn Backend) -> Result<u64, StoreError> {
    let records: Vec<EventRecord> =
        serde_json::from_slice(value).map_err(|err| backend.corrupt(key, err.to_string()))?;
    Ok(records.last().map_or(0, |EventRecord::V1 { sequence, .. }| *sequence))
}

fn keyed<R: Keyed>(id: &str) -> Vec<u8> {
    [R::PREFIX, id.as_bytes()].concat()
}

pub(crate) fn key_u64(prefix: &[u8], value: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&value.to_be_bytes());
    key
}

pub(crate) fn u64_from(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?)).filter(|_| bytes.len() == 8)
}

/// A key as text: its text prefix, then a number or SID where it has one.
pub(crate) fn printable_key(key: &[u8]) -> String {
    let split = key.iter().rposition(|&b| b == b':').map_or(key.len(), |idx| idx + 1);
    let (prefix, rest) = key.split_at(split);
    let rest = match u64_from(rest) {
        Some(number) => number.to_string(),
        None if rest.iter().all(|b| b.is_ascii_graphic()) => String::from_utf8_lossy(rest).into_owned(),
        None => rest.iter().map(|b| format!("{b:02x}")).collect(),
    };
    format!("{}{rest}", String::from_utf8_lossy(prefix))
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_ascii();
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Sid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod test_postgres;
#[cfg(test)]
mod tests;
