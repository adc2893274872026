//! Starling's use cases.
//!
//! [`Core`] is what the HTTP edge (and the admin CLI) calls: it takes parsed
//! inputs, applies the rules, and talks to the seams. It knows nothing of
//! HTTP or JSON; its errors say what went wrong in domain terms and the edge
//! maps them to status codes in one place.

pub mod accounts;
pub mod error;
pub mod graph;
pub mod live;
pub mod media;
pub mod notifications;
pub mod oauth;
mod objects;
pub mod passwords;
pub mod search;
pub mod statuses;
pub mod timelines;
pub mod views;
pub mod workers;
pub mod writes;

use std::sync::Arc;

use starling_cache::{Invalidations, SharedObjects, TimelineCache};
use starling_domain::{Clock, Id, IdGenerator, ShardId};
use starling_store::{Stamp, Store};
use tokio::sync::Notify;

pub use objects::{tombstone_for, ObjectCache, RecentIds, SharedLevel, StatusFlags, RECENT_IDS};

pub use error::{CoreError, CoreResult, OAuthError};
pub use oauth::Principal;
pub use passwords::Passwords;

/// Settings the use cases need (a slice of the configuration).
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// Whether `POST /api/v1/accounts` accepts new sign-ups.
    pub registrations_open: bool,
    /// Base of the URLs written into content (`https://host`, no slash).
    pub base_url: String,
    /// Authors with at least this many followers are not fanned out on
    /// write; their posts are merged into home timelines at read time.
    pub large_account_threshold: i64,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_ms: i64,
    /// Accounts and statuses kept in this process's object cache, of each.
    pub object_cache_capacity: u64,
    /// How long a cached object may serve before it is read again.
    pub object_cache_ttl: std::time::Duration,
    /// How long an object in the shared level (`Seams::shared_objects`)
    /// serves.
    pub shared_object_ttl: std::time::Duration,
    /// How long an invalidation's tombstone lives in the shared level
    /// ([`tombstone_for`]).
    pub shared_object_tombstone: std::time::Duration,
    /// How many of a large account's newest status ids each process keeps
    /// for home reads to merge ([`RECENT_IDS`]; pages reaching
    /// past them read the store).
    pub recent_ids_per_author: usize,
    /// What an upload may be (sizes, pixels, duration, ffmpeg's time).
    pub media_limits: starling_media::Limits,
    /// Live events a streaming connection may have waiting before it is
    /// closed as too slow ([`live::LiveHub`]).
    pub stream_queue: usize,
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            registrations_open: true,
            base_url: "http://localhost".into(),
            large_account_threshold: 10_000,
            idempotency_ttl_ms: 3_600_000,
            object_cache_capacity: 100_000,
            object_cache_ttl: std::time::Duration::from_secs(30),
            shared_object_ttl: std::time::Duration::from_secs(60),
            shared_object_tombstone: tombstone_for(
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(2),
            ),
            recent_ids_per_author: objects::RECENT_IDS,
            media_limits: starling_media::Limits::default(),
            stream_queue: 1000,
        }
    }
}

/// The seams the use cases are bound to.
#[derive(Clone)]
pub struct Seams {
    pub store: Arc<dyn Store>,
    pub timelines: Arc<dyn TimelineCache>,
    /// How the object caches of other processes learn of writes.
    pub invalidations: Arc<dyn Invalidations>,
    /// The object cache's level shared with other processes (Redis), if
    /// any: none alone.
    pub shared_objects: Option<Arc<dyn SharedObjects>>,
    /// Where uploaded media and its variants are kept (a directory alone,
    /// an S3-compatible object store in the distributed shape).
    pub media: Arc<dyn starling_media::MediaStorage>,
    /// Where the consumers tell streaming connections what happened (in
    /// process alone, core NATS subjects in the distributed shape).
    pub live: Arc<dyn starling_bus::LiveBus>,
}

/// The use cases, bound to their seams. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    store: Arc<dyn Store>,
    timelines: Arc<dyn TimelineCache>,
    objects: ObjectCache,
    media: Arc<dyn starling_media::MediaStorage>,
    /// This process's streaming listeners ([`live`]).
    live: Arc<live::LiveHub>,
    /// Uploads decoded at once in this process: one per core, so a burst
    /// of large images queues instead of holding a decoded frame (up to
    /// ~130 MB each) per request in memory at the same time.
    media_slots: Arc<tokio::sync::Semaphore>,
    /// Poked after each write with an event, so the relay in this process
    /// picks it up at once instead of at its next poll (by
    /// [`Core::apply_effects`], as every write's effects are).
    outbox_written: Arc<Notify>,
    ids: Arc<IdGenerator>,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    settings: CoreSettings,
}

impl Core {
    pub fn new(
        seams: Seams,
        ids: Arc<IdGenerator>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        settings: CoreSettings,
    ) -> Self {
        Self {
            store: seams.store,
            timelines: seams.timelines,
            media: seams.media,
            live: live::LiveHub::new(seams.live, settings.stream_queue),
            objects: ObjectCache::new(
                settings.object_cache_capacity,
                settings.object_cache_ttl,
                seams.invalidations,
                seams.shared_objects.map(|objects| SharedLevel {
                    objects,
                    ttl: settings.shared_object_ttl,
                    tombstone: settings.shared_object_tombstone,
                }),
            )
            .keeping_recent(settings.recent_ids_per_author),
            media_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            outbox_written: Arc::new(Notify::new()),
            ids,
            clock,
            passwords,
            settings,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    pub fn timelines(&self) -> &Arc<dyn TimelineCache> {
        &self.timelines
    }

    /// Starts applying other processes' invalidations to this process's
    /// object cache (the distributed shape; nothing to do alone).
    pub async fn listen_for_invalidations(&self) -> CoreResult<()> {
        self.objects
            .listen()
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))
    }

    /// A fresh id and the current time for a write on `shard`.
    fn stamp(&self, shard: ShardId) -> Stamp {
        Stamp {
            id: self.ids.next(shard),
            at_ms: self.clock.now_ms(),
        }
    }

    /// A new id on the shard that owns `owner`'s data.
    fn id_for(&self, owner: Id) -> Id {
        self.ids.next(owner.shard())
    }
}
