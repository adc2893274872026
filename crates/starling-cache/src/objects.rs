//! The shared object seam: the second level of the object cache, shared by
//! every process.
//!
//! Each process keeps hydrated accounts and statuses in memory (the object
//! cache in `starling-core`, the first level). Without a shared level,
//! every `api` process misses to the store separately for the same hot
//! objects; [`SharedObjects`] is one cache they all read and fill (Redis in
//! the distributed shape, `RedisSharedObjects`). The seam stores opaque
//! bytes by (kind, id); what the bytes are is the object cache's business
//! (see [`crate::object_codec`]).
//!
//! # Fills never overwrite, invalidations leave tombstones
//!
//! A reader that read a row before a write committed must not put that row
//! back after the writer invalidated it. So:
//!
//! - [`SharedObjects::put_many`] stores an entry only where the key holds
//!   nothing (Redis: `SET NX PX`): neither a value nor a tombstone;
//! - [`SharedObjects::invalidate_many`] replaces an entry by a tombstone
//!   that lives a short time (Redis: `SET key "" PX`), rather than deleting
//!   it; a reader reads a tombstone as a miss.
//!
//! A late fill therefore lands either before the tombstone (which then
//! replaces it) or on the tombstone (and is refused). Only a fill later than
//! the tombstone's life gets through; the object cache does not send fills
//! that late (its fill window), and entries expire anyway.
//!
//! Every call handles a whole batch in one round trip (a pipeline): a page
//! of hydration is one call per kind, whatever its size.

use std::time::Duration;

use async_trait::async_trait;
use starling_domain::Id;

use crate::timeline::CacheResult;

/// What an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Account,
    Status,
}

impl ObjectKind {
    /// For metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Status => "status",
        }
    }
}

#[async_trait]
pub trait SharedObjects: Send + Sync + 'static {
    /// The entries of `ids`, in their order (repeats included): `None` for
    /// a missing, expired or invalidated (tombstoned) one. One round trip.
    async fn get_many(&self, kind: ObjectKind, ids: &[Id]) -> CacheResult<Vec<Option<Vec<u8>>>>;

    /// Stores each value for `ttl`, unless its key already holds a value or
    /// a tombstone (that one is kept). Empty values are not stored (an
    /// adapter may use the empty value as its tombstone). One round trip.
    async fn put_many(
        &self,
        kind: ObjectKind,
        items: &[(Id, Vec<u8>)],
        ttl: Duration,
    ) -> CacheResult<()>;

    /// Replaces each entry (present or not) by a tombstone living for
    /// `tombstone`: reads miss and fills are refused until it expires. One
    /// round trip.
    async fn invalidate_many(
        &self,
        kind: ObjectKind,
        ids: &[Id],
        tombstone: Duration,
    ) -> CacheResult<()>;
}
