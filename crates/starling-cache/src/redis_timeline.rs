//! The Redis timeline cache: the distributed shape's [`TimelineCache`].
//!
//! # Keys
//!
//! An owner's timeline is two keys under one hash tag, the owner's id, so
//! every multi-key command and script on one owner touches one Redis
//! Cluster slot:
//!
//! - `<prefix>:tl:{<owner>}`: a sorted set, the entries;
//! - `<prefix>:tl:{<owner>}:state`: `"0"` while it is being rebuilt, `"1"`
//!   once complete. The timeline exists exactly while this key does (an
//!   empty sorted set does not exist in Redis, an empty timeline does).
//!
//! # Entries: exact at 64 bits
//!
//! Sorted-set scores are `f64`, exact only up to 2^53, and ids are about
//! 2^60 (`ms << 16 | shard | seq`): ids of one millisecond share a score.
//! So scores are not used at all. Every member has score 0 and Redis orders
//! equal-score members by their bytes (`memcmp`, shorter first on a tie);
//! a member is
//!
//! ```text
//! id ^ 2^63 (8 bytes, big-endian) | author (8 bytes) | boosted status (8 bytes, boosts only)
//! ```
//!
//! Big-endian with the sign bit flipped makes byte order the numeric order
//! of `i64` ids, exactly, over their whole range; the fixed width makes the
//! id a prefix that bounds can cut on. `ZRANGEBYLEX` then reads exact id
//! ranges: "id < m" is `(enc(m)` (a member with id `m` is longer than
//! `enc(m)`, hence above it), "id > l" is `[enc(l + 1)`. A page is one
//! bounded read of at most `limit` members next to the bound, then the same
//! [`Page::select`] the store and the memory adapter use. Binary members
//! are also compact (16 or 24 bytes against 40 to 60 as decimal text).
//!
//! # Scripts
//!
//! Each operation on one owner is one Lua script (atomic, single-slot):
//! `push` adds to the timeline only if its state key exists, dedupes by id
//! (the member with the same 8-byte prefix is replaced) and trims to the
//! newest `cap` by rank. A batch [`push`](TimelineCache::push) groups its
//! items by owner and sends one script call per owner in one pipeline: a
//! fan-out to 5,000 followers is one round trip.
//!
//! # Idle expiry
//!
//! Both keys carry a TTL of `idle`. Reads ([`range`](TimelineCache::range))
//! and the rebuild path ([`begin_rebuild`](TimelineCache::begin_rebuild),
//! [`fill`](TimelineCache::fill)) set it again; `push`, `remove`,
//! `remove_author` and `exists` never do, because fan-out touches the lists
//! of owners who may have stopped reading long ago. `push` sets the
//! entries' key to expire with the state key (when it creates that key, or
//! when the two drifted), so the timeline's deadline stays the one its last
//! read gave it. The memory adapter's `max_timelines` has no counterpart:
//! Redis' `maxmemory` with an eviction policy bounds the total. Eviction
//! may drop one key of a pair: a timeline missing its state key is missing,
//! and a rebuild deletes leftover entries first.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use starling_domain::{Id, Page};

use crate::redis_conn::{check_key_prefix, ttl_ms, RedisConn};
use crate::timeline::{CacheError, CacheResult, TimelineCache, TimelineEntry};

/// Capped timelines in Redis, for the distributed shape.
pub struct RedisTimelineCache {
    conn: RedisConn,
    prefix: String,
    cap: usize,
    idle_ms: i64,
    scripts: Scripts,
}

impl RedisTimelineCache {
    /// Timelines of at most `cap` entries in the Redis at `url`, under keys
    /// starting with `prefix`, expiring after `idle` without a read; every
    /// call gives up after `timeout`.
    ///
    /// Fails only on a URL or prefix that is not one. A Redis that does not
    /// answer yet is logged, and the cache's calls fail with [`CacheError`]
    /// until it does (callers fall back to the store).
    pub async fn connect(
        url: &str,
        prefix: &str,
        cap: usize,
        idle: Duration,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        check_key_prefix(prefix)?;
        let this = Self {
            conn: RedisConn::open(url, timeout, "timeline cache")?,
            prefix: prefix.to_owned(),
            cap,
            idle_ms: ttl_ms(idle),
            scripts: Scripts::new(),
        };
        this.conn.probe(&this.scripts.all()).await;
        Ok(this)
    }

    /// The key of `owner`'s entries.
    pub fn timeline_key(&self, owner: Id) -> String {
        format!("{}:tl:{{{owner}}}", self.prefix)
    }

    /// The key of `owner`'s state (complete or being rebuilt).
    pub fn state_key(&self, owner: Id) -> String {
        format!("{}:tl:{{{owner}}}:state", self.prefix)
    }

    fn eval(&self, script: &Script, owner: Id) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash())
            .arg(2)
            .arg(self.timeline_key(owner))
            .arg(self.state_key(owner));
        cmd
    }

    async fn run_one<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        cmd: redis::Cmd,
    ) -> CacheResult<T> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let (value,): (T,) = self.conn.eval(op, &pipe, &[script]).await?;
        Ok(value)
    }
}

const SIGN: u64 = 1 << 63;

/// An id as 8 bytes whose byte order is the ids' numeric order.
fn id_bytes(id: Id) -> [u8; 8] {
    ((id.as_i64() as u64) ^ SIGN).to_be_bytes()
}

fn id_from(bytes: &[u8]) -> Option<Id> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Some(Id::from_i64((u64::from_be_bytes(raw) ^ SIGN) as i64))
}

/// The member for an entry: id, author, and the boosted status if any.
fn encode(entry: &TimelineEntry) -> Vec<u8> {
    let mut m = Vec::with_capacity(24);
    m.extend_from_slice(&id_bytes(entry.id));
    m.extend_from_slice(&id_bytes(entry.author_id));
    if let Some(of) = entry.reblog_of_id {
        m.extend_from_slice(&id_bytes(of));
    }
    m
}

fn decode(member: &[u8]) -> Option<TimelineEntry> {
    let (id, rest) = member.split_at_checked(8)?;
    let (author, of) = rest.split_at_checked(8)?;
    Some(TimelineEntry {
        id: id_from(id)?,
        author_id: id_from(author)?,
        reblog_of_id: match of.len() {
            0 => None,
            _ => Some(id_from(of)?),
        },
    })
}

/// `ZRANGEBYLEX` bound for "id < max" (members with id `max` start with
/// `enc(max)` and are longer, so they sort above it).
fn below(max: Option<Id>) -> Vec<u8> {
    match max {
        Some(m) => [b"(".as_slice(), &id_bytes(m)].concat(),
        None => b"+".to_vec(),
    }
}

/// `ZRANGEBYLEX` bound for "id > lower": `[enc(lower + 1)`; `None` when
/// nothing is above `lower`.
fn above(lower: Option<Id>) -> Option<Vec<u8>> {
    match lower {
        Some(l) => {
            let next = l.as_i64().checked_add(1)?;
            Some([b"[".as_slice(), &id_bytes(Id::from_i64(next))].concat())
        }
        None => Some(b"-".to_vec()),
    }
}

/// Helpers every script starts with.
const PRELUDE: &str = r"
-- The member of the entry with this id (its first 8 bytes), if any.
local function find(key, id)
  local near = redis.call('ZRANGEBYLEX', key, '[' .. id, '+', 'LIMIT', 0, 1)[1]
  if near and string.sub(near, 1, 8) == id then return near end
  return nil
end
-- Adds an entry, replacing the one with the same id.
local function put(key, m)
  local old = find(key, string.sub(m, 1, 8))
  if old == m then return end
  if old then redis.call('ZREM', key, old) end
  redis.call('ZADD', key, 0, m)
end
-- Keeps the newest `cap` entries (the last ones in byte order).
local function trim(key, cap)
  local n = redis.call('ZCARD', key)
  if n > cap then redis.call('ZREMRANGEBYRANK', key, 0, n - cap - 1) end
end
";

/// KEYS: entries, state. ARGV: cap, members... Adds only to an existing
/// timeline, keeping its deadline.
const PUSH: &str = r"
local ttl = redis.call('PTTL', KEYS[2])
if ttl == -2 then return 0 end
for i = 2, #ARGV do put(KEYS[1], ARGV[i]) end
trim(KEYS[1], tonumber(ARGV[1]))
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
";

/// KEYS: entries, state. ARGV: idle ms, 'asc' or 'desc', min, max, limit.
/// Nil for a missing or incomplete timeline; marks it read either way.
const RANGE: &str = r"
local state = redis.call('GET', KEYS[2])
if not state then return false end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if state ~= '1' then return false end
if ARGV[2] == 'asc' then
  return redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, ARGV[5])
end
return redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[4], ARGV[3], 'LIMIT', 0, ARGV[5])
";

/// KEYS: entries, state. ARGV: idle ms. A new timeline starts from nothing
/// (entries left by a half-evicted one are dropped).
const BEGIN_REBUILD: &str = r"
if redis.call('SET', KEYS[2], '0', 'NX', 'PX', ARGV[1]) then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
";

/// KEYS: entries, state. ARGV: idle ms, cap, members...
const FILL: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[1]) end
for i = 3, #ARGV do put(KEYS[1], ARGV[i]) end
trim(KEYS[1], tonumber(ARGV[2]))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// KEYS: entries, state. ARGV: ids (8 bytes each).
const REMOVE: &str = r"
for i = 1, #ARGV do
  local old = find(KEYS[1], ARGV[i])
  if old then redis.call('ZREM', KEYS[1], old) end
end
return 1
";

/// KEYS: entries, state. ARGV: author (8 bytes). Reads the whole (capped)
/// list: entries are ordered by id, not author.
const REMOVE_AUTHOR: &str = r"
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 9, 16) == ARGV[1] then redis.call('ZREM', KEYS[1], m) end
end
return 1
";

struct Scripts {
    push: Script,
    range: Script,
    begin_rebuild: Script,
    fill: Script,
    remove: Script,
    remove_author: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            push: script(PUSH),
            range: script(RANGE),
            begin_rebuild: script(BEGIN_REBUILD),
            fill: script(FILL),
            remove: script(REMOVE),
            remove_author: script(REMOVE_AUTHOR),
        }
    }

    fn all(&self) -> [&Script; 6] {
        [
            &self.push,
            &self.range,
            &self.begin_rebuild,
            &self.fill,
            &self.remove,
            &self.remove_author,
        ]
    }
}

#[async_trait]
impl TimelineCache for RedisTimelineCache {
    async fn push(&self, items: &[(Id, TimelineEntry)]) -> CacheResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        // One script call per owner, in the order owners first appear.
        let mut owners: Vec<Id> = Vec::new();
        let mut members: HashMap<Id, Vec<Vec<u8>>> = HashMap::new();
        for (owner, entry) in items {
            members
                .entry(*owner)
                .or_insert_with(|| {
                    owners.push(*owner);
                    Vec::new()
                })
                .push(encode(entry));
        }
        let mut pipe = redis::pipe();
        for owner in owners {
            let mut cmd = self.eval(&self.scripts.push, owner);
            cmd.arg(self.cap);
            for m in members.get(&owner).into_iter().flatten() {
                cmd.arg(m.as_slice());
            }
            pipe.add_command(cmd).ignore();
        }
        self.conn
            .eval::<()>("timeline_push", &pipe, &[&self.scripts.push])
            .await
    }

    async fn range(&self, owner: Id, page: &Page) -> CacheResult<Option<Vec<TimelineEntry>>> {
        let (min, limit) = match above(page.lower()) {
            Some(min) => (min, i64::try_from(page.limit).unwrap_or(i64::MAX)),
            // Nothing lies above the largest id: read nothing (but still
            // answer whether the timeline is there, and mark it read).
            None => (b"-".to_vec(), 0),
        };
        let mut cmd = self.eval(&self.scripts.range, owner);
        cmd.arg(self.idle_ms)
            .arg(if page.ascending() { "asc" } else { "desc" })
            .arg(min)
            .arg(below(page.max_id))
            .arg(limit);
        let members: Option<Vec<Vec<u8>>> = self
            .run_one("timeline_range", &self.scripts.range, cmd)
            .await?;
        let Some(members) = members else {
            return Ok(None);
        };
        let mut near = members
            .iter()
            .map(|m| decode(m))
            .collect::<Option<Vec<TimelineEntry>>>()
            .ok_or_else(|| {
                metrics::counter!("starling_redis_errors_total", "op" => "timeline_range")
                    .increment(1);
                CacheError(format!("undecodable entry in {}", self.timeline_key(owner)))
            })?;
        if page.ascending() {
            near.reverse();
        }
        // The same selection the store makes, so both page alike.
        Ok(Some(page.select(near, |e| e.id)))
    }

    async fn begin_rebuild(&self, owner: Id) -> CacheResult<()> {
        let mut cmd = self.eval(&self.scripts.begin_rebuild, owner);
        cmd.arg(self.idle_ms);
        self.run_one::<i64>("timeline_begin_rebuild", &self.scripts.begin_rebuild, cmd)
            .await
            .map(drop)
    }

    async fn fill(&self, owner: Id, entries: &[TimelineEntry]) -> CacheResult<()> {
        let mut cmd = self.eval(&self.scripts.fill, owner);
        cmd.arg(self.idle_ms).arg(self.cap);
        for entry in entries {
            cmd.arg(encode(entry));
        }
        self.run_one::<i64>("timeline_fill", &self.scripts.fill, cmd)
            .await
            .map(drop)
    }

    async fn remove(&self, owner: Id, ids: &[Id]) -> CacheResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = self.eval(&self.scripts.remove, owner);
        for id in ids {
            cmd.arg(id_bytes(*id).as_slice());
        }
        self.run_one::<i64>("timeline_remove", &self.scripts.remove, cmd)
            .await
            .map(drop)
    }

    async fn remove_author(&self, owner: Id, author: Id) -> CacheResult<()> {
        let mut cmd = self.eval(&self.scripts.remove_author, owner);
        cmd.arg(id_bytes(author).as_slice());
        self.run_one::<i64>("timeline_remove_author", &self.scripts.remove_author, cmd)
            .await
            .map(drop)
    }

    async fn forget(&self, owner: Id) -> CacheResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.timeline_key(owner))
            .arg(self.state_key(owner))
            .ignore();
        self.conn.eval::<()>("timeline_forget", &pipe, &[]).await
    }

    async fn exists(&self, owner: Id) -> CacheResult<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(self.state_key(owner));
        let (n,): (i64,) = self.conn.eval("timeline_exists", &pipe, &[]).await?;
        Ok(n > 0)
    }

    fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, author: i64, of: Option<i64>) -> TimelineEntry {
        TimelineEntry {
            id: Id::from_i64(id),
            author_id: Id::from_i64(author),
            reblog_of_id: of.map(Id::from_i64),
        }
    }

    const EDGES: [i64; 11] = [
        i64::MIN,
        -(1 << 53),
        -1,
        0,
        1,
        (1 << 53) - 1,
        1 << 53,
        (1 << 53) + 1,
        1 << 62,
        i64::MAX - 1,
        i64::MAX,
    ];

    #[test]
    fn members_round_trip() {
        for id in EDGES {
            for of in [None, Some(id), Some(7)] {
                let e = entry(id, id.wrapping_add(3), of);
                assert_eq!(decode(&encode(&e)), Some(e));
            }
        }
        assert_eq!(encode(&entry(1, 2, None)).len(), 16);
        assert_eq!(encode(&entry(1, 2, Some(3))).len(), 24);
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(&[0u8; 20]), None);
    }

    #[test]
    fn byte_order_is_id_order() {
        for a in EDGES {
            for b in EDGES {
                let (ma, mb) = (encode(&entry(a, 9, None)), encode(&entry(b, 1, Some(1))));
                assert_eq!(
                    a.cmp(&b),
                    id_bytes(Id::from_i64(a)).cmp(&id_bytes(Id::from_i64(b)))
                );
                if a != b {
                    assert_eq!(a.cmp(&b), ma.cmp(&mb), "{a} vs {b}");
                }
            }
        }
        // The ids f64 cannot tell apart, apart.
        assert!(((1i64 << 53) as f64) == ((1i64 << 53) + 1) as f64);
        assert!(id_bytes(Id::from_i64(1 << 53)) < id_bytes(Id::from_i64((1 << 53) + 1)));
    }

    #[test]
    fn bounds_cut_exactly_on_ids() {
        for m in EDGES {
            let bound = below(Some(Id::from_i64(m)));
            let key = &bound[1..];
            for id in EDGES {
                let member = encode(&entry(id, -1, Some(-1)));
                // "(key": members strictly above key... from below.
                assert_eq!(member.as_slice() < key, id < m, "{id} < {m}");
            }
            match above(Some(Id::from_i64(m))) {
                None => assert_eq!(m, i64::MAX),
                Some(bound) => {
                    assert_eq!(bound[0], b'[');
                    for id in EDGES {
                        let member = encode(&entry(id, 0, None));
                        assert_eq!(member.as_slice() >= &bound[1..], id > m, "{id} > {m}");
                    }
                }
            }
        }
        assert_eq!(below(None), b"+");
        assert_eq!(above(None), Some(b"-".to_vec()));
    }

    #[test]
    fn prefixes_hold_no_hash_tag() {
        assert!(check_key_prefix("starling").is_ok());
        assert!(check_key_prefix("a:b").is_ok());
        assert!(check_key_prefix("").is_err());
        assert!(check_key_prefix("x{y}").is_err());
    }

    #[test]
    fn ttls_stay_in_redis_range() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_secs(7)), 7_000);
        assert!(ttl_ms(Duration::MAX) < i64::MAX / 2);
    }
}
