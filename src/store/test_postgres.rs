//! A private PostgreSQL cluster for the tests, started for real from Debian's binaries
//! (`initdb`, `pg_ctl`) under `target/postgres-test/`, reachable on a Unix socket only; one per
//! test process, started on first use, with a database of its own for each test. A watchdog
//! process stops it once the test process is gone. Debian's `postgresql` is installed by
//! `tests/postgres/install.sh` when missing (as root or with sudo), as `.ci/run` also does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The cluster of this test process: its socket directory.
struct Cluster {
    socket_dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A connection string to a new, empty database in this process's cluster.
pub fn new_database() -> String {
    let cluster = CLUSTER.get_or_init(start).as_ref().unwrap_or_else(|err| panic!("{err}"));
    let name = format!("test_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    let admin = format!("host={} user=postgres dbname=postgres", cluster.socket_dir.display());
    // On a thread of its own: the blocking client runs a runtime, which must not start inside
    // an async test's.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut client = postgres::Client::connect(&admin, postgres::NoTls)
                    .unwrap_or_else(|err| panic!("connecting to the test cluster: {err}"));
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap_or_else(|err| panic!("creating database {name}: {err}"));
            })
            .join()
            .unwrap_or_else(|_| panic!("creating database {name} failed"));
    });
    format!("host={} user=postgres dbname={name}", cluster.socket_dir.display())
}

/// Ends the sessions of database `url` whose application names are `names`, as an
/// administrator or a pooler restart would; answers how many.
#[allow(
    dead_code,
    reason = "the benches and the integration tests include this file and do not end sessions"
)]
pub fn end_sessions(url: &str, names: &[&str]) -> usize {
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|err| panic!("{url}: {err}"));
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = ANY($1)",
            &[&names],
        )
        .unwrap_or_else(|err| panic!("ending sessions: {err}"));
    rows.len()
}

/// Debian's PostgreSQL binaries (the newest installed version).
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Runs `program` with `args` as the `postgres` user when this process is root (PostgreSQL
/// refuses to run as root), as itself otherwise.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    // SAFETY: geteuid(2) has no preconditions and always succeeds.
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.args(args);
    command
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|err| format!("{what}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn start() -> Result<Cluster, String> {
    let bin = match binaries() {
        Some(bin) => bin,
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres/install.sh");
            run(
                {
                    let mut command = Command::new("bash");
                    command.arg(&script);
                    command
                },
                "installing PostgreSQL (tests/postgres/install.sh)",
            )?;
            binaries().ok_or("PostgreSQL is still missing after tests/postgres/install.sh")?
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/postgres-test");
    // What earlier test processes left (their folders, emptied by their watchdogs).
    for earlier in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if !Path::new("/proc").join(earlier.file_name()).exists() {
            let _ = std::fs::remove_dir_all(earlier.path());
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    // SAFETY: geteuid(2) has no preconditions and always succeeds.
    if unsafe { libc::geteuid() } == 0 {
        run(
            {
                let mut command = Command::new("chown");
                command.arg("postgres:postgres").arg(&dir);
                command
            },
            "handing the test cluster's folder to the postgres user",
        )?;
    }
    let data = dir.join("data");
    let (data_text, dir_text) = (data.display().to_string(), dir.display().to_string());
    run(
        as_postgres(
            &bin.join("initdb"),
            &["-D", &data_text, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        ),
        "initdb",
    )?;
    let options = format!("-k {dir_text} -c listen_addresses='' -c max_connections=200");
    let log = dir.join("log").display().to_string();
    run(
        as_postgres(&bin.join("pg_ctl"), &["-D", &data_text, "-o", &options, "-l", &log, "-w", "start"]),
        "pg_ctl start",
    )?;
    // Stops the cluster once this process is gone, however it ends.
    let watchdog = format!(
        // (`kill -0` would fail as the postgres user on a root process: /proc says it is there.)
        "while [ -d /proc/{} ]; do sleep 1; done; {} -D {data_text} -m immediate stop; rm -rf {data_text}",
        std::process::id(),
        bin.join("pg_ctl").display()
    );
    as_postgres(Path::new("sh"), &["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("starting the test cluster's watchdog: {err}"))?;
    Ok(Cluster { socket_dir: dir })
}
