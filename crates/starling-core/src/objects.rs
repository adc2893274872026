//! The object cache: hydrated accounts and statuses by id, in front of the
//! store's multi-gets.
//!
//! A home page of 20 statuses needs ~20 statuses and their authors; most of
//! them were read moments ago by someone else. Entries are invalidated by
//! the writes that change them (counters included): at once in the writing
//! process, and in the others through the [`Invalidations`] seam (Redis
//! pub/sub in the distributed shape), whose message the writer sends before
//! it answers. They also expire after a short time, which bounds the damage
//! of a message lost on the way.
//!
//! A read that misses and a write that invalidates can cross: the reader
//! reads the old row, the writer commits and invalidates, then the reader
//! caches what it read. Each id therefore maps to an epoch (a counter in a
//! fixed table, bumped by every invalidation of an id in its slot); a
//! reader caches a row only if the epoch did not move while it read, and
//! checks again after caching, so a stale row never outlives the race.
//!
//! With read replicas, a miss may be filled from a replica a moment behind
//! an invalidation already received: such a copy lives until its expiry at
//! most. Reads pinned to the primary (a writer's own requests, see
//! `starling_store::with_primary_reads`) therefore skip the cached copies,
//! read the store, and cache what they read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use starling_cache::{Invalidation, Invalidations};
use starling_domain::{Account, Id, Status};
use starling_store::{primary_reads_forced, Store, StoreResult};

/// Epoch slots per kind of object (ids share slots by hash).
const EPOCH_SLOTS: usize = 4096;

#[derive(Clone)]
pub struct ObjectCache {
    accounts: Cache<Id, Arc<Account>>,
    statuses: Cache<Id, Arc<Status>>,
    account_epochs: Arc<Epochs>,
    status_epochs: Arc<Epochs>,
    others: Arc<dyn Invalidations>,
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
    /// At most `capacity` objects of each kind, each served for at most
    /// `ttl`; writes are announced to other processes through `others`.
    pub fn new(capacity: u64, ttl: Duration, others: Arc<dyn Invalidations>) -> Self {
        Self {
            accounts: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            statuses: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            account_epochs: Arc::new(Epochs::new()),
            status_epochs: Arc::new(Epochs::new()),
            others,
        }
    }

    /// The accounts among `ids` that exist: cached ones from memory, the
    /// rest with one multi-get.
    pub async fn accounts(&self, store: &dyn Store, ids: &[Id]) -> StoreResult<Vec<Arc<Account>>> {
        let (mut found, missing) = split(&self.accounts, ids, primary_reads_forced());
        if !missing.is_empty() {
            let before = epochs_of(&self.account_epochs, &missing);
            for a in store.accounts(&missing).await? {
                let a = Arc::new(a);
                remember(
                    &self.accounts,
                    &self.account_epochs,
                    &before,
                    a.id,
                    a.clone(),
                );
                found.push(a);
            }
        }
        Ok(found)
    }

    /// The statuses among `ids` that exist, as [`ObjectCache::accounts`].
    pub async fn statuses(&self, store: &dyn Store, ids: &[Id]) -> StoreResult<Vec<Arc<Status>>> {
        let (mut found, missing) = split(&self.statuses, ids, primary_reads_forced());
        if !missing.is_empty() {
            let before = epochs_of(&self.status_epochs, &missing);
            for s in store.statuses(&missing).await? {
                let s = Arc::new(s);
                remember(
                    &self.statuses,
                    &self.status_epochs,
                    &before,
                    s.id,
                    s.clone(),
                );
                found.push(s);
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

    /// Drops the copies here, then tells the other processes. A failure to
    /// tell them is logged and counted: their copies expire soon anyway.
    async fn forget(&self, what: Invalidation) {
        self.apply(&what);
        if let Err(e) = self.others.publish(&what).await {
            metrics::counter!("starling_invalidations_lost_total").increment(1);
            tracing::warn!(error = %e, "could not tell other processes about a change; their cached copies expire on their own");
        }
    }

    /// Drops what an invalidation names (from this process or another).
    pub fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::Accounts(ids) => {
                for id in ids {
                    self.account_epochs.bump(*id);
                    self.accounts.invalidate(id);
                }
            }
            Invalidation::Statuses(ids) => {
                for id in ids {
                    self.status_epochs.bump(*id);
                    self.statuses.invalidate(id);
                }
            }
            Invalidation::Everything => {
                self.account_epochs.bump_all();
                self.status_epochs.bump_all();
                self.accounts.invalidate_all();
                self.statuses.invalidate_all();
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

fn epochs_of(epochs: &Epochs, ids: &[Id]) -> Vec<(Id, u64)> {
    ids.iter().map(|id| (*id, epochs.get(*id))).collect()
}

/// Caches `value` read from the store unless an invalidation of `id` may
/// have crossed the read (see the module docs).
fn remember<T>(
    cache: &Cache<Id, Arc<T>>,
    epochs: &Epochs,
    before: &[(Id, u64)],
    id: Id,
    value: Arc<T>,
) where
    T: Send + Sync + 'static,
{
    let Some((_, seen)) = before.iter().find(|(i, _)| *i == id) else {
        return;
    };
    if epochs.get(id) != *seen {
        return;
    }
    cache.insert(id, value);
    if epochs.get(id) != *seen {
        cache.invalidate(&id);
    }
}

/// The cached values among `ids`, and the ids to read (all of them when
/// `bypass`).
fn split<T>(cache: &Cache<Id, Arc<T>>, ids: &[Id], bypass: bool) -> (Vec<Arc<T>>, Vec<Id>)
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
