//! PostgreSQL as the store's medium (`store.backend = "postgres"`, `store.postgres_url`): with
//! `postgres_lease.rs`, the only files that use the `postgres` crate. Each group is one
//! statement, so one round trip and one transaction (committed with the server's
//! `synchronous_commit`, so durable when it returns); the snapshot is one row, replaced in the
//! same transaction that drops the log before the previous one.
//!
//! Several nodes may point at one database: one leads the workspace, the others stand by
//! (`postgres_lease.rs`). Every write checks the leader's epoch in the same statement: a node
//! that another one took over from (paused, partitioned, or simply still running) can never
//! write or acknowledge again. A standby follows the log ([`PostgresBackend::commands_after`]):
//! each group's write notifies `sb_log` (LISTEN/NOTIFY), and a standby looks anyway every
//! [`FOLLOW_POLL`], since a notification is lost while its connection is down.
//!
//! Every table carries the workspace (`store.postgres_workspace`) in its key, so that workspaces
//! can later be spread over nodes without a migration. The schema is created and migrated by
//! Switchboard, versioned in `switchboard_schema`, under an advisory lock so that two nodes
//! starting together do not race:
//!
//! | table | key | holds (the sled key it stands for) |
//! |---|---|---|
//! | `sb_meta` | workspace, name | `format`, `kept:` + name (`m:`) |
//! | `sb_snapshot` | workspace | the snapshot and the command it was taken after |
//! | `sb_log` | workspace, last_seq | a group of commands (`c:`) |
//! | `sb_events` | workspace, first_event | a group's events (`e:`) |
//! | `sb_records` | workspace, key | keyed records: calls, conversations, outbox... |
//! | `sb_lease` | workspace | who leads, its epoch, until when, its session |
//!
//! The client is blocking, like sled, and lives on a thread of its own: the store calls it
//! from the flusher thread and from the server's async tasks alike, and the client's own
//! runtime must not run inside the server's.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, NoTls, Statement};

use super::backend::{Backend, Entry, EventGroups, Group};
use super::postgres_lease::{self, Lease};
use super::records::{SnapshotEncoding, SnapshotRecord};
use super::{Recovered, StoreError, key_u64, printable_key};

/// The schema's migrations, in order; `switchboard_schema` holds how many have run.
const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE sb_meta (workspace text NOT NULL, name text NOT NULL, value bytea NOT NULL,
                          PRIMARY KEY (workspace, name));
    CREATE TABLE sb_snapshot (workspace text PRIMARY KEY, seq bigint NOT NULL, snapshot bytea NOT NULL);
    CREATE TABLE sb_log (workspace text NOT NULL, last_seq bigint NOT NULL, commands bytea NOT NULL,
                         PRIMARY KEY (workspace, last_seq));
    CREATE TABLE sb_events (workspace text NOT NULL, first_event bigint NOT NULL, events bytea NOT NULL,
                            PRIMARY KEY (workspace, first_event));
    CREATE TABLE sb_records (workspace text NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
                             PRIMARY KEY (workspace, key));
",
    r"
    CREATE TABLE sb_lease (workspace text PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL,
                           taken_at timestamptz NOT NULL);
",
    r"
    ALTER TABLE sb_lease ADD COLUMN expires_at timestamptz NOT NULL DEFAULT '-infinity',
                         ADD COLUMN holder_pid integer NOT NULL DEFAULT 0;
",
    r"
    ALTER TABLE sb_lease ADD COLUMN renewed_at timestamptz NOT NULL DEFAULT '-infinity';
",
];

/// Taken while the schema is checked and migrated (an arbitrary number of Switchboard's).
const MIGRATION_LOCK: i64 = 0x5357_4254_4348;

/// Event groups read per query when they are scanned.
const EVENT_PAGE: i64 = 64;

/// How long the writer's connection may sit idle before it is checked ahead of its next job.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// A little longer than [`IDLE_CHECK`], for tests that wait for the check.
#[cfg(test)]
pub const IDLE_CHECK_FOR_TESTS: std::time::Duration = std::time::Duration::from_millis(5_500);

/// Commands read from the log: `(sequence, time, command)` in order.
pub type Logged = Vec<(u64, crate::routing::Millis, crate::routing::Command)>;

/// How often a standby reads the log when no notification came.
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A whole group in one statement, so one round trip and one implicit transaction: the log
/// record and the events when there are some, the keyed records deleted and put (each key's
/// last change in the group; a key is in one list or the other, so their order is moot).
///
/// Fenced: it writes nothing, and answers 0, unless this node's epoch is still the workspace's
/// (`$9`). The lease row is locked for the statement, so a takeover waits for it or fences it.
const WRITE_GROUP: &str = "
    WITH fence AS (SELECT 1 FROM sb_lease WHERE workspace = $1 AND epoch = $9 FOR UPDATE),
         log AS (INSERT INTO sb_log SELECT $1, $2, $3 FROM fence WHERE $3::bytea IS NOT NULL),
         events AS (INSERT INTO sb_events SELECT $1, $4, $5 FROM fence WHERE $5::bytea IS NOT NULL),
         deleted AS (DELETE FROM sb_records WHERE workspace = $1 AND key = ANY($6) AND EXISTS (SELECT 1 FROM fence)),
         put AS (INSERT INTO sb_records SELECT $1, key, value FROM unnest($7::bytea[], $8::bytea[]) AS t(key, value)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (workspace, key) DO UPDATE SET value = EXCLUDED.value),
         notified AS (SELECT pg_notify('sb_log', $1) FROM fence WHERE $3::bytea IS NOT NULL)
    SELECT count(*) FROM fence LEFT JOIN notified ON true";

/// Locks the lease row (shared) for the rest of a transaction, answering whether this node still
/// holds it (`$2`, its epoch): a takeover waits for the transaction's end.
const STILL_MINE: &str = "SELECT epoch FROM sb_lease WHERE workspace = $1 AND epoch = $2 FOR SHARE";

/// The statements of the write path, prepared once per connection.
struct Prepared {
    write_group: Statement,
}

/// The connection, on its own thread.
struct Connection {
    client: Client,
    prepared: Prepared,
    lease: Arc<Lease>,
}

impl Connection {
    /// The epoch this node's writes are fenced with.
    fn epoch(&self) -> i64 {
        self.lease.epoch()
    }

    /// Opens the connection again, with its prepared statements; keeps the closed one when
    /// that fails (the next job then fails, and says why).
    fn reconnect(&mut self, config: &postgres::Config) {
        let reopened = config.connect(NoTls).and_then(|mut client| {
            let prepared = Prepared { write_group: client.prepare(WRITE_GROUP)? };
            Ok((client, prepared))
        });
        match reopened {
            Ok((client, prepared)) => {
                tracing::info!("the connection to PostgreSQL was closed: connected again");
                (self.client, self.prepared) = (client, prepared);
            }
            Err(err) => tracing::warn!(err = %explained(&err), "cannot connect to PostgreSQL again"),
        }
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A workspace's data in a PostgreSQL database.
pub struct PostgresBackend {
    /// The server and database, for messages (never the password).
    place: String,
    workspace: String,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    lease: Arc<Lease>,
    lease_thread: Mutex<Option<JoinHandle<()>>>,
    config: postgres::Config,
    /// A standby's connection for following the log, listening on `sb_log`; opened on first use.
    follower: Mutex<Option<Client>>,
}

/// How a node leads: its lease's length, and its name in the lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub ttl: std::time::Duration,
    /// Empty: the host name and process id.
    pub holder: String,
}

impl Default for LeaseSettings {
    fn default() -> LeaseSettings {
        LeaseSettings { ttl: std::time::Duration::from_secs(2), holder: String::new() }
    }
}

impl PostgresBackend {
    /// Connects to `url` (a libpq connection string or URI), creating or migrating the schema,
    /// for `workspace`'s data, and waits until this node leads the workspace (at once when
    /// nobody else holds it): for tools and tests that need the workspace to themselves.
    pub fn connect(url: &str, workspace: &str) -> Result<PostgresBackend, StoreError> {
        let backend = PostgresBackend::open(url, workspace, LeaseSettings::default())?;
        while !backend.wait_leading(std::time::Duration::from_secs(5)) {
            tracing::info!(leader = ?backend.leader(), "waiting for the workspace's lease");
        }
        Ok(backend)
    }

    /// Connects to `url` for `workspace`'s data, creating or migrating the schema, and starts
    /// looking for the lease: this node takes the workspace over as soon as it may
    /// ([`PostgresBackend::leading`]), standing by until then.
    pub fn open(url: &str, workspace: &str, lease: LeaseSettings) -> Result<PostgresBackend, StoreError> {
        let mut config = parse_url(url)?;
        // A connection that a network or a proxy dropped silently is found within seconds, not
        // the minutes TCP would take: a leader cannot renew, a standby cannot follow, without it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(10))
            .keepalives_interval(std::time::Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(std::time::Duration::from_secs(10));
        // Each connection says what it is for, in `pg_stat_activity`.
        if config.get_application_name().is_none() {
            config.application_name("switchboard");
        }
        let place = describe(&config);
        let open_error = |message: String| StoreError::Open { dir: place.clone().into(), message };
        let holder = if lease.holder.is_empty() {
            format!("{} (pid {})", hostname(), std::process::id())
        } else {
            lease.holder.clone()
        };
        let lease = Arc::new(Lease::new(workspace, holder, lease.ttl));
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::sync_channel(1);
        let thread = {
            let (config, lease) = (config.clone(), lease.clone());
            std::thread::Builder::new()
                .name("store-postgres".to_owned())
                .spawn(move || {
                    let connection = config.connect(NoTls).and_then(|mut client| {
                        migrate(&mut client)?;
                        let prepared = Prepared { write_group: client.prepare(WRITE_GROUP)? };
                        Ok(Connection { client, prepared, lease })
                    });
                    let mut connection = match connection {
                        Ok(connection) => {
                            let _ = ready.send(Ok(()));
                            connection
                        }
                        Err(err) => {
                            let _ = ready.send(Err(explained(&err)));
                            return;
                        }
                    };
                    let mut last_job = std::time::Instant::now();
                    for job in queue {
                        // A connection the server or the network closed while it was idle (a
                        // standby's, for hours, say) is opened again before the next job,
                        // which would fail on it. A busy one is never idle that long, so this
                        // costs a round trip only after a quiet spell.
                        let idle = last_job.elapsed() > IDLE_CHECK;
                        if connection.client.is_closed()
                            || (idle
                                && connection.client.is_valid(std::time::Duration::from_secs(2)).is_err())
                        {
                            connection.reconnect(&config);
                        }
                        job(&mut connection);
                        last_job = std::time::Instant::now();
                    }
                })
                .map_err(|err| open_error(err.to_string()))?
        };
        connected
            .recv()
            .map_err(|_| open_error("the connection's thread stopped".to_owned()))?
            .map_err(open_error)?;
        let lease_thread = {
            let (mut config, lease) = (named(&config, "lease"), lease.clone());
            // A renewal stuck on a dead connection must fail before the lease runs out.
            let limit = format!("-c statement_timeout={}", (lease.ttl / 5).as_millis().max(1));
            let options = config.get_options().map_or(limit.clone(), |given| format!("{given} {limit}"));
            config.options(&options);
            std::thread::Builder::new()
                .name("store-lease".to_owned())
                .spawn(move || postgres_lease::run(config, &lease))
                .map_err(|err| open_error(err.to_string()))?
        };
        tracing::info!(%place, %workspace, node = %lease.holder, "connected to PostgreSQL");
        Ok(PostgresBackend {
            place,
            workspace: workspace.to_owned(),
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            lease,
            lease_thread: Mutex::new(Some(lease_thread)),
            config,
            follower: Mutex::new(None),
        })
    }

    /// Creates or brings up to date the schema at `url`, answering its version.
    pub fn migrate(url: &str) -> Result<i32, StoreError> {
        let config = parse_url(url)?;
        let place = describe(&config);
        let failed =
            |err: postgres::Error| StoreError::Open { dir: place.clone().into(), message: explained(&err) };
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = config.connect(NoTls)?;
                    migrate(&mut client)?;
                    Ok(client.query_one("SELECT version FROM switchboard_schema", &[])?.get(0))
                })
                .join()
                .unwrap_or_else(|_| Ok(0))
        })
        .map_err(failed)
    }

    /// Deletes everything of this node's workspace (a copy into it that failed half-way), if
    /// this node leads it.
    pub fn forget_workspace(&self) -> Result<(), StoreError> {
        self.read(|connection, workspace| {
            let epoch = connection.epoch();
            let mut transaction = connection.client.transaction()?;
            if transaction.query_opt(STILL_MINE, &[&workspace, &epoch])?.is_none() {
                return Ok(());
            }
            for table in ["sb_meta", "sb_snapshot", "sb_log", "sb_events", "sb_records"] {
                transaction.execute(&format!("DELETE FROM {table} WHERE workspace = $1"), &[&workspace])?;
            }
            transaction.commit()
        })
    }

    /// Whether this node leads the workspace (took it over, and has not lost it).
    pub fn leading(&self) -> bool {
        self.lease.leading()
    }

    /// Whether this node leads and is sure of it now (renewed within half of the
    /// lease): what it knows in memory is current.
    pub fn sure(&self) -> bool {
        self.lease.sure()
    }

    /// Waits up to `timeout` for this node to lead; answers whether it does.
    pub fn wait_leading(&self, timeout: std::time::Duration) -> bool {
        self.lease.wait_leading(timeout)
    }

    /// The node that leads the workspace, as far as this one knows.
    pub fn leader(&self) -> Option<String> {
        self.lease.leader()
    }

    /// This node's name in the lease.
    pub fn node(&self) -> &str {
        &self.lease.holder
    }

    /// Why this node no longer leads, once it lost the lease.
    pub fn lost(&self) -> Option<String> {
        self.lease.lost()
    }

    /// Tells `told`, once, when this node loses the lease (another node took over).
    pub fn on_lost(&self, told: Box<dyn Fn(String) + Send + Sync>) {
        self.lease.on_lost(told);
    }

    /// Stops or resumes renewing the lease, as a paused process would (tests).
    pub fn pause_lease(&self, paused: bool) {
        self.lease.pause(paused);
    }

    /// The commands logged after command `after`, `(sequence, time, command)` in order,
    /// waiting up to `wait` for some when there are none yet; `None` when the log no longer
    /// holds the next one (a snapshot dropped it): the follower then starts again from the
    /// snapshot.
    pub fn commands_after(
        &self,
        after: u64,
        wait: std::time::Duration,
    ) -> Result<Option<Logged>, StoreError> {
        // The blocking client must not run on an async runtime's thread, which the caller's
        // may be: it runs on a thread of its own for the call.
        std::thread::scope(|scope| {
            scope.spawn(|| self.follow(after, wait)).join().unwrap_or_else(|_| {
                Err(StoreError::Write("following the log failed unexpectedly".to_owned()))
            })
        })
    }

    fn follow(&self, after: u64, wait: std::time::Duration) -> Result<Option<Logged>, StoreError> {
        let mut follower = self.follower.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failed = |err: postgres::Error| StoreError::Write(self.failure(&err));
        if follower.is_none() {
            let mut client = named(&self.config, "follower").connect(NoTls).map_err(failed)?;
            client.batch_execute("LISTEN sb_log").map_err(failed)?;
            *follower = Some(client);
        }
        let client = follower.as_mut().expect("connected above");
        let outcome = (|| {
            let mut read = self.log_after(client, after)?;
            if read.as_ref().is_some_and(Vec::is_empty) && !wait.is_zero() {
                let heard = {
                    let mut notifications = client.notifications();
                    let heard = notifications.timeout_iter(wait).next()?.is_some();
                    // Several groups may have been announced: one read takes them all.
                    while notifications.iter().next()?.is_some() {}
                    heard
                };
                if heard {
                    read = self.log_after(client, after)?;
                }
            }
            Ok::<_, LogError>(read)
        })();
        match outcome {
            Ok(read) => Ok(read),
            Err(LogError::Database(err)) => {
                // Connected again on the next call, listening again.
                *follower = None;
                Err(failed(err))
            }
            Err(LogError::Store(err)) => Err(err),
        }
    }

    /// The commands after `after` in the log, or `None` when it no longer holds the next one.
    fn log_after(&self, client: &mut Client, after: u64) -> Result<Option<Logged>, LogError> {
        let rows = client.query(
            "SELECT last_seq, commands FROM sb_log WHERE workspace = $1 AND last_seq > $2 ORDER BY last_seq",
            &[&self.workspace, &big(after)],
        )?;
        let groups = rows.into_iter().map(|row| {
            let last = unbig(row.get(0));
            Ok((key_u64(b"c:", last), last, row.get::<_, Vec<u8>>(1)))
        });
        match super::commands_after(after, groups, self) {
            Ok(commands) if commands.first().is_none_or(|(first, _, _)| *first == after + 1) => {
                Ok(Some(commands))
            }
            Ok(_) => Ok(None),
            Err(err) => {
                let snapshot: Option<i64> = client
                    .query_opt("SELECT seq FROM sb_snapshot WHERE workspace = $1", &[&self.workspace])?
                    .map(|row| row.get(0));
                if snapshot.is_some_and(|seq| unbig(seq) > after) {
                    Ok(None)
                } else {
                    Err(LogError::Store(err))
                }
            }
        }
    }

    /// The sequence of the newest event stored.
    pub fn last_event(&self) -> Result<u64, StoreError> {
        let last = self.read(|connection, workspace| {
            Ok(connection
                .client
                .query_opt(
                    "SELECT first_event, events FROM sb_events WHERE workspace = $1 \
                     ORDER BY first_event DESC LIMIT 1",
                    &[&workspace],
                )?
                .map(|row| (row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1))))
        })?;
        match last {
            Some((first, value)) => super::last_event_in(&key_u64(b"e:", unbig(first)), &value, self),
            None => Ok(0),
        }
    }

    /// Runs `job` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection, &str) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, String> {
        let (answer, answered) = mpsc::sync_channel(1);
        let workspace = self.workspace.clone();
        let sent = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref().map(|jobs| {
            jobs.send(Box::new(move |connection: &mut Connection| {
                let _ = answer.send(job(connection, &workspace));
            }))
        });
        match sent {
            Some(Ok(())) => {}
            _ => return Err(format!("the connection to {} is closed", self.place)),
        }
        answered
            .recv()
            .map_err(|_| format!("the connection to {} stopped", self.place))?
            .map_err(|err| self.failure(&err))
    }

    /// What the server said about a failed statement, naming the database.
    fn failure(&self, err: &postgres::Error) -> String {
        format!("{}: {}", self.place, explained(err))
    }

    fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection, &str) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(job).map_err(StoreError::Write)
    }
}

impl PostgresBackend {
    /// Why nothing more is written: another node took the workspace over.
    fn fenced(&self) -> String {
        format!(
            "another Switchboard took workspace {} over in {}: this one writes and acknowledges nothing more",
            self.workspace, self.place
        )
    }
}

/// Why the log could not be read: the database, or a record that does not decode.
enum LogError {
    Database(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for LogError {
    fn from(err: postgres::Error) -> LogError {
        LogError::Database(err)
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the connection; the lease is handed
        // back last, once nothing more is written.
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            let _ = thread.join();
        }
        // Closed on a thread of its own, like every use of the blocking client.
        let follower = self.follower.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(follower) = follower {
            let _ = std::thread::spawn(move || drop(follower)).join();
        }
        self.lease.stop();
        if let Some(thread) = self.lease_thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
        {
            let _ = thread.join();
        }
    }
}

/// Creates or brings the schema up to date, one migration at a time, under an advisory lock.
fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    transaction.batch_execute("CREATE TABLE IF NOT EXISTS switchboard_schema (version integer NOT NULL)")?;
    let version: i32 =
        transaction.query_opt("SELECT version FROM switchboard_schema", &[])?.map_or(0, |row| row.get(0));
    for migration in MIGRATIONS.iter().skip(usize::try_from(version).unwrap_or(usize::MAX)) {
        transaction.batch_execute(migration)?;
    }
    let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if version == 0 {
        transaction.execute("INSERT INTO switchboard_schema VALUES ($1)", &[&latest])?;
    } else if version < latest {
        transaction.execute("UPDATE switchboard_schema SET version = $1", &[&latest])?;
    }
    transaction.commit()
}

/// The connection settings in `url` (`store.postgres_url`).
fn parse_url(url: &str) -> Result<postgres::Config, StoreError> {
    url.parse()
        .map_err(|err| StoreError::Open { dir: "store.postgres_url".into(), message: format!("{err}") })
}

/// `config` for a connection of `role` (its application name says so).
fn named(config: &postgres::Config, role: &str) -> postgres::Config {
    let mut named = config.clone();
    named.application_name(&format!("{} {role}", config.get_application_name().unwrap_or("switchboard")));
    named
}

/// The error with what the server said (`db error` alone says nothing).
pub(super) fn explained(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

/// This machine's name, to say in the lease who holds it.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
}

/// `host:port/database` of `config`, without credentials.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgresql://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// A sequence number as PostgreSQL's `bigint`.
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unbig(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The smallest key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

impl Backend for PostgresBackend {
    fn recover(&self) -> Result<Recovered, StoreError> {
        let (snapshot, log) = self.read(|connection, workspace| {
            // One view of both: a snapshot written between the two reads would drop the log
            // this one's snapshot needs.
            let mut client = connection
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()?;
            client.execute(
                "INSERT INTO sb_meta VALUES ($1, 'format', '1') ON CONFLICT DO NOTHING",
                &[&workspace],
            )?;
            let snapshot = client
                .query_opt("SELECT seq, snapshot FROM sb_snapshot WHERE workspace = $1", &[&workspace])?
                .map(|row| (row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1)));
            let log: Vec<(i64, Vec<u8>)> = client
                .query(
                    "SELECT last_seq, commands FROM sb_log WHERE workspace = $1 ORDER BY last_seq",
                    &[&workspace],
                )?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            client.commit()?;
            Ok((snapshot, log))
        })?;
        let (snapshot_seq, snapshot) = match snapshot {
            Some((seq, bytes)) => {
                let damaged = |message: String| self.corrupt(b"s:snapshot", message);
                let record: SnapshotRecord =
                    serde_json::from_slice(&bytes).map_err(|err| damaged(err.to_string()))?;
                (unbig(seq), Some(record.into_snapshot().map_err(|err| damaged(err.0))?))
            }
            None => (0, None),
        };
        let groups =
            log.into_iter().map(|(last, value)| Ok((key_u64(b"c:", unbig(last)), unbig(last), value)));
        let commands = super::commands_after(snapshot_seq, groups, self)?;
        let last_event = self.last_event()?;
        Ok(Recovered { snapshot, snapshot_seq, commands, last_event })
    }

    fn write_group(&self, group: Group) -> Result<(), String> {
        let (last_seq, commands) =
            group.commands.map_or((None, None), |(last, commands)| (Some(big(last)), Some(commands)));
        let (first_event, events) =
            group.events.map_or((None, None), |(first, events)| (Some(big(first)), Some(events)));
        // Each key's last change in the group is the one that counts.
        let mut last_change: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::BTreeMap::new();
        for (key, value) in group.records {
            last_change.insert(key, value);
        }
        let (mut deleted, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in last_change {
            match value {
                Some(value) => {
                    put_keys.push(key);
                    put_values.push(value);
                }
                None => deleted.push(key),
            }
        }
        let written = self.call(move |connection, workspace| {
            let row = connection.client.query_one(
                &connection.prepared.write_group,
                &[
                    &workspace,
                    &last_seq,
                    &commands,
                    &first_event,
                    &events,
                    &deleted,
                    &put_keys,
                    &put_values,
                    &connection.epoch(),
                ],
            )?;
            Ok(row.get::<_, i64>(0) == 1)
        });
        match written {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.fenced()),
            Err(err) => Err(format!("writing a group of changes failed: {err}")),
        }
    }

    fn sync(&self) -> Result<(), String> {
        // Every group is a transaction committed durably before `write_group` returns.
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.read(move |connection, workspace| {
            let row = connection.client.query_opt(
                "SELECT value FROM sb_records WHERE workspace = $1 AND key = $2",
                &[&workspace, &key],
            )?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let (start, end) = (prefix.to_vec(), prefix_end(prefix));
        self.read(move |connection, workspace| {
            let rows = connection.client.query(
                "SELECT key, value FROM sb_records WHERE workspace = $1 AND key >= $2 AND key < $3 ORDER BY key",
                &[&workspace, &start, &end],
            )?;
            Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn event_groups(&self, below: Option<u64>, newest_first: bool) -> EventGroups<'_> {
        Box::new(PagedEvents {
            backend: self,
            after: None,
            below: below.map(big),
            newest_first,
            page: VecDeque::new(),
            done: false,
        })
    }

    fn kept(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = format!("kept:{name}");
        let key = name.clone();
        let value = self.read(move |connection, workspace| {
            let row = connection.client.query_opt(
                "SELECT value FROM sb_meta WHERE workspace = $1 AND name = $2",
                &[&workspace, &name],
            )?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })?;
        value
            .map(|value| {
                String::from_utf8(value)
                    .map_err(|err| self.corrupt(format!("m:{key}").as_bytes(), err.to_string()))
            })
            .transpose()
    }

    fn kept_value(&self, name: &str, generated: String) -> Result<String, StoreError> {
        let name = format!("kept:{name}");
        let key = name.clone();
        let value = self.read(move |connection, workspace| {
            // The first node to keep a value wins; the others read it.
            connection.client.execute(
                "INSERT INTO sb_meta VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&workspace, &name, &generated.as_bytes()],
            )?;
            let row = connection.client.query_one(
                "SELECT value FROM sb_meta WHERE workspace = $1 AND name = $2",
                &[&workspace, &name],
            )?;
            Ok(row.get::<_, Vec<u8>>(0))
        })?;
        String::from_utf8(value).map_err(|err| self.corrupt(format!("m:{key}").as_bytes(), err.to_string()))
    }

    fn write_snapshot(&self, seq: u64, snapshot: &crate::routing::Snapshot) -> Result<(), StoreError> {
        let encoded = serde_json::to_vec(&SnapshotEncoding(snapshot))
            .map_err(|err| StoreError::Write(err.to_string()))?;
        // On a connection of its own (and a thread, as every use of the blocking client): a
        // snapshot takes a while to write, and the groups written meanwhile must not wait.
        let failed = |err: postgres::Error| StoreError::Write(self.failure(&err));
        let still_mine = std::thread::scope(|scope| {
            let written = scope.spawn(|| {
                let mut client = named(&self.config, "snapshot").connect(NoTls)?;
                let mut transaction = client.transaction()?;
                // The log back to the previous snapshot stays, so that a standby a little behind
                // follows it without starting again from the snapshot.
                transaction.execute(
                    "DELETE FROM sb_log WHERE workspace = $1 \
                     AND last_seq <= (SELECT seq FROM sb_snapshot WHERE workspace = $1)",
                    &[&self.workspace],
                )?;
                transaction.execute(
                    "INSERT INTO sb_snapshot VALUES ($1, $2, $3) \
                     ON CONFLICT (workspace) DO UPDATE SET seq = EXCLUDED.seq, snapshot = EXCLUDED.snapshot",
                    &[&self.workspace, &big(seq), &encoded],
                )?;
                // Checked last, so that the lease row is locked only from here to the commit:
                // a takeover either waits for the commit or makes this check fail.
                if transaction.query_opt(STILL_MINE, &[&self.workspace, &self.lease.epoch()])?.is_none() {
                    return Ok(false);
                }
                transaction.commit().map(|()| true)
            });
            written.join().unwrap_or_else(|_| Ok(false))
        })
        .map_err(failed)?;
        if still_mine { Ok(()) } else { Err(StoreError::Write(self.fenced())) }
    }

    fn delete_event_groups(&self, firsts: &[u64]) -> Result<(), StoreError> {
        let firsts: Vec<i64> = firsts.iter().copied().map(big).collect();
        self.read(move |connection, workspace| {
            let epoch = connection.epoch();
            connection
                .client
                .execute(
                    "DELETE FROM sb_events WHERE workspace = $1 AND first_event = ANY($2) \
                     AND EXISTS (SELECT 1 FROM sb_lease WHERE workspace = $1 AND epoch = $3)",
                    &[&workspace, &firsts, &epoch],
                )
                .map(|_| ())
        })
    }

    fn dump(&self) -> Vec<Entry> {
        let dumped = self.read(|connection, workspace| {
            let client = &mut connection.client;
            let mut entries: Vec<Entry> = Vec::new();
            for row in client.query("SELECT name, value FROM sb_meta WHERE workspace = $1", &[&workspace])? {
                entries.push((format!("m:{}", row.get::<_, String>(0)).into_bytes(), row.get(1)));
            }
            for row in client.query("SELECT seq FROM sb_snapshot WHERE workspace = $1", &[&workspace])? {
                entries.push((b"m:snapshot_seq".to_vec(), unbig(row.get(0)).to_string().into_bytes()));
            }
            for row in
                client.query("SELECT last_seq, commands FROM sb_log WHERE workspace = $1", &[&workspace])?
            {
                entries.push((key_u64(b"c:", unbig(row.get(0))), row.get(1)));
            }
            for row in client
                .query("SELECT first_event, events FROM sb_events WHERE workspace = $1", &[&workspace])?
            {
                entries.push((key_u64(b"e:", unbig(row.get(0))), row.get(1)));
            }
            for row in
                client.query("SELECT key, value FROM sb_records WHERE workspace = $1", &[&workspace])?
            {
                entries.push((row.get(0), row.get(1)));
            }
            entries.sort();
            Ok(entries)
        });
        dumped.unwrap_or_else(|err| vec![(b"error".to_vec(), err.to_string().into_bytes())])
    }

    fn corrupt(&self, key: &[u8], message: String) -> StoreError {
        StoreError::Damaged {
            place: format!("{} (workspace {})", self.place, self.workspace),
            key: printable_key(key),
            message,
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Event groups read a page at a time, in the order asked for.
struct PagedEvents<'a> {
    backend: &'a PostgresBackend,
    /// The last group read: the next page starts after it.
    after: Option<i64>,
    below: Option<i64>,
    newest_first: bool,
    page: VecDeque<(i64, Vec<u8>)>,
    done: bool,
}

impl Iterator for PagedEvents<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            let (after, below, newest_first) = (self.after, self.below, self.newest_first);
            let read = self.backend.read(move |connection, workspace| {
                let rows = if newest_first {
                    let below = after.or(below).unwrap_or(i64::MAX);
                    connection.client.query(
                        "SELECT first_event, events FROM sb_events WHERE workspace = $1 AND first_event < $2 \
                         ORDER BY first_event DESC LIMIT $3",
                        &[&workspace, &below, &EVENT_PAGE],
                    )?
                } else {
                    let (after, below) = (after.unwrap_or(-1), below.unwrap_or(i64::MAX));
                    connection.client.query(
                        "SELECT first_event, events FROM sb_events WHERE workspace = $1 \
                         AND first_event > $2 AND first_event < $3 ORDER BY first_event LIMIT $4",
                        &[&workspace, &after, &below, &EVENT_PAGE],
                    )?
                };
                Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect::<VecDeque<(i64, Vec<u8>)>>())
            });
            match read {
                Ok(page) => {
                    self.done = page.len() < usize::try_from(EVENT_PAGE).unwrap_or(usize::MAX);
                    self.after = page.back().map(|(first, _)| *first).or(self.after);
                    self.page = page;
                }
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        let (first, events) = self.page.pop_front()?;
        Some(Ok((key_u64(b"e:", unbig(first)), events)))
    }
}
