//! The routing engine running live: durable, on the wall clock, with its timers firing.
//!
//! [`LiveEngine::open`] recovers the state from the store (the latest snapshot, then the log
//! replayed; on a new data directory, the configured workspace); [`LiveEngine::catch_up`] then
//! fires, in order, every deadline that passed while the server was down, once the subscribers
//! that must see those events are in place. [`LiveEngine::execute`] applies a command
//! under the engine lock, logs it in the same critical section (so the log order is the apply
//! order), and answers only once the log record is durable: acknowledged work survives a crash.
//! [`LiveEngine::run_timers`] sleeps until the engine's next deadline (no polling) and fires it.
//!
//! The engine lock is a `std::sync::Mutex`: nothing is awaited while it is held, and the
//! critical section is a few microseconds of in-memory work plus a sled insert.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};

use crate::config::{Credentials, DurabilityMode, StoreBackend, StoreSettings, TwilioSettings};
use crate::routing::{Command, Engine, Event, Millis, RoutingError, Sid, Snapshot};
use crate::statistics::Statistics;
use crate::store::{
    Durability, FOLLOW_POLL, FlushStatistics, Keyed, KeyedWrite, LeaseSettings, OnceRecord, OnceV1,
    PostgresBackend, Store, StoreError, StoredEvents, Ticket,
};
use crate::workspace::{WorkspaceError, WorkspaceFile};

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

pub struct LiveEngine {
    state: Mutex<State>,
    /// What the engine shares with its maintenance thread.
    shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    /// The cumulative statistics, fed each command's events once durable, in log order (by
    /// the store's publisher); rebuilt at open.
    statistics: Arc<Statistics>,
    /// Woken when a command may have moved the next deadline earlier.
    deadline_changed: Notify,
    snapshot_every: u64,
    /// Writes snapshots and prunes events, off the request path.
    maintenance: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// With PostgreSQL: the lease and the log this node follows while it stands by.
    cluster: Option<Arc<PostgresBackend>>,
    /// Requests made with an idempotency key ([`LiveEngine::execute_once`]).
    once: Mutex<OnceKeys>,
    /// What the statistics are rebuilt with when a standby starts over from a snapshot.
    settings: StoreSettings,
}

/// How long a request's idempotency key is remembered.
const ONCE_KEPT: Millis = 24 * 3600 * 1000;

/// The idempotency keys of the last day.
#[derive(Default)]
struct OnceKeys {
    /// Each key's record, and the ticket of its command until known durable.
    done: std::collections::HashMap<String, (OnceV1, Option<Ticket>)>,
    /// Keys whose request runs now: a second one with the same key waits for the first.
    running: std::collections::HashSet<String>,
    /// Keys in the order they were made, to forget them after [`ONCE_KEPT`].
    by_age: std::collections::VecDeque<(Millis, String)>,
}

impl OnceKeys {
    /// Remembers `record` (made by the command of `ticket`), answering the keys now too old to
    /// keep.
    fn remember(&mut self, record: OnceV1, ticket: Option<Ticket>) -> Vec<String> {
        let newest = record.at;
        self.by_age.push_back((record.at, record.key.clone()));
        self.done.insert(record.key.clone(), (record, ticket));
        let mut forgotten = Vec::new();
        while let Some((at, _)) = self.by_age.front()
            && *at < newest - ONCE_KEPT
        {
            let (_, key) = self.by_age.pop_front().expect("looked at");
            self.done.remove(&key);
            forgotten.push(key);
        }
        forgotten
    }
}

/// What a request made with an idempotency key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// It ran now, creating this (if anything).
    Ran(Option<Sid>),
    /// The same request ran before with this key, creating this: nothing ran now.
    Repeated(Option<Sid>),
    /// Another request ran before with this key: nothing ran now.
    Conflict,
}

/// What this node does for the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It leads, and is sure of it: it answers everything.
    Leader,
    /// It leads, but could not renew its lease lately: it answers nothing until it did (another
    /// node may have taken over meanwhile).
    Unsure,
    /// It follows the log of `leader` (as far as it knows) and answers nothing.
    Standby { leader: Option<String> },
}

/// The store and what the maintenance thread needs beside it.
struct Shared {
    store: Store,
    /// Serializes snapshot writes and holds the sequence of the last one written: a snapshot
    /// replaces every snapshot record, so two writes must not interleave, and an older one
    /// must not replace a newer one.
    last_snapshot: Mutex<u64>,
    /// Set when a change was applied in memory but could not be made durable: memory is then
    /// ahead of disk, and the server must stop instead of serving that state.
    storage_failed: watch::Sender<bool>,
    /// The time of the newest command applied: events are pruned by age against it, so that
    /// the engine's time, not the wall clock, decides (tests run on virtual time).
    latest_at: AtomicI64,
    /// Whether this node leads (always with sled): only a leader prunes events.
    leading: std::sync::atomic::AtomicBool,
    event_max_age: Millis,
    event_max_count: usize,
    /// The next job for the maintenance thread.
    job: Mutex<Job>,
    wake: Condvar,
}

#[derive(Default)]
struct Job {
    /// The newest snapshot waiting to be written: `(sequence, snapshot)`. A newer one replaces
    /// it, since the state after a later command covers everything the older one did.
    snapshot: Option<(u64, Snapshot)>,
    stop: bool,
}

/// When a command applies.
#[derive(Debug, Clone, Copy)]
enum When {
    /// The wall clock, read before the engine lock: applied no earlier than the command logged
    /// before it.
    Wall(Millis),
    /// A time given by the caller (tests and tools playing a timeline): applied as given.
    Given(Millis),
}

/// How often the maintenance thread prunes events when no snapshot wakes it earlier.
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// How often the maintenance thread hands freed memory back to the system between snapshots
/// (see [`release_freed_memory`]): a few milliseconds each time.
const TRIM_EVERY: Duration = Duration::from_secs(10);

struct State {
    engine: Engine,
    /// The sequence number of the last logged command.
    last_seq: u64,
    /// Commands logged since the last snapshot.
    since_snapshot: u64,
    /// The time of the last logged command: the next is applied no earlier.
    last_at: Millis,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the configured workspace: {0}")]
    Workspace(#[from] WorkspaceError),
    /// Credentials must be generated and the operating system gives no randomness.
    #[error("no random source to generate credentials from: {0}")]
    Random(getrandom::Error),
    /// The stored snapshot or log does not rebuild a valid engine.
    #[error("the data directory does not replay: {0}")]
    Replay(String),
}

/// A command that was refused, or could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The engine refused it; nothing changed.
    #[error(transparent)]
    Refused(#[from] RoutingError),
    /// It was applied but may not be on disk: the server must stop rather than go on.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// `now` (the engine's unit) as a timestamp, for the IVR's business hours.
pub fn timestamp(now: Millis) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The wall clock, in the engine's unit.
pub fn now() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

impl LiveEngine {
    /// Recovers the engine from `settings.data_dir`, or starts it from `workspace` when the
    /// directory is new (`workspace_source` is the text it was parsed from, for line numbers).
    /// With PostgreSQL, waits until this node leads the workspace (following the log meanwhile).
    pub fn open(
        settings: &StoreSettings,
        workspace: &WorkspaceFile,
        workspace_source: &str,
        now: Millis,
    ) -> Result<LiveEngine, LiveError> {
        let live = LiveEngine::open_following(settings, workspace, workspace_source, now)?;
        live.follow_until_leading(&|| false)?;
        Ok(live)
    }

    /// [`LiveEngine::open`], but with PostgreSQL answers at once, standing by when another
    /// node leads: [`LiveEngine::follow_until_leading`] then follows its log.
    pub fn open_following(
        settings: &StoreSettings,
        workspace: &WorkspaceFile,
        workspace_source: &str,
        now: Millis,
    ) -> Result<LiveEngine, LiveError> {
        let durability = match settings.durability {
            DurabilityMode::Flush => Durability::Flush,
            DurabilityMode::Periodic => {
                Durability::Periodic { interval: Duration::from_millis(settings.flush_interval_ms.max(1)) }
            }
        };
        let (store, recovered, cluster) = match settings.backend {
            StoreBackend::Sled => {
                let (store, recovered) =
                    Store::open_with_cache(&settings.data_dir, durability, settings.cache_mb << 20)?;
                (store, recovered, None)
            }
            StoreBackend::Postgres => {
                let lease = LeaseSettings {
                    ttl: Duration::from_millis(settings.lease_ms),
                    holder: settings.advertise_url.clone(),
                };
                let backend = Arc::new(PostgresBackend::open(
                    &settings.postgres_url,
                    &settings.postgres_workspace,
                    lease,
                )?);
                // Its first look for the lease, so that a node starting alone leads from the start.
                backend.wait_leading(FOLLOW_POLL * 2);
                let (store, mut recovered) = Store::open_on(backend.clone(), durability)?;
                // A new workspace is made by its first leader; a standby waits for it.
                while recovered.snapshot.is_none() && !backend.wait_leading(FOLLOW_POLL) {
                    recovered = store.recover()?;
                }
                if recovered.snapshot.is_none() {
                    recovered = store.recover()?;
                }
                (store, recovered, Some(backend))
            }
        };
        let (mut engine, fresh) = match recovered.snapshot {
            Some(snapshot) => {
                (Engine::import(snapshot).map_err(|err| LiveError::Replay(err.to_string()))?, false)
            }
            None => (workspace.build(workspace_source, salt(now), now)?, true),
        };
        if fresh {
            store.write_snapshot(0, &engine.export())?;
            match settings.backend {
                StoreBackend::Sled => {
                    tracing::info!(dir = %settings.data_dir.display(), "new data directory: workspace created from the configuration")
                }
                StoreBackend::Postgres => {
                    tracing::info!(workspace = %settings.postgres_workspace, "new workspace in the database: created from the configuration")
                }
            }
        }
        let (last_seq, last_at) = replay_into(&mut engine, recovered.snapshot_seq, &recovered.commands)?;
        tracing::info!(replayed = recovered.commands.len(), "state recovered");
        // The replayed commands' events were discarded above: they are among those stored.
        let statistics = Arc::new(Statistics::rebuild(&store, &engine, settings)?);
        let events = broadcast::channel(EVENT_BUFFER).0;
        let (publish, count) = (events.clone(), statistics.clone());
        store.publish_when_durable(Box::new(move |durable| {
            // Counted before anyone hears of them, so a page that reads the statistics on an
            // event finds it counted; in log order, as the store publishes.
            count.observe(&durable);
            for event in durable {
                // Nobody listening is fine: events are stored for those who come later.
                let _ = publish.send(event);
            }
        }));
        let shared = Arc::new(Shared {
            store,
            last_snapshot: Mutex::new(recovered.snapshot_seq),
            storage_failed: watch::channel(false).0,
            latest_at: AtomicI64::new(now),
            leading: std::sync::atomic::AtomicBool::new(cluster.is_none()),
            event_max_age: i64::try_from(settings.event_max_age).unwrap_or(i64::MAX).saturating_mul(1000),
            event_max_count: settings.event_max_count,
            job: Mutex::new(Job::default()),
            wake: Condvar::new(),
        });
        if let Some(cluster) = &cluster {
            // Another node took over: memory may be ahead of what this node may write.
            let shared = Arc::downgrade(&shared);
            cluster.on_lost(Box::new(move |why| {
                if let Some(shared) = shared.upgrade() {
                    shared.stop_for(&StoreError::LostLease(why));
                }
            }));
        }
        let maintenance = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("store-maintenance".to_owned())
                .spawn(move || shared.maintain())
                .map_err(|err| StoreError::Write(format!("cannot start the maintenance thread: {err}")))?
        };
        let live = LiveEngine {
            state: Mutex::new(State {
                engine,
                last_seq,
                since_snapshot: recovered.commands.len() as u64,
                last_at,
            }),
            shared,
            events,
            statistics,
            deadline_changed: Notify::new(),
            snapshot_every: settings.snapshot_every.max(1),
            maintenance: Mutex::new(Some(maintenance)),
            cluster,
            once: Mutex::new(OnceKeys::default()),
            settings: settings.clone(),
        };
        live.shared.store.flush()?;
        if live.cluster.is_none() {
            live.load_once_keys()?;
        }
        Ok(live)
    }

    /// Follows the leader's log into this engine (no timers, no side effects: the events are
    /// the leader's, already stored) until this node takes the workspace over, then reads the
    /// log to its end, adopting whatever the old leader committed, acknowledged or not; or
    /// until `stop` answers true. At once with sled, which has no other node.
    pub fn follow_until_leading(&self, stop: &dyn Fn() -> bool) -> Result<(), LiveError> {
        let Some(cluster) = self.cluster.clone() else { return Ok(()) };
        let mut complained = false;
        loop {
            let leading = cluster.leading();
            if let Some(why) = cluster.lost() {
                // Lost while catching up: start again, as a standby.
                return Err(StoreError::LostLease(why).into());
            }
            if !leading && stop() {
                return Ok(());
            }
            let after = self.lock().last_seq;
            let wait = if leading { Duration::ZERO } else { FOLLOW_POLL };
            match cluster.commands_after(after, wait) {
                Ok(Some(commands)) if commands.is_empty() && leading => {
                    self.shared.store.adopt_events(cluster.last_event()?);
                    self.load_once_keys()?;
                    self.shared.leading.store(true, Ordering::SeqCst);
                    let state = self.lock();
                    tracing::info!(
                        seq = state.last_seq,
                        node = cluster.node(),
                        "caught up with the log: leading"
                    );
                    return Ok(());
                }
                Ok(Some(commands)) => {
                    self.replay(commands)?;
                    complained = false;
                }
                Ok(None) => {
                    if let Err(err) = self.start_over() {
                        if leading {
                            return Err(err);
                        }
                        tracing::warn!(%err, "cannot start following again from the snapshot; trying again");
                        std::thread::sleep(FOLLOW_POLL);
                    }
                }
                // Taking over needs the whole log: stop rather than lead on part of it.
                Err(err) if leading => return Err(err.into()),
                Err(err) => {
                    if !complained {
                        tracing::warn!(%err, "cannot follow the log; trying again");
                        complained = true;
                    }
                    std::thread::sleep(FOLLOW_POLL);
                }
            }
        }
    }

    /// Applies the leader's `commands`, the next ones in its log, as it applied them.
    fn replay(&self, commands: Vec<(u64, Millis, Command)>) -> Result<(), LiveError> {
        let mut state = self.lock();
        for (seq, at, command) in commands {
            if seq <= state.last_seq {
                continue;
            }
            state
                .engine
                .apply(&command, at)
                .map_err(|err| LiveError::Replay(format!("command {seq}: {err}")))?;
            let events = state.engine.take_events();
            self.statistics.observe(&events);
            if let Some(last) = events.last() {
                self.shared.store.adopt_events(last.sequence);
            }
            state.last_seq = seq;
            state.last_at = state.last_at.max(at);
            state.since_snapshot += 1;
            self.shared.latest_at.fetch_max(at, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts following again from the newest snapshot: the log no longer holds the commands
    /// this standby would apply next.
    fn start_over(&self) -> Result<(), LiveError> {
        let recovered = self.shared.store.recover()?;
        let snapshot = recovered
            .snapshot
            .ok_or_else(|| LiveError::Replay("the snapshot is gone from the store".to_owned()))?;
        let mut engine = Engine::import(snapshot).map_err(|err| LiveError::Replay(err.to_string()))?;
        let (last_seq, last_at) = replay_into(&mut engine, recovered.snapshot_seq, &recovered.commands)?;
        self.statistics.replace(Statistics::rebuild(&self.shared.store, &engine, &self.settings)?);
        *self.shared.last_snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            recovered.snapshot_seq;
        self.shared.latest_at.fetch_max(last_at, Ordering::Relaxed);
        *self.lock() = State { engine, last_seq, since_snapshot: recovered.commands.len() as u64, last_at };
        tracing::info!(seq = last_seq, "started following again from the newest snapshot");
        Ok(())
    }

    /// Reads the idempotency keys of the last day, once this node leads (they are written with
    /// the commands; a standby needs them only when it takes over).
    fn load_once_keys(&self) -> Result<(), StoreError> {
        let mut records: Vec<OnceV1> =
            self.stored::<OnceRecord>()?.into_iter().map(|OnceRecord::V1(record)| record).collect();
        records.sort_by_key(|record| record.at);
        let mut once = self.once_keys();
        *once = OnceKeys::default();
        for record in records {
            // The oldest are forgotten here; their records go with the next ones made.
            once.remember(record, None);
        }
        Ok(())
    }

    fn once_keys(&self) -> MutexGuard<'_, OnceKeys> {
        self.once.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `command` once for `key` (a client's `Idempotency-Key` and the route it was sent
    /// to), now and durably as [`LiveEngine::execute`]: the key is written in the same atomic
    /// group as the command, so a client that retries after a crash or a failover, not knowing
    /// whether its first try was stored, gets what that try made instead of making it twice.
    pub async fn execute_once(&self, command: Command, key: String) -> Result<Once, ExecuteError> {
        use sha1::Digest as _;
        let encoded = Store::encode_command(0, &command)?;
        let fingerprint = hex(&sha1::Sha1::digest(&encoded));
        /// What an earlier request with the key did.
        enum Earlier {
            Same(Option<Sid>, Option<Ticket>),
            Other,
            Nothing,
        }
        let earlier = loop {
            {
                let mut once = self.once_keys();
                if let Some((done, ticket)) = once.done.get(&key) {
                    break if done.fingerprint == fingerprint {
                        Earlier::Same(done.created, *ticket)
                    } else {
                        Earlier::Other
                    };
                }
                // Nobody runs it now: this request does.
                if once.running.insert(key.clone()) {
                    break Earlier::Nothing;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        match earlier {
            Earlier::Same(created, ticket) => {
                // Not answered before the first one is durable.
                if let Some(ticket) = ticket {
                    self.storage_checked(
                        self.shared.store.durable(ticket).await.map_err(ExecuteError::from),
                    )?;
                }
                return Ok(Once::Repeated(created));
            }
            Earlier::Other => return Ok(Once::Conflict),
            Earlier::Nothing => {}
        }
        /// Lets the next request with the key go, even when this one is dropped half-way.
        struct Running<'a>(&'a LiveEngine, &'a str);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.once_keys().running.remove(self.1);
            }
        }
        let _running = Running(self, &key);
        let at = now();
        let mut made = None;
        let (created, ticket) =
            self.storage_checked(self.apply_and_log(&command, When::Wall(at), |created| {
                let record = OnceRecord::V1(OnceV1 { key: key.clone(), fingerprint, created, at });
                let encoded = Store::encode(&record)?;
                made = Some(record);
                Ok(Some(encoded))
            }))?;
        // Remembered before anything is awaited: once logged, the command is done, whether or
        // not this request lives to hear it is durable; a retry waits for the same ticket.
        let Some(OnceRecord::V1(record)) = made else { unreachable!("made when the command applied") };
        let forgotten = self.once_keys().remember(record, Some(ticket));
        self.storage_checked(self.shared.store.durable(ticket).await.map_err(ExecuteError::from))?;
        self.deadline_changed.notify_one();
        if !forgotten.is_empty() {
            let deletions = forgotten.iter().map(|key| (Store::key_of::<OnceRecord>(key), None)).collect();
            self.put_together(deletions).await?;
        }
        Ok(Once::Ran(created))
    }

    /// What this node does for the workspace now.
    pub fn role(&self) -> Role {
        match &self.cluster {
            None => Role::Leader,
            Some(cluster) if cluster.sure() && self.shared.leading.load(Ordering::SeqCst) => Role::Leader,
            Some(cluster) if cluster.leading() && self.shared.leading.load(Ordering::SeqCst) => Role::Unsure,
            Some(cluster) => Role::Standby { leader: cluster.leader() },
        }
    }

    /// This node's name among those sharing the workspace (none with sled).
    pub fn node(&self) -> Option<String> {
        self.cluster.as_ref().map(|cluster| cluster.node().to_owned())
    }

    /// The sequence of the last command applied (logged by this node or its leader).
    pub fn applied(&self) -> u64 {
        self.lock().last_seq
    }

    /// Why this node stopped leading, if another node took over.
    pub fn lost_lease(&self) -> Option<String> {
        self.cluster.as_ref().and_then(|cluster| cluster.lost())
    }

    /// Stops renewing the lease, or resumes, as a paused process would (tests).
    pub fn pause_lease(&self, paused: bool) {
        if let Some(cluster) = &self.cluster {
            cluster.pause_lease(paused);
        }
    }

    /// Fires, each at its own time, the deadlines that passed while the server was down. Call
    /// it after subscribing whatever must see those events (callbacks, pages).
    pub fn catch_up(&self, now: Millis) -> Result<(), LiveError> {
        // Made durable by the blocking flush, not by waiting on the ticket.
        let _ticket = self
            .apply_and_log(&Command::Advance, When::Wall(now), |_| Ok(None))
            .map_err(|err| LiveError::Replay(err.to_string()))?
            .1;
        self.shared.store.flush()?;
        Ok(())
    }

    /// Applies `command` now and answers once it is durable.
    pub async fn execute(&self, command: Command) -> Result<Option<Sid>, ExecuteError> {
        self.execute_when(command, When::Wall(now())).await
    }

    /// Applies `command` at exactly `at` (tests and tools replaying a timeline) and answers
    /// once durable.
    pub async fn execute_at(&self, command: Command, at: Millis) -> Result<Option<Sid>, ExecuteError> {
        self.execute_when(command, When::Given(at)).await
    }

    async fn execute_when(&self, command: Command, when: When) -> Result<Option<Sid>, ExecuteError> {
        let outcome = async {
            let (created, ticket) = self.apply_and_log(&command, when, |_| Ok(None))?;
            self.shared.store.durable(ticket).await?;
            Ok(created)
        };
        let outcome = self.storage_checked(outcome.await);
        if outcome.is_ok() {
            self.deadline_changed.notify_one();
        }
        outcome
    }

    /// Applies `command` now and stores the record `make` builds from its outcome (the SID it
    /// created) in the same atomic write: a crash keeps both or neither. Answers once durable.
    pub async fn execute_with<R: Keyed>(
        &self,
        command: Command,
        make: impl FnOnce(Option<Sid>) -> R,
    ) -> Result<(Option<Sid>, R), ExecuteError> {
        let mut made = None;
        let outcome = async {
            let (created, ticket) = self.apply_and_log(&command, When::Wall(now()), |created| {
                let record = make(created);
                let encoded = Store::encode(&record)?;
                made = Some(record);
                Ok(Some(encoded))
            })?;
            self.shared.store.durable(ticket).await?;
            Ok(created)
        };
        let outcome = self.storage_checked(outcome.await);
        if outcome.is_ok() {
            self.deadline_changed.notify_one();
        }
        let created = outcome?;
        Ok((created, made.expect("made under the lock when the command applied")))
    }

    /// The stored events newest first, read as the iterator is advanced; with `before`, those
    /// numbered below it.
    pub fn stored_events(&self, before: Option<u64>) -> Result<StoredEvents<'_>, StoreError> {
        self.shared.store.events_newest_first(before)
    }

    /// The cumulative statistics, kept as events become durable.
    pub fn statistics(&self) -> &Statistics {
        &self.statistics
    }

    /// Every stored record of kind `R` (calls, conversations, outgoing messages).
    pub fn stored<R: Keyed>(&self) -> Result<Vec<R>, StoreError> {
        self.shared.store.all()
    }

    /// The stored record of kind `R` with key `id`, if any (see [`Store::get`]).
    pub fn stored_one<R: Keyed>(&self, id: &str) -> Result<Option<R>, StoreError> {
        self.shared.store.get(id)
    }

    /// Stores `record` and answers once it is on disk. Keyed records answer only then, even
    /// with `periodic` durability: what follows from them (a text sent, a page told) must not
    /// leave before they are durable.
    pub async fn put<R: Keyed>(&self, record: &R) -> Result<(), StoreError> {
        let stored = async { self.shared.store.on_disk(self.shared.store.put(record)?).await };
        self.stopped_on_failure(stored.await)
    }

    /// Stores and deletes keyed records (built with [`Store::encode`] and [`Store::key_of`])
    /// in one atomic write, and answers once it is on disk.
    pub async fn put_together(&self, records: Vec<KeyedWrite>) -> Result<(), StoreError> {
        self.stopped_on_failure(self.shared.store.on_disk(self.shared.store.put_together(records)).await)
    }

    /// Deletes the record of kind `R` with key `id` and answers once that is on disk.
    pub async fn delete<R: Keyed>(&self, id: &str) -> Result<(), StoreError> {
        self.stopped_on_failure(self.shared.store.on_disk(self.shared.store.delete::<R>(id)).await)
    }

    /// Stops the server (through [`LiveEngine::storage_failure`]) when `outcome` is a storage
    /// failure: memory is then ahead of disk.
    fn storage_checked<T>(&self, outcome: Result<T, ExecuteError>) -> Result<T, ExecuteError> {
        if let Err(ExecuteError::Storage(err)) = &outcome {
            self.stop_for(err);
        }
        outcome
    }

    /// [`LiveEngine::storage_checked`] for writes that run no engine command.
    fn stopped_on_failure<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(err) = &outcome {
            self.stop_for(err);
        }
        outcome
    }

    fn stop_for(&self, err: &StoreError) {
        self.shared.stop_for(err);
    }

    /// Whether a change could not be made durable since the engine opened.
    pub fn has_storage_failed(&self) -> bool {
        *self.shared.storage_failed.borrow()
    }

    /// Completes when a change could not be made durable; the server then stops (memory is
    /// ahead of disk) and the restart recovers what was acknowledged.
    pub async fn storage_failure(&self) {
        let mut failed = self.shared.storage_failed.subscribe();
        let _ = failed.wait_for(|&failed| failed).await;
    }

    /// Applies and logs under the lock. Durability is the caller's; the command's events are
    /// published by the store once its group is on disk ([`Store::publish_when_durable`]).
    /// With `also`, the keyed record it makes of the command's outcome is written in the same
    /// atomic group as the command.
    fn apply_and_log(
        &self,
        command: &Command,
        when: When,
        also: impl FnOnce(Option<Sid>) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError>,
    ) -> Result<(Option<Sid>, Ticket), ExecuteError> {
        let (When::Wall(at) | When::Given(at)) = when;
        // Encoded before the lock: the lock is the one serial section of every request.
        let record = Store::encode_command(at, command)?;
        let mut state = self.lock();
        // Commands read the clock before the lock, so two at once may arrive out of time order.
        // The log never goes back in time (the Events list, the statistics and a standby rely
        // on it): a late one is applied at the time of the one before, and encoded again.
        let (at, record) = match when {
            When::Wall(at) if at < state.last_at => {
                (state.last_at, Store::encode_command(state.last_at, command)?)
            }
            _ => (at, record),
        };
        let created = state.engine.apply(command, at)?;
        let events = state.engine.take_events();
        let seq = state.last_seq + 1;
        // Applied but not logged would mean memory ahead of disk: stop rather than go on.
        let also = also(created)?;
        let ticket = self.shared.store.append_encoded(seq, &record, events, also)?;
        state.last_seq = seq;
        state.last_at = state.last_at.max(at);
        state.since_snapshot += 1;
        self.shared.latest_at.fetch_max(at, Ordering::Relaxed);
        // Only the export needs the engine, and only it runs here: the maintenance thread
        // encodes and writes it, so no request waits on a snapshot's write and flush.
        if state.since_snapshot >= self.snapshot_every {
            state.since_snapshot = 0;
            let snapshot = state.engine.export_unordered();
            drop(state);
            self.shared.schedule_snapshot(seq, snapshot);
        }
        Ok((created, ticket))
    }

    /// Writes a snapshot now (shutdown, tools, benchmarks); the log it covers is dropped.
    pub fn snapshot_now(&self) -> Result<(), StoreError> {
        let (seq, mut snapshot) = {
            let mut state = self.lock();
            state.since_snapshot = 0;
            (state.last_seq, state.engine.export_unordered())
        };
        snapshot.put_in_order();
        self.shared.write_snapshot(seq, &snapshot)
    }

    /// The REST API credentials: the configured ones, or for an empty setting the value
    /// generated on the first start and kept in the store.
    pub fn credentials(&self, twilio: &TwilioSettings) -> Result<Credentials, LiveError> {
        let keep = |name: &str, configured: &str, prefix: &str| -> Result<String, LiveError> {
            if !configured.is_empty() {
                return Ok(configured.to_owned());
            }
            let generated = format!("{prefix}{}", random_hex().map_err(LiveError::Random)?);
            Ok(self.shared.store.kept_value(name, generated)?)
        };
        Ok(Credentials {
            account_sid: keep("account_sid", &twilio.account_sid, "AC")?,
            auth_token: keep("auth_token", &twilio.auth_token, "")?,
            generated_token: twilio.auth_token.is_empty(),
        })
    }

    /// Has `observer` told of every group commit (monitoring): see [`Store::on_flush`].
    pub fn on_flush(&self, observer: crate::store::FlushObserver) {
        self.shared.store.on_flush(observer);
    }

    /// What group commit did so far (flushes and their time), for benchmarks and diagnostics.
    pub fn flush_statistics(&self) -> FlushStatistics {
        self.shared.store.flush_statistics()
    }

    /// Reads the engine's state.
    pub fn read<R>(&self, read: impl FnOnce(&Engine) -> R) -> R {
        read(&self.lock().engine)
    }

    /// Reads the engine's state with the sequence of the last command applied to it.
    pub fn read_applied<R>(&self, read: impl FnOnce(&Engine) -> R) -> (u64, R) {
        let state = self.lock();
        (state.last_seq, read(&state.engine))
    }

    /// Events as they happen, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Fires the engine's deadlines as they come, until `shutdown` completes.
    pub async fn run_timers(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let wait = match self.read(|engine| engine.next_deadline()) {
                Some(deadline) => Duration::from_millis(deadline.saturating_sub(now()).max(0) as u64),
                // Nothing scheduled: sleep until a command schedules something.
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.deadline_changed.notified() => continue,
                () = tokio::time::sleep(wait) => {}
            }
            if self.read(|engine| engine.next_deadline()).is_some_and(|deadline| deadline <= now())
                && let Err(err) = self.execute(Command::Advance).await
            {
                tracing::error!(%err, "firing deadlines failed");
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the engine as it was before the command's
        // mutation began or after it ended (commands validate first); keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for LiveEngine {
    fn drop(&mut self) {
        self.shared.job_slot().stop = true;
        self.shared.wake.notify_one();
        let thread = self.maintenance.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn job_slot(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stop_for(&self, err: &StoreError) {
        match err {
            StoreError::LostLease(_) => tracing::error!(%err, "stopping"),
            _ => tracing::error!(%err, "a change could not be made durable: stopping"),
        }
        self.storage_failed.send_replace(true);
    }

    /// Hands the snapshot taken after command `seq` to the maintenance thread.
    fn schedule_snapshot(&self, seq: u64, snapshot: Snapshot) {
        // Taken after the engine lock was released, so two may arrive out of order: the newer
        // one stays (it covers the older), whichever came last.
        let mut job = self.job_slot();
        if job.snapshot.as_ref().is_none_or(|(waiting, _)| *waiting < seq) {
            job.snapshot = Some((seq, snapshot));
        }
        drop(job);
        self.wake.notify_one();
    }

    /// The maintenance thread: writes each scheduled snapshot, and prunes events past their
    /// age or count every [`PRUNE_EVERY`] and after each snapshot, until the engine is
    /// dropped. Both run here so that no request ever waits on them; a failure stops the
    /// server as a failed command would.
    fn maintain(&self) {
        let mut last_trim = Instant::now();
        loop {
            let (snapshot, stop) = {
                let mut job = self.job_slot();
                if job.snapshot.is_none() && !job.stop {
                    job = self
                        .wake
                        .wait_timeout(job, PRUNE_EVERY)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
                (job.snapshot.take(), job.stop)
            };
            let written = snapshot.map(|(seq, mut snapshot)| {
                let started = Instant::now();
                snapshot.put_in_order();
                let written = self.write_snapshot(seq, &snapshot);
                let wrote = started.elapsed();
                drop(snapshot);
                release_freed_memory();
                last_trim = Instant::now();
                tracing::debug!(
                    seq,
                    write_ms = wrote.as_millis() as u64,
                    trim_ms = (started.elapsed() - wrote).as_millis() as u64,
                    "snapshot written"
                );
                written
            });
            if let Err(err) = written.unwrap_or(Ok(())).and_then(|()| self.prune()) {
                self.stop_for(&err);
                return;
            }
            // Requests, events and pruning free memory all the time; without this, resident
            // memory climbs from one snapshot's trim to the next by a tenth or more.
            if last_trim.elapsed() >= TRIM_EVERY {
                release_freed_memory();
                last_trim = Instant::now();
            }
            // A snapshot scheduled before the stop is still written: the next start replays less.
            if stop {
                return;
            }
        }
    }

    /// Deletes the events past `store.event_max_age` (by the engine's time) or beyond
    /// `store.event_max_count`, a bounded batch at a time until none is left.
    fn prune(&self) -> Result<(), StoreError> {
        if !self.leading.load(Ordering::SeqCst) {
            return Ok(());
        }
        let before = self.latest_at.load(Ordering::Relaxed).saturating_sub(self.event_max_age);
        while self.store.prune_events(before, self.event_max_count as u64)? > 0 {}
        Ok(())
    }

    /// Writes the snapshot taken after command `seq`, unless one as new was written meanwhile
    /// (the state after a given command is always the same, so nothing is lost).
    fn write_snapshot(&self, seq: u64, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut last_snapshot = self.last_snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last_snapshot >= seq {
            return Ok(());
        }
        self.store.write_snapshot(seq, snapshot)?;
        *last_snapshot = seq;
        Ok(())
    }
}

/// Applies the `commands` recovered after snapshot `snapshot_seq` to `engine`, discarding their
/// events (they are stored); answers the last command's sequence and the latest time.
fn replay_into(
    engine: &mut Engine,
    snapshot_seq: u64,
    commands: &[(u64, Millis, Command)],
) -> Result<(u64, Millis), LiveError> {
    let (mut last_seq, mut last_at) = (snapshot_seq, Millis::MIN);
    for (seq, at, command) in commands {
        engine.apply(command, *at).map_err(|err| LiveError::Replay(format!("command {seq}: {err}")))?;
        engine.take_events();
        (last_seq, last_at) = (*seq, last_at.max(*at));
    }
    Ok((last_seq, last_at))
}

/// Hands freed memory back to the system, after each snapshot and every [`TRIM_EVERY`]. A
/// snapshot makes tens of MiB of short-lived allocations (the export on whichever worker thread
/// ran the command that was due for one), and glibc keeps freed memory in that thread's arena:
/// without this, every arena that ever held a snapshot stays at the snapshot's peak, and
/// resident memory climbs in steps of ~100 MiB while the live heap stays flat (BENCHMARKS.md,
/// the load's memory).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim takes no pointers; it only returns glibc's free pages to the
        // system, and is thread-safe.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// 32 hex digits from the operating system's random source.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// `bytes` in lower-case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A workspace's SID salt: distinct per data directory, taken from the creation time.
fn salt(now: Millis) -> u64 {
    (now as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::routing::{NewTask, TaskStatus};
    use crate::store::IDLE_CHECK_FOR_TESTS;

    /// The stores each test runs on: sled in a new directory, then a new PostgreSQL database.
    fn media() -> [(tempfile::TempDir, StoreSettings); 2] {
        let fresh = |backend, postgres_url| {
            let dir = tempfile::tempdir().unwrap();
            let data_dir = dir.path().to_owned();
            (dir, StoreSettings { backend, postgres_url, data_dir, ..StoreSettings::default() })
        };
        [
            fresh(StoreBackend::Sled, String::new()),
            fresh(StoreBackend::Postgres, crate::store::test_postgres::new_database()),
        ]
    }

    /// The live engine on `settings`, with the default workspace on a first start.
    fn open(settings: &StoreSettings) -> LiveEngine {
        LiveEngine::open(settings, &WorkspaceFile::default(), "", 0).unwrap()
    }

    /// What the store of `settings` recovers now.
    fn recovered(settings: &StoreSettings) -> crate::store::Recovered {
        let opened = match settings.backend {
            StoreBackend::Sled => Store::open(&settings.data_dir, Durability::Flush),
            StoreBackend::Postgres => {
                PostgresBackend::connect(&settings.postgres_url, &settings.postgres_workspace)
                    .and_then(|backend| Store::open_on(Arc::new(backend), Durability::Flush))
            }
        };
        opened.unwrap().1
    }

    fn sales_call() -> Command {
        Command::CreateTask(NewTask {
            attributes: json!({"skillsNeeded": ["Sales"]}),
            priority: None,
            timeout: None,
            workflow: None,
            channel: Some("voice".into()),
        })
    }

    #[tokio::test]
    async fn acknowledged_commands_survive_a_restart_and_missed_deadlines_fire_at_start() {
        for (_dir, settings) in media() {
            let workspace = WorkspaceFile::default();
            let t0 = 1_767_603_600_000;
            let (task, reservation) = {
                let live = LiveEngine::open(&settings, &workspace, "", t0).unwrap();
                let (alice, available, workflow) = live.read(|engine| {
                    let workflow =
                        engine.workflows().iter().find(|w| w.friendly_name == "Sales and Support Workflow");
                    (
                        engine.worker_by_name("alice").unwrap().sid,
                        engine.activity_by_name("Available").unwrap().sid,
                        workflow.unwrap().sid,
                    )
                });
                let set_available =
                    Command::SetWorkerActivity { worker: alice, activity: available, reject_pending: false };
                live.execute_at(set_available, t0 + 1_000).await.unwrap();
                let Command::CreateTask(mut new) = sales_call() else { unreachable!() };
                new.workflow = Some(workflow);
                let task = live.execute_at(Command::CreateTask(new), t0 + 2_000).await.unwrap().unwrap();
                let reservation = live.read(|engine| engine.task(task).unwrap().reservations[0]);
                (task, reservation)
            };

            // Restart 60 s later: the 20 s reservation timeout passed while the server was down.
            let live = LiveEngine::open(&settings, &workspace, "", t0 + 62_000).unwrap();
            live.catch_up(t0 + 62_000).unwrap();

            live.read(|engine| {
                let reservation = engine.reservation(reservation).unwrap();
                assert_eq!((reservation.status.as_str(), reservation.timeout_at), ("timeout", t0 + 22_000));
                assert_eq!(engine.task(task).unwrap().status, TaskStatus::Pending, "back in line, not lost");
                let alice = engine.worker_by_name("alice").unwrap();
                assert_eq!(
                    engine.worker_activity(alice).friendly_name,
                    "Offline",
                    "moved to the timeout activity"
                );
            });
        }
    }

    #[test]
    fn generated_credentials_are_kept_and_configured_ones_win() {
        for (_dir, settings) in media() {
            let open = || open(&settings);
            let generated = open().credentials(&TwilioSettings::default()).unwrap();
            assert!(generated.generated_token);
            assert_eq!((generated.account_sid.len(), &generated.account_sid[..2]), (34, "AC"));
            assert_eq!(generated.auth_token.len(), 32);

            let after_restart = open().credentials(&TwilioSettings::default()).unwrap();
            assert_eq!(after_restart, generated, "a restart must not change the credentials");

            let configured = TwilioSettings {
                account_sid: String::new(),
                auth_token: "mine".into(),
                ..TwilioSettings::default()
            };
            let mixed = open().credentials(&configured).unwrap();
            assert_eq!(
                (mixed.account_sid.as_str(), mixed.auth_token.as_str()),
                (generated.account_sid.as_str(), "mine")
            );
            assert!(!mixed.generated_token);
            // Another data directory, or another workspace in the same database.
            let other_dir = tempfile::tempdir().unwrap();
            let elsewhere = StoreSettings {
                data_dir: other_dir.path().to_owned(),
                postgres_workspace: "other".into(),
                ..settings.clone()
            };
            let elsewhere = LiveEngine::open(&elsewhere, &WorkspaceFile::default(), "", 0).unwrap();
            assert_ne!(
                elsewhere.credentials(&TwilioSettings::default()).unwrap().auth_token,
                generated.auth_token
            );
        }
    }

    #[tokio::test]
    async fn refused_commands_change_nothing_and_are_not_logged() {
        for (_dir, settings) in media() {
            let live = open(&settings);
            let before = live.read(|engine| engine.export());

            let err = live.execute_at(sales_call(), 1_000).await.unwrap_err();

            assert_eq!(err.to_string(), "workflow_sid: required: the workspace has 2 workflows");
            assert_eq!(live.read(|engine| engine.export()), before);
            assert!(!live.shared.store.debug_dump().contains("create_task"));
        }
    }

    #[tokio::test]
    async fn snapshots_bound_the_replayed_log() {
        for (_dir, settings) in media() {
            let settings = StoreSettings { snapshot_every: 3, ..settings };
            {
                let live = open(&settings);
                for at in 1..=7 {
                    live.execute_at(Command::Advance, at * 1000).await.unwrap();
                }
            }
            let recovered = recovered(&settings);
            // 7 commands: snapshots after 3 and 6, so one remains.
            assert_eq!((recovered.snapshot_seq, recovered.commands.len()), (6, 1));
        }
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        for (_dir, settings) in media() {
            let live = open(&settings);
            live.execute_at(Command::Advance, 1_000).await.unwrap();
            let older = live.read(|engine| engine.export());
            live.execute_at(Command::Advance, 2_000).await.unwrap();
            live.snapshot_now().unwrap();

            live.shared.write_snapshot(1, &older).unwrap();

            drop(live);
            let recovered = recovered(&settings);
            assert_eq!((recovered.snapshot_seq, recovered.commands.len()), (2, 0));
        }
    }

    #[tokio::test]
    async fn events_are_broadcast_after_the_command_is_durable() {
        for (_dir, settings) in media() {
            let live = open(&settings);
            let mut events = live.subscribe();
            let bob = live.read(|engine| engine.worker_by_name("bob").unwrap().sid);
            let available = live.read(|engine| engine.activity_by_name("Available").unwrap().sid);

            live.execute_at(
                Command::SetWorkerActivity { worker: bob, activity: available, reject_pending: false },
                5,
            )
            .await
            .unwrap();

            let event = events.try_recv().unwrap();
            assert_eq!((event.event_type.as_str(), event.worker), ("worker.activity.update", Some(bob)));
            assert!(live.shared.store.debug_dump().contains("worker.activity.update"), "stored too");
        }
    }

    #[tokio::test]
    async fn the_log_never_goes_back_in_time() {
        for (_dir, settings) in media() {
            let live = open(&settings);
            let mut events = live.subscribe();
            let bob = live.read(|engine| engine.worker_by_name("bob").unwrap().sid);
            let (available, offline) = live.read(|engine| {
                (
                    engine.activity_by_name("Available").unwrap().sid,
                    engine.activity_by_name("Offline").unwrap().sid,
                )
            });
            let set = |activity| Command::SetWorkerActivity { worker: bob, activity, reject_pending: false };

            // The second read the clock first but reached the lock last.
            for (activity, read_at) in [(available, 5_000), (offline, 4_000)] {
                let (_, ticket) =
                    live.apply_and_log(&set(activity), When::Wall(read_at), |_| Ok(None)).unwrap();
                live.shared.store.durable(ticket).await.unwrap();
            }

            let times: Vec<Millis> =
                std::iter::from_fn(|| events.try_recv().ok()).map(|event| event.timestamp).collect();
            assert_eq!(times, [5_000, 5_000]);
            drop(live);
            let recovered = recovered(&settings);
            let logged: Vec<Millis> = recovered.commands.iter().map(|(_, at, _)| *at).collect();
            assert_eq!(logged, [5_000, 5_000], "logged at the time it was applied, so replayed the same");
        }
    }

    #[tokio::test]
    async fn a_snapshot_scheduled_late_never_replaces_a_newer_one_waiting() {
        for (_dir, settings) in media() {
            let live = open(&settings);
            live.execute_at(Command::Advance, 1_000).await.unwrap();
            let older = live.read(|engine| engine.export_unordered());
            live.execute_at(Command::Advance, 2_000).await.unwrap();
            let newer = live.read(|engine| engine.export_unordered());

            live.shared.schedule_snapshot(2, newer);
            live.shared.schedule_snapshot(1, older);

            drop(live);
            let recovered = recovered(&settings);
            assert_eq!((recovered.snapshot_seq, recovered.commands.len()), (2, 0));
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_standby_follows_the_leaders_log_and_takes_over_where_it_left_off_never_earlier() {
        let [_, (_dir, settings)] = media();
        let workspace = WorkspaceFile::default();
        // The old leader's clock is a day ahead of the new one's.
        let ahead = now() + 24 * 3600 * 1000;
        let leader = LiveEngine::open(&settings, &workspace, "", ahead).unwrap();
        let standby = Arc::new(LiveEngine::open_following(&settings, &workspace, "", now()).unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let follower = {
            let (standby, stop) = (standby.clone(), stop.clone());
            tokio::task::spawn_blocking(move || standby.follow_until_leading(&|| stop.load(Ordering::SeqCst)))
        };

        let workflow = leader.read(|engine| engine.workflows()[0].sid);
        let call = || match sales_call() {
            Command::CreateTask(task) => Command::CreateTask(NewTask { workflow: Some(workflow), ..task }),
            _ => unreachable!(),
        };
        for step in 0..40 {
            leader.execute_at(call(), ahead + step * 1_000).await.unwrap();
        }
        while standby.applied() < leader.applied() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (standby_role, standby_state) = (standby.role(), standby.read(Engine::export));
        let (leader_role, leader_state) = (leader.role(), leader.read(Engine::export));
        let leader_name = leader.node();
        drop(leader);
        follower.await.unwrap().unwrap();
        let created = standby.execute(call()).await.unwrap().unwrap();

        assert_eq!(leader_role, Role::Leader);
        assert_eq!(standby_role, Role::Standby { leader: leader_name });
        assert!(standby_state == leader_state, "the standby holds exactly the leader's state");
        assert_eq!(standby.role(), Role::Leader, "took over once the leader handed the lease back");
        let created_at = standby.read(|engine| engine.task(created).unwrap().created_at);
        assert_eq!(created_at, ahead + 39_000, "applied no earlier than the old leader's last command");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_standby_whose_connections_were_cut_while_it_waited_still_takes_over_and_writes() {
        let [_, (_dir, settings)] = media();
        let workspace = WorkspaceFile::default();
        let leader = LiveEngine::open(&settings, &workspace, "", now()).unwrap();
        let standby = Arc::new(LiveEngine::open_following(&settings, &workspace, "", now()).unwrap());
        let follower = {
            let standby = standby.clone();
            tokio::task::spawn_blocking(move || standby.follow_until_leading(&|| false))
        };
        // Idle longer than the writer's check, then the server ends the writer and follower
        // connections (a restart of a pooler, an administrator, a network cut).
        tokio::time::sleep(IDLE_CHECK_FOR_TESTS).await;
        let url = settings.postgres_url.clone();
        let terminated = tokio::task::spawn_blocking(move || {
            crate::store::test_postgres::end_sessions(&url, &["switchboard", "switchboard follower"])
        })
        .await
        .unwrap();
        drop(leader);
        follower.await.unwrap().unwrap();
        let workflow = standby.read(|engine| engine.workflows()[0].sid);
        let created = match sales_call() {
            Command::CreateTask(task) => {
                standby.execute(Command::CreateTask(NewTask { workflow: Some(workflow), ..task })).await
            }
            _ => unreachable!(),
        };

        assert!(terminated >= 2, "the writer and follower connections were ended ({terminated})");
        assert_eq!(standby.role(), Role::Leader);
        assert!(created.is_ok(), "the new leader writes on a connection opened again: {created:?}");
    }
}
