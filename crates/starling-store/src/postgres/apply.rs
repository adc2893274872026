//! Applying a mirror [`Action`] on its side, and the row changes both sides
//! of a write share (a first side calls the same helpers for its own half).
//!
//! Every counter change here follows a row change on the same side (a
//! counter goes up only if the row was inserted, down only if it was
//! deleted), so a side's counters always match its rows, whatever order ops
//! arrive in. Where the other side's state has overtaken an op (see
//! [`super::mirror`], "Facts written from both sides"), [`apply`] answers
//! with compensating ops instead.

use sqlx::{PgConnection, Row};
use starling_domain::Id;

use super::map_err;
use super::mirror::{Action, Op};
use crate::StoreResult;

/// The stored code of [`starling_domain::Visibility::Direct`].
const DIRECT: i16 = 3;

/// Runs `sql` with `binds` (ids), returning how many rows it touched.
async fn exec(conn: &mut PgConnection, sql: &str, binds: &[i64]) -> StoreResult<u64> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    Ok(query
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected())
}

/// Adds `delta` to an account counter, never below zero.
pub(crate) async fn bump_account(
    conn: &mut PgConnection,
    id: Id,
    column: &str,
    delta: i64,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE accounts SET {column} = GREATEST({column} + $1, 0) WHERE id = $2"
    ))
    .bind(delta)
    .bind(id.as_i64())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Adds `delta` to a status counter, never below zero.
pub(crate) async fn bump_status(
    conn: &mut PgConnection,
    id: Id,
    column: &str,
    delta: i64,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE statuses SET {column} = GREATEST({column} + $1, 0) WHERE id = $2"
    ))
    .bind(delta)
    .bind(id.as_i64())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Whether, on `me`'s side, a block between `me` and `other` (either way)
/// is in force, or one newer than `than` existed (ended blocks count: what
/// they severed stays severed). A follow or request arriving here then is
/// refused, whatever its id: a follow stamped after a block but committed
/// on its side before the block got there must not survive it.
async fn blocked_since(conn: &mut PgConnection, me: Id, other: Id, than: Id) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE account_id = $1 AND target_id = $2 \
                        AND (id > $3 OR NOT ended)) \
             OR EXISTS (SELECT 1 FROM blocked_by WHERE target_id = $1 AND account_id = $2 \
                        AND (id > $3 OR NOT ended))",
    )
    .bind(me.as_i64())
    .bind(other.as_i64())
    .bind(than.as_i64())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)
}

/// Whether a status exists, locking it against a concurrent delete until
/// the transaction ends. The lock is the one the counter update that
/// follows takes anyway (a shared lock would let two appliers each wait for
/// the other's to update the row: a deadlock).
async fn status_exists(conn: &mut PgConnection, status: Id) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE id = $1 FOR NO KEY UPDATE")
            .bind(status.as_i64())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(found.is_some())
}

/// Serializes, on one database, every transaction that changes the follows,
/// requests or blocks between `a` and `b` (either way), until it ends.
///
/// Without it two such writes could miss each other's uncommitted rows (a
/// block's removals do not wait for a follow being inserted) and still
/// queue their mirror ops in the opposite order of their effects, so the
/// other side would end up differently. Taken first, before any row lock.
pub(crate) async fn lock_pair(conn: &mut PgConnection, a: Id, b: Id) -> StoreResult<()> {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let key = (low.as_i64() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
        ^ (high.as_i64() as u64);
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key as i64)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The bound `upto` stands for: no bound.
fn bound(upto: Option<Id>) -> i64 {
    upto.map_or(i64::MAX, Id::as_i64)
}

/// Removes `follower -> followee` from the follower's side (`follows_out`),
/// if its id is at most `upto`, fixing its counter.
pub(crate) async fn remove_follow_out(
    conn: &mut PgConnection,
    follower: Id,
    followee: Id,
    upto: Option<Id>,
) -> StoreResult<bool> {
    let gone = exec(
        conn,
        "DELETE FROM follows_out WHERE follower_id = $1 AND followee_id = $2 AND id <= $3",
        &[follower.as_i64(), followee.as_i64(), bound(upto)],
    )
    .await?;
    if gone > 0 {
        bump_account(conn, follower, "following_count", -1).await?;
    }
    Ok(gone > 0)
}

/// Removes `follower -> followee` from the followee's side (`follows_in`),
/// fixing its counter.
pub(crate) async fn remove_follow_in(
    conn: &mut PgConnection,
    follower: Id,
    followee: Id,
) -> StoreResult<bool> {
    let gone = exec(
        conn,
        "DELETE FROM follows_in WHERE followee_id = $1 AND follower_id = $2",
        &[followee.as_i64(), follower.as_i64()],
    )
    .await?;
    if gone > 0 {
        bump_account(conn, followee, "followers_count", -1).await?;
    }
    Ok(gone > 0)
}

/// Which side's copy of a follow request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RequestSide {
    /// `follow_requests_out`, on the follower's shard.
    Out,
    /// `follow_requests_in`, on the followee's shard.
    In,
}

/// Removes the pending request `follower -> followee` from `side` if its id
/// is at most `upto`; the id of the removed request.
pub(crate) async fn remove_request(
    conn: &mut PgConnection,
    side: RequestSide,
    follower: Id,
    followee: Id,
    upto: Option<Id>,
) -> StoreResult<Option<Id>> {
    let table = match side {
        RequestSide::Out => "follow_requests_out",
        RequestSide::In => "follow_requests_in",
    };
    let gone: Option<i64> = sqlx::query_scalar(&format!(
        "DELETE FROM {table} \
         WHERE follower_id = $1 AND followee_id = $2 AND id <= $3 RETURNING id"
    ))
    .bind(follower.as_i64())
    .bind(followee.as_i64())
    .bind(bound(upto))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(gone.map(Id::from_i64))
}

/// Removes, on `me`'s side (the blocked account's, when the block reaches
/// it), the follows and requests between `me` and `other` (both ways) made
/// before the block `block`, fixing `me`'s counters. Newer ones are either
/// made after the block ended (and stand) or were made here before the
/// block arrived: their own op then finds the block on the blocker's side,
/// or the blocker's side removed their row, and either way they are undone
/// here by id (see [`sever_all`] and [`blocked_since`]).
pub(crate) async fn sever(
    conn: &mut PgConnection,
    me: Id,
    other: Id,
    block: Id,
) -> StoreResult<()> {
    let ids = [me.as_i64(), other.as_i64(), block.as_i64()];
    let following = exec(
        conn,
        "DELETE FROM follows_out WHERE follower_id = $1 AND followee_id = $2 AND id < $3",
        &ids,
    )
    .await?;
    if following > 0 {
        bump_account(conn, me, "following_count", -1).await?;
    }
    let followed = exec(
        conn,
        "DELETE FROM follows_in WHERE followee_id = $1 AND follower_id = $2 AND id < $3",
        &ids,
    )
    .await?;
    if followed > 0 {
        bump_account(conn, me, "followers_count", -1).await?;
    }
    exec(
        conn,
        "DELETE FROM follow_requests_out WHERE follower_id = $1 AND followee_id = $2 AND id < $3",
        &ids,
    )
    .await?;
    exec(
        conn,
        "DELETE FROM follow_requests_in WHERE followee_id = $1 AND follower_id = $2 AND id < $3",
        &ids,
    )
    .await?;
    Ok(())
}

/// Whether a block between `a` and `b` (either way) is in force on this
/// side (a follow's first side refuses then).
pub(crate) async fn blocked_now(conn: &mut PgConnection, a: Id, b: Id) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE NOT ended \
                        AND ((account_id = $1 AND target_id = $2) \
                          OR (account_id = $2 AND target_id = $1))) \
             OR EXISTS (SELECT 1 FROM blocked_by WHERE NOT ended \
                        AND ((target_id = $1 AND account_id = $2) \
                          OR (target_id = $2 AND account_id = $1)))",
    )
    .bind(a.as_i64())
    .bind(b.as_i64())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)
}

/// What a block's first side removed between `me` (the blocker) and
/// `other`: the ids of the rows, which the other side's copies are
/// removed by.
#[derive(Debug, Default)]
pub(crate) struct Severed {
    /// `me -> other`.
    pub(crate) following: Option<Id>,
    /// `other -> me`.
    pub(crate) followed_by: Option<Id>,
    /// `me`'s request to follow `other`.
    pub(crate) requested: Option<Id>,
    /// `other`'s request to follow `me`.
    pub(crate) requested_by: Option<Id>,
}

/// Removes, on the blocker `me`'s side, every follow and request between
/// `me` and `other` (both ways), whatever their ids, fixing `me`'s
/// counters. The blocker's side holds the pair's lock, so nothing it
/// misses can be committed here before the block: the ids returned are
/// what the other side must drop too.
pub(crate) async fn sever_all(conn: &mut PgConnection, me: Id, other: Id) -> StoreResult<Severed> {
    let one = |sql: &'static str| {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(me.as_i64())
            .bind(other.as_i64())
    };
    let following =
        one("DELETE FROM follows_out WHERE follower_id = $1 AND followee_id = $2 RETURNING id")
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .map(Id::from_i64);
    if following.is_some() {
        bump_account(conn, me, "following_count", -1).await?;
    }
    let followed_by =
        one("DELETE FROM follows_in WHERE followee_id = $1 AND follower_id = $2 RETURNING id")
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .map(Id::from_i64);
    if followed_by.is_some() {
        bump_account(conn, me, "followers_count", -1).await?;
    }
    let requested = one(
        "DELETE FROM follow_requests_out WHERE follower_id = $1 AND followee_id = $2 RETURNING id",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(Id::from_i64);
    let requested_by = one(
        "DELETE FROM follow_requests_in WHERE followee_id = $1 AND follower_id = $2 RETURNING id",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(Id::from_i64);
    Ok(Severed {
        following,
        followed_by,
        requested,
        requested_by,
    })
}

/// An account's large flag and its version (`(false, 0)` if unknown),
/// locking the row against `set_large` until the transaction ends (with the
/// lock a counter update takes anyway, so two writers cannot deadlock
/// upgrading a shared one).
pub(crate) async fn large_of(conn: &mut PgConnection, account: Id) -> StoreResult<(bool, i64)> {
    let row =
        sqlx::query("SELECT large, large_version FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
            .bind(account.as_i64())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(row.map_or((false, 0), |r| (r.get("large"), r.get("large_version"))))
}

/// Applies one action on its side; returns the compensating ops, if the
/// other side's state has overtaken it.
pub(crate) async fn apply(conn: &mut PgConnection, action: &Action) -> StoreResult<Vec<Op>> {
    if let Some((a, b)) = action.pair() {
        lock_pair(conn, a, b).await?;
    }
    let mut answer = Vec::new();
    match action {
        Action::FollowIn {
            follower,
            followee,
            id,
            at,
            reblogs,
            notify,
            large_version,
        } => {
            // The follower's side dropped its request when it followed.
            remove_request(conn, RequestSide::In, *follower, *followee, None).await?;
            if blocked_since(conn, *followee, *follower, *id).await? {
                answer.push(Op {
                    target: follower.shard(),
                    action: Action::UnfollowOut {
                        follower: *follower,
                        followee: *followee,
                        follow: *id,
                    },
                });
                return Ok(answer);
            }
            let inserted = sqlx::query(
                "INSERT INTO follows_in (followee_id, follower_id, id, reblogs, notify, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (followee_id, follower_id) DO NOTHING",
            )
            .bind(followee.as_i64())
            .bind(follower.as_i64())
            .bind(id.as_i64())
            .bind(reblogs)
            .bind(notify)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
            if inserted > 0 {
                bump_account(conn, *followee, "followers_count", 1).await?;
            } else {
                // Already here (the followee authorized a request while this
                // follow was on its way): this follow's options, and the
                // smaller of the two ids, which the follower's side settles
                // on too, so both sides name the follow alike.
                sqlx::query(
                    "UPDATE follows_in SET reblogs = $3, notify = $4, \
                     created_at = CASE WHEN id > $5 THEN $6 ELSE created_at END, \
                     id = LEAST(id, $5) WHERE followee_id = $1 AND follower_id = $2",
                )
                .bind(followee.as_i64())
                .bind(follower.as_i64())
                .bind(reblogs)
                .bind(notify)
                .bind(id.as_i64())
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
            // The follower's side copied the large flag before this row
            // existed; if it changed since, send the current one.
            let (large, version) = large_of(conn, *followee).await?;
            if version != *large_version {
                answer.push(Op {
                    target: follower.shard(),
                    action: Action::LargeChanged {
                        account: *followee,
                        followers: vec![*follower],
                        large,
                        version,
                    },
                });
            }
        }
        Action::FollowInOptions {
            follower,
            followee,
            reblogs,
            notify,
        } => {
            exec_options(conn, "follows_in", *follower, *followee, *reblogs, *notify).await?;
        }
        Action::UnfollowIn { follower, followee } => {
            remove_follow_in(conn, *follower, *followee).await?;
        }
        Action::RequestIn {
            follower,
            followee,
            id,
            at,
            reblogs,
            notify,
        } => {
            if blocked_since(conn, *followee, *follower, *id).await? {
                answer.push(Op {
                    target: follower.shard(),
                    action: Action::WithdrawOut {
                        follower: *follower,
                        followee: *followee,
                        request: *id,
                    },
                });
                return Ok(answer);
            }
            sqlx::query(
                "INSERT INTO follow_requests_in \
                 (followee_id, follower_id, id, reblogs, notify, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (followee_id, follower_id) \
                 DO UPDATE SET reblogs = EXCLUDED.reblogs, notify = EXCLUDED.notify",
            )
            .bind(followee.as_i64())
            .bind(follower.as_i64())
            .bind(id.as_i64())
            .bind(reblogs)
            .bind(notify)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        Action::RequestInOptions {
            follower,
            followee,
            reblogs,
            notify,
        } => {
            exec_options(
                conn,
                "follow_requests_in",
                *follower,
                *followee,
                *reblogs,
                *notify,
            )
            .await?;
        }
        Action::WithdrawIn {
            follower,
            followee,
            request,
        } => {
            remove_request(conn, RequestSide::In, *follower, *followee, Some(*request)).await?;
        }
        Action::Authorized {
            follower,
            followee,
            request,
            id,
            at,
            reblogs,
            notify,
            large,
            large_version,
        } => {
            // Whatever request is pending here becomes the follow (or goes
            // with it). One that is not the request authorized (withdrawn
            // and asked again meanwhile) may have reached the followee's
            // side after the authorization: it goes there too.
            let consumed =
                remove_request(conn, RequestSide::Out, *follower, *followee, None).await?;
            if let Some(other) = consumed.filter(|r| r != request) {
                answer.push(Op {
                    target: followee.shard(),
                    action: Action::WithdrawIn {
                        follower: *follower,
                        followee: *followee,
                        request: other,
                    },
                });
            }
            // Already following (a follow made here while the request was
            // being authorized): both sides settle on the smaller id, and
            // on this side's options, which go back to the followee's.
            let existing = sqlx::query(
                "UPDATE follows_out SET \
                 created_at = CASE WHEN id > $3 THEN $4 ELSE created_at END, \
                 id = LEAST(id, $3) WHERE follower_id = $1 AND followee_id = $2 \
                 RETURNING reblogs, notify",
            )
            .bind(follower.as_i64())
            .bind(followee.as_i64())
            .bind(id.as_i64())
            .bind(at)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
            if let Some(row) = existing {
                answer.push(Op {
                    target: followee.shard(),
                    action: Action::FollowInOptions {
                        follower: *follower,
                        followee: *followee,
                        reblogs: row.get("reblogs"),
                        notify: row.get("notify"),
                    },
                });
                return Ok(answer);
            }
            if consumed.is_none() || blocked_since(conn, *follower, *followee, *id).await? {
                // Withdrawn (or blocked) meanwhile: the follow the followee's
                // side made is undone there.
                answer.push(Op {
                    target: followee.shard(),
                    action: Action::UnfollowIn {
                        follower: *follower,
                        followee: *followee,
                    },
                });
                return Ok(answer);
            }
            insert_follow_out(
                conn,
                *follower,
                *followee,
                *id,
                *at,
                (*reblogs, *notify),
                (*large, *large_version),
            )
            .await?;
        }
        Action::WithdrawOut {
            follower,
            followee,
            request,
        } => {
            remove_request(conn, RequestSide::Out, *follower, *followee, Some(*request)).await?;
        }
        Action::UnfollowOut {
            follower,
            followee,
            follow,
        } => {
            remove_follow_out(conn, *follower, *followee, Some(*follow)).await?;
        }
        Action::BlockedBy {
            account,
            target,
            id,
            at,
        } => {
            sqlx::query(
                "INSERT INTO blocked_by (target_id, account_id, id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (target_id, account_id) \
                 DO UPDATE SET id = EXCLUDED.id, created_at = EXCLUDED.created_at, ended = FALSE \
                 WHERE blocked_by.id <= EXCLUDED.id",
            )
            .bind(target.as_i64())
            .bind(account.as_i64())
            .bind(id.as_i64())
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            sever(conn, *target, *account, *id).await?;
        }
        Action::Unblocked { account, target } => {
            exec(
                conn,
                "UPDATE blocked_by SET ended = TRUE WHERE target_id = $1 AND account_id = $2",
                &[target.as_i64(), account.as_i64()],
            )
            .await?;
        }
        Action::LargeChanged {
            account,
            followers,
            large,
            version,
        } => {
            sqlx::query(
                "UPDATE follows_out SET followee_large = $1, large_version = $2 \
                 WHERE followee_id = $3 AND follower_id = ANY($4) AND large_version < $2",
            )
            .bind(large)
            .bind(version)
            .bind(account.as_i64())
            .bind(followers.iter().map(|f| f.as_i64()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        Action::FavouriteIn {
            account,
            status,
            id,
        } => {
            if !status_exists(conn, *status).await? {
                answer.push(Op {
                    target: account.shard(),
                    action: Action::FavouritesGone {
                        status: *status,
                        accounts: vec![*account],
                    },
                });
                return Ok(answer);
            }
            let inserted = exec(
                conn,
                "INSERT INTO status_favourites (status_id, account_id, favourite_id) \
                 VALUES ($1, $2, $3) ON CONFLICT (status_id, account_id) DO NOTHING",
                &[status.as_i64(), account.as_i64(), id.as_i64()],
            )
            .await?;
            if inserted > 0 {
                bump_status(conn, *status, "favourites_count", 1).await?;
            }
        }
        Action::UnfavouriteIn { account, status } => {
            let gone = exec(
                conn,
                "DELETE FROM status_favourites WHERE status_id = $1 AND account_id = $2",
                &[status.as_i64(), account.as_i64()],
            )
            .await?;
            if gone > 0 {
                bump_status(conn, *status, "favourites_count", -1).await?;
            }
        }
        Action::FavouritesGone { status, accounts } => {
            sqlx::query("DELETE FROM favourites WHERE status_id = $1 AND account_id = ANY($2)")
                .bind(status.as_i64())
                .bind(accounts.iter().map(|a| a.as_i64()).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        Action::ReplyAdded {
            parent,
            reply,
            counted,
        } => {
            if status_exists(conn, *parent).await? {
                let inserted = sqlx::query(
                    "INSERT INTO status_replies (parent_id, reply_id, counted) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(parent.as_i64())
                .bind(reply.as_i64())
                .bind(counted)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?
                .rows_affected();
                if inserted > 0 && *counted {
                    bump_status(conn, *parent, "replies_count", 1).await?;
                }
            }
        }
        Action::ReplyRemoved { parent, reply } => {
            let gone: Option<bool> = sqlx::query_scalar(
                "DELETE FROM status_replies WHERE parent_id = $1 AND reply_id = $2 \
                 RETURNING counted",
            )
            .bind(parent.as_i64())
            .bind(reply.as_i64())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
            if gone == Some(true) {
                bump_status(conn, *parent, "replies_count", -1).await?;
            }
        }
        Action::BoostAdded {
            original,
            boost,
            account,
            listed,
        } => {
            if !status_exists(conn, *original).await? {
                answer.push(Op {
                    target: boost.shard(),
                    action: Action::BoostsGone {
                        boosts: vec![(*account, *boost)],
                    },
                });
                return Ok(answer);
            }
            let inserted = sqlx::query(
                "INSERT INTO status_reblogs (status_id, boost_id, account_id, listed) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(original.as_i64())
            .bind(boost.as_i64())
            .bind(account.as_i64())
            .bind(listed)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
            if inserted > 0 {
                bump_status(conn, *original, "reblogs_count", 1).await?;
            }
        }
        Action::BoostRemoved { original, boost } => {
            let gone = exec(
                conn,
                "DELETE FROM status_reblogs WHERE status_id = $1 AND boost_id = $2",
                &[original.as_i64(), boost.as_i64()],
            )
            .await?;
            if gone > 0 {
                bump_status(conn, *original, "reblogs_count", -1).await?;
            }
        }
        Action::BoostsGone { boosts } => {
            for (booster, boost) in boosts {
                let gone: Option<i16> = sqlx::query_scalar(
                    "DELETE FROM statuses \
                     WHERE id = $1 AND account_id = $2 AND reblog_of_id IS NOT NULL \
                     RETURNING visibility",
                )
                .bind(boost.as_i64())
                .bind(booster.as_i64())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
                // A direct status is not in the count (a boost never is).
                if gone.is_some_and(|v| v != DIRECT) {
                    bump_account(conn, *booster, "statuses_count", -1).await?;
                }
            }
        }
        Action::Tagged {
            tag,
            status,
            public,
        } => {
            sqlx::query(
                "INSERT INTO tags (name, uses) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET uses = tags.uses + 1",
            )
            .bind(tag)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            if *public {
                sqlx::query(
                    "INSERT INTO status_tags (tag, status_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(tag)
                .bind(status.as_i64())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
        }
        Action::Untagged { tag, status } => {
            sqlx::query("DELETE FROM status_tags WHERE tag = $1 AND status_id = $2")
                .bind(tag)
                .bind(status.as_i64())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    Ok(answer)
}

/// Sets the options of `follower -> followee` in `table` (a follow or
/// request table of either side, keyed by both ids).
pub(crate) async fn exec_options(
    conn: &mut PgConnection,
    table: &str,
    follower: Id,
    followee: Id,
    reblogs: bool,
    notify: bool,
) -> StoreResult<u64> {
    Ok(sqlx::query(&format!(
        "UPDATE {table} SET reblogs = $1, notify = $2 WHERE follower_id = $3 AND followee_id = $4"
    ))
    .bind(reblogs)
    .bind(notify)
    .bind(follower.as_i64())
    .bind(followee.as_i64())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected())
}

/// Inserts `follower -> followee` on the follower's side with its counter;
/// `false` (nothing written) if it exists.
pub(crate) async fn insert_follow_out(
    conn: &mut PgConnection,
    follower: Id,
    followee: Id,
    id: Id,
    at: i64,
    (reblogs, notify): (bool, bool),
    (large, large_version): (bool, i64),
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO follows_out (follower_id, followee_id, id, reblogs, notify, followee_large, \
         large_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (follower_id, followee_id) DO NOTHING",
    )
    .bind(follower.as_i64())
    .bind(followee.as_i64())
    .bind(id.as_i64())
    .bind(reblogs)
    .bind(notify)
    .bind(large)
    .bind(large_version)
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    if inserted > 0 {
        bump_account(conn, follower, "following_count", 1).await?;
    }
    Ok(inserted > 0)
}
