//! The default storage medium: sled, in the data directory, and the snapshot in a file of its
//! own beside it. The only file that uses sled.
//!
//! Key layout (one tree, read in one ordered pass on recovery):
//!
//! | key                          | value                                   |
//! |------------------------------|-----------------------------------------|
//! | `m:format`                   | the format version, `1`                 |
//! | `m:snapshot_seq`             | last command covered by the snapshot     |
//! | `m:snapshot_file`           | the snapshot's file, `snapshots/` + its seq (20 digits) + `.json` |
//! | `m:kept:` + name             | a value generated once and kept (credentials) |
//! | `s:0head`, `s:1worker:`...   | the snapshot as the first stores kept it (still read; the next snapshot deletes it) |
//! | `c:` + seq (BE u64)          | a group of logged commands, the last one's seq (a JSON array; a single object in the first layout) |
//! | `e:` + event sequence (BE)   | the group's events, keyed by the first one's sequence, for the Events API and callbacks |
//! | `v:` + CallSid               | a call in line or bridged: its task, its agent |
//! | `k:` + customer `\|` number  | a text conversation: IVR place, task, newest messages, STOP |
//! | `p:` + customer `\|` number `\|` page (10 digits) | a sealed page of its older messages |
//! | `o:` + id (20 digits)        | an outgoing text message and its delivery state |
//! | `a:` + WorkerSid             | an agent's sign-in secret, as a keyed digest |
//! | `n:` + nonce                 | a signed-out browser session, until it would have expired |
//! | `i:` + route and key         | a REST request made with an `Idempotency-Key`, for a day |
//!
//! A group is one sled `Batch`; [`Backend::sync`] is sled's blocking `flush` (nobody awaits
//! sled's `flush_async`, which hung under concurrency here, DESIGN §7).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::{Backend, Entry, EventGroups, Group};
use super::records::{self, SnapshotEncoding, SnapshotRecord};
use super::{Recovered, StoreError, key_u64, printable_key, u64_from};
use crate::routing::{Millis, Snapshot};

const FORMAT: &[u8] = b"1";

/// The folder in the data directory that holds the snapshot file.
pub(super) const SNAPSHOTS: &str = "snapshots";

/// Where the first stores kept their snapshot: records in sled.
const LEGACY_SNAPSHOT: &[u8] = b"s:";

/// The most keys a snapshot deletes in one batch.
const PRUNE_BATCH: usize = 1_000;

/// How often sled's own thread writes its buffers and reclaims dead space.
const SLED_FLUSH_EVERY_MS: u64 = 200;

/// How long to wait for a directory lock that a store closed in this process still holds (sled
/// releases it from a background thread), before concluding another process has it.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// sled in `dir`.
pub struct SledBackend {
    dir: PathBuf,
    db: sled::Db,
}

impl SledBackend {
    /// Opens (or creates) the sled tree in `dir`, with its page cache bounded to `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let open_error = |message: String| StoreError::Open { dir: dir.to_owned(), message };
        std::fs::create_dir_all(dir).map_err(|err| open_error(err.to_string()))?;
        let db = open_sled(dir, cache_bytes).map_err(open_error)?;
        Ok(SledBackend { dir: dir.to_owned(), db })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sled tree itself, for tests that damage it on purpose.
    #[cfg(test)]
    pub(super) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// sled could not read the directory.
    fn read_error(&self, err: sled::Error) -> StoreError {
        StoreError::Open { dir: self.dir.clone(), message: err.to_string() }
    }

    /// The snapshot file taken after command `seq`.
    fn read_snapshot_file(&self, seq: u64) -> Result<Snapshot, StoreError> {
        let path = self.dir.join(SNAPSHOTS).join(snapshot_file_name(seq));
        let damaged = |message: String| StoreError::DamagedFile { path: path.clone(), message };
        let bytes = std::fs::read(&path).map_err(|err| damaged(err.to_string()))?;
        let record: SnapshotRecord =
            serde_json::from_slice(&bytes).map_err(|err| damaged(err.to_string()))?;
        record.into_snapshot().map_err(|err| damaged(err.0))
    }

    /// The snapshot as the first stores kept it: records under `s:` in sled.
    fn read_legacy_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let mut parts = SnapshotParts::default();
        for entry in self.db.scan_prefix(LEGACY_SNAPSHOT) {
            let (key, value) = entry.map_err(|err| self.read_error(err))?;
            parts
                .add(&key[LEGACY_SNAPSHOT.len()..], &value)
                .map_err(|message| self.corrupt(&key, message))?;
        }
        parts.assemble().map_err(|message| self.corrupt(b"s:0head", message))
    }
}

impl Backend for SledBackend {
    fn recover(&self) -> Result<Recovered, StoreError> {
        let read_error = |err| self.read_error(err);
        match self.db.get(b"m:format").map_err(read_error)? {
            None if self.db.is_empty() => {
                self.db.insert(b"m:format", FORMAT).map_err(read_error)?;
            }
            Some(format) if &*format == FORMAT => {}
            other => {
                let found =
                    other.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_else(|| "none".into());
                return Err(self.corrupt(b"m:format", format!("format {found}, expected 1")));
            }
        }
        let snapshot_seq = match self.db.get(b"m:snapshot_seq").map_err(read_error)? {
            Some(bytes) => u64_from(&bytes)
                .ok_or_else(|| self.corrupt(b"m:snapshot_seq", "not a sequence number".to_owned()))?,
            None => 0,
        };
        let snapshot = match self.db.get(b"m:snapshot_file").map_err(read_error)? {
            Some(bytes) => {
                let seq = u64_from(&bytes)
                    .ok_or_else(|| self.corrupt(b"m:snapshot_file", "not a sequence number".to_owned()))?;
                Some(self.read_snapshot_file(seq)?)
            }
            None => self.read_legacy_snapshot()?,
        };
        let groups = self.db.scan_prefix(b"c:").map(|entry| {
            let (key, value) = entry.map_err(read_error)?;
            let last = u64_from(&key[2..]).ok_or_else(|| self.corrupt(&key, "bad key".to_owned()))?;
            Ok((key.to_vec(), last, value.to_vec()))
        });
        let commands = super::commands_after(snapshot_seq, groups, self)?;
        let last_event = match self.db.scan_prefix(b"e:").next_back() {
            Some(entry) => {
                let (key, value) = entry.map_err(read_error)?;
                super::last_event_in(&key, &value, self)?
            }
            None => 0,
        };
        Ok(Recovered { snapshot, snapshot_seq, commands, last_event })
    }

    fn write_group(&self, group: Group) -> Result<(), String> {
        let mut batch = sled::Batch::default();
        if let Some((last_seq, commands)) = group.commands {
            batch.insert(key_u64(b"c:", last_seq), commands);
        }
        if let Some((first, events)) = group.events {
            batch.insert(key_u64(b"e:", first), events);
        }
        for (key, value) in group.records {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.db.apply_batch(batch).map_err(|err| format!("writing a group of changes failed: {err}"))
    }

    fn sync(&self) -> Result<(), String> {
        self.db.flush().map(|_| ()).map_err(|err| err.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.db.get(key).map_err(|err| StoreError::Write(err.to_string()))?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|err| StoreError::Write(err.to_string()))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    fn event_groups(&self, below: Option<u64>, newest_first: bool) -> EventGroups<'_> {
        let groups = match below {
            Some(below) => self.db.range(key_u64(b"e:", 0)..key_u64(b"e:", below)),
            None => self.db.scan_prefix(b"e:"),
        };
        let entry = |entry: sled::Result<(sled::IVec, sled::IVec)>| {
            let (key, value) = entry.map_err(|err| StoreError::Write(err.to_string()))?;
            Ok((key.to_vec(), value.to_vec()))
        };
        if newest_first { Box::new(groups.rev().map(entry)) } else { Box::new(groups.map(entry)) }
    }

    fn kept(&self, name: &str) -> Result<Option<String>, StoreError> {
        let key = [b"m:kept:".as_slice(), name.as_bytes()].concat();
        let value = self.db.get(&key).map_err(|err| StoreError::Write(err.to_string()))?;
        value
            .map(|value| String::from_utf8(value.to_vec()).map_err(|err| self.corrupt(&key, err.to_string())))
            .transpose()
    }

    fn kept_value(&self, name: &str, generated: String) -> Result<String, StoreError> {
        let key = [b"m:kept:".as_slice(), name.as_bytes()].concat();
        let write_error = |err: sled::Error| StoreError::Write(err.to_string());
        if let Some(value) = self.db.get(&key).map_err(write_error)? {
            return String::from_utf8(value.to_vec()).map_err(|err| self.corrupt(&key, err.to_string()));
        }
        self.db.insert(&key, generated.as_bytes()).map_err(write_error)?;
        self.db.flush().map_err(write_error)?;
        Ok(generated)
    }

    /// The snapshot goes to a file of its own, written whole and synced, then made current by
    /// one small sled batch; the previous file and the covered commands are deleted after it
    /// (sled's, a bounded batch at a time). Written through sled, a snapshot (tens of MiB at a
    /// busy center) held sled's tree while its batch was applied and made the next group's
    /// flush write it all, stalling requests for 100 ms and more; rewritten every few minutes,
    /// it was also most of what sled's log had to reclaim (BENCHMARKS.md, the soak). A crash
    /// before the commit leaves the previous snapshot current; whatever a crash leaves
    /// undeleted, the next snapshot deletes.
    fn write_snapshot(&self, seq: u64, snapshot: &Snapshot) -> Result<(), StoreError> {
        let write_error = |err: sled::Error| StoreError::Write(err.to_string());
        let folder = self.dir.join(SNAPSHOTS);
        let path = folder.join(snapshot_file_name(seq));
        let file_error = |err: std::io::Error| StoreError::Write(format!("{}: {err}", path.display()));
        std::fs::create_dir_all(&folder).map_err(file_error)?;
        let unfinished = path.with_extension("partial");
        let mut writer = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&unfinished).map_err(file_error)?,
        );
        serde_json::to_writer(&mut writer, &SnapshotEncoding(snapshot))
            .map_err(|err| file_error(err.into()))?;
        let file = writer.into_inner().map_err(|err| file_error(err.into_error()))?;
        file.sync_all().map_err(file_error)?;
        drop(file);
        std::fs::rename(&unfinished, &path).map_err(file_error)?;
        // The rename itself must be on disk before sled names the file.
        std::fs::File::open(&folder).and_then(|folder| folder.sync_all()).map_err(file_error)?;
        let mut commit = sled::Batch::default();
        commit.insert(b"m:snapshot_seq".as_slice(), seq.to_be_bytes().as_slice());
        commit.insert(b"m:snapshot_file".as_slice(), seq.to_be_bytes().as_slice());
        self.db.apply_batch(commit).map_err(write_error)?;
        self.db.flush().map_err(write_error)?;
        for entry in std::fs::read_dir(&folder).map_err(file_error)? {
            let other = entry.map_err(file_error)?.path();
            if other != path {
                std::fs::remove_file(&other).map_err(file_error)?;
            }
        }
        let legacy = self.db.scan_prefix(LEGACY_SNAPSHOT).keys();
        let covered = self.db.range(key_u64(b"c:", 0)..=key_u64(b"c:", seq)).keys();
        let mut keys = legacy.chain(covered).peekable();
        while keys.peek().is_some() {
            let mut batch = sled::Batch::default();
            for key in keys.by_ref().take(PRUNE_BATCH) {
                batch.remove(key.map_err(write_error)?);
            }
            self.db.apply_batch(batch).map_err(write_error)?;
        }
        Ok(())
    }

    /// The deletions ride on the next flush: losing them to a crash only means pruning them
    /// again.
    fn delete_event_groups(&self, firsts: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for first in firsts {
            batch.remove(key_u64(b"e:", *first));
        }
        self.db.apply_batch(batch).map_err(|err| StoreError::Write(err.to_string()))
    }

    fn dump(&self) -> Vec<Entry> {
        self.db.iter().flatten().map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
    }

    fn corrupt(&self, key: &[u8], message: String) -> StoreError {
        StoreError::Corrupt { dir: self.dir.clone(), key: printable_key(key), message }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A snapshot as the first stores kept it in sled (records under `s:`), put back together.
#[derive(Default)]
struct SnapshotParts {
    head: Option<records::SnapshotV1>,
    workers: Vec<records::WorkerV1>,
    queues: Vec<records::QueueV1>,
    workflows: Vec<records::WorkflowV1>,
    tasks: Vec<records::TaskV1>,
    reservations: Vec<records::ReservationV1>,
    timers: Vec<(Millis, u64, records::TimerV1)>,
}

/// One snapshot record of the first layout, tagged with its version: a run of entities
/// (`chunk_v1`), or a single entity (`v1`, as the very first stores wrote them).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Part<T> {
    V1(T),
    ChunkV1(Vec<T>),
}

impl SnapshotParts {
    /// Adds the record stored under `kind` (its key after `s:`).
    fn add(&mut self, kind: &[u8], value: &[u8]) -> Result<(), String> {
        fn decode<T: for<'de> Deserialize<'de>>(value: &[u8], into: &mut Vec<T>) -> Result<(), String> {
            match serde_json::from_slice::<Part<T>>(value).map_err(|err| err.to_string())? {
                Part::V1(one) => into.push(one),
                Part::ChunkV1(many) => into.extend(many),
            }
            Ok(())
        }
        match kind.first() {
            Some(b'0') => {
                let mut head = Vec::new();
                decode(value, &mut head)?;
                self.head = head.pop();
            }
            Some(b'1') => decode(value, &mut self.workers)?,
            Some(b'2') => decode(value, &mut self.queues)?,
            Some(b'3') => decode(value, &mut self.workflows)?,
            Some(b'4') => decode(value, &mut self.tasks)?,
            Some(b'5') => decode(value, &mut self.reservations)?,
            Some(b'6') => decode(value, &mut self.timers)?,
            _ => return Err("unknown snapshot record".to_owned()),
        }
        Ok(())
    }

    fn assemble(self) -> Result<Option<Snapshot>, String> {
        let Some(mut head) = self.head else {
            return match self.workers.is_empty() && self.tasks.is_empty() && self.queues.is_empty() {
                true => Ok(None),
                false => Err("snapshot records without their head".to_owned()),
            };
        };
        head.workers = self.workers;
        head.queues = self.queues;
        head.workflows = self.workflows;
        head.tasks = self.tasks;
        head.reservations = self.reservations;
        head.timers = self.timers;
        SnapshotRecord::V1(Box::new(head)).into_snapshot().map(Some).map_err(|err| err.0)
    }
}

fn open_sled(dir: &Path, cache_bytes: u64) -> Result<sled::Db, String> {
    let started = std::time::Instant::now();
    loop {
        // sled panics on some damaged files instead of returning an error; a damaged data
        // directory must give a clear message, not a crash.
        // sled's own background thread stays on: it is what reclaims the space of rewritten
        // and deleted values (`attempt_gc`), and without it the directory grew without end
        // (BENCHMARKS.md, the soak). It only makes what is already in sled durable sooner:
        // commands reach sled from the flusher alone, and are announced after its flushes.
        let config = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .flush_every_ms(Some(SLED_FLUSH_EVERY_MS))
                .open()
        };
        match std::panic::catch_unwind(config) {
            Ok(Ok(db)) => return Ok(db),
            // sled reports the lock as an I/O error whose only mark is its message.
            Ok(Err(err)) if err.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(
                        "it is in use by another process (is another Switchboard running on it?)".to_owned()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err("the database files are damaged (sled could not read them)".to_owned()),
        }
    }
}

pub(super) fn snapshot_file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}
