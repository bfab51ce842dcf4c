//! Who leads a workspace kept in PostgreSQL: a lease row (`sb_lease`) judged by PostgreSQL's
//! clock, held and renewed by one node at a time on a connection of its own, so that a long
//! write never delays a renewal.
//!
//! A node takes the workspace over when the lease ran out (`expires_at < now()`, the server's
//! clock: the nodes' clocks never decide), or sooner when the database session that last
//! renewed it is gone (`holder_pid` no longer in `pg_stat_activity`: the leader crashed or was
//! killed, and PostgreSQL closed its sessions) and half the lease has passed since that renewal
//! (`renewed_at`). Taking over raises the epoch, and every write checks the epoch in the same
//! statement (`postgres_backend.rs`), so a paused or cut-off leader can never write again,
//! whatever it believes.
//!
//! The leader renews every fifth of the lease. It counts itself sure of the lease for half of
//! it after the start of its last successful renewal (its own monotonic clock), and answers
//! nothing past that ([`Lease::sure`]) until it renewed again: a leader that was paused, or
//! whose session was cut while it lives, cannot tell whether it still leads. No node takes
//! over before that half has passed, whichever way, so two nodes never both answer from memory. When a renewal finds the epoch moved on, the lease
//! is lost for good and the node stops ([`Lease::lost`]); a clean stop hands the lease back, so
//! a standby takes over at once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

/// Takes the workspace over when nobody holds it, its lease ran out, or the session that held
/// it is gone; answers the new epoch, or nothing when another node still holds it.
const ACQUIRE: &str = "
    INSERT INTO sb_lease AS lease (workspace, epoch, holder, taken_at, expires_at, holder_pid, renewed_at)
    VALUES ($1, 1, $2, now(), now() + $3::bigint * interval '1 millisecond', pg_backend_pid(), now())
    ON CONFLICT (workspace) DO UPDATE
        SET epoch = lease.epoch + 1, holder = EXCLUDED.holder, taken_at = now(),
            expires_at = EXCLUDED.expires_at, holder_pid = EXCLUDED.holder_pid, renewed_at = now()
        WHERE lease.expires_at < now()
           OR (lease.renewed_at + $3::bigint / 2 * interval '1 millisecond' < now()
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = lease.holder_pid))
    RETURNING epoch";

/// Extends the lease this node holds (`$2`, its epoch); no row when another node took over.
const RENEW: &str = "
    UPDATE sb_lease SET expires_at = now() + $3::bigint * interval '1 millisecond', holder_pid = pg_backend_pid(),
                        renewed_at = now()
    WHERE workspace = $1 AND epoch = $2 RETURNING 1";

/// Hands the lease back on a clean stop: a standby takes over at its next look.
const RELEASE: &str = "UPDATE sb_lease SET expires_at = '-infinity' WHERE workspace = $1 AND epoch = $2";

/// Who holds the lease, and whether it is still running.
const HOLDER: &str = "SELECT holder, expires_at > now() FROM sb_lease WHERE workspace = $1";

/// How often a standby looks whether it can take over: the failover's detection time after a
/// crash.
const STANDBY_POLL: Duration = Duration::from_millis(100);

/// What this node knows of its lease.
pub(super) struct Lease {
    pub(super) workspace: String,
    /// How this node is named in the lease.
    pub(super) holder: String,
    pub(super) ttl: Duration,
    /// The epoch this node holds the workspace at; 0 until it takes it over. Every write is
    /// fenced with it.
    epoch: AtomicI64,
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    /// Told once, when the lease is lost.
    on_lost: OnceLock<Box<dyn Fn(String) + Send + Sync>>,
    /// Tests pause the renewals, as a paused process would.
    paused: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Until when this node is sure it leads (its monotonic clock).
    sure_until: Option<Instant>,
    /// Who held the lease at the last look, and whether it was running then.
    leader: Option<(String, bool)>,
    /// Why this node no longer leads, once it lost the lease.
    lost: Option<String>,
}

impl Lease {
    pub(super) fn new(workspace: &str, holder: String, ttl: Duration) -> Lease {
        Lease {
            workspace: workspace.to_owned(),
            holder,
            ttl,
            epoch: AtomicI64::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            on_lost: OnceLock::new(),
            paused: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The epoch writes are fenced with (0: this node never led, and writes nothing).
    pub(super) fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether this node took the workspace over and has not lost it.
    pub(super) fn leading(&self) -> bool {
        self.epoch() != 0 && self.state().lost.is_none()
    }

    /// Whether this node leads and is sure of it now: what it answers from memory is current.
    pub(super) fn sure(&self) -> bool {
        let state = self.state();
        self.epoch() != 0
            && state.lost.is_none()
            && state.sure_until.is_some_and(|until| Instant::now() < until)
    }

    /// Why this node no longer leads, if it lost the lease.
    pub(super) fn lost(&self) -> Option<String> {
        self.state().lost.clone()
    }

    /// Who held the lease at the last look (this node's own name once it leads).
    pub(super) fn leader(&self) -> Option<String> {
        if self.leading() {
            return Some(self.holder.clone());
        }
        self.state().leader.as_ref().filter(|(_, running)| *running).map(|(holder, _)| holder.clone())
    }

    /// Waits up to `timeout` for this node to lead; answers whether it does.
    pub(super) fn wait_leading(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if self.epoch() != 0 && state.lost.is_none() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.load(Ordering::SeqCst) {
                return false;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    pub(super) fn on_lost(&self, told: Box<dyn Fn(String) + Send + Sync>) {
        let _ = self.on_lost.set(told);
    }

    pub(super) fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Ends [`run`], handing the lease back if this node holds it.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _state = self.state();
        self.changed.notify_all();
    }

    fn took_over(&self, epoch: i64, started: Instant) {
        let mut state = self.state();
        self.epoch.store(epoch, Ordering::SeqCst);
        state.sure_until = Some(started + self.ttl / 2);
        self.changed.notify_all();
    }

    fn renewed(&self, started: Instant) {
        self.state().sure_until = Some(started + self.ttl / 2);
    }

    fn lose(&self, why: String) {
        tracing::error!(workspace = %self.workspace, %why, "this node no longer leads the workspace");
        self.state().lost = Some(why.clone());
        if let Some(told) = self.on_lost.get() {
            told(why);
        }
    }

    /// Sleeps until `until`, or until stopped.
    fn sleep_until(&self, until: Instant) {
        let mut state = self.state();
        while !self.stop.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

/// The lease's thread: takes the workspace over as soon as it may, then renews the lease until
/// it is lost or [`Lease::stop`] is called.
pub(super) fn run(config: postgres::Config, lease: &Lease) {
    let ttl_ms = i64::try_from(lease.ttl.as_millis()).unwrap_or(i64::MAX);
    let poll = STANDBY_POLL.min(lease.ttl / 5);
    let mut client: Option<Client> = None;
    let mut next = Instant::now();
    let mut complained = false;
    loop {
        lease.sleep_until(next);
        if lease.stop.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        next = started + poll;
        if lease.paused.load(Ordering::SeqCst) {
            continue;
        }
        if client.is_none() {
            match config.connect(NoTls) {
                Ok(connected) => {
                    client = Some(connected);
                    complained = false;
                }
                Err(err) if !complained => {
                    tracing::warn!(err = %super::postgres_backend::explained(&err), "cannot reach PostgreSQL for the lease");
                    complained = true;
                }
                Err(_) => {}
            }
        }
        let epoch = lease.epoch();
        let Some(connection) = client.as_mut() else {
            if epoch != 0
                && started.duration_since(lease.state().sure_until.unwrap_or(started)) > lease.ttl / 2
            {
                lease.lose("PostgreSQL could not be reached to renew the lease before it ran out".to_owned());
                return;
            }
            continue;
        };
        let outcome = if epoch == 0 {
            connection.query_opt(ACQUIRE, &[&lease.workspace, &lease.holder, &ttl_ms]).map(|row| match row {
                Some(row) => {
                    let epoch: i64 = row.get(0);
                    lease.took_over(epoch, started);
                    tracing::info!(workspace = %lease.workspace, epoch, "took the workspace over: leading");
                    next = started + lease.ttl / 5;
                }
                None => {
                    if let Ok(Some(row)) = connection.query_opt(HOLDER, &[&lease.workspace]) {
                        lease.state().leader = Some((row.get(0), row.get(1)));
                    }
                }
            })
        } else {
            connection.query_opt(RENEW, &[&lease.workspace, &epoch, &ttl_ms]).map(|row| {
                if row.is_some() {
                    lease.renewed(started);
                    next = started + lease.ttl / 5;
                } else {
                    lease.lose(format!(
                        "another node took workspace {} over (this node held epoch {epoch})",
                        lease.workspace
                    ));
                }
            })
        };
        if let Err(err) = outcome {
            tracing::warn!(err = %super::postgres_backend::explained(&err), "the lease's connection failed; reconnecting");
            client = None;
        }
        if lease.lost().is_some() {
            return;
        }
    }
    let epoch = lease.epoch();
    if epoch != 0
        && lease.lost().is_none()
        && let Some(connection) = client.as_mut()
        && connection.execute(RELEASE, &[&lease.workspace, &epoch]).is_ok()
    {
        tracing::info!(workspace = %lease.workspace, epoch, "handed the lease back");
    }
}
