//! The bulk-load seam: many rows at once, for seeding benchmarks and imports.
//!
//! [`Store`](crate::Store) writes one fact per call, each in its own
//! transaction with its event in the outbox: right for requests, far too
//! slow for building a network of a million accounts and fifty million
//! follows. [`BulkLoad`] takes whole batches and lets each adapter use its
//! fastest path (the SQLite adapter, `sqlite_bulk.rs`: large transactions of
//! multi-row inserts on its one writer, durability relaxed and the big
//! secondary indexes built once at the end; the PostgreSQL adapter,
//! `postgres/bulk.rs`: `COPY` into every physical database at once, each
//! side of a two-sided fact on its own shard, the same indexes deferred).
//!
//! What a bulk load is, and is not:
//!
//! - **It describes a past nobody needs to replay.** Loads write **no outbox
//!   events**: no fan-out, no notifications. Home timelines are rebuilt from
//!   the store when their owners first read them (the embedded shape keeps
//!   them in memory anyway), which is what the server does for any reader
//!   it has not seen for a while.
//! - **Rows go in as given.** Ids must carry their times and shards (build
//!   them with [`Id::from_parts`](starling_domain::Id::from_parts) or an
//!   `IdGenerator`), be unique, and lie in the past, so ids the server hands
//!   out later sort after them. Follows must be distinct pairs. Nothing is
//!   validated beyond what the database enforces.
//! - **Every side the normal path writes.** An adapter that keeps a fact on
//!   several shards (PostgreSQL: a follow on the follower's and on the
//!   followee's, an email's directory row on the email's, a reply's thread
//!   row on the parent's) writes every one of them, exactly as the normal
//!   path leaves them once its cross-shard changes are applied, but no
//!   mirror ops: a loaded store answers like one written request by
//!   request (the conformance case `bulk_load_answers_like_the_normal_path`
//!   holds every adapter to it).
//! - **Account counters and large-account marks are derived at the end.**
//!   [`BulkLoad::finish_bulk`] recomputes `followers_count`,
//!   `following_count`, `statuses_count` and `last_status_at` of every
//!   account from the rows, marks accounts at or above the large-account
//!   threshold (and copies the mark onto their follow rows), and restores
//!   whatever [`BulkLoad::begin_bulk`] relaxed. Status counters (replies,
//!   boosts, favourites) are loaded as given.
//! - **The server must not run against the database meanwhile.** Between
//!   `begin_bulk` and `finish_bulk` an adapter may drop indexes and relax
//!   durability; a crash in between loses the batch in hand (not the earlier
//!   ones), and calling `begin_bulk` then `finish_bulk` again repairs the
//!   schema (what was dropped is recorded in the database in the same
//!   transaction that dropped it).

use async_trait::async_trait;
use starling_domain::oauth::AccessToken;
use starling_domain::{Id, Status};

use crate::{NewAccount, StoreResult};

/// One follow to load: `follower` follows `followee` with the default
/// options (boosts shown, no notifications), since `created_at_ms`. `id`
/// is the follow's own id, on the follower's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkFollow {
    pub id: Id,
    pub follower: Id,
    pub followee: Id,
    pub created_at_ms: i64,
}

/// How to prepare a bulk load.
#[derive(Clone, Debug, Default)]
pub struct BulkOptions {
    /// Keep every index in place while loading (slower for big loads;
    /// useful to compare, or to load a little into a large database).
    pub keep_indexes: bool,
}

/// How to finish a bulk load.
#[derive(Clone, Debug)]
pub struct FinishOptions {
    /// Accounts with at least this many followers are marked large (the
    /// server's `large_account_threshold`: their posts are merged into home
    /// timelines at read time instead of fanned out).
    pub large_account_threshold: i64,
}

/// What finishing took, step by step (for the loader's report).
#[derive(Clone, Debug, Default)]
pub struct FinishReport {
    /// `(step, seconds)` in the order they ran.
    pub steps: Vec<(String, f64)>,
    /// Accounts marked large.
    pub large_accounts: u64,
}

/// Batched writes straight into the system of record, bypassing the use
/// cases and the outbox. Call [`begin_bulk`](Self::begin_bulk), any number
/// of `load_*` calls (accounts before anything that refers to them), then
/// [`finish_bulk`](Self::finish_bulk). Each `load_*` call is atomic on each
/// physical database it writes to (one transaction per database: an
/// adapter with several cannot commit them as one).
#[async_trait]
pub trait BulkLoad: Send + Sync + 'static {
    /// Gets the database ready for loading (and repairs the schema if an
    /// earlier load was interrupted before it finished).
    async fn begin_bulk(&self, options: &BulkOptions) -> StoreResult<()>;

    /// Accounts with their sign-in data and email directory rows.
    async fn load_accounts(&self, batch: &[NewAccount]) -> StoreResult<()>;

    /// Access tokens (each on its account's shard, an app token on its
    /// app's). Only hashes: the texts stay with whoever generated them.
    async fn load_tokens(&self, batch: &[AccessToken]) -> StoreResult<()>;

    /// Follows between accounts already loaded.
    async fn load_follows(&self, batch: &[BulkFollow]) -> StoreResult<()>;

    /// Statuses of accounts already loaded, with their hashtag rows (and the
    /// `parent -> reply` rows of replies).
    async fn load_statuses(&self, batch: &[Status]) -> StoreResult<()>;

    /// Derives the counters and large-account marks and restores what
    /// `begin_bulk` relaxed (indexes, durability); the PostgreSQL adapter
    /// then runs `ANALYZE`.
    async fn finish_bulk(&self, options: &FinishOptions) -> StoreResult<FinishReport>;
}
