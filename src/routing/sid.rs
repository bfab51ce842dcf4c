//! TaskRouter-shaped identifiers: a two-letter prefix and 32 hex digits (`WK` + 32 hex).
//!
//! The engine mints them itself, from a per-workspace salt (high 64 bits) and a counter (low 64
//! bits), so that replaying the same commands yields the same SIDs: the engine stays a
//! deterministic function of its inputs.

use std::fmt;
use std::str::FromStr;

/// A resource identifier such as `WT0123...`. Cheap to copy, hash and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    kind: SidKind,
    // Two halves rather than a u128: a u128 is 16-byte aligned, which made every SID (and every
    // struct holding one) 32 bytes instead of 24. Field order keeps the u128's ordering.
    high: u64,
    low: u64,
}

/// What a SID names; the prefix is Twilio's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SidKind {
    Workspace,
    Activity,
    Worker,
    TaskQueue,
    Workflow,
    Task,
    Reservation,
    TaskChannel,
    Event,
    /// A worker's capacity on one task channel (`Workers/{WK}/Channels/{WC}`): never minted,
    /// made from the worker's and the channel's SIDs ([`Sid::worker_channel`]).
    WorkerChannel,
}

/// A string that is not a SID of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not {article} {expected} SID (expected {prefix} followed by 32 hex digits)",
    article = expected.article(),
    prefix = expected.prefix()
)]
pub struct SidError {
    pub text: String,
    pub expected: SidKind,
}

/// Mints SIDs: salt in the high half, a counter in the low half.
#[derive(Debug, Clone)]
pub struct SidGenerator {
    salt: u64,
    next: u64,
}

impl SidKind {
    pub const ALL: [SidKind; 10] = [
        SidKind::Workspace,
        SidKind::Activity,
        SidKind::Worker,
        SidKind::TaskQueue,
        SidKind::Workflow,
        SidKind::Task,
        SidKind::Reservation,
        SidKind::TaskChannel,
        SidKind::Event,
        SidKind::WorkerChannel,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            SidKind::Workspace => "WS",
            SidKind::Activity => "WA",
            SidKind::Worker => "WK",
            SidKind::TaskQueue => "WQ",
            SidKind::Workflow => "WW",
            SidKind::Task => "WT",
            SidKind::Reservation => "WR",
            SidKind::TaskChannel => "TC",
            SidKind::Event => "EV",
            SidKind::WorkerChannel => "WC",
        }
    }

    /// The article before the kind's name: "an activity", "a worker".
    fn article(self) -> &'static str {
        match self {
            SidKind::Activity | SidKind::Event => "an",
            _ => "a",
        }
    }
}

impl fmt::Display for SidKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SidKind::Workspace => "workspace",
            SidKind::Activity => "activity",
            SidKind::Worker => "worker",
            SidKind::TaskQueue => "task queue",
            SidKind::Workflow => "workflow",
            SidKind::Task => "task",
            SidKind::Reservation => "reservation",
            SidKind::TaskChannel => "task channel",
            SidKind::Event => "event",
            SidKind::WorkerChannel => "worker channel",
        })
    }
}

impl Sid {
    pub fn kind(self) -> SidKind {
        self.kind
    }

    /// Parses `text` as a SID of `expected` kind.
    pub fn parse(text: &str, expected: SidKind) -> Result<Sid, SidError> {
        let error = || SidError { text: text.to_owned(), expected };
        let hex = text.strip_prefix(expected.prefix()).ok_or_else(error)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let value = u128::from_str_radix(hex, 16).map_err(|_| error())?;
        Ok(Sid { kind: expected, high: (value >> 64) as u64, low: value as u64 })
    }

    /// The SID of `worker`'s channel `channel` (`WC`, the worker's counter then the channel's):
    /// the same pair always has the same SID, so the engine keeps none, and two pairs never
    /// share one.
    pub fn worker_channel(worker: Sid, channel: Sid) -> Sid {
        Sid { kind: SidKind::WorkerChannel, high: worker.low, low: channel.low }
    }
}

impl FromStr for Sid {
    type Err = SidError;

    /// Parses a SID of any kind, chosen by its prefix.
    fn from_str(text: &str) -> Result<Sid, SidError> {
        let kind = SidKind::ALL
            .into_iter()
            .find(|kind| text.starts_with(kind.prefix()))
            .ok_or_else(|| SidError { text: text.to_owned(), expected: SidKind::Task })?;
        Sid::parse(text, kind)
    }
}

impl Sid {
    /// The SID's text in a stack buffer: formatting SIDs is on the durable write path, where
    /// going through `fmt` for 32 hex digits cost more than the routing itself.
    fn value(self) -> u128 {
        (u128::from(self.high) << 64) | u128::from(self.low)
    }

    pub fn to_ascii(self) -> [u8; 34] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 34];
        text[..2].copy_from_slice(self.kind.prefix().as_bytes());
        for (idx, byte) in text[2..].iter_mut().enumerate() {
            *byte = HEX[((self.value() >> (4 * (31 - idx))) & 0xf) as usize];
        }
        text
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_ascii();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl SidGenerator {
    /// A generator for one workspace; `salt` should differ between workspaces.
    pub fn new(salt: u64) -> SidGenerator {
        SidGenerator { salt, next: 1 }
    }

    /// Continues a generator saved with [`SidGenerator::parts`].
    pub fn resume(salt: u64, next: u64) -> SidGenerator {
        SidGenerator { salt, next }
    }

    /// The salt and the next counter value, to save and resume.
    pub fn parts(&self) -> (u64, u64) {
        (self.salt, self.next)
    }

    pub fn mint(&mut self, kind: SidKind) -> Sid {
        let sid = Sid { kind, high: self.salt, low: self.next };
        self.next += 1;
        sid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_twilio_shape_and_round_trip() {
        let mut generator = SidGenerator::new(0xabc);
        let sid = generator.mint(SidKind::Worker);
        assert_eq!(sid.to_string(), "WK0000000000000abc0000000000000001");
        assert_eq!(sid.to_string().len(), 34);
        assert_eq!(Sid::parse(&sid.to_string(), SidKind::Worker), Ok(sid));
        assert_eq!(sid.to_string().parse::<Sid>(), Ok(sid));
        assert_eq!(generator.mint(SidKind::Task).to_string(), "WT0000000000000abc0000000000000002");
        let err = Sid::parse("WQ123", SidKind::TaskQueue).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`WQ123` is not a task queue SID (expected WQ followed by 32 hex digits)"
        );
        let err = Sid::parse("WA1", SidKind::Activity).unwrap_err();
        assert_eq!(err.to_string(), "`WA1` is not an activity SID (expected WA followed by 32 hex digits)");
        assert!(Sid::parse(&sid.to_string(), SidKind::Task).is_err());
        assert!(Sid::parse("WK0000000000000abc000000000000000g", SidKind::Worker).is_err());
        let channel = generator.mint(SidKind::TaskChannel);
        let worker_channel = Sid::worker_channel(sid, channel);
        assert_eq!(worker_channel.to_string(), "WC00000000000000010000000000000003");
        assert_eq!(worker_channel.to_string().parse::<Sid>(), Ok(worker_channel));
    }
}

/// Hashing for maps keyed by SID. SIDs are minted by the engine from a counter, so they are
/// already well spread, and lookups with hostile keys cannot change what is stored: a cheap
/// multiply-rotate hash (FxHash's) is safe here and several times faster than SipHash on the
/// routing hot path, which looks tasks and reservations up dozens of times per cycle.
#[derive(Debug, Clone, Copy, Default)]
pub struct SidHasher {
    state: u64,
}

/// A `HashMap` keyed by SID, using [`SidHasher`].
pub type SidMap<V> = std::collections::HashMap<Sid, V, std::hash::BuildHasherDefault<SidHasher>>;

impl SidHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for SidHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_u128(&mut self, value: u128) {
        self.add(value as u64);
        self.add((value >> 64) as u64);
    }

    fn write_isize(&mut self, value: isize) {
        self.add(value as u64);
    }
}
