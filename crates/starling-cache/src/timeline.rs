//! The timeline cache seam: capped lists of status ids, newest first.
//!
//! A home timeline is filled on write: the fan-out consumer pushes each new
//! post onto the lists of its author's followers, but only onto lists that
//! exist. A list exists while its owner is active; an inactive owner's list
//! is dropped (or evicted) and rebuilt from the store on their next read:
//!
//! 1. the reader calls [`TimelineCache::begin_rebuild`], which creates an
//!    empty, incomplete list, so pushes from now on land in it;
//! 2. it reads the followees' recent statuses from the store;
//! 3. it calls [`TimelineCache::fill`], which merges those in and marks the
//!    list complete. Anything pushed during step 2 is kept.
//!
//! [`TimelineCache::range`] answers `None` for a missing or incomplete list.
//! Everything here may be lost at any time; the store can always rebuild it.

use async_trait::async_trait;
use starling_domain::{Id, Page};

/// One entry of a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimelineEntry {
    /// The status shown (for a boost, the boost's own id).
    pub id: Id,
    /// Its author (for a boost, the booster).
    pub author_id: Id,
    /// For a boost, the boosted status.
    pub reblog_of_id: Option<Id>,
}

/// Why a cache call failed (the caller falls back to the store).
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

pub type CacheResult<T> = Result<T, CacheError>;

#[async_trait]
pub trait TimelineCache: Send + Sync + 'static {
    /// Pushes entries onto the timelines of the given owners that exist
    /// (complete or being rebuilt), keeping each list's newest `cap` entries.
    /// Pushing an entry twice keeps one copy.
    async fn push(&self, items: &[(Id, TimelineEntry)]) -> CacheResult<()>;

    /// The entries of `owner`'s complete timeline that fall in `page`,
    /// newest first; `None` if the timeline is missing or incomplete.
    /// Marks the owner active.
    async fn range(&self, owner: Id, page: &Page) -> CacheResult<Option<Vec<TimelineEntry>>>;

    /// Creates an empty, incomplete timeline for `owner` if none exists.
    async fn begin_rebuild(&self, owner: Id) -> CacheResult<()>;

    /// Merges `entries` into `owner`'s timeline (creating it if needed),
    /// keeps the newest `cap`, and marks it complete.
    async fn fill(&self, owner: Id, entries: &[TimelineEntry]) -> CacheResult<()>;

    /// Removes the entries with these ids from `owner`'s timeline.
    async fn remove(&self, owner: Id, ids: &[Id]) -> CacheResult<()>;

    /// Removes every entry by `author` (posts and boosts) from `owner`'s
    /// timeline (after an unfollow or a block).
    async fn remove_author(&self, owner: Id, author: Id) -> CacheResult<()>;

    /// Drops `owner`'s timeline entirely (it will be rebuilt on read).
    async fn forget(&self, owner: Id) -> CacheResult<()>;

    /// Whether `owner` has a timeline (complete or not): fan-out targets.
    async fn exists(&self, owner: Id) -> CacheResult<bool>;

    /// The cap: how many entries a timeline keeps.
    fn cap(&self) -> usize;
}
