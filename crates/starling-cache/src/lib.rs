//! Cache seams: fast, shared, losable state.
//!
//! Everything behind these seams may be lost at any time (a restarted Redis,
//! a new process) without losing anything a user was promised; the store is
//! the system of record. The crate holds two seams:
//!
//! - [`RateLimiter`]: fixed-window rate-limit buckets;
//! - [`TimelineCache`]: the capped home (and other) timelines that fan-out
//!   fills on write and readers page through, rebuilt from the store when
//!   missing.
//!
//! Each seam has an in-process adapter for the embedded shape
//! ([`MemoryRateLimiter`], [`MemoryTimelineCache`]) and, later, a Redis one
//! for the distributed shape, and one conformance suite (in `conformance`,
//! behind the feature of that name) that every adapter passes.

pub mod memory_timeline;
pub mod rate_limit;
pub mod timeline;

pub use memory_timeline::MemoryTimelineCache;
pub use rate_limit::{Decision, MemoryRateLimiter, RateLimiter, Rule};
pub use timeline::{CacheError, CacheResult, TimelineCache, TimelineEntry};

#[cfg(feature = "conformance")]
pub mod conformance;
