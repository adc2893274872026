//! The object cache: hydrated accounts and statuses by id, in front of the
//! store's multi-gets, on two levels.
//!
//! A home page of 20 statuses needs ~20 statuses and their authors; most of
//! them were read moments ago by someone else. A lookup asks, in order:
//!
//! 1. **this process's memory** (the first level, [`Memory`]);
//! 2. **the shared level** ([`SharedObjects`], Redis in the distributed
//!    shape; absent alone), one batch for everything the first level
//!    missed: a process that never saw an object finds it there if any
//!    process read it within the shared level's TTL;
//! 3. **the store**, one multi-get for the rest, whose rows fill both
//!    levels.
//!
//! The code is the same with or without a shared level: without one, step 2
//! is skipped.
//!
//! # Invalidation
//!
//! Entries are invalidated by the writes that change them (counters
//! included), after the write commits and before the writer answers, in
//! this order:
//!
//! 1. this process's copies are dropped;
//! 2. the shared level's entries are replaced by **tombstones**
//!    (`SharedObjects::invalidate_many`) that live `tombstone` (a few
//!    seconds);
//! 3. this process's copies are dropped again (a reader here may have
//!    copied the shared entry between 1 and 2);
//! 4. the other processes are told through the [`Invalidations`] seam
//!    (Redis pub/sub), and drop their copies.
//!
//! Both levels also expire entries (first level: 5 s in the distributed
//! shape, 30 s alone; shared level: `cache.object_ttl_secs`, 60 s), which
//! bounds the damage of anything lost on the way.
//!
//! # Races between a read and a write
//!
//! A read that misses and a write that invalidates can cross: the reader
//! reads the old row, the writer commits and invalidates, then the reader
//! caches what it read.
//!
//! - **First level.** Each id maps to an epoch (a counter in a fixed table,
//!   bumped by every invalidation of an id in its slot, whether from this
//!   process or another); a reader caches a row (from the shared level or
//!   the store) only if the epoch did not move while it read, and checks
//!   again after caching, so a stale row never outlives the race.
//! - **Shared level.** Fills are `SET NX`: they never replace a value or a
//!   tombstone. A fill that lands before the writer's tombstone is replaced
//!   by it; one that lands during its life is refused. Only a fill later
//!   than the tombstone's life could get through, so a reader fills only
//!   what it read within [`FILL_WINDOW`] of starting, and the tombstone
//!   lives longer than that plus the longest a call to the shared level may
//!   take plus how far behind the primary a store read may be
//!   ([`tombstone_for`]). A row read from a read replica that had not yet
//!   replayed the write is such a stale read: with replicas, the tombstone
//!   covers the replica lag the store tolerates before it takes a replica
//!   out of rotation. A fill is also skipped when the row's epoch moved.
//!
//! Reads pinned to the primary (a writer's own requests, the workers: see
//! `starling_store::with_primary_reads`) skip both levels' copies, read the
//! store, and cache what they read (primary rows are fresh; the shared
//! level still refuses them on a tombstone).
//!
//! # When the shared level fails
//!
//! A failed shared call never fails a lookup: a failed read is a miss on
//! every id (the store answers), a failed fill is dropped. Both are counted
//! by the adapter (`starling_redis_errors_total{op}`) and logged here at
//! most once per [`LOG_EVERY`]. A tombstone that could not be written is
//! kept (up to [`UNSENT_MAX`] ids) and sent before this process reads the
//! shared level again; until it is sent, this process does not read the
//! shared level at all. A process that dies with tombstones unsent leaves
//! those entries to their TTL. When the shared level answers again it fills
//! from the next misses: nothing else is needed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use starling_cache::{CachedObject, Invalidation, Invalidations, ObjectKind, SharedObjects};
use starling_domain::oauth::AccessToken;
use starling_domain::{Account, Id, SecretHash, ShardId, Status};
use starling_store::{primary_reads_forced, RelationFlags, Store, StoreResult};

/// Epoch slots per kind of object (ids share slots by hash).
const EPOCH_SLOTS: usize = 4096;

/// A row goes to the shared level only if it was read within this time of
/// the lookup's start (see the module docs).
pub const FILL_WINDOW: Duration = Duration::from_secs(1);

/// Most tombstones kept for sending later while the shared level fails.
pub const UNSENT_MAX: usize = 100_000;

/// Shared-level failures are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a tombstone must live so that no fill of a row read before the
/// write gets past it: the fill window, plus `call_timeout` (the longest a
/// fill may travel), plus `read_staleness` (how far behind the primary a
/// store read may be: with read replicas, the lag at which one is taken out
/// of rotation plus the interval of the checks; zero without).
pub fn tombstone_for(read_staleness: Duration, call_timeout: Duration) -> Duration {
    FILL_WINDOW + call_timeout + read_staleness
}

/// The shared level and how it is used.
#[derive(Clone)]
pub struct SharedLevel {
    pub objects: Arc<dyn SharedObjects>,
    /// How long an entry serves.
    pub ttl: Duration,
    /// How long an invalidation's tombstone lives ([`tombstone_for`]).
    pub tombstone: Duration,
}

/// How many of an author's newest status ids [`ObjectCache::recent_ids`]
/// keeps by default: twice the largest page, as a home merge reads twice a
/// page.
pub const RECENT_IDS: usize = 80;

/// An author's newest status ids, newest first (boosts and replies
/// included: what `Store::statuses_by_authors` returns).
#[derive(Debug, PartialEq, Eq)]
pub struct RecentIds {
    pub ids: Vec<Id>,
    /// Whether `ids` is everything the author has (fewer than were asked
    /// for); otherwise it holds every id down to its last one.
    pub complete: bool,
}

impl RecentIds {
    /// Whether every id of this author above `id` is in `ids` (`None`: all
    /// of them).
    pub fn covers_above(&self, id: Option<Id>) -> bool {
        self.complete || matches!((id, self.ids.last()), (Some(id), Some(oldest)) if id >= *oldest)
    }
}

/// How many authors' relations ([`ObjectCache::relations`]) and how many
/// statuses' flags ([`ObjectCache::interactions`]) are kept per viewer
/// (more start the viewer's list afresh).
const VIEWER_FACTS_MAX: usize = 512;

/// What hydration has read about one viewer, by the id it asked about:
/// relations to authors, or favourites and boosts among statuses.
#[derive(Debug)]
pub struct ViewerFacts<V> {
    known: HashMap<Id, V>,
}

/// Whether a viewer favourited and boosted one status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFlags {
    pub favourited: bool,
    pub reblogged: bool,
}

#[derive(Clone)]
pub struct ObjectCache {
    accounts: Level<Account>,
    statuses: Level<Status>,
    /// The newest status ids of the large accounts home reads merge, and
    /// of the authors whose profiles are read, by author (a quarter of the
    /// objects' capacity: 25 000 authors of 80 ids, about 18 MB, by
    /// default). Their epochs are the accounts' (every post, boost and
    /// deletion invalidates its author's account, counters included), so an
    /// author's invalidation, from here or another process, drops them too.
    recent: Level<RecentIds>,
    /// How many ids `recent` keeps per author.
    recent_len: usize,
    /// Each reader's relations to the authors it reads, by reader, under
    /// the viewers' own epochs (not the accounts': a reader's post does not
    /// drop them): every follow, unfollow, block, unblock, mute and unmute
    /// invalidates both viewers ([`ObjectCache::forget_viewers`]), here and
    /// in the other processes.
    relations: Level<ViewerFacts<RelationFlags>>,
    /// Each reader's favourites and boosts among the statuses it reads, by
    /// reader, under the same epochs: the reader's favourites, unfavourites,
    /// boosts and boost deletions invalidate the reader.
    interactions: Level<ViewerFacts<StatusFlags>>,
    /// Live access tokens, by hash: every authenticated request looks its
    /// token up. Revoking one invalidates it here and, through the
    /// `Invalidations` seam, in the other processes (see
    /// [`ObjectCache::token`]).
    tokens: Arc<Tokens>,
    others: Arc<dyn Invalidations>,
    shared: Option<Arc<Shared>>,
}

/// The first level of one kind of object.
struct Level<T> {
    memory: Arc<Memory<T>>,
    epochs: Arc<Epochs>,
}

impl<T: Send + Sync + 'static> Clone for Level<T> {
    fn clone(&self) -> Self {
        Self {
            memory: self.memory.clone(),
            epochs: self.epochs.clone(),
        }
    }
}

/// A first level's memory: a bounded map whose entries serve for `ttl`.
///
/// `quick_cache` (CLOCK-Pro eviction: a read is a hash probe and a
/// flag) with each entry's deadline kept beside it. A home page makes some
/// sixty lookups here; with moka, whose reads also queue recency and
/// expiry bookkeeping, they were a quarter of a home read's CPU at 1M
/// users.
struct Memory<T, K = Id> {
    map: quick_cache::sync::Cache<K, (Arc<T>, Instant)>,
    ttl: Duration,
}

impl<T, K: Eq + std::hash::Hash + Clone> Memory<T, K> {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            map: quick_cache::sync::Cache::new(
                usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            ),
            ttl,
        }
    }

    fn get(&self, id: &K) -> Option<Arc<T>> {
        let (value, deadline) = self.map.get(id)?;
        if Instant::now() < deadline {
            return Some(value);
        }
        // Expired (a fresher copy put in meanwhile may go too: a miss).
        self.map.remove(id);
        None
    }

    fn insert(&self, id: K, value: Arc<T>) {
        self.map.insert(id, (value, Instant::now() + self.ttl));
    }

    fn invalidate(&self, id: &K) {
        self.map.remove(id);
    }

    fn invalidate_all(&self) {
        self.map.clear();
    }
}

impl<T: Send + Sync + 'static> Level<T> {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            memory: Arc::new(Memory::new(capacity, ttl)),
            epochs: Arc::new(Epochs::new()),
        }
    }

    fn forget(&self, ids: &[Id]) {
        for id in ids {
            self.epochs.bump(*id);
            self.memory.invalidate(id);
        }
    }

    fn forget_all(&self) {
        self.epochs.bump_all();
        self.memory.invalidate_all();
    }

    /// A level whose entries are invalidated with `other`'s (same epochs).
    fn beside<U>(other: &Level<U>, capacity: u64, ttl: Duration) -> Self {
        Self {
            epochs: other.epochs.clone(),
            ..Self::new(capacity, ttl)
        }
    }
}

/// Live access tokens in memory, with a generation that every revocation
/// (from here or another process) moves: a lookup that read a token while
/// it was being revoked does not keep it.
struct Tokens {
    memory: Memory<AccessToken, SecretHash>,
    generation: AtomicU64,
}

/// The shared level, with the tombstones it has not taken yet.
struct Shared {
    level: SharedLevel,
    unsent: Mutex<HashSet<(ObjectKind, Id)>>,
    /// Whether `unsent` may hold something (read without the lock).
    any_unsent: AtomicBool,
    log: LogGate,
}

/// Invalidation counters, one per slot of ids.
struct Epochs(Box<[AtomicU64]>);

impl Epochs {
    fn new() -> Self {
        Self((0..EPOCH_SLOTS).map(|_| AtomicU64::new(0)).collect())
    }

    fn slot(&self, id: Id) -> &AtomicU64 {
        // Ids' low bits hold shard and sequence; mix in the time too.
        let raw = id.as_i64() as u64;
        let mixed = raw ^ (raw >> 16) ^ (raw >> 32);
        &self.0[(mixed as usize) % EPOCH_SLOTS]
    }

    fn get(&self, id: Id) -> u64 {
        self.slot(id).load(Ordering::Acquire)
    }

    fn bump(&self, id: Id) {
        self.slot(id).fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        for slot in self.0.iter() {
            slot.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl ObjectCache {
    /// At most `capacity` objects of each kind in this process, each served
    /// for at most `ttl`; writes are announced to other processes through
    /// `others`; `shared`, if any, is the level shared with them.
    pub fn new(
        capacity: u64,
        ttl: Duration,
        others: Arc<dyn Invalidations>,
        shared: Option<SharedLevel>,
    ) -> Self {
        let accounts = Level::new(capacity, ttl);
        let relations = Level::new(capacity / 4 + 1, ttl);
        Self {
            recent: Level::beside(&accounts, capacity / 4 + 1, ttl),
            recent_len: RECENT_IDS,
            interactions: Level::beside(&relations, capacity / 4 + 1, ttl),
            relations,
            accounts,
            statuses: Level::new(capacity, ttl),
            tokens: Arc::new(Tokens {
                memory: Memory::new(capacity, ttl),
                generation: AtomicU64::new(0),
            }),
            others,
            shared: shared.map(|level| {
                Arc::new(Shared {
                    level,
                    unsent: Mutex::new(HashSet::new()),
                    any_unsent: AtomicBool::new(false),
                    log: LogGate::new(),
                })
            }),
        }
    }

    /// The accounts among `ids` that exist (in no particular order): from
    /// memory, then the shared level, then one multi-get.
    pub async fn accounts(&self, store: &dyn Store, ids: &[Id]) -> StoreResult<Vec<Arc<Account>>> {
        self.lookup(&self.accounts, ids, |missing| async move {
            store.accounts(&missing).await
        })
        .await
    }

    /// The statuses among `ids` that exist, as [`ObjectCache::accounts`].
    pub async fn statuses(&self, store: &dyn Store, ids: &[Id]) -> StoreResult<Vec<Arc<Status>>> {
        self.lookup(&self.statuses, ids, |missing| async move {
            store.statuses(&missing).await
        })
        .await
    }

    /// `viewer`'s relations to `authors`, one per author in the order
    /// given: those this process has read before from memory, the others
    /// with one store read (and kept). Reads pinned to the primary go to
    /// the store. A write that changes a relation invalidates both viewers
    /// ([`ObjectCache::forget_viewers`]), which drops what is kept.
    pub async fn relations(
        &self,
        store: &dyn Store,
        viewer: Id,
        authors: &[Id],
    ) -> StoreResult<Vec<RelationFlags>> {
        let flags = viewer_facts(
            &self.relations,
            viewer,
            authors,
            "starling_viewer_relations_lookups_total",
            |missing| async move {
                let read = store.relations(viewer, &missing).await?;
                Ok(read.into_iter().map(|r| (r.id, r)).collect())
            },
            RelationFlags::none,
        )
        .await?;
        Ok(flags.into_iter().map(|(_, r)| r).collect())
    }

    /// Whether `viewer` has favourited and boosted each of `statuses`, as
    /// [`ObjectCache::relations`]: the statuses asked about before from
    /// memory, the others with one store read. The viewer's favourites,
    /// unfavourites, boosts and boost deletions invalidate the viewer
    /// ([`ObjectCache::forget_viewers`]).
    pub async fn interactions(
        &self,
        store: &dyn Store,
        viewer: Id,
        statuses: &[Id],
    ) -> StoreResult<HashMap<Id, StatusFlags>> {
        let flags = viewer_facts(
            &self.interactions,
            viewer,
            statuses,
            "starling_viewer_interactions_lookups_total",
            |missing| async move {
                let read = store.interactions_among(viewer, &missing).await?;
                let mut flags: HashMap<Id, StatusFlags> = HashMap::new();
                for id in read.favourited {
                    flags.entry(id).or_default().favourited = true;
                }
                for id in read.reblogged {
                    flags.entry(id).or_default().reblogged = true;
                }
                Ok(flags.into_iter().collect())
            },
            |_| StatusFlags::default(),
        )
        .await?;
        Ok(flags.into_iter().collect())
    }

    /// The live access token whose hash is `hash`, if any: from memory, or
    /// one store read (a live token is kept for the first level's TTL;
    /// unknown tokens are not kept). Requests pinned to the primary (with
    /// read replicas, a revoked token is marked as having just written, so
    /// every request bearing it is) read the store. A revocation drops the
    /// token here at once and in the other processes when its message
    /// arrives ([`ObjectCache::forget_token`]); a process that missed the
    /// message serves the token until its entry expires (5 s in the
    /// distributed shape).
    pub async fn token(
        &self,
        store: &dyn Store,
        shard: ShardId,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<AccessToken>>> {
        let tokens = &*self.tokens;
        if !primary_reads_forced() {
            if let Some(token) = tokens.memory.get(hash) {
                metrics::counter!("starling_token_lookups_total", "level" => "memory").increment(1);
                return Ok(Some(token));
            }
        }
        metrics::counter!("starling_token_lookups_total", "level" => "store").increment(1);
        let before = tokens.generation.load(Ordering::Acquire);
        let Some(token) = store.token(shard, hash).await? else {
            return Ok(None);
        };
        let token = Arc::new(token);
        if tokens.generation.load(Ordering::Acquire) == before {
            tokens.memory.insert(*hash, token.clone());
            if tokens.generation.load(Ordering::Acquire) != before {
                tokens.memory.invalidate(hash);
            }
        }
        Ok(Some(token))
    }

    /// Call after a token was revoked.
    pub async fn forget_token(&self, hash: SecretHash) {
        self.forget(Invalidation::Tokens(vec![hash])).await;
    }

    /// Keeps `n` ids per author in [`ObjectCache::recent_ids`] (tests use
    /// a few, to page past them).
    pub fn keeping_recent(mut self, n: usize) -> Self {
        self.recent_len = n.max(1);
        self
    }

    /// `author`'s newest status ids ([`RECENT_IDS`] of them), from this
    /// process's memory or one store read. Only the first level holds them:
    /// they are read per author by every home read that merges that author,
    /// so each process keeps its own copy, dropped whenever the author's
    /// account is invalidated: every post, boost and deletion invalidates
    /// its author's account (the counters change).
    pub async fn recent_ids(&self, store: &dyn Store, author: Id) -> StoreResult<Arc<RecentIds>> {
        let level = &self.recent;
        let pinned = primary_reads_forced();
        if !pinned {
            if let Some(hit) = level.memory.get(&author) {
                metrics::counter!("starling_recent_ids_lookups_total", "level" => "memory")
                    .increment(1);
                return Ok(hit);
            }
        }
        metrics::counter!("starling_recent_ids_lookups_total", "level" => "store").increment(1);
        let before = epochs_of(&level.epochs, &[author]);
        let ids = store.recent_status_ids(author, self.recent_len).await?;
        let recent = Arc::new(RecentIds {
            complete: ids.len() < self.recent_len,
            ids,
        });
        remember(level, &before, author, recent.clone());
        Ok(recent)
    }

    async fn lookup<T, F, Fut>(
        &self,
        level: &Level<T>,
        ids: &[Id],
        read: F,
    ) -> StoreResult<Vec<Arc<T>>>
    where
        T: CachedObject,
        F: FnOnce(Vec<Id>) -> Fut,
        Fut: Future<Output = StoreResult<Vec<T>>>,
    {
        let pinned = primary_reads_forced();
        let (mut found, mut missing) = split(&level.memory, ids, pinned);
        counted(T::KIND, "memory", found.len());
        if missing.is_empty() {
            return Ok(found);
        }
        let before = epochs_of(&level.epochs, &missing);
        let started = Instant::now();
        // The shared level to fill with what the store returns, if any.
        let mut fill = None;
        if let Some(shared) = &self.shared {
            if pinned {
                fill = Some(shared);
            } else if self.send_unsent(shared).await {
                match shared.level.objects.get_many(T::KIND, &missing).await {
                    Ok(values) => {
                        fill = Some(shared);
                        let mut rest = Vec::new();
                        for (id, bytes) in missing.iter().zip(values) {
                            // Another format (or garbage) is a miss.
                            let hit = bytes
                                .and_then(|b| T::decode(&b))
                                .filter(|v| v.object_id() == *id);
                            match hit {
                                Some(v) => {
                                    let v = Arc::new(v);
                                    remember(level, &before, *id, v.clone());
                                    found.push(v);
                                }
                                None => rest.push(*id),
                            }
                        }
                        counted(T::KIND, "shared", missing.len() - rest.len());
                        missing = rest;
                    }
                    Err(e) => shared.failed("reading", &e),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        counted(T::KIND, "store", missing.len());
        let rows = read(missing).await?;
        let fill = fill.filter(|_| started.elapsed() < FILL_WINDOW);
        let mut fills = Vec::new();
        for row in rows {
            let id = row.object_id();
            let row = Arc::new(row);
            if remember(level, &before, id, row.clone()) && fill.is_some() {
                fills.push((id, row.encode()));
            }
            found.push(row);
        }
        if let Some(shared) = fill.filter(|_| !fills.is_empty()) {
            let level = &shared.level;
            if let Err(e) = level.objects.put_many(T::KIND, &fills, level.ttl).await {
                shared.failed("filling", &e);
            }
        }
        Ok(found)
    }

    /// Call after a write to these accounts has committed.
    pub async fn forget_accounts(&self, ids: &[Id]) {
        self.forget(Invalidation::Accounts(ids.to_vec())).await;
    }

    /// Call after a write to these statuses has committed.
    pub async fn forget_statuses(&self, ids: &[Id]) {
        self.forget(Invalidation::Statuses(ids.to_vec())).await;
    }

    /// Call after a write that changes what these accounts see of others
    /// has committed: a relation between them (follow, block, mute, and
    /// their undoing), or one's favourites or boosts.
    pub async fn forget_viewers(&self, ids: &[Id]) {
        self.forget(Invalidation::Viewers(ids.to_vec())).await;
    }

    /// Drops the copies here, tombstones the shared ones, drops the copies
    /// here again, then tells the other processes (see the module docs). A
    /// failure to tell them is logged and counted: their copies expire soon
    /// anyway.
    async fn forget(&self, what: Invalidation) {
        self.apply(&what);
        if let Some(shared) = &self.shared {
            if let Some((kind, ids)) = kind_and_ids(&what) {
                let level = &shared.level;
                if let Err(e) = level
                    .objects
                    .invalidate_many(kind, ids, level.tombstone)
                    .await
                {
                    shared.failed("invalidating", &e);
                    shared.keep_unsent(kind, ids);
                }
                self.apply(&what);
            }
        }
        if let Err(e) = self.others.publish(&what).await {
            metrics::counter!("starling_invalidations_lost_total").increment(1);
            tracing::warn!(error = %e, "could not tell other processes about a change; their cached copies expire on their own");
        }
    }

    /// Sends the tombstones a failure kept back; whether there are none
    /// left (so the shared level may be read).
    async fn send_unsent(&self, shared: &Shared) -> bool {
        if !shared.any_unsent.load(Ordering::Acquire) {
            return true;
        }
        let taken: Vec<(ObjectKind, Id)> = {
            let mut unsent = shared.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            shared.any_unsent.store(false, Ordering::Release);
            unsent.drain().collect()
        };
        let mut sent = true;
        for kind in [ObjectKind::Account, ObjectKind::Status] {
            let ids: Vec<Id> = taken
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let level = &shared.level;
            if !sent {
                shared.keep_unsent(kind, &ids);
                continue;
            }
            match level
                .objects
                .invalidate_many(kind, &ids, level.tombstone)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        kind = kind.as_str(),
                        count = ids.len(),
                        "sent the shared object cache's invalidations kept during its outage"
                    );
                    // Readers here may have copied a shared entry these
                    // tombstones replaced.
                    self.apply(&match kind {
                        ObjectKind::Account => Invalidation::Accounts(ids),
                        ObjectKind::Status => Invalidation::Statuses(ids),
                    });
                }
                Err(e) => {
                    shared.failed("invalidating", &e);
                    shared.keep_unsent(kind, &ids);
                    sent = false;
                }
            }
        }
        sent
    }

    /// Drops what an invalidation names (from this process or another).
    pub fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::Accounts(ids) => {
                self.accounts.forget(ids);
                self.recent.forget(ids);
            }
            Invalidation::Statuses(ids) => self.statuses.forget(ids),
            Invalidation::Viewers(ids) => {
                self.relations.forget(ids);
                self.interactions.forget(ids);
            }
            Invalidation::Tokens(hashes) => {
                self.tokens.generation.fetch_add(1, Ordering::AcqRel);
                for hash in hashes {
                    self.tokens.memory.invalidate(hash);
                }
            }
            Invalidation::Everything => {
                self.tokens.generation.fetch_add(1, Ordering::AcqRel);
                self.tokens.memory.invalidate_all();
                self.accounts.forget_all();
                self.recent.forget_all();
                self.relations.forget_all();
                self.interactions.forget_all();
                self.statuses.forget_all();
            }
        }
    }

    /// Starts applying what other processes publish.
    pub async fn listen(&self) -> starling_cache::CacheResult<()> {
        let me = self.clone();
        self.others
            .subscribe(Arc::new(move |what| me.apply(&what)))
            .await
    }
}

impl Shared {
    /// Logs a failed call, at most once per [`LOG_EVERY`] (the adapter
    /// counts every one).
    fn failed(&self, doing: &'static str, e: &starling_cache::CacheError) {
        if self.log.open() {
            tracing::warn!(
                error = %e,
                doing,
                "shared object cache failed; reading the store (logged at most every 10 s)"
            );
        }
    }

    /// Keeps tombstones to send once the shared level answers.
    fn keep_unsent(&self, kind: ObjectKind, ids: &[Id]) {
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        let mut dropped = 0u64;
        for id in ids {
            if unsent.len() >= UNSENT_MAX {
                dropped += 1;
            } else {
                unsent.insert((kind, *id));
            }
        }
        if !unsent.is_empty() {
            self.any_unsent.store(true, Ordering::Release);
        }
        drop(unsent);
        if dropped > 0 {
            metrics::counter!("starling_object_cache_tombstones_dropped_total").increment(dropped);
            if self.log.open() {
                tracing::warn!(
                    dropped,
                    "too many shared object cache invalidations kept; the dropped ones' entries expire on their own"
                );
            }
        }
    }
}

fn kind_and_ids(what: &Invalidation) -> Option<(ObjectKind, &[Id])> {
    match what {
        Invalidation::Accounts(ids) => Some((ObjectKind::Account, ids)),
        Invalidation::Statuses(ids) => Some((ObjectKind::Status, ids)),
        // Only the first level keeps what viewers see of others.
        Invalidation::Viewers(_) | Invalidation::Tokens(_) | Invalidation::Everything => None,
    }
}

/// Counts ids answered at a level (`memory`, `shared`, `store`).
fn counted(kind: ObjectKind, level: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!(
            "starling_object_cache_lookups_total",
            "kind" => kind.as_str(),
            "level" => level
        )
        .increment(n as u64);
    }
}

/// Opens at most once per [`LOG_EVERY`].
struct LogGate {
    start: Instant,
    /// When it last opened (ms after `start`, plus one; 0: never).
    last_ms: AtomicU64,
}

impl LogGate {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn open(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// What `viewer` sees of each of `keys`, in the order given: what this
/// process read before from memory, the rest with one call to `read`
/// (which answers for the keys it is given; one it leaves out is
/// `absent(key)`), kept for the next read. Reads pinned to the primary skip
/// memory (and keep what they read). `metric` counts lookups by level.
async fn viewer_facts<V, F, Fut>(
    level: &Level<ViewerFacts<V>>,
    viewer: Id,
    keys: &[Id],
    metric: &'static str,
    read: F,
    absent: fn(Id) -> V,
) -> StoreResult<Vec<(Id, V)>>
where
    V: Copy + Send + Sync + 'static,
    F: FnOnce(Vec<Id>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<(Id, V)>>>,
{
    // Before looking: an invalidation after this keeps what is read below
    // out of the cache.
    let before = epochs_of(&level.epochs, &[viewer]);
    let known = if primary_reads_forced() {
        None
    } else {
        level.memory.get(&viewer)
    };
    let mut missing: Vec<Id> = keys
        .iter()
        .copied()
        .filter(|k| known.as_ref().is_none_or(|f| !f.known.contains_key(k)))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let answer = |known: &HashMap<Id, V>| {
        keys.iter()
            .map(|k| (*k, known.get(k).copied().unwrap_or_else(|| absent(*k))))
            .collect()
    };
    if missing.is_empty() {
        metrics::counter!(metric, "level" => "memory").increment(1);
        return Ok(known.map(|f| answer(&f.known)).unwrap_or_default());
    }
    metrics::counter!(metric, "level" => "store").increment(1);
    let read = read(missing.clone()).await?;
    let mut facts = known.map(|f| f.known.clone()).unwrap_or_default();
    // What the store left out is absent, and known to be.
    facts.extend(missing.iter().map(|k| (*k, absent(*k))));
    facts.extend(read);
    let out = answer(&facts);
    if facts.len() > VIEWER_FACTS_MAX {
        // Start the list afresh with what this read asked about.
        facts.retain(|k, _| keys.contains(k));
    }
    remember(
        level,
        &before,
        viewer,
        Arc::new(ViewerFacts { known: facts }),
    );
    Ok(out)
}

fn epochs_of(epochs: &Epochs, ids: &[Id]) -> Vec<(Id, u64)> {
    ids.iter().map(|id| (*id, epochs.get(*id))).collect()
}

/// Caches `value` (read from the shared level or the store) unless an
/// invalidation of `id` may have crossed the read (see the module docs);
/// whether it did not.
fn remember<T>(level: &Level<T>, before: &[(Id, u64)], id: Id, value: Arc<T>) -> bool
where
    T: Send + Sync + 'static,
{
    let Some((_, seen)) = before.iter().find(|(i, _)| *i == id) else {
        return false;
    };
    if level.epochs.get(id) != *seen {
        return false;
    }
    level.memory.insert(id, value);
    if level.epochs.get(id) != *seen {
        level.memory.invalidate(&id);
        return false;
    }
    true
}

/// The cached values among `ids`, and the ids to read (all of them when
/// `bypass`).
fn split<T>(cache: &Memory<T>, ids: &[Id], bypass: bool) -> (Vec<Arc<T>>, Vec<Id>)
where
    T: Send + Sync + 'static,
{
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        let cached = if bypass { None } else { cache.get(id) };
        match cached {
            Some(v) => found.push(v),
            None => {
                if !missing.contains(id) {
                    missing.push(*id);
                }
            }
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_level_serves_until_its_deadline_or_an_invalidation() {
        let (a, b) = (Id::from_i64(1 << 22), Id::from_i64(2 << 22));
        let memory = Memory::new(100, Duration::from_secs(60));
        memory.insert(a, Arc::new("a"));
        memory.insert(b, Arc::new("b"));
        assert_eq!(memory.get(&a).as_deref(), Some(&"a"));
        memory.invalidate(&a);
        assert_eq!(memory.get(&a), None);
        assert_eq!(memory.get(&b).as_deref(), Some(&"b"));
        memory.invalidate_all();
        assert_eq!(memory.get(&b), None);

        let expired = Memory::new(100, Duration::ZERO);
        expired.insert(a, Arc::new("a"));
        assert_eq!(expired.get(&a), None, "served past its deadline");
    }

    #[tokio::test]
    async fn a_readers_relations_stay_right_past_the_bound() {
        use starling_domain::{FollowOptions, IdGenerator, ShardId};
        use starling_store::{GraphStore, NewAccount, SqliteStore, Stamp};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_in(dir.path()).await.expect("open");
        store.migrate().await.expect("migrate");
        let ids = IdGenerator::new();
        let mut accounts = Vec::new();
        for n in 0..(VIEWER_FACTS_MAX + 100) {
            let username = format!("u{n}");
            let id = ids.next(ShardId::for_key(&username));
            store
                .create_account(&NewAccount {
                    account: Account::new(id, &username, None, 1_700_000_000_000),
                    email: format!("{username}@example.com"),
                    email_key: format!("{username}@example.com"),
                    password_hash: "$argon2id$unused".into(),
                    locale: None,
                })
                .await
                .expect("account");
            accounts.push(id);
        }
        let viewer = accounts[0];
        let authors = &accounts[1..];
        // Every other author followed, boosts shown for every fourth.
        for (i, a) in authors.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            let options = FollowOptions {
                reblogs: i % 4 == 0,
                notify: false,
            };
            let stamp = Stamp {
                id: ids.next(viewer.shard()),
                at_ms: 1,
            };
            store
                .follow(viewer, *a, options, false, stamp)
                .await
                .expect("follow");
        }
        let cache = ObjectCache::new(
            1_000,
            Duration::from_secs(60),
            Arc::new(starling_cache::LocalInvalidations),
            None,
        );
        let half = authors.len() / 2;
        // Known authors, then all of them (past the bound), then the
        // first ones again: each answer is the store's.
        for page in [&authors[..half], authors, &authors[..half], authors] {
            let cached = cache.relations(&store, viewer, page).await.expect("cached");
            let direct = store.relations(viewer, page).await.expect("store");
            assert_eq!(cached, direct);
        }
        assert!(cache
            .relations
            .memory
            .get(&viewer)
            .is_some_and(|k| k.known.len() <= authors.len()));
    }

    #[test]
    fn the_log_gate_opens_once_per_interval() {
        let gate = LogGate::new();
        assert!(gate.open());
        assert!(!gate.open());
        assert!(!gate.open());
    }

    #[test]
    fn tombstones_outlive_the_fill_window_the_call_and_the_lag() {
        let t = tombstone_for(Duration::from_secs(6), Duration::from_secs(2));
        assert_eq!(t, Duration::from_secs(9));
        assert_eq!(tombstone_for(Duration::ZERO, Duration::ZERO), FILL_WINDOW);
    }
}
