//! The sign-in throttle: failed sign-ins are counted per name and per client address, and past
//! a few a key must wait, longer after each further failure, before its next attempt is even
//! checked. An attempt made while waiting is refused with 429 and `Retry-After` WITHOUT
//! looking at the secret, so that the right secret does not work either: 40 wrong guesses in
//! 40 ms, then the right one, gets the right one refused.
//!
//! The numbers (each kind of key its own [`Limits`]):
//!
//! - per name (an agent's name as typed, case ignored, known or not; the account SID the admin
//!   signs in with): 5 failures free, then a wait of 1 s after the 5th, doubling with each
//!   further failure (2 s, 4 s...) up to 15 minutes; a successful sign-in forgets the name's
//!   failures. An attacker who knows a name can keep that person waiting, at most 15 minutes
//!   at a time: the price of limiting guesses per account;
//! - per client address, across names (so that cycling names does not help), for the agent
//!   and admin sign-ins: 20 failures free (a contact-center floor often shares one address
//!   behind its NAT, and people mistype), then the same doubling waits;
//! - per client address for HTTP Basic failures on the REST and admin APIs: 100 free (a REST
//!   client is a server with configured credentials; a misconfigured one fails on every call
//!   and must not hold back others behind the same address at once), then the same waits.
//!   Only addresses: a wait per account SID would let anyone who knows it (it is in every URL)
//!   stop every API client of the account.
//!
//! A key's failures are forgotten 15 minutes after its last one. The client address is the one
//! [`super::origin`] gives, so behind a proxy it must be in `http.trusted_proxies`, or every
//! client shares the proxy's address; an IPv6 client counts by its /64, which one host
//! usually holds whole.
//!
//! Only failures count: a successful sign-in or API call costs nothing, however many.
//!
//! [`Throttle`] is pure (time is a parameter) and bounded: at most `capacity` keys (10,000 of
//! each kind, a few megabytes in all), the one whose last failure is oldest forgotten first, so
//! an attacker cycling names or addresses cannot grow it. To push a waiting name out, they
//! would need 10,000 newer failures, from at least 500 addresses' allowances.
//! [`SignInThrottle`] holds the three in memory for the HTTP edge, and checks the wait, the
//! secret and counts the outcome under one lock, so that concurrent guesses cannot slip past;
//! a restart forgets every count, which gives an attacker a fresh start only as often as the
//! server restarts.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::agents::Role;
use crate::routing::Millis;

/// How one kind of key is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Failures a key may make before it has to wait.
    pub free: u32,
    /// The wait after the last free failure; each further failure doubles it...
    pub first_wait: Millis,
    /// ...up to this.
    pub max_wait: Millis,
    /// A key's failures are forgotten this long after its last one (at least `max_wait`, so
    /// that a wait is never cut short).
    pub forget_after: Millis,
    /// Keys remembered at most.
    pub capacity: usize,
}

const MINUTE: Millis = 60_000;

/// Per name: agents' names and the admin's account SID.
pub(crate) const PER_NAME: Limits =
    Limits { free: 5, first_wait: 1_000, max_wait: 15 * MINUTE, forget_after: 15 * MINUTE, capacity: 10_000 };
/// Per client address, for the sign-in forms.
pub(crate) const PER_ADDRESS: Limits = Limits { free: 20, ..PER_NAME };
/// Per client address, for HTTP Basic on the REST and admin APIs.
pub(crate) const PER_API_ADDRESS: Limits = Limits { free: 100, ..PER_NAME };

/// One key's failures.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Millis,
    /// No attempt is checked before then.
    wait_until: Millis,
}

/// Failed attempts per key, and the waits they impose (see the module's comment).
#[derive(Debug)]
pub(crate) struct Throttle<K> {
    limits: Limits,
    keys: HashMap<K, Failures>,
    /// The same keys by their last failure, oldest first: what expires or is evicted first.
    by_age: BTreeSet<(Millis, K)>,
}

impl<K: Hash + Ord + Clone> Throttle<K> {
    pub(crate) fn new(limits: Limits) -> Throttle<K> {
        Throttle { limits, keys: HashMap::new(), by_age: BTreeSet::new() }
    }

    /// How long `key` must still wait at `now` before an attempt of it is checked; `None`: check
    /// it now.
    pub(crate) fn wait(&self, key: &K, now: Millis) -> Option<Millis> {
        let failures = self.keys.get(key)?;
        (now < failures.wait_until).then(|| failures.wait_until - now)
    }

    /// Counts a failed attempt of `key` at `now` (one that was checked); answers the wait it
    /// imposes, if any.
    pub(crate) fn failed(&mut self, key: K, now: Millis) -> Option<Millis> {
        self.forget_before(now.saturating_sub(self.limits.forget_after));
        let count = match self.keys.remove(&key) {
            Some(earlier) => {
                self.by_age.remove(&(earlier.last, key.clone()));
                earlier.count.saturating_add(1)
            }
            None => {
                if self.keys.len() >= self.limits.capacity
                    && let Some((_, oldest)) = self.by_age.pop_first()
                {
                    self.keys.remove(&oldest);
                }
                1
            }
        };
        let wait = count.checked_sub(self.limits.free).map(|doublings| {
            let factor = 1i64 << doublings.min(40);
            self.limits.first_wait.saturating_mul(factor).min(self.limits.max_wait)
        });
        let wait_until = now + wait.unwrap_or(0);
        self.by_age.insert((now, key.clone()));
        self.keys.insert(key, Failures { count, last: now, wait_until });
        wait
    }

    /// A successful attempt of `key`: its failures are forgotten.
    pub(crate) fn succeeded(&mut self, key: &K) {
        if let Some(failures) = self.keys.remove(key) {
            self.by_age.remove(&(failures.last, key.clone()));
        }
    }

    /// How many keys are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Forgets the keys whose last failure was before `cutoff`.
    fn forget_before(&mut self, cutoff: Millis) {
        while let Some((last, _)) = self.by_age.first()
            && *last < cutoff
        {
            let (_, key) = self.by_age.pop_first().expect("just seen");
            self.keys.remove(&key);
        }
    }
}

/// The throttles of the HTTP edge, in memory (see the module's comment). Each lock is held for
/// a map operation, never across an await.
pub(crate) struct SignInThrottle {
    /// Keyed by a hash of the role and the name (case ignored): a fixed size per key whatever
    /// was typed, with a per-process random key so that nobody can aim at collisions.
    names: Mutex<Throttle<u64>>,
    addresses: Mutex<Throttle<IpAddr>>,
    api_addresses: Mutex<Throttle<IpAddr>>,
    hasher: RandomState,
}

impl Default for SignInThrottle {
    fn default() -> SignInThrottle {
        SignInThrottle {
            names: Mutex::new(Throttle::new(PER_NAME)),
            addresses: Mutex::new(Throttle::new(PER_ADDRESS)),
            api_addresses: Mutex::new(Throttle::new(PER_API_ADDRESS)),
            hasher: RandomState::new(),
        }
    }
}

/// Why an attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not checked: the name or the address must wait this long (ms) still.
    Wait(Millis),
    /// Checked and wrong; `wait` is what this failure imposes on the next attempt, if anything.
    Wrong { wait: Option<Millis> },
}

impl SignInThrottle {
    /// A sign-in as `name` (for `role`) from `client` at `now`: refused unchecked while the name
    /// or the address must wait; otherwise `check` decides (`None`: wrong), and a failure is
    /// counted against both, a success forgets the name's failures (not the address's, or an
    /// attacker with one account of their own could reset it at will).
    ///
    /// The locks are held from the wait to the count, `check` included (it reads memory only:
    /// a digest and a MAC), so that concurrent attempts cannot all pass the wait before the
    /// first failure is counted.
    pub(crate) fn sign_in<T>(
        &self,
        role: Role,
        name: &str,
        client: Option<IpAddr>,
        now: Millis,
        check: impl FnOnce() -> Option<T>,
    ) -> Result<T, Refused> {
        let name = self.name_key(role, name);
        let client = client.map(address_key);
        let mut names = lock(&self.names);
        let mut addresses = lock(&self.addresses);
        let by_address = client.and_then(|client| addresses.wait(&client, now));
        if let Some(wait) = names.wait(&name, now).max(by_address) {
            return Err(Refused::Wait(wait));
        }
        if let Some(signed_in) = check() {
            names.succeeded(&name);
            return Ok(signed_in);
        }
        let by_address = client.and_then(|client| addresses.failed(client, now));
        Err(Refused::Wrong { wait: names.failed(name, now).max(by_address) })
    }

    /// An API request with HTTP Basic credentials from `client` at `now`: refused unchecked
    /// while the address must wait; otherwise `check` decides, and a failure is counted.
    pub(crate) fn api(
        &self,
        client: Option<IpAddr>,
        now: Millis,
        check: impl FnOnce() -> bool,
    ) -> Result<(), Refused> {
        let Some(client) = client.map(address_key) else {
            return if check() { Ok(()) } else { Err(Refused::Wrong { wait: None }) };
        };
        let mut addresses = lock(&self.api_addresses);
        if let Some(wait) = addresses.wait(&client, now) {
            return Err(Refused::Wait(wait));
        }
        if check() {
            return Ok(());
        }
        Err(Refused::Wrong { wait: addresses.failed(client, now) })
    }

    fn name_key(&self, role: Role, name: &str) -> u64 {
        self.hasher.hash_one((role == Role::Admin, name.trim().to_lowercase()))
    }
}

/// An address as the throttle counts it: IPv4 whole, IPv6 by its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whole seconds to announce in `Retry-After` for a wait of `wait` ms (rounded up: a client
/// that comes back on time is not refused again).
pub(crate) fn retry_after_seconds(wait: Millis) -> u64 {
    u64::try_from(wait).unwrap_or(0).div_ceil(1_000).max(1)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Runs `attempts` (at, key, whether the secret is right) through a throttle with `limits`,
    /// as the sign-in does: an attempt that must wait is refused unchecked, otherwise its
    /// outcome is counted. One line per attempt.
    fn check(limits: Limits, attempts: &[(Millis, &str, bool)], expected: Expect) {
        let mut throttle = Throttle::new(limits);
        let mut lines = Vec::new();
        for &(at, key, right) in attempts {
            let outcome = attempt(&mut throttle, at, key, right);
            lines.push(format!("{at} {key} {}: {outcome}", if right { "right" } else { "wrong" }));
        }
        lines.push(format!("{} keys", throttle.len()));
        expected.assert_eq(&(lines.join("\n") + "\n"));
    }

    /// One sign-in attempt of `key` at `at`, as the sign-in runs it; what it got.
    fn attempt(throttle: &mut Throttle<String>, at: Millis, key: &str, right: bool) -> String {
        match throttle.wait(&key.to_owned(), at) {
            Some(wait) => format!("429, retry in {wait} ms"),
            None if right => {
                throttle.succeeded(&key.to_owned());
                "signed in".to_owned()
            }
            None => match throttle.failed(key.to_owned(), at) {
                Some(wait) => format!("wrong, wait {wait} ms"),
                None => "wrong".to_owned(),
            },
        }
    }

    const SMALL: Limits =
        Limits { free: 2, first_wait: 1_000, max_wait: 4_000, forget_after: 10_000, capacity: 3 };

    #[test]
    fn forty_wrong_secrets_then_the_right_one_is_refused() {
        let mut throttle = Throttle::new(PER_NAME);
        let outcomes: Vec<String> = (0..40).map(|at| attempt(&mut throttle, at, "alice", false)).collect();
        assert_eq!(
            outcomes.iter().filter(|outcome| outcome.starts_with("wrong")).count(),
            5,
            "5 guesses checked"
        );
        assert_eq!(
            attempt(&mut throttle, 40, "alice", true),
            "429, retry in 964 ms",
            "1 s after the 5th, at 4 ms"
        );
    }

    #[test]
    fn waits_double_up_to_the_cap_and_the_right_secret_works_only_after_the_wait() {
        check(
            SMALL,
            &[
                (0, "alice", false),
                (1, "alice", false),
                (2, "alice", true),
                (1_001, "alice", true),
                (1_002, "alice", false),
                (1_003, "alice", false),
                (2_003, "alice", false),
                (4_003, "alice", false),
                (8_003, "alice", false),
                (12_003, "alice", false),
                (16_002, "alice", true),
                (16_003, "alice", true),
                (16_004, "alice", false),
            ],
            expect![[r#"
                0 alice wrong: wrong
                1 alice wrong: wrong, wait 1000 ms
                2 alice right: 429, retry in 999 ms
                1001 alice right: signed in
                1002 alice wrong: wrong
                1003 alice wrong: wrong, wait 1000 ms
                2003 alice wrong: wrong, wait 2000 ms
                4003 alice wrong: wrong, wait 4000 ms
                8003 alice wrong: wrong, wait 4000 ms
                12003 alice wrong: wrong, wait 4000 ms
                16002 alice right: 429, retry in 1 ms
                16003 alice right: signed in
                16004 alice wrong: wrong
                1 keys
            "#]],
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while_and_keys_are_capped_oldest_first() {
        check(
            SMALL,
            &[
                (0, "alice", false),
                (1, "alice", false),
                // More than 10 s after her last failure: alice starts again.
                (10_002, "alice", false),
                (10_003, "bob", false),
                (10_004, "bob", false),
                (10_005, "carol", false),
                // A fourth key: the oldest (alice) is forgotten, not bob, who is waiting.
                (10_006, "dave", false),
                (10_007, "bob", true),
                (30_000, "erin", false),
            ],
            expect![[r#"
                0 alice wrong: wrong
                1 alice wrong: wrong, wait 1000 ms
                10002 alice wrong: wrong
                10003 bob wrong: wrong
                10004 bob wrong: wrong, wait 1000 ms
                10005 carol wrong: wrong
                10006 dave wrong: wrong
                10007 bob right: 429, retry in 997 ms
                30000 erin wrong: wrong
                1 keys
            "#]],
        );
    }

    #[test]
    fn addresses_count_ipv6_by_their_64_and_mapped_ipv4_as_ipv4() {
        for (given, counted) in [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::"),
        ] {
            assert_eq!(address_key(given.parse().unwrap()).to_string(), counted, "{given}");
        }
        assert_eq!(retry_after_seconds(1), 1);
        assert_eq!(retry_after_seconds(1_000), 1);
        assert_eq!(retry_after_seconds(1_001), 2);
    }

    #[test]
    fn concurrent_guesses_are_counted_before_the_next_is_let_through() {
        let throttle = SignInThrottle::default();
        let checked = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..40 {
                scope.spawn(|| {
                    let _ = throttle.sign_in(Role::Agent, "alice", None, 0, || {
                        checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Let the others run meanwhile: they must wait for this count.
                        std::thread::yield_now();
                        None::<()>
                    });
                });
            }
        });
        assert_eq!(checked.into_inner(), 5, "only the free guesses were checked");
        assert_eq!(throttle.sign_in(Role::Agent, "alice", None, 40, || Some(())), Err(Refused::Wait(960)));
    }

    #[test]
    fn the_shell_counts_names_and_addresses_apart_and_a_success_forgets_the_name_only() {
        let throttle = SignInThrottle::default();
        let here = Some("192.0.2.7".parse().unwrap());
        let sign_in = |role, name: &str, client, at, right: bool| {
            throttle.sign_in(role, name, client, at, || right.then_some(())).map_err(
                |refused| match refused {
                    Refused::Wait(wait) => format!("wait {wait}"),
                    Refused::Wrong { wait } => format!("wrong, then {wait:?}"),
                },
            )
        };
        for at in 0..4 {
            assert_eq!(sign_in(Role::Agent, " Alice", here, at, false), Err("wrong, then None".into()));
        }
        assert_eq!(sign_in(Role::Agent, "alice ", here, 4, false), Err("wrong, then Some(1000)".into()));
        assert_eq!(sign_in(Role::Agent, "ALICE", None, 5, true), Err("wait 999".into()), "case ignored");
        assert_eq!(sign_in(Role::Admin, "alice", None, 5, true), Ok(()), "another role's name");
        for at in 5..20 {
            assert!(sign_in(Role::Agent, &format!("name {at}"), here, at, false).is_err());
        }
        assert_eq!(sign_in(Role::Agent, "bob", here, 20, true), Err("wait 999".into()), "the address waits");
        assert_eq!(sign_in(Role::Agent, "bob", None, 20, true), Ok(()), "from elsewhere");
        assert_eq!(sign_in(Role::Agent, "alice", None, 1_004, true), Ok(()), "after the wait");
        assert_eq!(
            sign_in(Role::Agent, "alice", None, 1_005, false),
            Err("wrong, then None".into()),
            "forgotten"
        );
        assert_eq!(throttle.api(here, 21, || true), Ok(()), "API failures are counted apart");
        for at in 0..99 {
            assert_eq!(throttle.api(here, at, || false), Err(Refused::Wrong { wait: None }));
        }
        assert_eq!(throttle.api(here, 99, || false), Err(Refused::Wrong { wait: Some(1_000) }));
        assert_eq!(throttle.api(here, 100, || true), Err(Refused::Wait(999)));
    }
}
