//! Read replicas: which reads they take, how their health is watched, and
//! what happens when one lags or fails.
//!
//! **Routing.** A read that tolerates staleness runs through [`PgDb::read`]
//! (or [`PgDb::read_found`] for a point lookup): on a replica of the
//! database that is in rotation (round-robin among them), else on the
//! primary. Inside [`with_primary_reads`](crate::with_primary_reads) (a
//! writer's own requests for a while, the workers, home rebuilds) every
//! read goes to the primary. Reads that feed a write, the mirror log,
//! repair, the outbox, `max_ids`, `ping` and everything inside a
//! transaction use the primary pool directly and never come here.
//!
//! **Fallbacks.** A replica can be behind, or fail between two checks:
//!
//! - a read the replica fails (any error: a dropped connection, a recovery
//!   conflict, a statement timeout) is asked of the primary; a connection
//!   failure also takes the replica out of rotation at once, without
//!   waiting for the next check;
//! - a point lookup that finds nothing on a replica asks the primary before
//!   answering "none" (a token, app or account created a moment ago by
//!   another process), and a multi-get by id asks the primary for the ids
//!   the replica did not have.
//!
//! Both are counted in `starling_replica_fallbacks_total{cluster,reason}`.
//!
//! **Health.** One task per replica (started by [`PgStore::connect`],
//! stopped by [`PgStore::close`] or when the store is dropped) checks it
//! every `replica_check_interval` on a connection of its own (so a busy
//! pool does not make a healthy replica look dead), bounded by a short
//! timeout. The lag is 0 when everything received has been replayed
//! (`pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()` while the WAL
//! receiver runs: `>=`, since a restarted replica reports as received only
//! what it streamed since, from the start of a segment), so a replica of an
//! idle primary does not look behind; otherwise it is the age of the last
//! transaction replayed. A database
//! that is not in recovery (not a replica at all, or one promoted) has
//! everything it has: lag 0. A check that fails, times out, or cannot tell
//! the lag counts as unhealthy.
//!
//! A replica goes out of rotation on its first unhealthy check (or lag above
//! `max_replica_lag`) and back in after two healthy checks in a row; it
//! starts out of rotation, so it joins once it has proved healthy twice.
//! Each transition is logged once (cluster and replica by index: URLs may
//! hold passwords) and counted; the gauges `starling_replica_lag_seconds`
//! (NaN while the lag is unknown) and `starling_replica_in_rotation` follow
//! every check.
//!
//! **Known limits.** The lag measured from the replay timestamp overstates
//! it for a moment when a long-idle primary starts writing again (the last
//! replayed transaction is old): the replica may leave the rotation for two
//! checks. Reads that found something on a lagging replica may show it as
//! it was up to `max_replica_lag` ago (a revoked token included, unless the
//! revocation marked it fresh: see `starling-api`'s read-your-writes).

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use tokio::task::JoinSet;

use super::{map_err, PgDb};
use crate::{primary_reads_forced, StoreError, StoreResult};

/// Healthy checks in a row that bring a replica (back) into rotation.
const RISE: u32 = 2;

/// One replica of a physical database, its pool and its health.
pub(crate) struct Replica {
    /// The database's index in the shard map, and the replica's in its list.
    cluster: usize,
    index: usize,
    pub(crate) pool: PgPool,
    /// Read on every routed read; changed only under `health`.
    in_rotation: AtomicBool,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Healthy checks in a row while out of rotation.
    streak: u32,
    /// The last lag measured; `None` when the last check failed.
    lag: Option<Duration>,
    checks: u64,
    taken_out: u64,
    put_back: u64,
    /// Why the last check failed, for [`ReplicaState`].
    last_error: Option<String>,
}

/// What the store knows of one replica now (for tests and operators).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaState {
    /// The physical database (cluster) it replicates, by configuration index.
    pub cluster: usize,
    /// Its position in that cluster's `replicas`.
    pub replica: usize,
    /// Whether reads go to it.
    pub in_rotation: bool,
    /// The lag its last check measured (`None`: failed, or not checked yet).
    pub lag: Option<Duration>,
    /// Checks done so far.
    pub checks: u64,
    /// How many times it left, and joined, the rotation.
    pub taken_out: u64,
    pub put_back: u64,
    /// Why its last check failed, if it did.
    pub last_error: Option<String>,
}

/// The outcome of one health check.
#[derive(Debug)]
enum Check {
    Lag(Duration),
    Failed(String),
}

impl Replica {
    pub(crate) fn new(cluster: usize, index: usize, pool: PgPool) -> Self {
        let replica = Self {
            cluster,
            index,
            pool,
            in_rotation: AtomicBool::new(false),
            health: Mutex::new(Health::default()),
        };
        replica.gauge("starling_replica_in_rotation", 0.0);
        replica.gauge("starling_replica_lag_seconds", f64::NAN);
        replica
    }

    pub(crate) fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Acquire)
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("cluster", self.cluster.to_string()),
            ("replica", self.index.to_string()),
        ]
    }

    fn gauge(&self, name: &'static str, value: f64) {
        metrics::gauge!(name, &self.labels()).set(value);
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> ReplicaState {
        let h = self.health();
        ReplicaState {
            cluster: self.cluster,
            replica: self.index,
            in_rotation: self.in_rotation(),
            lag: h.lag,
            checks: h.checks,
            taken_out: h.taken_out,
            put_back: h.put_back,
            last_error: h.last_error.clone(),
        }
    }

    /// Applies a check's outcome: out at once when unhealthy, back in after
    /// [`RISE`] healthy checks in a row.
    fn observe(&self, check: Check, max_lag: Duration) {
        let mut h = self.health();
        h.checks += 1;
        let problem = match &check {
            Check::Lag(lag) => {
                h.lag = Some(*lag);
                h.last_error = None;
                self.gauge("starling_replica_lag_seconds", lag.as_secs_f64());
                (*lag > max_lag).then(|| {
                    format!(
                        "lag {} ms above the {} ms allowed",
                        lag.as_millis(),
                        max_lag.as_millis()
                    )
                })
            }
            Check::Failed(why) => {
                h.lag = None;
                h.last_error = Some(why.clone());
                self.gauge("starling_replica_lag_seconds", f64::NAN);
                Some(why.clone())
            }
        };
        match problem {
            Some(why) => {
                h.streak = 0;
                self.take_out(&mut h, &why);
            }
            None if !self.in_rotation() => {
                h.streak += 1;
                if h.streak >= RISE {
                    h.streak = 0;
                    h.put_back += 1;
                    self.in_rotation.store(true, Ordering::Release);
                    self.gauge("starling_replica_in_rotation", 1.0);
                    metrics::counter!(
                        "starling_replica_rotations_total",
                        "cluster" => self.cluster.to_string(),
                        "replica" => self.index.to_string(),
                        "direction" => "in"
                    )
                    .increment(1);
                    tracing::info!(
                        cluster = self.cluster,
                        replica = self.index,
                        lag_ms = h.lag.map_or(0, |l| l.as_millis() as u64),
                        "replica in rotation: reads that tolerate staleness go to it"
                    );
                }
            }
            None => {}
        }
    }

    /// A read on this replica failed at the connection level: out of
    /// rotation now, rather than at the next check.
    fn connection_failed(&self, why: &str) {
        let mut h = self.health();
        h.streak = 0;
        self.take_out(&mut h, why);
    }

    fn take_out(&self, h: &mut Health, why: &str) {
        if !self.in_rotation() {
            return;
        }
        h.taken_out += 1;
        self.in_rotation.store(false, Ordering::Release);
        self.gauge("starling_replica_in_rotation", 0.0);
        metrics::counter!(
            "starling_replica_rotations_total",
            "cluster" => self.cluster.to_string(),
            "replica" => self.index.to_string(),
            "direction" => "out"
        )
        .increment(1);
        tracing::warn!(
            cluster = self.cluster,
            replica = self.index,
            reason = why,
            "replica out of rotation: its reads go to the primary until it is healthy again"
        );
    }
}

/// Why a read was asked of the primary after a replica.
fn fell_back(cluster: u32, reason: &'static str) {
    metrics::counter!(
        "starling_replica_fallbacks_total",
        "cluster" => cluster.to_string(),
        "reason" => reason
    )
    .increment(1);
}

/// Whether `e` says the connection to the server failed (rather than that
/// one statement did).
fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

impl PgDb {
    /// The replica a read goes to now: the next in rotation, round-robin;
    /// `None` (the primary) when none is, or when the task's reads are
    /// pinned to the primary.
    pub(crate) fn replica_for_read(&self) -> Option<&Replica> {
        let n = self.replicas.len();
        if n == 0 || primary_reads_forced() {
            return None;
        }
        let start = self.next_replica.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &*self.replicas[(start + k) % n])
            .find(|r| r.in_rotation())
    }

    /// After a replica failed `query`: takes it out if the connection
    /// failed, and says whether to ask the primary (not when the store is
    /// closing).
    fn replica_failed(&self, replica: &Replica, e: &sqlx::Error) -> bool {
        if matches!(e, sqlx::Error::PoolClosed) {
            return false;
        }
        if is_connection_failure(e) {
            replica.connection_failed(&format!("a read failed: {e}"));
        }
        tracing::debug!(
            cluster = self.index,
            replica = replica.index,
            error = %e,
            "a read failed on a replica; asking the primary"
        );
        fell_back(self.index, "error");
        true
    }

    /// Runs a read that tolerates staleness: on a replica in rotation, else
    /// (or if the replica fails it) on the primary. `query` may run twice,
    /// so it builds its statement each time.
    pub(crate) async fn read<'s, T, F, Fut>(&'s self, query: F) -> StoreResult<T>
    where
        F: Fn(&'s PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(replica) = self.replica_for_read() {
            match query(&replica.pool).await {
                Ok(found) => return Ok(found),
                Err(e) if !self.replica_failed(replica, &e) => return Err(map_err(e)),
                Err(_) => {}
            }
        }
        query(&self.primary).await.map_err(map_err)
    }

    /// A point lookup: as [`PgDb::read`], and a replica that finds nothing
    /// is not believed: the primary is asked before answering "none" (the
    /// row may be younger than the replica's lag).
    pub(crate) async fn read_found<'s, T, F, Fut>(&'s self, query: F) -> StoreResult<Option<T>>
    where
        F: Fn(&'s PgPool) -> Fut,
        Fut: Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        if let Some(replica) = self.replica_for_read() {
            match query(&replica.pool).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => fell_back(self.index, "missing"),
                Err(e) if !self.replica_failed(replica, &e) => return Err(map_err(e)),
                Err(_) => {}
            }
        }
        query(&self.primary).await.map_err(map_err)
    }

    /// A multi-get of rows by their `id` column: as [`PgDb::read`], and the
    /// ids a replica did not return are asked of the primary.
    pub(crate) async fn read_by_ids<'s, F, Fut>(
        &'s self,
        ids: Vec<i64>,
        query: F,
    ) -> StoreResult<Vec<PgRow>>
    where
        F: Fn(&'s PgPool, Vec<i64>) -> Fut,
        Fut: Future<Output = Result<Vec<PgRow>, sqlx::Error>>,
    {
        let mut ids = ids;
        let mut rows = Vec::new();
        if let Some(replica) = self.replica_for_read() {
            match query(&replica.pool, ids.clone()).await {
                Ok(found) => {
                    let seen: std::collections::HashSet<i64> =
                        found.iter().map(|r| r.get::<i64, _>("id")).collect();
                    ids.retain(|id| !seen.contains(id));
                    rows = found;
                    if ids.is_empty() {
                        return Ok(rows);
                    }
                    fell_back(self.index, "missing");
                }
                Err(e) if !self.replica_failed(replica, &e) => return Err(map_err(e)),
                Err(_) => {}
            }
        }
        rows.extend(query(&self.primary, ids).await.map_err(map_err)?);
        Ok(rows)
    }
}

/// How a replica's health is checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckSettings {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_lag: Duration,
}

/// Starts one health-check task per replica; they stop when the set is
/// dropped (or aborted).
pub(crate) fn start_checks(
    replicas: Vec<(Arc<Replica>, String)>,
    settings: CheckSettings,
) -> StoreResult<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    for (replica, url) in replicas {
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Internal(format!("bad PostgreSQL URL: {e}")))?
            .application_name("starling-replica-check")
            .disable_statement_logging();
        tasks.spawn(watch(replica, options, settings));
    }
    Ok(tasks)
}

/// Checks `replica` every interval, forever.
async fn watch(replica: Arc<Replica>, options: PgConnectOptions, settings: CheckSettings) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let check = match tokio::time::timeout(settings.timeout, check(&mut conn, &options)).await {
            Ok(Ok(lag)) => Check::Lag(lag),
            Ok(Err(why)) => {
                conn = None;
                Check::Failed(why)
            }
            Err(_) => {
                // The connection may be stuck mid-query: start afresh.
                conn = None;
                Check::Failed(format!(
                    "no answer within {} ms",
                    settings.timeout.as_millis()
                ))
            }
        };
        replica.observe(check, settings.max_lag);
        tokio::time::sleep(settings.interval).await;
    }
}

/// One check on the watcher's own connection (made if missing): the lag.
async fn check(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<Duration, String> {
    if conn.is_none() {
        let fresh = PgConnection::connect_with(options)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        *conn = Some(fresh);
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let row = sqlx::query(
        "SELECT pg_is_in_recovery() AS in_recovery, \
         EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS receiving, \
         pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() AS caught_up, \
         EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS behind",
    )
    .fetch_one(&mut *c)
    .await
    .map_err(|e| format!("check failed: {e}"))?;
    lag_of(
        row.get("in_recovery"),
        row.get("receiving"),
        row.get("caught_up"),
        row.get("behind"),
    )
}

/// The lag from what a replica says of itself (see the module docs).
fn lag_of(
    in_recovery: bool,
    receiving: bool,
    caught_up: Option<bool>,
    behind_secs: Option<f64>,
) -> Result<Duration, String> {
    if !in_recovery || (receiving && caught_up == Some(true)) {
        return Ok(Duration::ZERO);
    }
    match behind_secs {
        Some(s) => Ok(Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)),
        None => Err("lag unknown: nothing replayed yet".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_when_everything_received_is_replayed() {
        // A replica of an idle primary: its last replayed transaction is
        // old, but it has everything.
        assert_eq!(
            lag_of(true, true, Some(true), Some(3600.0)),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            lag_of(true, true, Some(false), Some(2.5)),
            Ok(Duration::from_millis(2500))
        );
        // Not receiving: the primary may be writing without it.
        assert_eq!(
            lag_of(true, false, Some(true), Some(7.0)),
            Ok(Duration::from_secs(7))
        );
        // Not a replica at all.
        assert_eq!(lag_of(false, false, None, None), Ok(Duration::ZERO));
        assert!(lag_of(true, false, None, None).is_err());
        // Clock skew between the primary and the replica.
        assert_eq!(
            lag_of(true, true, Some(false), Some(-0.2)),
            Ok(Duration::ZERO)
        );
    }

    fn replica() -> Replica {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://u@127.0.0.1:1/db")
            .expect("a lazy pool");
        Replica::new(0, 0, pool)
    }

    #[tokio::test]
    async fn out_at_once_back_after_two_healthy_checks() {
        let r = replica();
        let max = Duration::from_secs(5);
        assert!(!r.in_rotation(), "starts out of rotation");
        r.observe(Check::Lag(Duration::ZERO), max);
        assert!(!r.in_rotation(), "one healthy check is not enough");
        r.observe(Check::Lag(Duration::ZERO), max);
        assert!(r.in_rotation());
        r.observe(Check::Lag(Duration::from_secs(6)), max);
        assert!(!r.in_rotation(), "lagging beyond the threshold");
        r.observe(Check::Lag(Duration::ZERO), max);
        r.observe(Check::Failed("down".into()), max);
        r.observe(Check::Lag(Duration::ZERO), max);
        assert!(!r.in_rotation(), "a failure restarts the count");
        r.observe(Check::Lag(Duration::from_secs(5)), max);
        assert!(r.in_rotation(), "at the threshold is healthy");
        r.connection_failed("read failed");
        let s = r.state();
        assert!(!s.in_rotation);
        assert_eq!((s.taken_out, s.put_back, s.checks), (2, 2, 7));
    }
}
