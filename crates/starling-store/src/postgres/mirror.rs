//! The mirror log: how a write that spans shards keeps both sides in step.
//!
//! A cross-shard write runs as a [`FirstSide`]: one transaction on the
//! database of the shard it starts from, holding its own rows, its domain
//! event (outbox) and one `mirror_ops` row per change another shard needs
//! (an [`Action`], as JSON, with the target's logical shard). Right after
//! that commits, the same call applies the ops ([`PgStore::settle`]); each
//! op is applied in a transaction on the target's database that also records
//! its op id in `applied_mirror_ops` there, so applying it twice changes
//! nothing (counters included). Then the ops are deleted from the origin.
//! When the call returns, both sides agree.
//!
//! **Order.** The ops from one database to another form a queue, applied in
//! `id` order by one applier at a time: the applier holds a transaction-level
//! advisory lock on the origin named after the target database, and applies
//! everything pending up to its own ops in one target transaction (a batch,
//! so concurrent writers share the cost). Ops are inserted at the end of
//! their first side, and two writes of one fact on one database are
//! serialized (they update the same rows, or, for the follows, requests and
//! blocks between two accounts, take the pair's advisory lock first:
//! [`super::apply::lock_pair`]), so ops queue in the order their effects
//! happened: a follow and a quick unfollow, or a follow and a block, never
//! arrive the other way round, even after a crash.
//!
//! **Crashes.** If the process dies between the first side and the ops, the
//! ops stay in `mirror_ops`; [`PgStore::repair_mirrors`] (run periodically by
//! workers) drains every queue of ops older than a bound. It only *tries*
//! each queue's lock, so any number of processes can run it beside normal
//! traffic: a queue someone is draining is skipped, never applied twice or
//! out of order. (Row-level `FOR UPDATE SKIP LOCKED` alone would let two
//! repairers apply one queue's ops out of order; it is used where order does
//! not matter: pending email claims.) A later write through a queue with
//! leftovers applies them first, in order, because it drains up to its own
//! ops.
//!
//! **Facts written from both sides.** Most facts have one side that starts
//! every change (a favourite: the favouriter's). A few are changed from
//! either side: a follow is made by the follower, or by the followee
//! authorizing a request, and ended by a block from either; a status's
//! favourites and boosts go when the status is deleted. Ops of different
//! origins are not ordered against each other, so an op checks what it
//! finds on its side (under the same locks) and, when the other side's
//! change has overtaken it, answers with a compensating op instead:
//!
//! - a favourite or boost of a status deleted meanwhile is removed from the
//!   favouriter's or booster's side (the status row is locked while a
//!   favourite or boost lands, so a delete sees it or it sees the delete);
//! - an authorization that arrives after the request was withdrawn is undone
//!   on the followee's side; a request asked again meanwhile becomes the
//!   follow, and its copy on the followee's side goes;
//! - a follow never survives a block it raced: the follow's first side
//!   refuses while it knows of a block; the block's first side removes every
//!   follow and request between the two (whatever their ids) and sends their
//!   removal by id; the block reaching the other side removes what is older
//!   than itself there; and a follow or request that arrives where a block
//!   is in force, or a newer one existed (an unblock keeps the block as a
//!   tombstone), is undone on the other side by id;
//! - a follow made from both sides at once (a follow crossing an
//!   authorization) settles on the smaller of the two ids and on the
//!   follower's options, on both sides;
//! - a request's new options never recreate a request answered meanwhile;
//! - the large-account copy on follow rows is versioned (last version wins),
//!   and the followee's side corrects a new follow row that copied an old
//!   one.
//!
//! Compensating ops go through the same log, from the side that found the
//! conflict. `tests/postgres_convergence.rs` runs random concurrent traffic
//! over two databases and checks every side against the other.
//!
//! A call whose first side committed returns success even if applying its
//! ops failed (a target database down): the write is durable and its event
//! is out; the ops wait for the target to come back (logged, counted in
//! `attempts`). An op that fails for any other reason (a bug) is moved to
//! `dead_mirror_ops` rather than blocking its queue.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, Postgres, Row};
use starling_domain::{Event, EventKind, Id, ShardId};

use super::apply::apply;
use super::{map_err, PgDb, PgStore};
use crate::{StoreError, StoreResult};

/// Advisory lock namespaces (the first key of the two-key form).
const LOCK_OUTBOX: i32 = 0x5354_0001;
const LOCK_MIRROR_QUEUE: i32 = 0x5354_0002;
/// Ops applied per target transaction.
const BATCH: i64 = 200;
/// Batches a write applies at most before it returns, leaving the rest of a
/// long queue (a target that was down for a while) to repair and later
/// writes, so that no request pays for a whole backlog.
const WRITE_BATCHES_MAX: usize = 5;
/// Tries of a batch that lost a deadlock or serialization conflict.
const APPLY_ATTEMPTS: u64 = 3;
/// Pending email claims settled per transaction by repair.
const CLAIM_BATCH: i64 = 100;
/// How long `applied_mirror_ops` remembers an op.
const APPLIED_RETENTION_DAYS: i32 = 7;

/// Where a cross-shard write stops when a fault is injected
/// ([`PgStore::crash_for_tests`]), as if the process died there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the first side committed (its rows, event and mirror ops),
    /// before the ops are applied. Registration: after the account was
    /// created, before the email claim is confirmed. The call returns as if
    /// nothing happened.
    AfterFirstSide,
    /// Registration only: after the email was claimed, before the account
    /// was created. The call fails with `Unavailable`.
    AfterEmailClaim,
    /// After mirror ops were applied on their target, before they are
    /// deleted from their origin's log (so they will be applied again).
    AfterOtherSide,
}

impl CrashPoint {
    #[cfg_attr(not(any(test, feature = "test-faults")), allow(dead_code))]
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::AfterFirstSide => 1,
            Self::AfterEmailClaim => 2,
            Self::AfterOtherSide => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::AfterFirstSide),
            2 => Some(Self::AfterEmailClaim),
            3 => Some(Self::AfterOtherSide),
            _ => None,
        }
    }
}

/// One change for the other side of a cross-shard fact. Each variant says
/// on whose side it runs; ids are the rows' own (the first side's stamp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub(crate) enum Action {
    /// Followee's side: `follower` now follows (row `id`, with the copy of
    /// the followee's large flag the follower's side took).
    FollowIn {
        follower: Id,
        followee: Id,
        id: Id,
        at: i64,
        reblogs: bool,
        notify: bool,
        large_version: i64,
    },
    /// Followee's side: an existing follow's new options.
    FollowInOptions {
        follower: Id,
        followee: Id,
        reblogs: bool,
        notify: bool,
    },
    /// Followee's side: the follow ended.
    UnfollowIn { follower: Id, followee: Id },
    /// Followee's side: a new pending request.
    RequestIn {
        follower: Id,
        followee: Id,
        id: Id,
        at: i64,
        reblogs: bool,
        notify: bool,
    },
    /// Followee's side: a pending request's new options (never creates
    /// one: it may have been answered meanwhile).
    RequestInOptions {
        follower: Id,
        followee: Id,
        reblogs: bool,
        notify: bool,
    },
    /// Followee's side: the request (if not newer than `request`) was
    /// withdrawn.
    WithdrawIn {
        follower: Id,
        followee: Id,
        request: Id,
    },
    /// Follower's side: the followee authorized the request `request`
    /// (follow row `id`).
    Authorized {
        follower: Id,
        followee: Id,
        request: Id,
        id: Id,
        at: i64,
        reblogs: bool,
        notify: bool,
        large: bool,
        large_version: i64,
    },
    /// Follower's side: the request (if not newer than `request`) was
    /// rejected, or must go (a compensation).
    WithdrawOut {
        follower: Id,
        followee: Id,
        request: Id,
    },
    /// Follower's side: the follow (if not newer than `follow`) must go (a
    /// compensation).
    UnfollowOut {
        follower: Id,
        followee: Id,
        follow: Id,
    },
    /// Target's side: `account` blocked `target` (row `id`); follows and
    /// requests between them made before the block go.
    BlockedBy {
        account: Id,
        target: Id,
        id: Id,
        at: i64,
    },
    /// Target's side: the block ended.
    Unblocked { account: Id, target: Id },
    /// Followers' side: `account` is now large or not, as of `version`.
    LargeChanged {
        account: Id,
        followers: Vec<Id>,
        large: bool,
        version: i64,
    },
    /// Status's side: `account` favourited it (favourite row `id`).
    FavouriteIn { account: Id, status: Id, id: Id },
    /// Status's side: the favourite was removed.
    UnfavouriteIn { account: Id, status: Id },
    /// Favouriters' side: their favourites of `status` go (it was deleted,
    /// or was gone when the favourite arrived).
    FavouritesGone { status: Id, accounts: Vec<Id> },
    /// Parent's side: a reply to it (counted in `replies_count` if
    /// `counted`: a public or unlisted reply).
    ReplyAdded {
        parent: Id,
        reply: Id,
        #[serde(default = "yes")]
        counted: bool,
    },
    /// Parent's side: the reply was deleted.
    ReplyRemoved { parent: Id, reply: Id },
    /// Original's side: `account` boosted it with the status `boost`
    /// (listed in `reblogged_by` if `listed`: a public or unlisted boost).
    BoostAdded {
        original: Id,
        boost: Id,
        account: Id,
        #[serde(default = "yes")]
        listed: bool,
    },
    /// Original's side: the boost was deleted.
    BoostRemoved { original: Id, boost: Id },
    /// Boosters' side: `(booster, boost)` statuses go (the original was
    /// deleted, or was gone when the boost arrived).
    BoostsGone { boosts: Vec<(Id, Id)> },
    /// Tag's side: a status used the tag (listed under it if `public`).
    Tagged {
        tag: String,
        status: Id,
        public: bool,
    },
    /// Tag's side: the status was deleted.
    Untagged { tag: String, status: Id },
}

/// What ops written before a field existed mean by it.
fn yes() -> bool {
    true
}

impl Action {
    /// The two accounts whose follows, requests or blocks it changes.
    pub(crate) fn pair(&self) -> Option<(Id, Id)> {
        match self {
            Self::FollowIn {
                follower, followee, ..
            }
            | Self::FollowInOptions {
                follower, followee, ..
            }
            | Self::UnfollowIn { follower, followee }
            | Self::RequestIn {
                follower, followee, ..
            }
            | Self::RequestInOptions {
                follower, followee, ..
            }
            | Self::WithdrawIn {
                follower, followee, ..
            }
            | Self::Authorized {
                follower, followee, ..
            }
            | Self::WithdrawOut {
                follower, followee, ..
            }
            | Self::UnfollowOut {
                follower, followee, ..
            } => Some((*follower, *followee)),
            Self::BlockedBy {
                account, target, ..
            }
            | Self::Unblocked { account, target } => Some((*account, *target)),
            _ => None,
        }
    }
}

/// An action for the shard `target`.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) target: ShardId,
    pub(crate) action: Action,
}

/// The first side of a write: a transaction on one database that collects
/// the ops for the other side and the event. [`PgStore::commit`] writes
/// them, commits and applies the ops. Dropped without commit, it rolls back.
pub(crate) struct FirstSide<'s> {
    pub(crate) tx: sqlx::Transaction<'static, Postgres>,
    db: &'s PgDb,
    ops: Vec<Op>,
    event: Option<Event>,
}

impl FirstSide<'_> {
    /// Queues `action` for the side on `target`'s shard.
    pub(crate) fn mirror(&mut self, target: ShardId, action: Action) {
        self.ops.push(Op { target, action });
    }

    /// The event this write emits (at most one per write).
    pub(crate) fn emit(&mut self, id: Id, at_ms: i64, kind: EventKind) {
        self.event = Some(Event {
            id,
            created_at_ms: at_ms,
            kind,
        });
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// Ops selected from a queue.
struct Queued {
    id: i64,
    op_id: String,
    body: String,
}

/// What applying a batch did on the target.
#[derive(Default)]
struct BatchOutcome {
    done: Vec<i64>,
    dead: Vec<(i64, String)>,
    /// Compensating ops the target wrote: `(their target database, op id)`.
    follow_ups: Vec<(usize, i64)>,
}

/// How far a drain goes.
#[derive(Clone, Copy)]
enum Bound {
    /// Up to this op id (a write's own ops); waits for the queue's lock.
    UpTo(i64),
    /// Ops at least this old (repair); skips a queue someone else drains.
    OlderThan(Duration),
}

/// Writes `event` to the outbox of the transaction `conn` is in. Takes the
/// database's outbox lock first, so it must be the transaction's last
/// statement: the lock is held only through the commit, and `seq` order is
/// commit order (no transaction holding a lower `seq` can commit later).
pub(crate) async fn emit(conn: &mut PgConnection, event: &Event) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_OUTBOX)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query("INSERT INTO outbox (event) VALUES ($1)")
        .bind(event.to_json())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

impl PgStore {
    /// Starts the first side of a write on `shard`'s database.
    pub(crate) async fn first_side(&self, shard: ShardId) -> StoreResult<FirstSide<'_>> {
        let db = self.db(shard);
        let tx = db.primary.begin().await.map_err(map_err)?;
        Ok(FirstSide {
            tx,
            db,
            ops: Vec::new(),
            event: None,
        })
    }

    /// Writes the ops and the event of `side`, commits, and applies the
    /// ops on their targets.
    pub(crate) async fn commit(&self, side: FirstSide<'_>) -> StoreResult<()> {
        let FirstSide {
            mut tx,
            db,
            ops,
            event,
        } = side;
        let queued = self.insert_ops(&mut tx, &ops).await?;
        if let Some(event) = &event {
            emit(&mut tx, event).await?;
        }
        tx.commit().await.map_err(map_err)?;
        if queued.is_empty() || self.crash_point() == Some(CrashPoint::AfterFirstSide) {
            return Ok(());
        }
        self.settle(db.index as usize, &queued).await;
        Ok(())
    }

    /// Inserts `ops` into the mirror log of the transaction `conn` is in;
    /// returns `(target database, op id)` of each.
    async fn insert_ops(
        &self,
        conn: &mut PgConnection,
        ops: &[Op],
    ) -> StoreResult<Vec<(usize, i64)>> {
        if ops.is_empty() {
            return Ok(vec![]);
        }
        let mut shards = Vec::with_capacity(ops.len());
        let mut bodies = Vec::with_capacity(ops.len());
        for op in ops {
            shards.push(i32::from(op.target.get()));
            bodies.push(
                serde_json::to_string(&op.action)
                    .map_err(|e| StoreError::Internal(format!("mirror op: {e}")))?,
            );
        }
        let rows = sqlx::query(
            "INSERT INTO mirror_ops (target_shard, body) \
             SELECT * FROM UNNEST($1::int[], $2::text[]) RETURNING id, target_shard",
        )
        .bind(&shards)
        .bind(&bodies)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let shard: i32 = r.get("target_shard");
                let shard = u16::try_from(shard)
                    .ok()
                    .and_then(ShardId::new)
                    .ok_or_else(|| StoreError::Internal("mirror op of no shard".into()))?;
                Ok((self.physical_index(shard), r.get::<i64, _>("id")))
            })
            .collect()
    }

    /// Applies `queued` ops of the database `origin` (and anything queued
    /// before them towards the same targets, and the compensations they
    /// cause). Failures are logged; the ops stay for repair. Returns how
    /// many ops were applied.
    pub(crate) async fn settle(&self, origin: usize, queued: &[(usize, i64)]) -> usize {
        let mut work: Vec<(usize, usize, i64)> = up_to_per_target(queued)
            .into_iter()
            .map(|(target, max)| (origin, target, max))
            .collect();
        let mut applied = 0;
        while let Some((from, to, max)) = work.pop() {
            match self.drain(from, to, Bound::UpTo(max)).await {
                Ok(outcome) => {
                    applied += outcome.done.len();
                    work.extend(
                        up_to_per_target(&outcome.follow_ups)
                            .into_iter()
                            .map(|(target, max)| (to, target, max)),
                    );
                }
                Err(e) => tracing::warn!(
                    origin = from,
                    target = to,
                    error = %e,
                    "mirror ops not applied; they wait in the mirror log for repair"
                ),
            }
        }
        applied
    }

    /// Applies the queue of ops from database `origin` to database
    /// `target`, in id order, within `bound`.
    async fn drain(&self, origin: usize, target: usize, bound: Bound) -> StoreResult<BatchOutcome> {
        let origin_db = self.db_at(origin)?;
        let target_db = self.db_at(target)?;
        let _permit = self
            .drains
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store is closing".into()))?;
        let (up_to, older_than) = match bound {
            Bound::UpTo(max) => (max, 0.0),
            Bound::OlderThan(age) => (i64::MAX, age.as_secs_f64()),
        };
        let mut total = BatchOutcome::default();
        for round in 0.. {
            if matches!(bound, Bound::UpTo(_)) && round == WRITE_BATCHES_MAX {
                tracing::warn!(
                    origin,
                    target,
                    "mirror queue backlog; a write left the rest to repair"
                );
                break;
            }
            let mut tx = origin_db.primary.begin().await.map_err(map_err)?;
            match bound {
                Bound::UpTo(_) => {
                    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                        .bind(LOCK_MIRROR_QUEUE)
                        .bind(target as i32)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                Bound::OlderThan(_) => {
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
                        .bind(LOCK_MIRROR_QUEUE)
                        .bind(target as i32)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if !got {
                        return Ok(total);
                    }
                }
            }
            let rows = sqlx::query(
                "SELECT id, op_id::text AS op_id, body FROM mirror_ops \
                 WHERE target_shard = ANY($1) AND id <= $2 \
                   AND created_at <= now() - make_interval(secs => $3) \
                 ORDER BY id LIMIT $4",
            )
            .bind(&target_db.shards)
            .bind(up_to)
            .bind(older_than)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            if rows.is_empty() {
                tx.commit().await.map_err(map_err)?;
                return Ok(total);
            }
            let queued: Vec<Queued> = rows
                .iter()
                .map(|r| Queued {
                    id: r.get("id"),
                    op_id: r.get("op_id"),
                    body: r.get("body"),
                })
                .collect();
            let mut attempt = 1;
            let outcome = loop {
                match self.apply_batch(target_db, &queued).await {
                    Ok(outcome) => break outcome,
                    // A deadlock with another applier: the batch rolled back
                    // whole; try again shortly.
                    Err(e) if attempt < APPLY_ATTEMPTS && super::is_contention(&e) => {
                        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                        attempt += 1;
                    }
                    Err(e) => {
                        tx.rollback().await.map_err(map_err)?;
                        note_failure(origin_db, &queued, &e).await;
                        return Err(e);
                    }
                }
            };
            if self.crash_point() == Some(CrashPoint::AfterOtherSide) {
                tx.rollback().await.map_err(map_err)?;
                return Ok(total);
            }
            for (id, error) in &outcome.dead {
                tracing::error!(op = id, error, "mirror op failed; moved to dead_mirror_ops");
                sqlx::query(
                    "INSERT INTO dead_mirror_ops (id, op_id, target_shard, body, created_at, error) \
                     SELECT id, op_id, target_shard, body, created_at, $2 FROM mirror_ops \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            let finished: Vec<i64> = queued.iter().map(|q| q.id).collect();
            sqlx::query("DELETE FROM mirror_ops WHERE id = ANY($1)")
                .bind(&finished)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            total.done.extend(outcome.done);
            total.dead.extend(outcome.dead);
            total.follow_ups.extend(outcome.follow_ups);
            if (queued.len() as i64) < BATCH {
                break;
            }
        }
        Ok(total)
    }

    /// Applies `queued` on `target` in one transaction, each op in a
    /// savepoint; compensating ops go into the target's own mirror log.
    async fn apply_batch(&self, target: &PgDb, queued: &[Queued]) -> StoreResult<BatchOutcome> {
        let mut tx = target.primary.begin().await.map_err(map_err)?;
        let mut outcome = BatchOutcome::default();
        let mut compensations = Vec::new();
        for q in queued {
            let action: Action = match serde_json::from_str(&q.body) {
                Ok(action) => action,
                Err(e) => {
                    outcome.dead.push((q.id, format!("unreadable op: {e}")));
                    continue;
                }
            };
            let mut sp = Connection::begin(&mut *tx).await.map_err(map_err)?;
            let fresh = sqlx::query(
                "INSERT INTO applied_mirror_ops (op_id) VALUES ($1::uuid) ON CONFLICT DO NOTHING",
            )
            .bind(&q.op_id)
            .execute(&mut *sp)
            .await
            .map_err(map_err)?
            .rows_affected()
                == 1;
            if !fresh {
                sp.commit().await.map_err(map_err)?;
                outcome.done.push(q.id);
                continue;
            }
            match apply(&mut sp, &action).await {
                Ok(more) => {
                    sp.commit().await.map_err(map_err)?;
                    compensations.extend(more);
                    outcome.done.push(q.id);
                }
                Err(e @ StoreError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    sp.rollback().await.map_err(map_err)?;
                    outcome.dead.push((q.id, e.to_string()));
                }
            }
        }
        outcome.follow_ups = self.insert_ops(&mut tx, &compensations).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    /// Settles what crashes left half done: applies mirror ops older than
    /// `older_than` that are still queued (and what they cause in turn), and
    /// settles email claims left pending for longer (confirmed if their
    /// account exists, released if not). Returns how many ops and claims it
    /// settled. Safe beside normal traffic and in several processes at once.
    /// Also forgets applied-op ids older than a week.
    ///
    /// `older_than` must exceed how long a write takes from its first side
    /// to its end (a few seconds is plenty): a younger claim may belong to a
    /// registration still running.
    pub async fn repair_mirrors(&self, older_than: Duration) -> StoreResult<usize> {
        let n = self.dbs().len();
        let mut settled = 0;
        let mut failure = None;
        for origin in 0..n {
            for target in 0..n {
                match self
                    .drain(origin, target, Bound::OlderThan(older_than))
                    .await
                {
                    Ok(outcome) => {
                        settled += outcome.done.len() + outcome.dead.len();
                        settled += self.settle(target, &outcome.follow_ups).await;
                    }
                    Err(e) => {
                        tracing::warn!(origin, target, error = %e, "mirror repair failed");
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        for db in self.dbs() {
            match self.repair_claims(db, older_than).await {
                Ok(count) => settled += count,
                Err(e) => {
                    tracing::warn!(database = db.index, error = %e, "email claim repair failed");
                    failure.get_or_insert(e);
                }
            }
            if let Err(e) = prune_applied(db).await {
                tracing::warn!(database = db.index, error = %e, "pruning applied mirror ops failed");
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(settled),
        }
    }

    /// Confirms or releases email claims on `db` pending for longer than
    /// `older_than`.
    async fn repair_claims(&self, db: &PgDb, older_than: Duration) -> StoreResult<usize> {
        // Holds a connection of `db` while reading accounts elsewhere.
        let _permit = self
            .drains
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store is closing".into()))?;
        let mut settled = 0;
        loop {
            let mut tx = db.primary.begin().await.map_err(map_err)?;
            let rows = sqlx::query(
                "SELECT email_key, account_id FROM email_directory \
                 WHERE pending AND claimed_at <= now() - make_interval(secs => $1) \
                 ORDER BY claimed_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(older_than.as_secs_f64())
            .bind(CLAIM_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            for row in &rows {
                let email_key: String = row.get("email_key");
                let account = Id::from_i64(row.get("account_id"));
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)")
                        .bind(account.as_i64())
                        .fetch_one(self.writer(account.shard()))
                        .await
                        .map_err(map_err)?;
                let sql = if exists {
                    "UPDATE email_directory SET pending = FALSE \
                     WHERE email_key = $1 AND account_id = $2"
                } else {
                    "DELETE FROM email_directory WHERE email_key = $1 AND account_id = $2"
                };
                sqlx::query(sql)
                    .bind(&email_key)
                    .bind(account.as_i64())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            settled += rows.len();
            if (rows.len() as i64) < CLAIM_BATCH {
                return Ok(settled);
            }
        }
    }
}

/// The highest op id per target database.
fn up_to_per_target(queued: &[(usize, i64)]) -> BTreeMap<usize, i64> {
    let mut max: BTreeMap<usize, i64> = BTreeMap::new();
    for (target, id) in queued {
        let entry = max.entry(*target).or_insert(*id);
        *entry = (*entry).max(*id);
    }
    max
}

/// Counts a failed attempt on the ops (best effort: the origin may be the
/// database that is down).
async fn note_failure(origin: &PgDb, queued: &[Queued], error: &StoreError) {
    let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
    let noted = sqlx::query(
        "UPDATE mirror_ops SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(error.to_string())
    .execute(&origin.primary)
    .await;
    if let Err(e) = noted {
        tracing::debug!(error = %e, "could not count a failed mirror attempt");
    }
}

async fn prune_applied(db: &PgDb) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM applied_mirror_ops WHERE op_id IN (SELECT op_id FROM applied_mirror_ops \
         WHERE applied_at < now() - make_interval(days => $1) LIMIT 10000)",
    )
    .bind(APPLIED_RETENTION_DAYS)
    .execute(&db.primary)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_as_json() {
        let action = Action::BoostsGone {
            boosts: vec![(Id::from_i64(1), Id::from_i64(2))],
        };
        let json = serde_json::to_string(&action).expect("json");
        assert!(json.contains("\"do\":\"boosts_gone\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Action>(&json).expect("parse"),
            action
        );
    }

    #[test]
    fn queues_are_drained_up_to_their_last_op() {
        let max = up_to_per_target(&[(1, 5), (0, 3), (1, 9), (1, 7)]);
        assert_eq!(max.into_iter().collect::<Vec<_>>(), vec![(0, 3), (1, 9)]);
    }

    #[test]
    fn crash_points_round_trip() {
        for p in [
            CrashPoint::AfterFirstSide,
            CrashPoint::AfterEmailClaim,
            CrashPoint::AfterOtherSide,
        ] {
            assert_eq!(CrashPoint::from_code(p.code()), Some(p));
        }
        assert_eq!(CrashPoint::from_code(0), None);
    }
}
