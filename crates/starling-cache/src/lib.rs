//! Cache seams: fast, shared, losable state.
//!
//! Everything behind these seams may be lost at any time (a restarted Redis,
//! a new process) without losing anything a user was promised; the store is
//! the system of record. The crate holds five seams:
//!
//! - [`RateLimiter`]: fixed-window rate-limit buckets;
//! - [`TimelineCache`]: the capped home (and other) timelines that fan-out
//!   fills on write and readers page through, rebuilt from the store when
//!   missing;
//! - [`Invalidations`]: telling other processes' object caches of writes;
//! - [`SharedObjects`]: the object cache's shared second level (encoded
//!   accounts and statuses by id, [`object_codec`]), with tombstones so a
//!   late fill cannot undo an invalidation;
//! - `Freshness`: which tokens wrote recently (their reads go to the
//!   primary while replicas catch up).
//!
//! Each seam has an in-process adapter for the embedded shape and a Redis
//! one for the distributed shape (feature `redis`), and one conformance
//! suite (in `conformance`, behind the feature of that name, or beside the
//! tests) that every adapter passes.

pub mod freshness;
pub mod invalidation;
pub mod memory_objects;
pub mod memory_timeline;
pub mod object_codec;
pub mod objects;
pub mod rate_limit;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
pub mod redis_freshness;
#[cfg(feature = "redis")]
pub mod redis_invalidation;
#[cfg(feature = "redis")]
pub mod redis_objects;
#[cfg(feature = "redis")]
pub mod redis_rate_limit;
#[cfg(feature = "redis")]
pub mod redis_timeline;
pub mod timeline;

pub use freshness::{Freshness, MemoryFreshness, WriterKey};
pub use invalidation::{Invalidation, InvalidationHandler, Invalidations, LocalInvalidations};
pub use memory_objects::MemorySharedObjects;
pub use memory_timeline::MemoryTimelineCache;
pub use object_codec::CachedObject;
pub use objects::{ObjectKind, SharedObjects};
pub use rate_limit::{Decision, MemoryRateLimiter, RateLimiter, Rule};
#[cfg(feature = "redis")]
pub use redis_conn::RETRY_AFTER as REDIS_RETRY_AFTER;
#[cfg(feature = "redis")]
pub use redis_freshness::RedisFreshness;
#[cfg(feature = "redis")]
pub use redis_invalidation::RedisInvalidations;
#[cfg(feature = "redis")]
pub use redis_objects::RedisSharedObjects;
#[cfg(feature = "redis")]
pub use redis_rate_limit::RedisRateLimiter;
#[cfg(feature = "redis")]
pub use redis_timeline::RedisTimelineCache;
pub use timeline::{CacheError, CacheResult, TimelineCache, TimelineEntry};

#[cfg(feature = "conformance")]
pub mod conformance;
