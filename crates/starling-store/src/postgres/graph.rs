//! [`GraphStore`] for PostgreSQL: accounts multi-get and search, follows
//! and follow requests, large accounts, blocks, mutes and relationships.
//!
//! A follow is `follows_out` on the follower's shard and `follows_in` on
//! the followee's; requests likewise (`follow_requests_out` / `_in`);
//! a block is `blocks` on the blocker's shard and `blocked_by` on the
//! target's. Each call writes the side it starts from (the follower's for
//! follow and unfollow, the followee's for authorize and reject, the
//! blocker's for block) and mirrors the rest, so every read below touches
//! one database: `relationships(viewer, ..)` reads only the viewer's.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::Row;
use starling_domain::{Account, EventKind, FollowOptions, Id, Page, Relationship, ShardId};

use super::apply::{
    blocked_now, bump_account, exec_options, insert_follow_out, large_of, lock_pair,
    remove_follow_out, remove_request, sever_all, RequestSide,
};
use super::mirror::Action;
use super::rows::{
    accounts_from_rows, display_key, id, ids, options_from_row, raw, ACCOUNT_COLUMNS,
};
use super::{map_err, retry_contention, PgStore};
use crate::social::{FollowOutcome, GraphStore, Hidden, RelationFlags, Stamp};
use crate::{StoreError, StoreResult};

/// Followers per `LargeChanged` op.
const LARGE_CHUNK: usize = 1000;

impl PgStore {
    /// The ids in the first column of `sql` (two binds: the viewer, then
    /// the candidate ids) on `viewer`'s database.
    async fn ids_among(&self, viewer: Id, sql: &str, candidates: &[Id]) -> StoreResult<Vec<Id>> {
        if candidates.is_empty() {
            return Ok(vec![]);
        }
        let candidates = raw(candidates);
        let found: Vec<i64> = self
            .reader(viewer.shard())
            .read(|pool| {
                sqlx::query_scalar(sql)
                    .bind(viewer.as_i64())
                    .bind(&candidates)
                    .fetch_all(pool)
            })
            .await?;
        Ok(ids(found))
    }

    /// `(target, options)` rows of `sql` (binds: viewer, candidates).
    async fn options_among(
        &self,
        viewer: Id,
        sql: &str,
        candidates: &[Id],
    ) -> StoreResult<HashMap<Id, FollowOptions>> {
        let candidates = raw(candidates);
        let rows = self
            .reader(viewer.shard())
            .read(|pool| {
                sqlx::query(sql)
                    .bind(viewer.as_i64())
                    .bind(&candidates)
                    .fetch_all(pool)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| (id(r, "other"), options_from_row(r)))
            .collect())
    }

    /// `(target, notifications)` of `viewer`'s mutes among `candidates`.
    async fn mutes_among(&self, viewer: Id, candidates: &[Id]) -> StoreResult<HashMap<Id, bool>> {
        let candidates = raw(candidates);
        let rows = self
            .reader(viewer.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT target_id, notifications FROM mutes \
                     WHERE account_id = $1 AND target_id = ANY($2)",
                )
                .bind(viewer.as_i64())
                .bind(&candidates)
                .fetch_all(pool)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| (id(r, "target_id"), r.get("notifications")))
            .collect())
    }
}

/// The writes of [`GraphStore`], one attempt each; the trait methods try
/// again when an attempt loses a deadlock ([`retry_contention`]).
impl PgStore {
    async fn follow_once(
        &self,
        follower: Id,
        followee: Id,
        options: FollowOptions,
        request: bool,
        stamp: Stamp,
    ) -> StoreResult<FollowOutcome> {
        // The followee's large flag for a new follow row, read before the
        // first side. The followee's side checks the copy when the follow
        // reaches it and sends the current flag if it differs, so if the
        // followee's database cannot be read now, the follow goes ahead
        // with "small, never changed" and is corrected there.
        let large = if request {
            (false, 0)
        } else {
            // From the primary: the follow row copies it.
            let row = sqlx::query("SELECT large, large_version FROM accounts WHERE id = $1")
                .bind(followee.as_i64())
                .fetch_optional(self.writer(followee.shard()))
                .await
                .map_err(map_err);
            match row {
                Ok(row) => row.map_or((false, 0), |r| (r.get("large"), r.get("large_version"))),
                Err(StoreError::Unavailable(e)) => {
                    tracing::debug!(error = %e, "followee's database unavailable; large flag deferred");
                    (false, 0)
                }
                Err(e) => return Err(e),
            }
        };
        let (reblogs, notify) = (options.reblogs, options.notify);
        let mut side = self.first_side(follower.shard()).await?;
        lock_pair(side.conn(), follower, followee).await?;
        // Under the pair's lock: a block this side knows of refuses the
        // follow; one it does not know of yet finds the follow's op (or
        // its row) on the other side and undoes it by id.
        if blocked_now(side.conn(), follower, followee).await? {
            return Ok(FollowOutcome::Blocked);
        }
        let options_op = Action::FollowInOptions {
            follower,
            followee,
            reblogs,
            notify,
        };
        if exec_options(
            side.conn(),
            "follows_out",
            follower,
            followee,
            reblogs,
            notify,
        )
        .await?
            > 0
        {
            side.mirror(followee.shard(), options_op);
            self.commit(side).await?;
            return Ok(FollowOutcome::Following);
        }
        if request {
            let updated = exec_options(
                side.conn(),
                "follow_requests_out",
                follower,
                followee,
                reblogs,
                notify,
            )
            .await?;
            if updated > 0 {
                // Only the options: a request the followee's side has
                // answered meanwhile must not come back.
                side.mirror(
                    followee.shard(),
                    Action::RequestInOptions {
                        follower,
                        followee,
                        reblogs,
                        notify,
                    },
                );
            } else {
                sqlx::query(
                    "INSERT INTO follow_requests_out \
                     (follower_id, followee_id, id, reblogs, notify, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(follower.as_i64())
                .bind(followee.as_i64())
                .bind(stamp.id.as_i64())
                .bind(reblogs)
                .bind(notify)
                .bind(stamp.at_ms)
                .execute(side.conn())
                .await
                .map_err(map_err)?;
                side.mirror(
                    followee.shard(),
                    Action::RequestIn {
                        follower,
                        followee,
                        id: stamp.id,
                        at: stamp.at_ms,
                        reblogs,
                        notify,
                    },
                );
                side.emit(
                    stamp.id,
                    stamp.at_ms,
                    EventKind::FollowRequested {
                        follower_id: follower,
                        followee_id: followee,
                    },
                );
            }
            self.commit(side).await?;
            return Ok(FollowOutcome::Requested);
        }
        // A request left from when the account was locked becomes the follow.
        remove_request(side.conn(), RequestSide::Out, follower, followee, None).await?;
        let inserted = insert_follow_out(
            side.conn(),
            follower,
            followee,
            stamp.id,
            stamp.at_ms,
            (reblogs, notify),
            large,
        )
        .await?;
        if !inserted {
            // A concurrent follow of the same pair won: this one updates it.
            exec_options(
                side.conn(),
                "follows_out",
                follower,
                followee,
                reblogs,
                notify,
            )
            .await?;
            side.mirror(followee.shard(), options_op);
            self.commit(side).await?;
            return Ok(FollowOutcome::Following);
        }
        side.mirror(
            followee.shard(),
            Action::FollowIn {
                follower,
                followee,
                id: stamp.id,
                at: stamp.at_ms,
                reblogs,
                notify,
                large_version: large.1,
            },
        );
        side.emit(
            stamp.id,
            stamp.at_ms,
            EventKind::Followed {
                follower_id: follower,
                followee_id: followee,
            },
        );
        self.commit(side).await?;
        Ok(FollowOutcome::Following)
    }

    async fn unfollow_once(&self, follower: Id, followee: Id, stamp: Stamp) -> StoreResult<bool> {
        let mut side = self.first_side(follower.shard()).await?;
        lock_pair(side.conn(), follower, followee).await?;
        if remove_follow_out(side.conn(), follower, followee, None).await? {
            side.mirror(followee.shard(), Action::UnfollowIn { follower, followee });
            side.emit(
                stamp.id,
                stamp.at_ms,
                EventKind::Unfollowed {
                    follower_id: follower,
                    followee_id: followee,
                },
            );
            self.commit(side).await?;
            return Ok(true);
        }
        if let Some(request) =
            remove_request(side.conn(), RequestSide::Out, follower, followee, None).await?
        {
            side.mirror(
                followee.shard(),
                Action::WithdrawIn {
                    follower,
                    followee,
                    request,
                },
            );
            self.commit(side).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn authorize_follow_request_once(
        &self,
        account: Id,
        requester: Id,
        stamp: Stamp,
    ) -> StoreResult<bool> {
        // Starts on the followee's side, where the pending request is.
        let mut side = self.first_side(account.shard()).await?;
        lock_pair(side.conn(), account, requester).await?;
        let row = sqlx::query(
            "DELETE FROM follow_requests_in WHERE followee_id = $1 AND follower_id = $2 \
             RETURNING id, reblogs, notify",
        )
        .bind(account.as_i64())
        .bind(requester.as_i64())
        .fetch_optional(side.conn())
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(false) };
        let options = options_from_row(&row);
        let request = id(&row, "id");
        let (large, large_version) = large_of(side.conn(), account).await?;
        let inserted = sqlx::query(
            "INSERT INTO follows_in (followee_id, follower_id, id, reblogs, notify, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (followee_id, follower_id) DO NOTHING",
        )
        .bind(account.as_i64())
        .bind(requester.as_i64())
        .bind(stamp.id.as_i64())
        .bind(options.reblogs)
        .bind(options.notify)
        .bind(stamp.at_ms)
        .execute(side.conn())
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted > 0 {
            bump_account(side.conn(), account, "followers_count", 1).await?;
            side.emit(
                stamp.id,
                stamp.at_ms,
                EventKind::FollowRequestAuthorized {
                    follower_id: requester,
                    followee_id: account,
                },
            );
        }
        side.mirror(
            requester.shard(),
            Action::Authorized {
                follower: requester,
                followee: account,
                request,
                id: stamp.id,
                at: stamp.at_ms,
                reblogs: options.reblogs,
                notify: options.notify,
                large,
                large_version,
            },
        );
        self.commit(side).await?;
        Ok(true)
    }

    async fn reject_follow_request_once(&self, account: Id, requester: Id) -> StoreResult<bool> {
        let mut side = self.first_side(account.shard()).await?;
        lock_pair(side.conn(), account, requester).await?;
        let Some(request) =
            remove_request(side.conn(), RequestSide::In, requester, account, None).await?
        else {
            return Ok(false);
        };
        side.mirror(
            requester.shard(),
            Action::WithdrawOut {
                follower: requester,
                followee: account,
                request,
            },
        );
        self.commit(side).await?;
        Ok(true)
    }

    async fn set_large_once(&self, account: Id, large: bool) -> StoreResult<bool> {
        let mut side = self.first_side(account.shard()).await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET large = $1, large_version = large_version + 1 \
             WHERE id = $2 AND large <> $1 RETURNING large_version",
        )
        .bind(large)
        .bind(account.as_i64())
        .fetch_optional(side.conn())
        .await
        .map_err(map_err)?;
        let Some(version) = version else {
            return Ok(false);
        };
        // Every follow row pointing at it, found from this side.
        let followers: Vec<i64> =
            sqlx::query_scalar("SELECT follower_id FROM follows_in WHERE followee_id = $1")
                .bind(account.as_i64())
                .fetch_all(side.conn())
                .await
                .map_err(map_err)?;
        let mut by_shard: BTreeMap<ShardId, Vec<Id>> = BTreeMap::new();
        for f in followers.into_iter().map(Id::from_i64) {
            by_shard.entry(f.shard()).or_default().push(f);
        }
        for (shard, followers) in by_shard {
            for chunk in followers.chunks(LARGE_CHUNK) {
                side.mirror(
                    shard,
                    Action::LargeChanged {
                        account,
                        followers: chunk.to_vec(),
                        large,
                        version,
                    },
                );
            }
        }
        self.commit(side).await?;
        Ok(true)
    }

    async fn block_once(&self, account: Id, target: Id, stamp: Stamp) -> StoreResult<bool> {
        let mut side = self.first_side(account.shard()).await?;
        lock_pair(side.conn(), account, target).await?;
        let done = sqlx::query(
            "INSERT INTO blocks (account_id, target_id, id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, target_id) DO UPDATE SET id = EXCLUDED.id, \
             created_at = EXCLUDED.created_at, ended = FALSE WHERE blocks.ended",
        )
        .bind(account.as_i64())
        .bind(target.as_i64())
        .bind(stamp.id.as_i64())
        .bind(stamp.at_ms)
        .execute(side.conn())
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // This side's halves of the follows and requests both ways,
        // whatever their ids (a follow stamped after the block but
        // committed before it goes too), and their other halves by id. The
        // target's side also removes, when the block reaches it, what it
        // holds older than the block (a follow whose own op has not
        // reached this side yet; when it does, it finds the block and is
        // undone by id).
        let severed = sever_all(side.conn(), account, target).await?;
        side.mirror(
            target.shard(),
            Action::BlockedBy {
                account,
                target,
                id: stamp.id,
                at: stamp.at_ms,
            },
        );
        if severed.following.is_some() {
            side.mirror(
                target.shard(),
                Action::UnfollowIn {
                    follower: account,
                    followee: target,
                },
            );
        }
        if let Some(follow) = severed.followed_by {
            side.mirror(
                target.shard(),
                Action::UnfollowOut {
                    follower: target,
                    followee: account,
                    follow,
                },
            );
        }
        if let Some(request) = severed.requested {
            side.mirror(
                target.shard(),
                Action::WithdrawIn {
                    follower: account,
                    followee: target,
                    request,
                },
            );
        }
        if let Some(request) = severed.requested_by {
            side.mirror(
                target.shard(),
                Action::WithdrawOut {
                    follower: target,
                    followee: account,
                    request,
                },
            );
        }
        side.emit(
            stamp.id,
            stamp.at_ms,
            EventKind::Blocked {
                account_id: account,
                target_id: target,
            },
        );
        self.commit(side).await?;
        Ok(true)
    }

    async fn unblock_once(&self, account: Id, target: Id) -> StoreResult<bool> {
        let mut side = self.first_side(account.shard()).await?;
        lock_pair(side.conn(), account, target).await?;
        let done = sqlx::query(
            "UPDATE blocks SET ended = TRUE WHERE account_id = $1 AND target_id = $2 AND NOT ended",
        )
        .bind(account.as_i64())
        .bind(target.as_i64())
        .execute(side.conn())
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        side.mirror(target.shard(), Action::Unblocked { account, target });
        self.commit(side).await?;
        Ok(true)
    }
}

#[async_trait]
impl GraphStore for PgStore {
    async fn accounts(&self, ids: &[Id]) -> StoreResult<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1)");
        let sql = sql.as_str();
        let mut out = Vec::new();
        for (index, group) in self.group_ids(ids) {
            // Ids a replica does not have yet are asked of the primary.
            let rows = self
                .db_at(index)?
                .read_by_ids(group, |pool, ids| async move {
                    sqlx::query(sql).bind(ids).fetch_all(pool).await
                })
                .await?;
            out.extend(accounts_from_rows(&rows)?);
        }
        Ok(out)
    }

    async fn search_accounts(
        &self,
        prefix: &str,
        limit: usize,
        offset: usize,
    ) -> StoreResult<Vec<Account>> {
        if crate::names_nothing(prefix) {
            return Ok(vec![]);
        }
        let want = (limit + offset) as i64;
        let upper = format!("{prefix}\u{10ffff}");
        let upper = upper.as_str();
        let by_username = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key = $1");
        let by_username_prefix = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE username_key > $1 AND username_key < $2 ORDER BY username_key LIMIT $3"
        );
        let by_display_prefix = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE display_key >= $1 AND display_key < $2 ORDER BY display_key, id LIMIT $3"
        );
        let mut exact = Vec::new();
        let mut rest: Vec<Account> = Vec::new();
        // Accounts are spread over every database: the same three bounded
        // reads on each, merged below.
        for db in self.dbs() {
            let rows = db
                .read(|pool| sqlx::query(&by_username).bind(prefix).fetch_all(pool))
                .await?;
            exact.extend(accounts_from_rows(&rows)?);
            for sql in [&by_username_prefix, &by_display_prefix] {
                let rows = db
                    .read(|pool| {
                        sqlx::query(sql)
                            .bind(prefix)
                            .bind(upper)
                            .bind(want)
                            .fetch_all(pool)
                    })
                    .await?;
                rest.extend(accounts_from_rows(&rows)?);
            }
        }
        let mut seen: HashSet<Id> = exact.iter().map(|a| a.id).collect();
        rest.retain(|a| seen.insert(a.id));
        // The others by the name that matched (the smaller if both did),
        // then id: the order each query read them in ("C" collation: bytes,
        // as Rust compares), so the first `want` of the merge are exact and
        // pages by offset agree.
        let matched_name = |a: &Account| {
            let user = a.username.to_ascii_lowercase();
            let display = display_key(&a.display_name);
            match (user.starts_with(prefix), display.starts_with(prefix)) {
                (true, true) => user.min(display),
                (true, false) => user,
                _ => display,
            }
        };
        rest.sort_by_cached_key(|a| (matched_name(a), a.id));
        exact.extend(rest);
        Ok(exact.into_iter().skip(offset).take(limit).collect())
    }

    async fn follow(
        &self,
        follower: Id,
        followee: Id,
        options: FollowOptions,
        request: bool,
        stamp: Stamp,
    ) -> StoreResult<FollowOutcome> {
        retry_contention(|| self.follow_once(follower, followee, options, request, stamp)).await
    }

    async fn unfollow(&self, follower: Id, followee: Id, stamp: Stamp) -> StoreResult<bool> {
        retry_contention(|| self.unfollow_once(follower, followee, stamp)).await
    }

    async fn authorize_follow_request(
        &self,
        account: Id,
        requester: Id,
        stamp: Stamp,
    ) -> StoreResult<bool> {
        retry_contention(|| self.authorize_follow_request_once(account, requester, stamp)).await
    }

    async fn reject_follow_request(&self, account: Id, requester: Id) -> StoreResult<bool> {
        retry_contention(|| self.reject_follow_request_once(account, requester)).await
    }

    async fn count_follow_requests(&self, account: Id) -> StoreResult<u64> {
        let n: i64 = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query_scalar("SELECT COUNT(*) FROM follow_requests_in WHERE followee_id = $1")
                    .bind(account.as_i64())
                    .fetch_one(pool)
            })
            .await?;
        Ok(n as u64)
    }

    async fn follow_requests(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account.shard(),
            "SELECT id, follower_id FROM follow_requests_in WHERE followee_id = ",
            account,
            ("id", "follower_id"),
            page,
        )
        .await
    }

    async fn relations(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<RelationFlags>> {
        if targets.is_empty() {
            return Ok(vec![]);
        }
        // What hydration needs, in one statement on the viewer's database
        // (every home read that misses the readers' relations in memory
        // asks: seven round trips through `relationships` were most of a
        // home read's store time in the cluster).
        let candidates = raw(targets);
        let rows = self
            .reader(viewer.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT t.id AS other, f.reblogs AS reblogs, \
                       EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $1 \
                               AND b.target_id = t.id AND NOT b.ended) \
                       OR EXISTS (SELECT 1 FROM blocked_by x WHERE x.target_id = $1 \
                               AND x.account_id = t.id AND NOT x.ended) AS blocked, \
                       EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = $1 \
                               AND m.target_id = t.id) AS muting \
                     FROM (SELECT DISTINCT unnest($2::bigint[]) AS id) t \
                     LEFT JOIN follows_out f ON f.follower_id = $1 AND f.followee_id = t.id",
                )
                .bind(viewer.as_i64())
                .bind(&candidates)
                .fetch_all(pool)
            })
            .await?;
        let found: HashMap<Id, RelationFlags> = rows
            .iter()
            .map(|r| {
                let other = id(r, "other");
                let reblogs: Option<bool> = r.get("reblogs");
                let flags = RelationFlags {
                    id: other,
                    following: reblogs.is_some(),
                    showing_reblogs: reblogs == Some(true),
                    blocked: r.get("blocked"),
                    muting: r.get("muting"),
                };
                (other, flags)
            })
            .collect();
        Ok(targets
            .iter()
            .map(|t| found.get(t).copied().unwrap_or(RelationFlags::none(*t)))
            .collect())
    }

    async fn relationships(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<Relationship>> {
        if targets.is_empty() {
            return Ok(vec![]);
        }
        // Everything from the viewer's side, on the viewer's database.
        let following = self
            .options_among(
                viewer,
                "SELECT followee_id AS other, reblogs, notify FROM follows_out \
                 WHERE follower_id = $1 AND followee_id = ANY($2)",
                targets,
            )
            .await?;
        let set = |ids: Vec<Id>| ids.into_iter().collect::<HashSet<Id>>();
        let followed_by = set(self
            .ids_among(
                viewer,
                "SELECT follower_id FROM follows_in WHERE followee_id = $1 AND follower_id = ANY($2)",
                targets,
            )
            .await?);
        let blocking = set(self
            .ids_among(
                viewer,
                "SELECT target_id FROM blocks \
                 WHERE account_id = $1 AND target_id = ANY($2) AND NOT ended",
                targets,
            )
            .await?);
        let blocked_by = set(self
            .ids_among(
                viewer,
                "SELECT account_id FROM blocked_by \
                 WHERE target_id = $1 AND account_id = ANY($2) AND NOT ended",
                targets,
            )
            .await?);
        let muting = self.mutes_among(viewer, targets).await?;
        let requested = set(self
            .ids_among(
                viewer,
                "SELECT followee_id FROM follow_requests_out \
                 WHERE follower_id = $1 AND followee_id = ANY($2)",
                targets,
            )
            .await?);
        let requested_by = set(self
            .ids_among(
                viewer,
                "SELECT follower_id FROM follow_requests_in \
                 WHERE followee_id = $1 AND follower_id = ANY($2)",
                targets,
            )
            .await?);
        Ok(targets
            .iter()
            .map(|t| {
                let follow = following.get(t);
                Relationship {
                    id: *t,
                    following: follow.is_some(),
                    showing_reblogs: follow.is_some_and(|o| o.reblogs),
                    notifying: follow.is_some_and(|o| o.notify),
                    followed_by: followed_by.contains(t),
                    blocking: blocking.contains(t),
                    blocked_by: blocked_by.contains(t),
                    muting: muting.contains_key(t),
                    muting_notifications: muting.get(t).copied().unwrap_or(false),
                    requested: requested.contains(t),
                    requested_by: requested_by.contains(t),
                }
            })
            .collect())
    }

    async fn followers(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account.shard(),
            "SELECT id, follower_id FROM follows_in WHERE followee_id = ",
            account,
            ("id", "follower_id"),
            page,
        )
        .await
    }

    async fn following(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account.shard(),
            "SELECT id, followee_id FROM follows_out WHERE follower_id = ",
            account,
            ("id", "followee_id"),
            page,
        )
        .await
    }

    async fn follower_batch(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<(Id, FollowOptions)>> {
        let rows = sqlx::query(
            "SELECT follower_id, reblogs, notify FROM follows_in \
             WHERE followee_id = $1 AND follower_id > $2 ORDER BY follower_id LIMIT $3",
        )
        .bind(account.as_i64())
        .bind(after.map_or(i64::MIN, Id::as_i64))
        .bind(limit as i64)
        // Fan-out walks (they feed timeline writes): the primary, so a
        // follower who just followed is not missed.
        .fetch_all(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(rows
            .iter()
            .map(|r| (id(r, "follower_id"), options_from_row(r)))
            .collect())
    }

    async fn notified_followers(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>> {
        let found: Vec<i64> = sqlx::query_scalar(
            "SELECT follower_id FROM follows_in \
             WHERE followee_id = $1 AND notify AND follower_id > $2 \
             ORDER BY follower_id LIMIT $3",
        )
        .bind(account.as_i64())
        .bind(after.map_or(i64::MIN, Id::as_i64))
        .bind(limit as i64)
        // Feeds notification writes: the primary.
        .fetch_all(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(ids(found))
    }

    async fn notified_followers_before(
        &self,
        account: Id,
        before: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>> {
        // A follow's id carries the time it was made (on this side too: a
        // follow and an authorization crossing settle on the smaller id).
        // The partial index lists the notify follows; their ids are read
        // from the rows it points at.
        let found: Vec<i64> = sqlx::query_scalar(
            "SELECT follower_id FROM follows_in \
             WHERE followee_id = $1 AND notify AND follower_id > $2 AND id < $3 \
             ORDER BY follower_id LIMIT $4",
        )
        .bind(account.as_i64())
        .bind(after.map_or(i64::MIN, Id::as_i64))
        .bind(before.as_i64())
        .bind(limit as i64)
        // Feeds notification writes: the primary.
        .fetch_all(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(ids(found))
    }

    async fn followers_among(&self, account: Id, candidates: &[Id]) -> StoreResult<Vec<Id>> {
        self.ids_among(
            account,
            "SELECT follower_id FROM follows_in WHERE followee_id = $1 AND follower_id = ANY($2)",
            candidates,
        )
        .await
    }

    async fn followees(&self, account: Id, limit: usize) -> StoreResult<Vec<(Id, FollowOptions)>> {
        let rows = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT followee_id, reblogs, notify FROM follows_out WHERE follower_id = $1 \
                     ORDER BY id LIMIT $2",
                )
                .bind(account.as_i64())
                .bind(limit as i64)
                .fetch_all(pool)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| (id(r, "followee_id"), options_from_row(r)))
            .collect())
    }

    async fn large_followees(&self, account: Id) -> StoreResult<Vec<(Id, FollowOptions)>> {
        let rows = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT followee_id, reblogs, notify FROM follows_out \
                     WHERE follower_id = $1 AND followee_large",
                )
                .bind(account.as_i64())
                .fetch_all(pool)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| (id(r, "followee_id"), options_from_row(r)))
            .collect())
    }

    async fn is_large(&self, account: Id) -> StoreResult<bool> {
        let large: Option<bool> = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query_scalar("SELECT large FROM accounts WHERE id = $1")
                    .bind(account.as_i64())
                    .fetch_optional(pool)
            })
            .await?;
        Ok(large.unwrap_or(false))
    }

    async fn set_large(&self, account: Id, large: bool) -> StoreResult<bool> {
        retry_contention(|| self.set_large_once(account, large)).await
    }

    async fn block(&self, account: Id, target: Id, stamp: Stamp) -> StoreResult<bool> {
        retry_contention(|| self.block_once(account, target, stamp)).await
    }

    async fn unblock(&self, account: Id, target: Id) -> StoreResult<bool> {
        retry_contention(|| self.unblock_once(account, target)).await
    }

    async fn mute(
        &self,
        account: Id,
        target: Id,
        notifications: bool,
        stamp: Stamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mutes (account_id, target_id, id, notifications, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, target_id) \
             DO UPDATE SET notifications = EXCLUDED.notifications",
        )
        .bind(account.as_i64())
        .bind(target.as_i64())
        .bind(stamp.id.as_i64())
        .bind(notifications)
        .bind(stamp.at_ms)
        .execute(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn unmute(&self, account: Id, target: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM mutes WHERE account_id = $1 AND target_id = $2")
            .bind(account.as_i64())
            .bind(target.as_i64())
            .execute(self.writer(account.shard()))
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn blocks(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account.shard(),
            "SELECT id, target_id FROM blocks WHERE NOT ended AND account_id = ",
            account,
            ("id", "target_id"),
            page,
        )
        .await
    }

    async fn mutes(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account.shard(),
            "SELECT id, target_id FROM mutes WHERE account_id = ",
            account,
            ("id", "target_id"),
            page,
        )
        .await
    }

    async fn hidden_among(&self, viewer: Id, candidates: &[Id]) -> StoreResult<Hidden> {
        if candidates.is_empty() {
            return Ok(Hidden::default());
        }
        let mut blocked = self
            .ids_among(
                viewer,
                "SELECT target_id FROM blocks \
                 WHERE account_id = $1 AND target_id = ANY($2) AND NOT ended",
                candidates,
            )
            .await?;
        blocked.extend(
            self.ids_among(
                viewer,
                "SELECT account_id FROM blocked_by \
                 WHERE target_id = $1 AND account_id = ANY($2) AND NOT ended",
                candidates,
            )
            .await?,
        );
        blocked.sort_unstable();
        blocked.dedup();
        let mutes = self.mutes_among(viewer, candidates).await?;
        let mut muted: Vec<Id> = mutes.keys().copied().collect();
        muted.sort_unstable();
        let mut muted_notifications: Vec<Id> =
            mutes.iter().filter(|(_, n)| **n).map(|(t, _)| *t).collect();
        muted_notifications.sort_unstable();
        Ok(Hidden {
            blocked,
            muted,
            muted_notifications,
        })
    }
}
