//! The PostgreSQL adapter: the distributed shape's store.
//!
//! The 1024 logical shards are spread over any number of physical clusters
//! (a primary and its read replicas each), by configuration
//! ([`PgStoreConfig`]). Every physical database has the whole schema
//! (`migrations/postgres`); a row lives on the database of the logical shard
//! that owns it (DESIGN.md "Data placement").
//!
//! **One shard per call.** A fact with two sides (a follow, a favourite and
//! its counter, a boost and the original's counter, a reply and its parent's
//! thread row, a block) is stored on both sides' shards, in a table per side
//! (`follows_out` / `follows_in`, `favourites` / `status_favourites`...), so
//! every keyed read touches the one database its key names. Only the unkeyed
//! reads (public timeline, account and hashtag search) scatter to every
//! database and merge, bounded as in SQLite; a thread read walks the
//! `parent -> reply` rows level by level, whichever shards they are on.
//!
//! **Cross-shard writes** go through the mirror log ([`mirror`]): the first
//! side, the domain event and the changes the other side needs are one
//! transaction on the first side's database; those changes are then applied
//! on the other side, idempotently, before the call returns. A crash in
//! between leaves them in the log for [`PgStore::repair_mirrors`].
//! Registration claims the email on its shard, then creates the account on
//! its own, then confirms the claim ([`accounts`]).
//!
//! **Events.** Each database has its own outbox; a transaction takes the
//! database's outbox lock just before its outbox insert (its last
//! statement), so `seq` order is commit order and the relay never sees a
//! lower `seq` commit after a higher one (see [`notifications`]).
//!
//! **Replicas.** Reads that tolerate staleness go to a replica of their
//! database that is in rotation, and to the primary when none is, when the
//! replica fails them, and inside [`crate::with_primary_reads`]
//! (read-your-writes); every replica's lag and health are checked in the
//! background and a lagging or failed one leaves the rotation
//! ([`replicas`]). Writes, transactions and the reads that feed them use the
//! primary ([`PgStore::writer`]).
//!
//! **Timeouts.** Every connection runs with `statement_timeout` set (so a
//! statement, a lock wait included, cannot hang a call) and connections are
//! acquired within `acquire_timeout`; both surface as
//! [`StoreError::Unavailable`]. (A server that stops answering at the
//! network level is not covered by `statement_timeout`; a later step can
//! add a client-side deadline per call.)

mod accounts;
mod apply;
mod bulk;
mod graph;
mod media;
pub(crate) mod mirror;
mod notifications;
mod replicas;
mod rows;
mod statuses;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use starling_domain::{Id, ShardId, SHARD_COUNT};

use crate::{ShardMap, StoreError, StoreResult};

pub use mirror::CrashPoint;
pub use replicas::ReplicaState;

use replicas::{CheckSettings, Replica};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// One physical cluster: a primary and its read replicas.
#[derive(Clone)]
pub struct PgClusterConfig {
    /// `postgres://user:password@host:port/database`.
    pub primary: String,
    /// Same form: streaming replicas of `primary`, which take the reads
    /// that tolerate staleness while they keep up.
    pub replicas: Vec<String>,
    /// The logical shards this cluster holds, an inclusive range. `None` on
    /// every cluster splits the 1024 shards evenly, in order
    /// ([`ShardMap::ranges`]); otherwise every cluster names its range and
    /// the ranges cover each shard exactly once.
    pub shards: Option<(u16, u16)>,
}

impl PgClusterConfig {
    /// A cluster with no replicas and no explicit range.
    pub fn new(primary: impl Into<String>) -> Self {
        Self {
            primary: primary.into(),
            replicas: Vec::new(),
            shards: None,
        }
    }
}

impl fmt::Debug for PgClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords.
        f.debug_struct("PgClusterConfig")
            .field("primary", &redact_url(&self.primary))
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(|r| redact_url(r))
                    .collect::<Vec<_>>(),
            )
            .field("shards", &self.shards)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://[redacted]@host/db`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}[redacted]{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// How to reach the physical databases and how long to wait for them.
#[derive(Clone, Debug)]
pub struct PgStoreConfig {
    pub clusters: Vec<PgClusterConfig>,
    /// Connections per pool (one pool per primary and per replica); at
    /// least 2.
    pub max_connections_per_pool: u32,
    /// How long a call waits for a connection before the store reports
    /// itself unavailable.
    pub acquire_timeout: Duration,
    /// The server-side limit on any one statement (lock waits included).
    pub statement_timeout: Duration,
    /// A replica further behind its primary than this leaves the rotation
    /// (its reads go to the primary) until it has caught up.
    pub max_replica_lag: Duration,
    /// How often each replica's lag and health are checked. A check gets
    /// this long to answer, within 0.5 to 1 s.
    pub replica_check_interval: Duration,
}

impl PgStoreConfig {
    /// `clusters` with 10 connections per pool, 5 s timeouts, replicas
    /// checked every second and taken out beyond 5 s of lag.
    pub fn new(clusters: Vec<PgClusterConfig>) -> Self {
        Self {
            clusters,
            max_connections_per_pool: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            max_replica_lag: Duration::from_secs(5),
            replica_check_interval: Duration::from_secs(1),
        }
    }

    fn check_settings(&self) -> CheckSettings {
        let interval = self.replica_check_interval.max(Duration::from_millis(10));
        CheckSettings {
            interval,
            timeout: interval.clamp(Duration::from_millis(500), Duration::from_secs(1)),
            max_lag: self.max_replica_lag,
        }
    }
}

/// How long a read waits for a connection of a replica's pool before it
/// goes to the primary instead (at most the configured acquire timeout):
/// a replica that just died refuses connections, and sqlx retries those
/// until the timeout.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The pools of one physical database.
pub(crate) struct PgDb {
    /// Position in the shard map (the first half of outbox keys).
    pub(crate) index: u32,
    pub(crate) primary: PgPool,
    /// Its read replicas, with their health ([`replicas`]).
    pub(crate) replicas: Vec<Arc<Replica>>,
    /// Round-robin position among the replicas.
    pub(crate) next_replica: AtomicUsize,
    /// The logical shards it holds (to find the mirror ops aimed at it).
    pub(crate) shards: Vec<i32>,
}

/// The PostgreSQL store. Cheap to share behind an `Arc`; pools connect
/// lazily, so a database that is down at start makes only its shards'
/// calls fail (with [`StoreError::Unavailable`]) until it is back.
pub struct PgStore {
    map: ShardMap<PgDb>,
    /// A [`CrashPoint`] as a number (0 = none): the fault-injection hook.
    crash: AtomicU8,
    /// Bounds the mirror drains (and claim repairs) running at once in this
    /// process. They are the only work that holds a connection of one pool
    /// while acquiring one of another; with fewer of them than connections
    /// per pool they cannot starve each other of connections.
    drains: tokio::sync::Semaphore,
    /// The replicas' health checks (aborted when closed or dropped).
    checks: Mutex<tokio::task::JoinSet<()>>,
}

impl PgStore {
    /// Validates the shard assignment, creates the pools (connections are
    /// opened on first use) and starts the replicas' health checks. Fails
    /// with `Internal` on a bad configuration.
    pub async fn connect(config: PgStoreConfig) -> StoreResult<Self> {
        let slots = assignment(&config.clusters)?;
        let mut dbs = Vec::with_capacity(config.clusters.len());
        let mut watched = Vec::new();
        let replica_acquire = config.acquire_timeout.min(REPLICA_ACQUIRE_TIMEOUT);
        for (index, cluster) in config.clusters.iter().enumerate() {
            let primary = pool(&cluster.primary, &config, config.acquire_timeout)?;
            let mut replicas = Vec::with_capacity(cluster.replicas.len());
            for (r, url) in cluster.replicas.iter().enumerate() {
                let replica =
                    Arc::new(Replica::new(index, r, pool(url, &config, replica_acquire)?));
                watched.push((replica.clone(), url.clone()));
                replicas.push(replica);
            }
            let shards = slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| usize::from(**slot) == index)
                .map(|(shard, _)| shard as i32)
                .collect();
            dbs.push(PgDb {
                index: index as u32,
                primary,
                replicas,
                next_replica: AtomicUsize::new(0),
                shards,
            });
        }
        let map = ShardMap::from_slots(dbs, slots)
            .ok_or_else(|| StoreError::Internal("invalid shard map".into()))?;
        let drains = (config.max_connections_per_pool.max(2) / 2) as usize;
        let checks = replicas::start_checks(watched, config.check_settings())?;
        Ok(Self {
            map,
            crash: AtomicU8::new(0),
            drains: tokio::sync::Semaphore::new(drains),
            checks: Mutex::new(checks),
        })
    }

    /// Stops the replicas' health checks and closes every pool (waits for
    /// connections in use to come back).
    pub async fn close(&self) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
        for db in self.map.physical() {
            db.primary.close().await;
            for replica in &db.replicas {
                replica.pool.close().await;
            }
        }
    }

    /// How many physical databases hold the shards.
    pub fn physical_count(&self) -> usize {
        self.map.physical().len()
    }

    /// Which physical database (index in the configuration) holds `shard`.
    pub fn physical_index(&self, shard: ShardId) -> usize {
        self.map.index(shard)
    }

    /// Whether any physical database has read replicas.
    pub fn has_replicas(&self) -> bool {
        self.dbs().iter().any(|db| !db.replicas.is_empty())
    }

    /// Every replica's state now: in rotation or not, its last lag, its
    /// transitions (for tests; operators read the metrics).
    pub fn replica_states(&self) -> Vec<ReplicaState> {
        self.dbs()
            .iter()
            .flat_map(|db| db.replicas.iter().map(|r| r.state()))
            .collect()
    }

    /// Fault injection: from now on, cross-shard writes stop where `point`
    /// says, as if the process died there (`None` = behave normally).
    /// For tests of [`PgStore::repair_mirrors`]; never set in production.
    #[cfg(any(test, feature = "test-faults"))]
    pub fn crash_for_tests(&self, point: Option<CrashPoint>) {
        self.crash
            .store(point.map_or(0, CrashPoint::code), Ordering::SeqCst);
    }

    pub(crate) fn crash_point(&self) -> Option<CrashPoint> {
        CrashPoint::from_code(self.crash.load(Ordering::Relaxed))
    }

    pub(crate) fn db(&self, shard: ShardId) -> &PgDb {
        self.map.get(shard)
    }

    pub(crate) fn db_at(&self, index: usize) -> StoreResult<&PgDb> {
        self.map
            .physical()
            .get(index)
            .ok_or_else(|| StoreError::Internal(format!("no physical database {index}")))
    }

    pub(crate) fn dbs(&self) -> &[PgDb] {
        self.map.physical()
    }

    /// Where writes to `shard` go, and the reads that must see every
    /// committed write (those that feed a write).
    pub(crate) fn writer(&self, shard: ShardId) -> &PgPool {
        &self.db(shard).primary
    }

    /// Where reads of `shard` that tolerate staleness go: call
    /// [`PgDb::read`] (or [`PgDb::read_found`], [`PgDb::read_by_ids`]) on
    /// it, which picks a replica in rotation or the primary.
    pub(crate) fn reader(&self, shard: ShardId) -> &PgDb {
        self.db(shard)
    }

    /// `ids` grouped by the physical database of their shard (by index),
    /// duplicates removed.
    pub(crate) fn group_ids(&self, ids: &[Id]) -> BTreeMap<usize, Vec<i64>> {
        let mut groups: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        for id in ids {
            groups
                .entry(self.map.index(id.shard()))
                .or_default()
                .push(id.as_i64());
        }
        for list in groups.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        groups
    }
}

/// `slot[logical shard] = cluster index`, checked: every shard exactly once.
fn assignment(clusters: &[PgClusterConfig]) -> StoreResult<Vec<u16>> {
    let bad = |why: String| StoreError::Internal(format!("invalid PostgreSQL shard map: {why}"));
    if clusters.is_empty() {
        return Err(bad("no clusters".into()));
    }
    if clusters.len() > usize::from(SHARD_COUNT) {
        return Err(bad("more clusters than shards".into()));
    }
    if clusters.iter().all(|c| c.shards.is_none()) {
        let n = clusters.len();
        return Ok((0..usize::from(SHARD_COUNT))
            .map(|s| (s * n / usize::from(SHARD_COUNT)) as u16)
            .collect());
    }
    let mut slot: Vec<Option<u16>> = vec![None; usize::from(SHARD_COUNT)];
    for (index, cluster) in clusters.iter().enumerate() {
        let Some((first, last)) = cluster.shards else {
            return Err(bad(format!(
                "cluster {index} has no shard range while others do"
            )));
        };
        if first > last || last >= SHARD_COUNT {
            return Err(bad(format!(
                "cluster {index}: range {first}..={last} is not within 0..=1023"
            )));
        }
        for shard in first..=last {
            let entry = &mut slot[usize::from(shard)];
            if let Some(other) = entry {
                return Err(bad(format!(
                    "shard {shard} is in the ranges of clusters {other} and {index}"
                )));
            }
            *entry = Some(index as u16);
        }
    }
    slot.iter()
        .enumerate()
        .map(|(shard, s)| s.ok_or_else(|| bad(format!("shard {shard} is in no cluster's range"))))
        .collect()
}

/// A lazily connecting pool whose connections run with the statement
/// timeout.
///
/// Everything a connection needs is in its startup packet, so the pool
/// works through PgBouncer in transaction pooling mode (docs/OPERATIONS.md,
/// "PgBouncer"), where a session-level `SET` would land on whichever server
/// connection ran it and stay there for other clients: `DateStyle`,
/// `client_encoding`, `TimeZone` and `application_name`, which PgBouncer
/// tracks per client, and `options=-c statement_timeout=...`, which
/// PostgreSQL applies at session start and PgBouncer must be told to
/// ignore (it cannot carry it to its server connections; there the timeout
/// is set on the database). `extra_float_digits`, which sqlx sends by
/// default and PgBouncer refuses, is left out: results arrive in binary,
/// and PostgreSQL 12+ prints floats exactly anyway.
fn pool(url: &str, config: &PgStoreConfig, acquire_timeout: Duration) -> StoreResult<PgPool> {
    let timeout_ms = config.statement_timeout.as_millis().max(1);
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("bad PostgreSQL URL: {e}")))?
        .application_name("starling")
        .extra_float_digits(None)
        .options([("statement_timeout", timeout_ms)]);
    Ok(PgPoolOptions::new()
        // A mirror drain within one database holds two connections at once.
        .max_connections(config.max_connections_per_pool.max(2))
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.is_unique_violation() => match db.constraint() {
            Some("email_directory_pkey") => StoreError::Conflict("email"),
            Some("accounts_username_key_unique") => StoreError::Conflict("username"),
            _ => StoreError::Internal(e.to_string()),
        },
        sqlx::Error::Database(db) => {
            // The SQLSTATE leads the message: for logs, and so that
            // `is_contention` need not read (possibly translated) text.
            let code = db.code().unwrap_or_default();
            let text = format!("[{code}] {e}");
            if unavailable_code(&code) {
                StoreError::Unavailable(text)
            } else {
                StoreError::Internal(text)
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLSTATEs that say "not now" rather than "wrong": connection failures,
/// timeouts and cancellations, shutdowns, lock and serialization conflicts,
/// a read-only primary (mid-failover), too many connections.
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57014" | "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55P03" | "25006"
        )
}

/// Whether `e` is a deadlock or serialization failure: the transaction
/// was rolled back and may simply be tried again.
pub(crate) fn is_contention(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(text) if text.starts_with("[40P01]") || text.starts_with("[40001]"))
}

/// Runs `attempt` again, shortly after, while it fails with a deadlock or
/// serialization conflict (at most three times in all): such a failure
/// rolled the whole attempt back, so trying again is safe. For writes whose
/// first side can lose a deadlock against another transaction.
pub(crate) async fn retry_contention<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries: u64 = 1;
    loop {
        match attempt().await {
            Err(e) if tries < 3 && is_contention(&e) => {
                tokio::time::sleep(Duration::from_millis(10 * tries)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(shards: Option<(u16, u16)>) -> PgClusterConfig {
        PgClusterConfig {
            shards,
            ..PgClusterConfig::new("postgres://u:secret@h/db")
        }
    }

    #[test]
    fn even_split_without_ranges() {
        let slots = assignment(&[cluster(None), cluster(None)]).expect("valid");
        assert_eq!(slots[511], 0);
        assert_eq!(slots[512], 1);
    }

    #[test]
    fn explicit_ranges_must_cover_each_shard_once() {
        let ok = assignment(&[cluster(Some((0, 99))), cluster(Some((100, 1023)))]).expect("ok");
        assert_eq!((ok[99], ok[100]), (0, 1));
        for bad in [
            vec![cluster(Some((0, 100))), cluster(Some((100, 1023)))],
            vec![cluster(Some((0, 98))), cluster(Some((100, 1023)))],
            vec![cluster(Some((0, 1024)))],
            vec![cluster(Some((5, 1))), cluster(Some((0, 1023)))],
            vec![cluster(Some((0, 511))), cluster(None)],
            vec![],
        ] {
            assert!(assignment(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_print_without_passwords() {
        let text = format!("{:?}", cluster(None));
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("postgres://[redacted]@h/db"), "{text}");
    }

    #[test]
    fn timeouts_are_unavailable() {
        assert!(unavailable_code("57014"));
        assert!(unavailable_code("08006"));
        assert!(!unavailable_code("23505"));
        assert!(!unavailable_code("42P01"));
    }

    #[test]
    fn deadlocks_are_contention() {
        assert!(is_contention(&StoreError::Unavailable(
            "[40P01] deadlock detected".into()
        )));
        assert!(!is_contention(&StoreError::Unavailable(
            "[57014] canceling statement".into()
        )));
        assert!(!is_contention(&StoreError::Internal("[40P01] x".into())));
    }
}
