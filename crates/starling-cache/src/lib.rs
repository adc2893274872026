//! Cache seams: fast, shared, losable state.
//!
//! Everything behind these seams may be lost at any time (a restarted Redis,
//! a new process) without losing anything a user was promised; the store is
//! the system of record. For now the seam holds rate-limit buckets; the
//! timeline and object caches join it with the social core.
//!
//! Each seam has an in-process adapter (the embedded shape) and, later, a
//! Redis one (the distributed shape), and one conformance suite for both.

pub mod rate_limit;

pub use rate_limit::{Decision, MemoryRateLimiter, RateLimiter, Rule};

#[cfg(feature = "conformance")]
pub mod conformance;
