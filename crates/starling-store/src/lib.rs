//! The store seam: Starling's system of record.
//!
//! [`Store`] is written as if every account lived on its own logical shard
//! (1024 of them), whatever the physical layout: each method names the key it
//! works on, and the key names the shard (ids and secrets carry theirs, and a
//! username or email hashes to one). A [`ShardMap`] maps logical shards onto
//! physical databases. The SQLite adapter maps all 1024 onto one file; the
//! PostgreSQL adapter (distributed shape) maps them onto any number of
//! clusters. Every adapter passes the one conformance suite in
//! [`conformance`] (enable the `conformance` feature in tests).
//!
//! Storage rows stay in the adapters: the seam speaks domain types.

use async_trait::async_trait;
use starling_domain::account::ProfileUpdate;
use starling_domain::oauth::{AccessToken, App, AuthCode};
use starling_domain::{Account, Id, SecretHash, ShardId};

pub mod bulk;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod media;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod primary_reads;
pub mod shard_map;
pub mod social;
pub mod sqlite;
mod sqlite_bulk;
mod sqlite_media;
mod sqlite_social;

pub use bulk::{BulkFollow, BulkLoad, BulkOptions, FinishOptions, FinishReport};
pub use media::MediaStore;
#[cfg(feature = "postgres")]
pub use postgres::{CrashPoint, PgClusterConfig, PgStore, PgStoreConfig, ReplicaState};
pub use primary_reads::{primary_reads_forced, with_primary_reads};
pub use shard_map::ShardMap;
pub use social::{
    AccountStatusFilter, Created, FollowOutcome, GraphStore, Hidden, IdempotencyKey, Interactions,
    Marker, NewStatus, NotificationFilter, NotificationStore, OutboxEntry, OutboxStore,
    RelationFlags, Stamp, StatusStore,
};
pub use sqlite::SqliteStore;

/// What can go wrong in a store call, as the rest of the code needs to tell.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule said no; the field names what was taken
    /// (`"username"`, `"email"`).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database could not be reached in time, or is shutting down.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corruption. Logged, never shown to clients.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new account with its sign-in data.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub account: Account,
    /// As typed (for display to its owner); the directory uses `email_key`.
    pub email: String,
    pub email_key: String,
    pub password_hash: String,
    pub locale: Option<String>,
}

/// What the password grant needs to check a password.
#[derive(Clone)]
pub struct Login {
    pub account_id: Id,
    pub password_hash: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, [redacted])", self.account_id)
    }
}

/// The system of record. Methods are grouped by what they own; each call
/// touches the shard its key names and nothing else, except
/// [`Store::create_account`], which also claims the email on the email's
/// shard.
#[async_trait]
pub trait Store: StatusStore + GraphStore + NotificationStore + OutboxStore + MediaStore {
    /// Cheap round trip to every physical database (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Finishes the cross-shard writes that a crash left half done and that
    /// are older than `older_than` (an adapter that writes both sides in one
    /// transaction has none); how many it finished. Safe to run at any time,
    /// in several processes at once.
    async fn repair(&self, older_than: std::time::Duration) -> StoreResult<usize> {
        let _ = older_than;
        Ok(0)
    }

    /// Applies pending schema migrations to every physical database.
    async fn migrate(&self) -> StoreResult<()>;

    /// The highest id in use per physical database, so a restarted id
    /// generator never hands out an id twice.
    async fn max_ids(&self) -> StoreResult<Vec<Id>>;

    // ---- accounts -------------------------------------------------------

    /// Creates an account. Fails with `Conflict("username")` or
    /// `Conflict("email")` and leaves nothing behind if either is taken.
    async fn create_account(&self, new: &NewAccount) -> StoreResult<()>;

    async fn account(&self, id: Id) -> StoreResult<Option<Account>>;

    /// By lowercased username (its shard is the username's hash).
    async fn account_by_username(&self, username_key: &str) -> StoreResult<Option<Account>>;

    async fn login_by_email(&self, email_key: &str) -> StoreResult<Option<Login>>;

    async fn login_by_username(&self, username_key: &str) -> StoreResult<Option<Login>>;

    /// The email an account signed up with (its owner sees it; nobody else).
    async fn account_email(&self, id: Id) -> StoreResult<Option<String>>;

    /// Applies a validated profile change atomically; `None` if there is no
    /// such account.
    async fn update_profile(&self, id: Id, update: &ProfileUpdate) -> StoreResult<Option<Account>>;

    async fn count_accounts(&self) -> StoreResult<u64>;

    // ---- OAuth ----------------------------------------------------------

    /// Stores an app on the shard of its id.
    async fn create_app(&self, app: &App) -> StoreResult<()>;

    async fn app(&self, id: Id) -> StoreResult<Option<App>>;

    /// By public client id, on `shard` (client ids carry it).
    async fn app_by_client_id(&self, shard: ShardId, client_id: &str) -> StoreResult<Option<App>>;

    /// Stores a code on `shard` (the shard its text carries).
    async fn create_auth_code(&self, shard: ShardId, code: &AuthCode) -> StoreResult<()>;

    /// Removes and returns a code: a code can be taken once, even by two
    /// requests racing. Expiry is the caller's to check.
    async fn take_auth_code(
        &self,
        shard: ShardId,
        hash: &SecretHash,
    ) -> StoreResult<Option<AuthCode>>;

    async fn create_token(&self, shard: ShardId, token: &AccessToken) -> StoreResult<()>;

    async fn token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<Option<AccessToken>>;

    /// Removes a token; `true` if it existed.
    async fn revoke_token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<bool>;
}

/// Whether `text` (a name, a prefix, a client id a read looks up) can match
/// nothing: it holds a NUL, which no stored text does (the API edge refuses
/// NUL, and PostgreSQL cannot even compare it: it errors). The reads that
/// take user text answer "nothing" for it on every adapter alike.
pub(crate) fn names_nothing(text: &str) -> bool {
    text.contains('\0')
}

/// Whether a status of this visibility counts in its author's
/// `statuses_count` (as Mastodon counts: not a direct one).
pub(crate) fn counts_for_author(visibility: starling_domain::Visibility) -> bool {
    visibility != starling_domain::Visibility::Direct
}

/// Whether a reply counts in its parent's `replies_count`, and a boost is
/// listed in `reblogged_by` (as Mastodon does: public and unlisted ones).
pub(crate) fn listed(visibility: starling_domain::Visibility) -> bool {
    matches!(
        visibility,
        starling_domain::Visibility::Public | starling_domain::Visibility::Unlisted
    )
}
