//! The in-memory timeline cache: the embedded shape's [`TimelineCache`].
//!
//! Per owner, a timeline is an ordered map from status id to entry (so it is
//! deduped by id and kept sorted, newest last, whatever order pushes arrive
//! in), capped at the newest `cap` entries, with a `complete` flag and the
//! time it was last read.
//!
//! Why it is shaped so:
//!
//! - **Sharded locks.** Timelines live in [`SHARDS`] maps, each behind its
//!   own mutex, picked by a hash of the owner id. A fan-out pushes one post
//!   onto thousands of lists; a batch [`push`](TimelineCache::push) groups
//!   its items by shard and takes each lock once, and fan-outs running in
//!   parallel rarely meet on a lock. No lock is held across an await (every
//!   method does its work synchronously).
//! - **Only reads keep a timeline alive.** [`range`](TimelineCache::range)
//!   marks the owner active; a timeline is created (by `begin_rebuild` or
//!   `fill`, both on the read path) as read "now". `push`, `remove` and
//!   `exists` never refresh it, because fan-out touches the lists of owners
//!   who may have stopped reading long ago.
//! - **Idle timelines disappear.** A timeline not read for longer than
//!   `idle` is treated as missing by every method (and dropped on the spot
//!   when met), and a sweep over all shards, run at most every `idle / 4`
//!   from `push` and `range` (or by calling [`MemoryTimelineCache::sweep`]),
//!   reclaims the ones nobody meets. Its owner stops receiving fan-out and
//!   gets a rebuild from the store on their next read, as the design wants
//!   for inactive users.
//! - **Bounded count.** When creating a timeline brings the count above
//!   `max_timelines`, the least recently read ones are dropped (they will be
//!   rebuilt on their next read). Finding them scans every shard, so above a
//!   few hundred timelines it evicts down to 95% of the maximum, making the
//!   scan rare instead of once per new timeline.
//!
//! Time comes from a [`Clock`], so tests move a `ManualClock` instead of
//! sleeping. The gauge `starling_timeline_cache_timelines` reports how many
//! timelines are held.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use starling_domain::{Clock, Id, Page};

use crate::timeline::{CacheResult, TimelineCache, TimelineEntry};

/// Number of lock shards.
pub const SHARDS: usize = 64;

/// Capped, in-process timelines for the embedded shape.
pub struct MemoryTimelineCache {
    shards: Vec<Mutex<HashMap<Id, Timeline>>>,
    cap: usize,
    idle_ms: i64,
    max_timelines: u64,
    clock: Arc<dyn Clock>,
    /// Timelines held, across shards (changed under the shard locks).
    count: AtomicU64,
    /// When the next idle sweep is due (Unix ms).
    next_sweep_ms: AtomicI64,
}

struct Timeline {
    entries: BTreeMap<Id, TimelineEntry>,
    complete: bool,
    last_read_ms: i64,
}

impl Timeline {
    fn new(now_ms: i64) -> Self {
        Self {
            entries: BTreeMap::new(),
            complete: false,
            last_read_ms: now_ms,
        }
    }

    fn insert(&mut self, entry: TimelineEntry, cap: usize) {
        self.entries.insert(entry.id, entry);
        while self.entries.len() > cap {
            self.entries.pop_first();
        }
    }

    /// The page, newest first, touching only the entries near it.
    fn page(&self, page: &Page) -> Vec<TimelineEntry> {
        let below_max = |id: &Id| page.max_id.is_none_or(|m| *id < m);
        let above_lower = |id: &Id| page.lower().is_none_or(|l| *id > l);
        let near: Vec<TimelineEntry> = if page.ascending() {
            let lower = page.lower().map_or(Bound::Unbounded, Bound::Excluded);
            let mut up: Vec<TimelineEntry> = self
                .entries
                .range((lower, Bound::Unbounded))
                .take_while(|(id, _)| below_max(id))
                .take(page.limit)
                .map(|(_, e)| *e)
                .collect();
            up.reverse();
            up
        } else {
            let upper = page.max_id.map_or(Bound::Unbounded, Bound::Excluded);
            self.entries
                .range((Bound::Unbounded, upper))
                .rev()
                .take_while(|(id, _)| above_lower(id))
                .take(page.limit)
                .map(|(_, e)| *e)
                .collect()
        };
        // The same selection the store makes, so both page alike.
        page.select(near, |e| e.id)
    }
}

impl MemoryTimelineCache {
    /// Timelines of at most `cap` entries, dropped after `idle` without a
    /// read, at most `max_timelines` of them.
    pub fn new(cap: usize, idle: Duration, max_timelines: u64, clock: Arc<dyn Clock>) -> Self {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let now = clock.now_ms();
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            cap,
            idle_ms,
            max_timelines,
            clock,
            count: AtomicU64::new(0),
            next_sweep_ms: AtomicI64::new(now.saturating_add(sweep_every(idle_ms))),
        }
    }

    /// How many timelines are held (idle ones not yet swept included).
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every timeline idle for longer than `idle`. Called every so
    /// often by `push` and `range`; callable by a housekeeping task too.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        for shard in &self.shards {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|_, t| !self.is_idle(t, now));
            self.forgot(before - map.len());
        }
        self.report();
    }

    fn sweep_if_due(&self, now: i64) {
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(sweep_every(self.idle_ms));
        // One caller wins the sweep; the others go on.
        if self
            .next_sweep_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep();
        }
    }

    fn shard_of(&self, owner: Id) -> usize {
        // Fibonacci hashing: ids that differ only in their low (shard and
        // sequence) or high (time) bits still spread over every shard.
        let h = (owner.as_i64() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize % self.shards.len()
    }

    fn shard(&self, owner: Id) -> MutexGuard<'_, HashMap<Id, Timeline>> {
        lock(&self.shards[self.shard_of(owner)])
    }

    fn is_idle(&self, t: &Timeline, now: i64) -> bool {
        now.saturating_sub(t.last_read_ms) > self.idle_ms
    }

    /// `owner`'s live timeline in `map`, dropping it if it went idle.
    fn live<'m>(
        &self,
        map: &'m mut HashMap<Id, Timeline>,
        owner: Id,
        now: i64,
    ) -> Option<&'m mut Timeline> {
        if map.get(&owner).is_some_and(|t| self.is_idle(t, now)) {
            map.remove(&owner);
            self.forgot(1);
        }
        map.get_mut(&owner)
    }

    /// Runs `f` on `owner`'s live timeline, creating an empty incomplete one
    /// (read now) if there is none; then keeps the count under the maximum.
    fn with_created<R>(&self, owner: Id, f: impl FnOnce(&mut Timeline) -> R) -> R {
        let now = self.clock.now_ms();
        let (result, created) = {
            let mut map = self.shard(owner);
            let created = self.live(&mut map, owner, now).is_none();
            let t = map.entry(owner).or_insert_with(|| Timeline::new(now));
            (f(t), created)
        };
        if created {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.enforce_max(owner);
            self.report();
        }
        result
    }

    /// Drops the least recently read timelines while there are too many
    /// (never `keep`, the one just created).
    fn enforce_max(&self, keep: Id) {
        if self.len() <= self.max_timelines {
            return;
        }
        let target = self.max_timelines - self.max_timelines / 20;
        let mut all: Vec<(i64, Id)> = Vec::new();
        for shard in &self.shards {
            all.extend(
                lock(shard)
                    .iter()
                    .filter(|(owner, _)| **owner != keep)
                    .map(|(owner, t)| (t.last_read_ms, *owner)),
            );
        }
        let excess = ((all.len() as u64 + 1).saturating_sub(target) as usize).min(all.len());
        if excess == 0 {
            return;
        }
        all.select_nth_unstable(excess - 1);
        for (read_ms, owner) in all.into_iter().take(excess) {
            let mut map = self.shard(owner);
            // Only if it was not read meanwhile.
            if map.get(&owner).is_some_and(|t| t.last_read_ms == read_ms) {
                map.remove(&owner);
                self.forgot(1);
            }
        }
    }

    fn forgot(&self, n: usize) {
        if n > 0 {
            self.count.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    fn report(&self) {
        metrics::gauge!("starling_timeline_cache_timelines").set(self.len() as f64);
    }
}

/// How often idle timelines are swept: a quarter of the idle time, between
/// one second and one minute.
fn sweep_every(idle_ms: i64) -> i64 {
    (idle_ms / 4).clamp(1_000, 60_000)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a shard was locked cannot break memory safety here, and
    // the cache is allowed to be wrong for a while: carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl TimelineCache for MemoryTimelineCache {
    async fn push(&self, items: &[(Id, TimelineEntry)]) -> CacheResult<()> {
        let now = self.clock.now_ms();
        let mut by_shard: Vec<Vec<&(Id, TimelineEntry)>> = vec![Vec::new(); self.shards.len()];
        for item in items {
            by_shard[self.shard_of(item.0)].push(item);
        }
        for (shard, items) in self.shards.iter().zip(by_shard) {
            if items.is_empty() {
                continue;
            }
            let mut map = lock(shard);
            for (owner, entry) in items {
                if let Some(t) = self.live(&mut map, *owner, now) {
                    t.insert(*entry, self.cap);
                }
            }
        }
        self.sweep_if_due(now);
        Ok(())
    }

    async fn range(&self, owner: Id, page: &Page) -> CacheResult<Option<Vec<TimelineEntry>>> {
        let now = self.clock.now_ms();
        let found = {
            let mut map = self.shard(owner);
            self.live(&mut map, owner, now).and_then(|t| {
                t.last_read_ms = now;
                t.complete.then(|| t.page(page))
            })
        };
        self.sweep_if_due(now);
        Ok(found)
    }

    async fn begin_rebuild(&self, owner: Id) -> CacheResult<()> {
        self.with_created(owner, |_| ());
        Ok(())
    }

    async fn fill(&self, owner: Id, entries: &[TimelineEntry]) -> CacheResult<()> {
        let cap = self.cap;
        self.with_created(owner, |t| {
            for entry in entries {
                t.insert(*entry, cap);
            }
            t.complete = true;
        });
        Ok(())
    }

    async fn remove(&self, owner: Id, ids: &[Id]) -> CacheResult<()> {
        let now = self.clock.now_ms();
        let mut map = self.shard(owner);
        if let Some(t) = self.live(&mut map, owner, now) {
            for id in ids {
                t.entries.remove(id);
            }
        }
        Ok(())
    }

    async fn remove_author(&self, owner: Id, author: Id) -> CacheResult<()> {
        let now = self.clock.now_ms();
        let mut map = self.shard(owner);
        if let Some(t) = self.live(&mut map, owner, now) {
            t.entries.retain(|_, e| e.author_id != author);
        }
        Ok(())
    }

    async fn forget(&self, owner: Id) -> CacheResult<()> {
        if self.shard(owner).remove(&owner).is_some() {
            self.forgot(1);
            self.report();
        }
        Ok(())
    }

    async fn exists(&self, owner: Id) -> CacheResult<bool> {
        let now = self.clock.now_ms();
        let mut map = self.shard(owner);
        Ok(self.live(&mut map, owner, now).is_some())
    }

    fn cap(&self) -> usize {
        self.cap
    }
}
