//! 64-bit ids and logical shards.
//!
//! Layout (most significant bit first):
//!
//! ```text
//! | 48 bits: Unix time in ms | 10 bits: logical shard | 6 bits: sequence |
//! ```
//!
//! `id >> 16` is the Unix time in milliseconds, the layout Mastodon uses and
//! clients rely on (they sort ids, and Mastodon.py turns datetimes into ids).
//! The logical shard of anything that has an id is read from the id itself,
//! so a post, an account or a token is found on one shard with one lookup.
//!
//! Uniqueness without a central service: every process keeps, per logical
//! shard, its own sequence within the millisecond, and processes that run at
//! the same time own disjoint parts of the 6-bit sequence space (a generator
//! *slot*: with 16 slots, slot 5 hands out sequences 20..24 of each
//! millisecond). The embedded shape is one process with the whole space; the
//! distributed shape gives each `api` and `worker` process its own slot (the
//! `id_slot` setting). No id costs a round trip to anything. When a process
//! asks for more ids within one millisecond on one shard than its slot holds,
//! it borrows the next millisecond, so its ids stay strictly increasing per
//! shard and never repeat.
//!
//! (DESIGN.md suggested a PostgreSQL sequence per shard; that is a round trip
//! per id on the write path, and ids are needed before the write, e.g. for the
//! event of the same transaction. Slots give the same guarantee locally.)

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Number of logical shards. Fixed forever: it is baked into every id.
pub const SHARD_COUNT: u16 = 1024;
const SHARD_BITS: u32 = 10;
const SEQ_BITS: u32 = 6;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const LOW_BITS: u32 = SHARD_BITS + SEQ_BITS;

/// A logical shard, `0..1024`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(u16);

impl ShardId {
    /// Returns `None` outside `0..1024`.
    pub fn new(n: u16) -> Option<Self> {
        (n < SHARD_COUNT).then_some(Self(n))
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// The shard that owns a key (a lowercased username, an email, a tag).
    ///
    /// The first two bytes of SHA-256, modulo 1024. This function must never
    /// change: existing data was placed with it.
    pub fn for_key(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        Self(u16::from_be_bytes([digest[0], digest[1]]) % SHARD_COUNT)
    }

    /// A uniformly random shard, for things owned by nobody in particular
    /// (OAuth applications).
    pub fn random() -> Self {
        Self(rand::random::<u16>() % SHARD_COUNT)
    }

    /// All logical shards, in order.
    pub fn all() -> impl Iterator<Item = ShardId> {
        (0..SHARD_COUNT).map(ShardId)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A 64-bit id; on the wire a decimal string (internal payloads such as
/// events carry it as a JSON number).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Id(i64);

impl Id {
    pub fn from_i64(raw: i64) -> Self {
        Self(raw)
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// Compose an id from its parts. `seq` is truncated to 6 bits.
    pub fn from_parts(unix_ms: u64, shard: ShardId, seq: u64) -> Self {
        let raw = (unix_ms << LOW_BITS) | (u64::from(shard.0) << SEQ_BITS) | (seq & SEQ_MASK);
        Self(raw as i64)
    }

    pub fn shard(self) -> ShardId {
        ShardId(((self.0 as u64 >> SEQ_BITS) & u64::from(SHARD_COUNT - 1)) as u16)
    }

    pub fn unix_ms(self) -> u64 {
        self.0 as u64 >> LOW_BITS
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parse error for ids arriving from clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid id")]
pub struct InvalidId;

impl FromStr for Id {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw: i64 = s.trim().parse().map_err(|_| InvalidId)?;
        if raw < 0 {
            return Err(InvalidId);
        }
        Ok(Self(raw))
    }
}

/// Hands out ids for every logical shard, lock-free.
///
/// Per shard, the state is one `AtomicU64` holding `(ms << local_bits) | n`
/// of the last id given out, where `n` counts within this generator's slot.
/// Taking the next id is a compare-and-swap: if the clock moved on, start at
/// `n = 0` of the new millisecond; otherwise add one, which carries into the
/// millisecond when the slot is full. The id's sequence is `slot` followed by
/// `n`. The result is strictly increasing per shard even if the wall clock
/// steps backwards.
pub struct IdGenerator {
    last: Vec<AtomicU64>,
    now_ms: fn() -> u64,
    /// This generator's slot, in the high bits of the sequence.
    slot: u64,
    /// Bits of the sequence this generator counts in (6 with one slot).
    local_bits: u32,
}

/// A slot setting that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("id slots must be a power of two from 1 to 64 and the slot below it (got slot {slot} of {slots})")]
pub struct InvalidSlot {
    pub slot: u32,
    pub slots: u32,
}

impl IdGenerator {
    pub fn new() -> Self {
        Self::with_time_source(crate::clock::system_now_ms)
    }

    /// A generator reading time from `now_ms` (tests use a frozen clock to
    /// exercise sequence exhaustion).
    pub fn with_time_source(now_ms: fn() -> u64) -> Self {
        Self {
            last: (0..SHARD_COUNT).map(|_| AtomicU64::new(0)).collect(),
            now_ms,
            slot: 0,
            local_bits: SEQ_BITS,
        }
    }

    /// A generator owning `slot` of `slots` (a power of two up to 64): two
    /// generators with different slots never hand out the same id.
    pub fn with_slot(slot: u32, slots: u32) -> Result<Self, InvalidSlot> {
        if !slots.is_power_of_two() || slots > 1 << SEQ_BITS || slot >= slots {
            return Err(InvalidSlot { slot, slots });
        }
        let mut gen = Self::new();
        gen.local_bits = SEQ_BITS - slots.trailing_zeros();
        gen.slot = u64::from(slot);
        Ok(gen)
    }

    /// Make sure ids given out from now on on `shard` are above `id` (called
    /// with the highest id a store holds, so a restart with a clock that went
    /// backwards cannot repeat an id): the next one starts a later
    /// millisecond.
    pub fn observe(&self, id: Id) {
        let local_max = (1u64 << self.local_bits) - 1;
        let state = (id.unix_ms() << self.local_bits) | local_max;
        self.last[usize::from(id.shard().0)].fetch_max(state, Ordering::AcqRel);
    }

    pub fn next(&self, shard: ShardId) -> Id {
        let last = &self.last[usize::from(shard.0)];
        let now = (self.now_ms)();
        let bits = self.local_bits;
        let mut current = last.load(Ordering::Acquire);
        loop {
            let candidate = if now > current >> bits {
                now << bits
            } else {
                current + 1
            };
            match last.compare_exchange_weak(
                current,
                candidate,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let n = candidate & ((1 << bits) - 1);
                    let seq = (self.slot << bits) | n;
                    return Id::from_parts(candidate >> bits, shard, seq);
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn layout_round_trips() {
        let shard = ShardId::new(1023).unwrap();
        let id = Id::from_parts(1_700_000_000_123, shard, 63);
        assert_eq!(id.unix_ms(), 1_700_000_000_123);
        assert_eq!(id.shard(), shard);
        assert_eq!(id.as_i64() as u64 & 63, 63);
        assert_eq!(id.as_i64() >> 16, 1_700_000_000_123);
    }

    #[test]
    fn shard_bounds() {
        assert!(ShardId::new(1024).is_none());
        assert!(ShardId::new(0).is_some());
        for key in ["alice", "bob", "", "ünïcødé"] {
            assert!(ShardId::for_key(key).get() < SHARD_COUNT);
        }
        // Stable: this value must never change, data is placed by it.
        assert_eq!(ShardId::for_key("alice"), ShardId::for_key("alice"));
        assert_eq!(ShardId::for_key("alice").get(), {
            let d = Sha256::digest(b"alice");
            u16::from_be_bytes([d[0], d[1]]) % 1024
        });
    }

    #[test]
    fn ids_carry_their_shard_and_time() {
        let gen = IdGenerator::new();
        let before = crate::clock::system_now_ms();
        for n in [0u16, 1, 511, 1023] {
            let shard = ShardId::new(n).unwrap();
            let id = gen.next(shard);
            assert_eq!(id.shard(), shard);
            assert!(id.unix_ms() >= before);
            assert!(id.unix_ms() <= crate::clock::system_now_ms() + 1);
        }
    }

    #[test]
    fn ids_increase_per_shard() {
        let gen = IdGenerator::new();
        let shard = ShardId::new(7).unwrap();
        let mut last = gen.next(shard);
        for _ in 0..10_000 {
            let id = gen.next(shard);
            assert!(id > last, "{id} after {last}");
            last = id;
        }
    }

    fn frozen() -> u64 {
        1_700_000_000_000
    }

    #[test]
    fn sequence_exhaustion_borrows_the_next_millisecond() {
        let gen = IdGenerator::with_time_source(frozen);
        let shard = ShardId::new(3).unwrap();
        let ids: Vec<Id> = (0..200).map(|_| gen.next(shard)).collect();
        assert_eq!(ids[0].unix_ms(), frozen());
        assert_eq!(ids[63].unix_ms(), frozen());
        assert_eq!(ids[64].unix_ms(), frozen() + 1);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| id.shard() == shard));
    }

    #[test]
    fn observe_keeps_ids_above_existing_ones() {
        let gen = IdGenerator::with_time_source(frozen);
        let shard = ShardId::new(9).unwrap();
        let existing = Id::from_parts(frozen() + 5_000, shard, 12);
        gen.observe(existing);
        assert!(gen.next(shard) > existing);
    }

    #[test]
    fn unique_under_concurrency() {
        let gen = Arc::new(IdGenerator::with_time_source(frozen));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let gen = Arc::clone(&gen);
                std::thread::spawn(move || {
                    (0..5_000)
                        .map(|i| gen.next(ShardId::new(((t + i) % 3) as u16).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn slots_never_collide_and_stay_increasing() {
        let shard = ShardId::new(5).unwrap();
        let gens: Vec<IdGenerator> = (0..16)
            .map(|slot| {
                let mut g = IdGenerator::with_slot(slot, 16).unwrap();
                g.now_ms = frozen;
                g
            })
            .collect();
        let mut all = HashSet::new();
        for g in &gens {
            let ids: Vec<Id> = (0..50).map(|_| g.next(shard)).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            // 4 ids per millisecond per slot: the fifth borrows the next one.
            assert_eq!(ids[3].unix_ms(), frozen());
            assert_eq!(ids[4].unix_ms(), frozen() + 1);
            for id in ids {
                assert_eq!(id.shard(), shard);
                assert!(all.insert(id), "slots collided on {id}");
            }
        }
    }

    #[test]
    fn bad_slots_are_refused() {
        assert!(IdGenerator::with_slot(0, 1).is_ok());
        assert!(IdGenerator::with_slot(63, 64).is_ok());
        assert!(IdGenerator::with_slot(3, 3).is_err());
        assert!(IdGenerator::with_slot(4, 4).is_err());
        assert!(IdGenerator::with_slot(0, 128).is_err());
        assert!(IdGenerator::with_slot(0, 0).is_err());
    }

    #[test]
    fn parses_decimal_strings() {
        assert_eq!("123".parse::<Id>(), Ok(Id::from_i64(123)));
        assert_eq!("-1".parse::<Id>(), Err(InvalidId));
        assert_eq!("abc".parse::<Id>(), Err(InvalidId));
        assert_eq!("99999999999999999999".parse::<Id>(), Err(InvalidId));
    }
}
