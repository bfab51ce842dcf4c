//! PostgreSQL as the store's medium (`store.backend = "postgres"`, `store.postgres_url`): the
//! only file that uses the `postgres` crate. Each group is one statement, so one round trip and
//! one transaction (committed with the server's `synchronous_commit`, so durable when it
//! returns); the snapshot is one row,
//! replaced in the same transaction that drops the log it covers.
//!
//! Opening the store takes the workspace over (`sb_lease`: its epoch goes up by one), and every
//! write checks that epoch in the same statement: a node that another one took over from
//! (paused, partitioned, or simply still running) can never write or acknowledge again.
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
//! | `sb_lease` | workspace | the epoch of the node that holds it, who, since when |
//!
//! The client is blocking, like sled, and lives on a thread of its own: the store calls it
//! from the flusher thread and from the server's async tasks alike, and the client's own
//! runtime must not run inside the server's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use postgres::{Client, NoTls, Statement};

use super::backend::{Backend, Entry, EventGroups, Group};
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
];

/// Taken while the schema is checked and migrated (an arbitrary number of Switchboard's).
const MIGRATION_LOCK: i64 = 0x5357_4254_4348;

/// Event groups read per query when they are scanned.
const EVENT_PAGE: i64 = 64;

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
                 ON CONFLICT (workspace, key) DO UPDATE SET value = EXCLUDED.value)
    SELECT count(*) FROM fence";

/// Takes the workspace over: the epoch goes up by one, which fences whoever held it before.
const TAKE_OVER: &str = "
    INSERT INTO sb_lease VALUES ($1, 1, $2, now())
    ON CONFLICT (workspace) DO UPDATE SET epoch = sb_lease.epoch + 1, holder = EXCLUDED.holder, taken_at = now()
    RETURNING epoch";

/// Locks the lease row for the rest of a transaction, answering whether this node still holds
/// it (`$2`, its epoch).
const STILL_MINE: &str = "SELECT epoch FROM sb_lease WHERE workspace = $1 AND epoch = $2 FOR UPDATE";

/// The statements of the write path, prepared once per connection.
struct Prepared {
    write_group: Statement,
}

/// The connection, on its own thread.
struct Connection {
    client: Client,
    prepared: Prepared,
    /// The workspace's epoch when this node took it over: its writes are fenced with it.
    epoch: i64,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A workspace's data in a PostgreSQL database.
pub struct PostgresBackend {
    /// The server and database, for messages (never the password).
    place: String,
    workspace: String,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PostgresBackend {
    /// Connects to `url` (a libpq connection string or URI), creating or migrating the schema,
    /// for `workspace`'s data.
    pub fn connect(url: &str, workspace: &str) -> Result<PostgresBackend, StoreError> {
        let config: postgres::Config = url.parse().map_err(|err| StoreError::Open {
            dir: "store.postgres_url".into(),
            message: format!("{err}"),
        })?;
        let place = describe(&config);
        let open_error = |message: String| StoreError::Open { dir: place.clone().into(), message };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::sync_channel(1);
        let (owner, holder) = (workspace.to_owned(), format!("{} (pid {})", hostname(), std::process::id()));
        let thread = std::thread::Builder::new()
            .name("store-postgres".to_owned())
            .spawn(move || {
                let connection = config.connect(NoTls).and_then(|mut client| {
                    migrate(&mut client)?;
                    let epoch: i64 = client.query_one(TAKE_OVER, &[&owner, &holder])?.get(0);
                    let prepared = Prepared { write_group: client.prepare(WRITE_GROUP)? };
                    Ok((Connection { client, prepared, epoch }, epoch))
                });
                let mut connection = match connection {
                    Ok((connection, epoch)) => {
                        let _ = ready.send(Ok(epoch));
                        connection
                    }
                    Err(err) => {
                        let _ = ready.send(Err(explained(&err)));
                        return;
                    }
                };
                for job in queue {
                    job(&mut connection);
                }
            })
            .map_err(|err| open_error(err.to_string()))?;
        let epoch = connected
            .recv()
            .map_err(|_| open_error("the connection's thread stopped".to_owned()))?
            .map_err(open_error)?;
        tracing::info!(%place, %workspace, epoch, "took the workspace over in PostgreSQL");
        Ok(PostgresBackend {
            place,
            workspace: workspace.to_owned(),
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
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
            .map_err(|err| format!("{}: {}", self.place, explained(&err)))
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

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the connection.
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
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

/// The error with what the server said (`db error` alone says nothing).
fn explained(err: &postgres::Error) -> String {
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
        let (snapshot, log, last_events) = self.read(|connection, workspace| {
            let client = &mut connection.client;
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
            let last_events = client
                .query_opt(
                    "SELECT first_event, events FROM sb_events WHERE workspace = $1 \
                     ORDER BY first_event DESC LIMIT 1",
                    &[&workspace],
                )?
                .map(|row| (row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1)));
            Ok((snapshot, log, last_events))
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
        let last_event = match last_events {
            Some((first, value)) => super::last_event_in(&key_u64(b"e:", unbig(first)), &value, self)?,
            None => 0,
        };
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
                    &connection.epoch,
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
        let still_mine = self.read(move |connection, workspace| {
            let mut transaction = connection.client.transaction()?;
            if transaction.query_opt(STILL_MINE, &[&workspace, &connection.epoch])?.is_none() {
                return Ok(false);
            }
            transaction.execute(
                "INSERT INTO sb_snapshot VALUES ($1, $2, $3) \
                 ON CONFLICT (workspace) DO UPDATE SET seq = EXCLUDED.seq, snapshot = EXCLUDED.snapshot",
                &[&workspace, &big(seq), &encoded],
            )?;
            transaction.execute(
                "DELETE FROM sb_log WHERE workspace = $1 AND last_seq <= $2",
                &[&workspace, &big(seq)],
            )?;
            transaction.commit().map(|()| true)
        })?;
        if still_mine { Ok(()) } else { Err(StoreError::Write(self.fenced())) }
    }

    fn delete_event_groups(&self, firsts: &[u64]) -> Result<(), StoreError> {
        let firsts: Vec<i64> = firsts.iter().copied().map(big).collect();
        self.read(move |connection, workspace| {
            connection
                .client
                .execute(
                    "DELETE FROM sb_events WHERE workspace = $1 AND first_event = ANY($2)",
                    &[&workspace, &firsts],
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
