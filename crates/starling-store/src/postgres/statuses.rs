//! [`StatusStore`] for PostgreSQL: statuses, boosts, replies, tags and
//! favourites.
//!
//! A status lives on its author's shard with everything the author owns
//! (idempotency keys, boosts made, favourites given). What other shards
//! keep about it travels through the mirror log: the parent's
//! `replies_count` and `status_replies` row, the original's `reblogs_count`
//! and `status_reblogs` row, the tag's `uses` and `status_tags` row, the
//! favourited status's `favourites_count` and `status_favourites` row.
//! Deleting a status reads its `status_reblogs` and `status_favourites`
//! (on its own shard) to know which boosts and favourites to remove on
//! their owners' shards.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Row};
use starling_domain::{EventKind, Id, Page, ShardId, Status, Visibility};

use super::apply::bump_account;
use super::mirror::Action;
use super::rows::{
    id, newest_first, push_page, raw, status_from_row, statuses_from_rows, visibility_code,
    STATUS_COLUMNS,
};
use super::{map_err, retry_contention, PgStore};
use crate::media::attachments_column;
use crate::social::{AccountStatusFilter, Created, Interactions, NewStatus, Stamp, StatusStore};
use crate::StoreResult;

/// How deep and how wide a thread read may walk.
const THREAD_DEPTH_MAX: usize = 64;
const THREAD_ROWS_MAX: usize = 4096;

impl PgStore {
    /// `(row id, other id)` pairs from `shard`'s database, paged on `col`.
    pub(crate) async fn pairs(
        &self,
        shard: ShardId,
        sql: &str,
        key: Id,
        cols: (&str, &str),
        page: &Page,
    ) -> StoreResult<Vec<(Id, Id)>> {
        let rows = self
            .reader(shard)
            .read(|pool| async move {
                let mut qb = QueryBuilder::<Postgres>::new(sql);
                qb.push_bind(key.as_i64());
                push_page(&mut qb, cols.0, page);
                qb.build().fetch_all(pool).await
            })
            .await?;
        let pairs = rows
            .iter()
            .map(|r| (id(r, cols.0), id(r, cols.1)))
            .collect();
        Ok(newest_first(pairs, page))
    }

    /// The statuses among `ids`, from whichever databases hold them (ids a
    /// replica does not have yet are asked of the primary).
    async fn statuses_by_id(&self, ids: &[Id]) -> StoreResult<Vec<Status>> {
        let sql = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id = ANY($1)");
        let sql = sql.as_str();
        let mut out = Vec::new();
        for (index, group) in self.group_ids(ids) {
            let rows = self
                .db_at(index)?
                .read_by_ids(group, |pool, ids| async move {
                    sqlx::query(sql).bind(ids).fetch_all(pool).await
                })
                .await?;
            out.extend(statuses_from_rows(&rows)?);
        }
        Ok(out)
    }
}

/// The writes of [`StatusStore`], one attempt each; the trait methods try
/// again when an attempt loses a deadlock ([`retry_contention`]).
impl PgStore {
    async fn create_status_once(&self, new: &NewStatus) -> StoreResult<Created> {
        let s = &new.status;
        let author = s.account_id;
        let mut side = self.first_side(author.shard()).await?;
        if let Some(key) = &new.idempotency {
            // Expired keys of this author go as new ones come.
            sqlx::query("DELETE FROM idempotency_keys WHERE account_id = $1 AND expires_at <= $2")
                .bind(author.as_i64())
                .bind(s.created_at_ms)
                .execute(side.conn())
                .await
                .map_err(map_err)?;
            // Claiming the key first makes a concurrent retry wait for this
            // transaction and then find the key live.
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (account_id, key, status_id, expires_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, key) DO NOTHING",
            )
            .bind(author.as_i64())
            .bind(&key.key)
            .bind(s.id.as_i64())
            .bind(key.expires_at_ms)
            .execute(side.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
            if claimed == 0 {
                let existing: i64 = sqlx::query_scalar(
                    "SELECT status_id FROM idempotency_keys WHERE account_id = $1 AND key = $2",
                )
                .bind(author.as_i64())
                .bind(&key.key)
                .fetch_one(side.conn())
                .await
                .map_err(map_err)?;
                return Ok(Created::Existing(Id::from_i64(existing)));
            }
        }
        if let Some(original) = s.reblog_of_id {
            let earlier: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM statuses WHERE account_id = $1 AND reblog_of_id = $2",
            )
            .bind(author.as_i64())
            .bind(original.as_i64())
            .fetch_optional(side.conn())
            .await
            .map_err(map_err)?;
            if let Some(existing) = earlier {
                return Ok(Created::Existing(Id::from_i64(existing)));
            }
        }
        // Each attachment must still be the author's unattached, processed
        // upload (on this same shard); the row lock taken here holds it
        // until the commit, and a refusal rolls the whole write back.
        for m in &s.media {
            let claimed = sqlx::query(
                "UPDATE media_attachments SET status_id = $1 WHERE id = $2 AND account_id = $3 \
                 AND status_id IS NULL AND state = 'ready'",
            )
            .bind(s.id.as_i64())
            .bind(m.id.as_i64())
            .bind(author.as_i64())
            .execute(side.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
            if claimed == 0 {
                return Ok(Created::MediaUnavailable(m.id));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO statuses (id, account_id, reblog_of_id, in_reply_to_id, \
             in_reply_to_account_id, text, content, spoiler_text, sensitive, visibility, \
             language, app_id, mentions, tags, created_at, media) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(s.id.as_i64())
        .bind(author.as_i64())
        .bind(s.reblog_of_id.map(Id::as_i64))
        .bind(s.in_reply_to_id.map(Id::as_i64))
        .bind(s.in_reply_to_account_id.map(Id::as_i64))
        .bind(&s.text)
        .bind(&s.content)
        .bind(&s.spoiler_text)
        .bind(s.sensitive)
        .bind(visibility_code(s.visibility))
        .bind(&s.language)
        .bind(s.app_id.map(Id::as_i64))
        .bind(raw(&s.mentions))
        .bind(&s.tags)
        .bind(s.created_at_ms)
        .bind(attachments_column(&s.media))
        .execute(side.conn())
        .await;
        if let Err(sqlx::Error::Database(db)) = &inserted {
            if db.constraint() == Some("statuses_one_boost") {
                // A concurrent boost of the same status by the same account
                // won; answer with it (from the primary: it just committed).
                drop(side);
                let existing = crate::with_primary_reads(
                    self.reblog_by(author, s.reblog_of_id.unwrap_or(s.id)),
                )
                .await?
                .map_or(s.id, |b| b.id);
                return Ok(Created::Existing(existing));
            }
        }
        inserted.map_err(map_err)?;
        sqlx::query(
            "UPDATE accounts SET statuses_count = statuses_count + $3, \
             last_status_at = GREATEST(last_status_at, $1) WHERE id = $2",
        )
        .bind(s.created_at_ms)
        .bind(author.as_i64())
        .bind(i64::from(crate::counts_for_author(s.visibility)))
        .execute(side.conn())
        .await
        .map_err(map_err)?;
        if let Some(parent) = s.in_reply_to_id {
            side.mirror(
                parent.shard(),
                Action::ReplyAdded {
                    parent,
                    reply: s.id,
                    counted: crate::listed(s.visibility),
                },
            );
        }
        if let Some(original) = s.reblog_of_id {
            side.mirror(
                original.shard(),
                Action::BoostAdded {
                    original,
                    boost: s.id,
                    account: author,
                    listed: crate::listed(s.visibility),
                },
            );
        }
        let public = s.visibility == Visibility::Public && !s.is_reblog();
        for tag in &s.tags {
            side.mirror(
                ShardId::for_key(tag),
                Action::Tagged {
                    tag: tag.clone(),
                    status: s.id,
                    public,
                },
            );
        }
        side.emit(
            s.id,
            s.created_at_ms,
            EventKind::StatusCreated {
                status_id: s.id,
                author_id: author,
            },
        );
        self.commit(side).await?;
        Ok(Created::New(Box::new(s.clone())))
    }

    async fn delete_status_once(
        &self,
        account_id: Id,
        id: Id,
        stamp: Stamp,
    ) -> StoreResult<Option<Status>> {
        // A status lives on its author's shard: anyone else's is not there.
        if id.shard() != account_id.shard() {
            return Ok(None);
        }
        let mut side = self.first_side(id.shard()).await?;
        let row = sqlx::query(&format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id = $1 AND s.account_id = $2 \
             FOR UPDATE"
        ))
        .bind(id.as_i64())
        .bind(account_id.as_i64())
        .fetch_optional(side.conn())
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let status = status_from_row(&row)?;

        // Its boosts and favourites, as this (the status's) shard knows them;
        // they go on their owners' shards.
        let boosts = sqlx::query(
            "DELETE FROM status_reblogs WHERE status_id = $1 RETURNING boost_id, account_id",
        )
        .bind(id.as_i64())
        .fetch_all(side.conn())
        .await
        .map_err(map_err)?;
        let mut boosts_by_shard: BTreeMap<ShardId, Vec<(Id, Id)>> = BTreeMap::new();
        for r in &boosts {
            let boost = super::rows::id(r, "boost_id");
            boosts_by_shard
                .entry(boost.shard())
                .or_default()
                .push((super::rows::id(r, "account_id"), boost));
        }
        let favouriters: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM status_favourites WHERE status_id = $1 RETURNING account_id",
        )
        .bind(id.as_i64())
        .fetch_all(side.conn())
        .await
        .map_err(map_err)?;
        let mut favourites_by_shard: BTreeMap<ShardId, Vec<Id>> = BTreeMap::new();
        for a in favouriters.into_iter().map(Id::from_i64) {
            favourites_by_shard.entry(a.shard()).or_default().push(a);
        }
        sqlx::query("DELETE FROM status_replies WHERE parent_id = $1")
            .bind(id.as_i64())
            .execute(side.conn())
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM statuses WHERE id = $1")
            .bind(id.as_i64())
            .execute(side.conn())
            .await
            .map_err(map_err)?;
        // Its uploads are unattached again, their grace period starting
        // now: a redraft may attach them; else the sweeper removes them.
        sqlx::query(
            "UPDATE media_attachments SET status_id = NULL, created_at = $1 WHERE status_id = $2",
        )
        .bind(stamp.at_ms)
        .bind(id.as_i64())
        .execute(side.conn())
        .await
        .map_err(map_err)?;
        if crate::counts_for_author(status.visibility) {
            bump_account(side.conn(), account_id, "statuses_count", -1).await?;
        }

        for (shard, boosts) in boosts_by_shard {
            side.mirror(shard, Action::BoostsGone { boosts });
        }
        for (shard, accounts) in favourites_by_shard {
            side.mirror(
                shard,
                Action::FavouritesGone {
                    status: id,
                    accounts,
                },
            );
        }
        if let Some(parent) = status.in_reply_to_id {
            side.mirror(parent.shard(), Action::ReplyRemoved { parent, reply: id });
        }
        if let Some(original) = status.reblog_of_id {
            side.mirror(
                original.shard(),
                Action::BoostRemoved {
                    original,
                    boost: id,
                },
            );
        }
        for tag in &status.tags {
            side.mirror(
                ShardId::for_key(tag),
                Action::Untagged {
                    tag: tag.clone(),
                    status: id,
                },
            );
        }
        side.emit(
            stamp.id,
            stamp.at_ms,
            EventKind::StatusDeleted {
                status_id: id,
                author_id: account_id,
                reblog_of_id: status.reblog_of_id,
                public: status.is_public_post(),
                tags: status.tags.clone(),
            },
        );
        self.commit(side).await?;
        Ok(Some(status))
    }

    async fn favourite_once(
        &self,
        account_id: Id,
        status_id: Id,
        stamp: Stamp,
    ) -> StoreResult<bool> {
        // The author, from the status's shard (before the first side, so no
        // connection is held while another is acquired); from the primary,
        // since the write depends on it.
        let author: Option<i64> =
            sqlx::query_scalar("SELECT account_id FROM statuses WHERE id = $1")
                .bind(status_id.as_i64())
                .fetch_optional(self.writer(status_id.shard()))
                .await
                .map_err(map_err)?;
        let Some(author) = author.map(Id::from_i64) else {
            return Ok(false);
        };
        let mut side = self.first_side(account_id.shard()).await?;
        let done = sqlx::query(
            "INSERT INTO favourites (id, account_id, status_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, status_id) DO NOTHING",
        )
        .bind(stamp.id.as_i64())
        .bind(account_id.as_i64())
        .bind(status_id.as_i64())
        .bind(stamp.at_ms)
        .execute(side.conn())
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        side.mirror(
            status_id.shard(),
            Action::FavouriteIn {
                account: account_id,
                status: status_id,
                id: stamp.id,
            },
        );
        side.emit(
            stamp.id,
            stamp.at_ms,
            EventKind::Favourited {
                account_id,
                status_id,
                author_id: author,
            },
        );
        self.commit(side).await?;
        Ok(true)
    }

    async fn unfavourite_once(&self, account_id: Id, status_id: Id) -> StoreResult<bool> {
        let mut side = self.first_side(account_id.shard()).await?;
        let done = sqlx::query("DELETE FROM favourites WHERE account_id = $1 AND status_id = $2")
            .bind(account_id.as_i64())
            .bind(status_id.as_i64())
            .execute(side.conn())
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        side.mirror(
            status_id.shard(),
            Action::UnfavouriteIn {
                account: account_id,
                status: status_id,
            },
        );
        self.commit(side).await?;
        Ok(true)
    }
}

#[async_trait]
impl StatusStore for PgStore {
    async fn create_status(&self, new: &NewStatus) -> StoreResult<Created> {
        retry_contention(|| self.create_status_once(new)).await
    }

    async fn status(&self, id: Id) -> StoreResult<Option<Status>> {
        let sql = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id = $1");
        let row = self
            .reader(id.shard())
            .read_found(|pool| sqlx::query(&sql).bind(id.as_i64()).fetch_optional(pool))
            .await?;
        row.as_ref().map(status_from_row).transpose()
    }

    async fn statuses(&self, ids: &[Id]) -> StoreResult<Vec<Status>> {
        self.statuses_by_id(ids).await
    }

    async fn delete_status(
        &self,
        account_id: Id,
        id: Id,
        stamp: Stamp,
    ) -> StoreResult<Option<Status>> {
        retry_contention(|| self.delete_status_once(account_id, id, stamp)).await
    }

    async fn reblog_by(&self, account_id: Id, status_id: Id) -> StoreResult<Option<Status>> {
        let sql = format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s \
             WHERE s.account_id = $1 AND s.reblog_of_id = $2"
        );
        let row = self
            .reader(account_id.shard())
            .read_found(|pool| {
                sqlx::query(&sql)
                    .bind(account_id.as_i64())
                    .bind(status_id.as_i64())
                    .fetch_optional(pool)
            })
            .await?;
        row.as_ref().map(status_from_row).transpose()
    }

    async fn interactions_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Interactions> {
        if ids.is_empty() {
            return Ok(Interactions::default());
        }
        // Both flags in one statement on the viewer's database (one round
        // trip where `favourited_among` and `reblogged_among` take two).
        let candidates = raw(ids);
        let rows = self
            .reader(account_id.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT t.id AS id, \
                       EXISTS (SELECT 1 FROM favourites f WHERE f.account_id = $1 \
                               AND f.status_id = t.id) AS favourited, \
                       EXISTS (SELECT 1 FROM statuses s WHERE s.account_id = $1 \
                               AND s.reblog_of_id = t.id) AS reblogged \
                     FROM (SELECT DISTINCT unnest($2::bigint[]) AS id) t",
                )
                .bind(account_id.as_i64())
                .bind(&candidates)
                .fetch_all(pool)
            })
            .await?;
        let mut out = Interactions::default();
        for r in &rows {
            let status = super::rows::id(r, "id");
            if r.get::<bool, _>("favourited") {
                out.favourited.push(status);
            }
            if r.get::<bool, _>("reblogged") {
                out.reblogged.push(status);
            }
        }
        Ok(out)
    }

    async fn reblogged_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ids = raw(ids);
        let found: Vec<i64> = self
            .reader(account_id.shard())
            .read(|pool| {
                sqlx::query_scalar(
                    "SELECT reblog_of_id FROM statuses \
                     WHERE account_id = $1 AND reblog_of_id = ANY($2)",
                )
                .bind(account_id.as_i64())
                .bind(&ids)
                .fetch_all(pool)
            })
            .await?;
        Ok(super::rows::ids(found))
    }

    async fn descendants(&self, id: Id, limit: usize) -> StoreResult<Vec<Status>> {
        // Each `parent -> reply` row is on its parent's shard: walk the
        // thread level by level, one query per database per level.
        let mut found: Vec<Id> = Vec::new();
        let mut seen: HashSet<Id> = HashSet::new();
        let mut frontier = vec![id];
        for _ in 0..THREAD_DEPTH_MAX {
            if frontier.is_empty() || found.len() >= THREAD_ROWS_MAX {
                break;
            }
            let mut next = Vec::new();
            for (index, parents) in self.group_ids(&frontier) {
                let room = THREAD_ROWS_MAX.saturating_sub(found.len() + next.len());
                if room == 0 {
                    break;
                }
                let parents = &parents;
                let replies: Vec<i64> = self
                    .db_at(index)?
                    .read(|pool| {
                        sqlx::query_scalar(
                            "SELECT reply_id FROM status_replies WHERE parent_id = ANY($1) \
                             ORDER BY reply_id LIMIT $2",
                        )
                        .bind(parents)
                        .bind(room as i64)
                        .fetch_all(pool)
                    })
                    .await?;
                next.extend(
                    replies
                        .into_iter()
                        .map(Id::from_i64)
                        .filter(|r| seen.insert(*r)),
                );
            }
            found.extend(&next);
            frontier = next;
        }
        let mut statuses = self.statuses_by_id(&found).await?;
        statuses.sort_unstable_by_key(|s| s.id);
        statuses.truncate(limit);
        Ok(statuses)
    }

    async fn account_statuses(
        &self,
        account_id: Id,
        filter: &AccountStatusFilter,
        page: &Page,
    ) -> StoreResult<Vec<Status>> {
        if crate::names_nothing(filter.tagged.as_deref().unwrap_or("")) {
            return Ok(vec![]);
        }
        let rows = self
            .reader(account_id.shard())
            .read(|pool| async move {
                let mut qb = QueryBuilder::<Postgres>::new(format!(
                    "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.account_id = "
                ));
                qb.push_bind(account_id.as_i64());
                qb.push(" AND (s.visibility <= ")
                    .push_bind(visibility_code(filter.up_to));
                if let Some(viewer) = filter.mentioning {
                    qb.push(" OR ")
                        .push_bind(viewer.as_i64())
                        .push(" = ANY(s.mentions)");
                }
                qb.push(")");
                if filter.exclude_replies {
                    qb.push(
                        " AND (s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id)",
                    );
                }
                if filter.exclude_reblogs {
                    qb.push(" AND s.reblog_of_id IS NULL");
                }
                if filter.only_media {
                    qb.push(" AND s.media <> ''");
                }
                if let Some(tag) = &filter.tagged {
                    qb.push(" AND ")
                        .push_bind(tag.clone())
                        .push(" = ANY(s.tags)");
                }
                push_page(&mut qb, "s.id", page);
                qb.build().fetch_all(pool).await
            })
            .await?;
        Ok(newest_first(statuses_from_rows(&rows)?, page))
    }

    async fn public_statuses(&self, page: &Page) -> StoreResult<Vec<Status>> {
        // The same terms as the partial index `statuses_public`.
        let sql = format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.visibility = 0 \
             AND s.reblog_of_id IS NULL \
             AND (s.in_reply_to_account_id IS NULL OR s.in_reply_to_account_id = s.account_id)"
        );
        let sql = sql.as_str();
        let mut out = Vec::new();
        // Every database holds public statuses: a page from each, merged.
        for db in self.dbs() {
            let rows = db
                .read(|pool| async move {
                    let mut qb = QueryBuilder::<Postgres>::new(sql);
                    push_page(&mut qb, "s.id", page);
                    qb.build().fetch_all(pool).await
                })
                .await?;
            out.extend(statuses_from_rows(&rows)?);
        }
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        Ok(page.select(out, |s| s.id))
    }

    async fn tag_statuses(&self, tag: &str, page: &Page) -> StoreResult<Vec<Status>> {
        if crate::names_nothing(tag) {
            return Ok(vec![]);
        }
        // The tag's rows are on the tag's shard, the statuses on their
        // authors': page the rows, then fetch the statuses.
        let rows = self
            .reader(ShardId::for_key(tag))
            .read(|pool| async move {
                let mut qb =
                    QueryBuilder::<Postgres>::new("SELECT status_id FROM status_tags WHERE tag = ");
                qb.push_bind(tag.to_owned());
                push_page(&mut qb, "status_id", page);
                qb.build().fetch_all(pool).await
            })
            .await?;
        let ids: Vec<Id> = newest_first(rows.iter().map(|r| id(r, "status_id")).collect(), page);
        let mut by_id: HashMap<Id, Status> = self
            .statuses_by_id(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
    }

    async fn statuses_by_authors(&self, authors: &[Id], page: &Page) -> StoreResult<Vec<Status>> {
        // One indexed range read per author, each bounded by the page.
        let sql = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.account_id = ");
        let sql = sql.as_str();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for author in authors {
            if !seen.insert(*author) {
                continue;
            }
            let author = *author;
            let rows = self
                .reader(author.shard())
                .read(|pool| async move {
                    let mut qb = QueryBuilder::<Postgres>::new(sql);
                    qb.push_bind(author.as_i64());
                    push_page(&mut qb, "s.id", page);
                    qb.build().fetch_all(pool).await
                })
                .await?;
            out.extend(statuses_from_rows(&rows)?);
        }
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        Ok(page.select(out, |s| s.id))
    }

    async fn recent_status_ids(&self, author: Id, limit: usize) -> StoreResult<Vec<Id>> {
        let ids: Vec<i64> = self
            .reader(author.shard())
            .read(|pool| async move {
                sqlx::query_scalar(
                    "SELECT id FROM statuses WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(author.as_i64())
                .bind(limit as i64)
                .fetch_all(pool)
                .await
            })
            .await?;
        Ok(ids.into_iter().map(Id::from_i64).collect())
    }

    async fn search_tags(
        &self,
        prefix: &str,
        limit: usize,
        offset: usize,
    ) -> StoreResult<Vec<String>> {
        if crate::names_nothing(prefix) {
            return Ok(vec![]);
        }
        let want = (limit + offset) as i64;
        let upper = format!("{prefix}\u{10ffff}");
        let upper = upper.as_str();
        let mut names = Vec::new();
        let mut rest = Vec::new();
        // A tag's row is on its shard; prefixes are spread everywhere.
        for db in self.dbs() {
            let exact: Option<String> = db
                .read(|pool| {
                    sqlx::query_scalar("SELECT name FROM tags WHERE name = $1 AND uses > 0")
                        .bind(prefix)
                        .fetch_optional(pool)
                })
                .await?;
            names.extend(exact);
            let found: Vec<String> = db
                .read(|pool| {
                    sqlx::query_scalar(
                        "SELECT name FROM tags WHERE name > $1 AND name < $2 AND uses > 0 \
                         ORDER BY name LIMIT $3",
                    )
                    .bind(prefix)
                    .bind(upper)
                    .bind(want)
                    .fetch_all(pool)
                })
                .await?;
            rest.extend(found);
        }
        rest.sort_unstable();
        rest.retain(|n| !names.contains(n));
        names.extend(rest);
        Ok(names.into_iter().skip(offset).take(limit).collect())
    }

    async fn favourite(&self, account_id: Id, status_id: Id, stamp: Stamp) -> StoreResult<bool> {
        retry_contention(|| self.favourite_once(account_id, status_id, stamp)).await
    }

    async fn unfavourite(&self, account_id: Id, status_id: Id) -> StoreResult<bool> {
        retry_contention(|| self.unfavourite_once(account_id, status_id)).await
    }

    async fn favourited_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ids = raw(ids);
        let found: Vec<i64> = self
            .reader(account_id.shard())
            .read(|pool| {
                sqlx::query_scalar(
                    "SELECT status_id FROM favourites \
                     WHERE account_id = $1 AND status_id = ANY($2)",
                )
                .bind(account_id.as_i64())
                .bind(&ids)
                .fetch_all(pool)
            })
            .await?;
        Ok(super::rows::ids(found))
    }

    async fn favourited_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            status_id.shard(),
            "SELECT favourite_id, account_id FROM status_favourites WHERE status_id = ",
            status_id,
            ("favourite_id", "account_id"),
            page,
        )
        .await
    }

    async fn reblogged_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            status_id.shard(),
            // Only boosts anyone may see (as Mastodon lists them).
            "SELECT boost_id, account_id FROM status_reblogs WHERE listed AND status_id = ",
            status_id,
            ("boost_id", "account_id"),
            page,
        )
        .await
    }

    async fn favourites(&self, account_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account_id.shard(),
            "SELECT id, status_id FROM favourites WHERE account_id = ",
            account_id,
            ("id", "status_id"),
            page,
        )
        .await
    }
}
