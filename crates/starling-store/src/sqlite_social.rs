//! The SQLite adapter's social half: statuses, the follow graph, blocks and
//! mutes, favourites, notifications, markers and the outbox.
//!
//! Every shard lives in the one file, so a write that the distributed shape
//! splits across shards (a follow's two sides, a favourite and its counter)
//! is one transaction on the writer connection here, with its event in the
//! outbox table of the same transaction.
//!
//! Lists are read through an index ending in the id they are paged on, with
//! the page's bounds and limit in the query ([`push_page`]), so a page costs
//! its size. Queries with a variable number of ids go through
//! [`QueryBuilder`] in chunks of [`CHUNK`] ids.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use starling_domain::{
    Account, Event, EventKind, FollowOptions, Id, Notification, NotificationType, Page,
    Relationship, ShardId, Status, Visibility,
};

use crate::media::{attachments_column, attachments_from_column};
use crate::social::{
    AccountStatusFilter, Created, FollowOutcome, GraphStore, Hidden, Interactions, Marker,
    NewStatus, NotificationFilter, NotificationStore, OutboxEntry, OutboxStore, RelationFlags,
    Stamp, StatusStore,
};
use crate::sqlite::fast;
use crate::sqlite::{
    account_from_fast, account_from_row, corrupt, map_err, SqliteStore, ACCOUNT_COLUMNS,
};
use crate::{StoreError, StoreResult};

/// How deep and how wide a thread read may walk.
const THREAD_DEPTH_MAX: i64 = 64;
const THREAD_ROWS_MAX: i64 = 4096;

const STATUS_COLUMNS: &str = "s.id, s.account_id, s.reblog_of_id, s.in_reply_to_id, \
     s.in_reply_to_account_id, s.text, s.content, s.spoiler_text, s.sensitive, s.visibility, \
     s.language, s.app_id, s.mentions, s.tags, s.created_at, s.replies_count, s.reblogs_count, \
     s.favourites_count, s.media";

fn visibility_code(v: Visibility) -> i64 {
    i64::from(v.rank())
}

fn visibility_from(code: i64) -> StoreResult<Visibility> {
    match code {
        0 => Ok(Visibility::Public),
        1 => Ok(Visibility::Unlisted),
        2 => Ok(Visibility::Private),
        3 => Ok(Visibility::Direct),
        _ => Err(corrupt("statuses.visibility")),
    }
}

fn opt_id(row: &SqliteRow, col: &str) -> Option<Id> {
    row.get::<Option<i64>, _>(col).map(Id::from_i64)
}

fn id(row: &SqliteRow, col: &str) -> Id {
    Id::from_i64(row.get(col))
}

fn status_from_row(row: &SqliteRow) -> StoreResult<Status> {
    let mentions: String = row.get("mentions");
    let mentions = mentions
        .split_ascii_whitespace()
        .map(|m| m.parse::<i64>().map(Id::from_i64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt("statuses.mentions"))?;
    let tags: String = row.get("tags");
    Ok(Status {
        id: id(row, "id"),
        account_id: id(row, "account_id"),
        reblog_of_id: opt_id(row, "reblog_of_id"),
        in_reply_to_id: opt_id(row, "in_reply_to_id"),
        in_reply_to_account_id: opt_id(row, "in_reply_to_account_id"),
        text: row.get("text"),
        content: row.get("content"),
        spoiler_text: row.get("spoiler_text"),
        sensitive: row.get("sensitive"),
        visibility: visibility_from(row.get("visibility"))?,
        language: row.get("language"),
        app_id: opt_id(row, "app_id"),
        mentions,
        tags: tags.split_ascii_whitespace().map(str::to_owned).collect(),
        created_at_ms: row.get("created_at"),
        replies_count: row.get("replies_count"),
        reblogs_count: row.get("reblogs_count"),
        favourites_count: row.get("favourites_count"),
        media: attachments_from_column(row.get("media"))?,
    })
}

fn statuses_from_rows(rows: &[SqliteRow]) -> StoreResult<Vec<Status>> {
    rows.iter().map(status_from_row).collect()
}

fn notification_from_row(row: &SqliteRow) -> StoreResult<Notification> {
    let kind: String = row.get("kind");
    Ok(Notification {
        id: id(row, "id"),
        account_id: id(row, "account_id"),
        kind: NotificationType::parse(&kind).ok_or_else(|| corrupt("notifications.kind"))?,
        from_account_id: id(row, "from_account_id"),
        status_id: opt_id(row, "status_id"),
        created_at_ms: row.get("created_at"),
        event_id: id(row, "event_id"),
    })
}

fn options_from_row(row: &SqliteRow) -> FollowOptions {
    FollowOptions {
        reblogs: row.get("reblogs"),
        notify: row.get("notify"),
    }
}

/// Appends `AND col < max AND col > lower ORDER BY col LIMIT n` for `page`.
/// With `min_id` the order is ascending (the items just above it); callers
/// reverse those rows with [`newest_first`].
fn push_page(qb: &mut QueryBuilder<'_, Sqlite>, col: &str, page: &Page) {
    if let Some(max) = page.max_id {
        qb.push(format_args!(" AND {col} < "))
            .push_bind(max.as_i64());
    }
    if let Some(lower) = page.lower() {
        qb.push(format_args!(" AND {col} > "))
            .push_bind(lower.as_i64());
    }
    let order = if page.ascending() { "ASC" } else { "DESC" };
    qb.push(format_args!(" ORDER BY {col} {order} LIMIT "))
        .push_bind(page.limit as i64);
}

fn newest_first<T>(mut items: Vec<T>, page: &Page) -> Vec<T> {
    if page.ascending() {
        items.reverse();
    }
    items
}

/// An outbox row's text: the event `kind` with id `id` at `at_ms`.
fn outbox_row(id: Id, at_ms: i64, kind: EventKind) -> String {
    Event {
        id,
        created_at_ms: at_ms,
        kind,
    }
    .to_json()
}

/// Stores `event` in the outbox of the transaction `conn` is in.
pub(crate) async fn emit(
    conn: &mut SqliteConnection,
    id: Id,
    at_ms: i64,
    kind: EventKind,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO outbox (event) VALUES (?)")
        .bind(outbox_row(id, at_ms, kind))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The tables whose counters [`bump`] adjusts.
#[derive(Clone, Copy)]
enum Counted {
    Accounts,
    Statuses,
}

/// Adds `delta` to a counter of the row `id`, never below zero.
async fn bump(
    conn: &mut SqliteConnection,
    table: Counted,
    id: Id,
    column: &str,
    delta: i64,
) -> StoreResult<()> {
    let table = match table {
        Counted::Accounts => "accounts",
        Counted::Statuses => "statuses",
    };
    sqlx::query(&format!(
        "UPDATE {table} SET {column} = MAX({column} + ?, 0) WHERE id = ?"
    ))
    .bind(delta)
    .bind(id.as_i64())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn bump_account(
    conn: &mut SqliteConnection,
    account: Id,
    column: &str,
    delta: i64,
) -> StoreResult<()> {
    bump(conn, Counted::Accounts, account, column, delta).await
}

async fn bump_status(
    conn: &mut SqliteConnection,
    status: Id,
    column: &str,
    delta: i64,
) -> StoreResult<()> {
    bump(conn, Counted::Statuses, status, column, delta).await
}

/// Ends `follower -> followee` if it exists, fixing both counters.
async fn remove_follow(
    conn: &mut SqliteConnection,
    follower: Id,
    followee: Id,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?")
        .bind(follower.as_i64())
        .bind(followee.as_i64())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    bump_account(conn, follower, "following_count", -1).await?;
    bump_account(conn, followee, "followers_count", -1).await?;
    Ok(true)
}

/// Whether `a` blocks `b` or `b` blocks `a`.
async fn blocked_between(conn: &mut SqliteConnection, a: Id, b: Id) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (account_id = ?1 AND target_id = ?2) \
                                               OR (account_id = ?2 AND target_id = ?1))",
    )
    .bind(a.as_i64())
    .bind(b.as_i64())
    .fetch_one(conn)
    .await
    .map_err(map_err)
}

/// Creates `follower -> followee` (row id `stamp.id`) with its counters and
/// event: `Followed`, or `FollowRequestAuthorized` when the followee
/// accepted a request.
async fn insert_follow(
    conn: &mut SqliteConnection,
    follower: Id,
    followee: Id,
    options: FollowOptions,
    stamp: Stamp,
    accepted_request: bool,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO follows (id, follower_id, followee_id, reblogs, notify, followee_large, \
         created_at) VALUES (?, ?, ?, ?, ?, \
         COALESCE((SELECT large FROM accounts WHERE id = ?), 0), ?)",
    )
    .bind(stamp.id.as_i64())
    .bind(follower.as_i64())
    .bind(followee.as_i64())
    .bind(options.reblogs)
    .bind(options.notify)
    .bind(followee.as_i64())
    .bind(stamp.at_ms)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    bump_account(conn, follower, "following_count", 1).await?;
    bump_account(conn, followee, "followers_count", 1).await?;
    let kind = if accepted_request {
        EventKind::FollowRequestAuthorized {
            follower_id: follower,
            followee_id: followee,
        }
    } else {
        EventKind::Followed {
            follower_id: follower,
            followee_id: followee,
        }
    };
    emit(conn, stamp.id, stamp.at_ms, kind).await
}

/// A bound value of the read path.
type Param = rusqlite::types::Value;

fn int(v: i64) -> Param {
    Param::Integer(v)
}

/// Appends `AND col < max AND col > lower ORDER BY col LIMIT ?` for `page`
/// to `sql` and its values to `params` (the read path's [`push_page`]).
fn page_sql(sql: &mut String, params: &mut Vec<Param>, col: &str, page: &Page) {
    if let Some(max) = page.max_id {
        sql.push_str(&format!(" AND {col} < ?"));
        params.push(int(max.as_i64()));
    }
    if let Some(lower) = page.lower() {
        sql.push_str(&format!(" AND {col} > ?"));
        params.push(int(lower.as_i64()));
    }
    let order = if page.ascending() { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY {col} {order} LIMIT ?"));
    params.push(int(page.limit as i64));
}

/// [`status_from_row`] for the read path's rows.
fn status_from_fast(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Status>> {
    let mentions: String = row.get("mentions")?;
    let Ok(mentions) = mentions
        .split_ascii_whitespace()
        .map(|m| m.parse::<i64>().map(Id::from_i64))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Ok(Err(corrupt("statuses.mentions")));
    };
    let tags: String = row.get("tags")?;
    let Ok(visibility) = visibility_from(row.get("visibility")?) else {
        return Ok(Err(corrupt("statuses.visibility")));
    };
    let opt = |col: &str| -> rusqlite::Result<Option<Id>> {
        Ok(row.get::<_, Option<i64>>(col)?.map(Id::from_i64))
    };
    Ok(Ok(Status {
        id: Id::from_i64(row.get("id")?),
        account_id: Id::from_i64(row.get("account_id")?),
        reblog_of_id: opt("reblog_of_id")?,
        in_reply_to_id: opt("in_reply_to_id")?,
        in_reply_to_account_id: opt("in_reply_to_account_id")?,
        text: row.get("text")?,
        content: row.get("content")?,
        spoiler_text: row.get("spoiler_text")?,
        sensitive: row.get("sensitive")?,
        visibility,
        language: row.get("language")?,
        app_id: opt("app_id")?,
        mentions,
        tags: tags.split_ascii_whitespace().map(str::to_owned).collect(),
        created_at_ms: row.get("created_at")?,
        replies_count: row.get("replies_count")?,
        reblogs_count: row.get("reblogs_count")?,
        favourites_count: row.get("favourites_count")?,
        media: match attachments_from_column(&row.get::<_, String>("media")?) {
            Ok(media) => media,
            Err(e) => return Ok(Err(e)),
        },
    }))
}

fn options_from_fast(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<FollowOptions> {
    Ok(FollowOptions {
        reblogs: row.get(first)?,
        notify: row.get(first + 1)?,
    })
}

/// The first column of a row, as an id.
fn id0(row: &rusqlite::Row<'_>) -> rusqlite::Result<Id> {
    Ok(Id::from_i64(row.get(0)?))
}

impl SqliteStore {
    /// Runs `sql` with `params` on the read path, mapping each row.
    fn read<T>(
        &self,
        shard: ShardId,
        sql: &str,
        params: &[Param],
        mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        self.db(shard).fast.with(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(map(row)?);
            }
            Ok(out)
        })
    }

    /// Runs `head` + `IN (ids)` (`head` binding `fixed` first) in chunks,
    /// each list padded to a fixed length so its text stays prepared, and
    /// maps every row. Ids are deduplicated first.
    fn rows_in<T>(
        &self,
        shard_key: Id,
        head: &str,
        fixed: &[i64],
        ids: &[Id],
        mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let unique = fast::unique(ids);
        if unique.is_empty() {
            return Ok(vec![]);
        }
        self.db(shard_key.shard()).fast.with(|c| {
            let mut out = Vec::new();
            for chunk in unique.chunks(fast::CHUNK) {
                let (list, len) = fast::in_list(chunk.len());
                let mut stmt = c.prepare_cached(&format!("{head}{list}"))?;
                let params = fixed.iter().copied().chain(fast::padded(chunk, len));
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(row) = rows.next()? {
                    out.push(map(row)?);
                }
            }
            Ok(out)
        })
    }

    /// Runs `parts` joined by `UNION ALL` over `t`, the ids as a table, with
    /// `?1` bound to `key`; each part selects `(kind, id, flag, flag)`.
    /// The ids are deduplicated and chunked, each chunk padded to a fixed
    /// length so the statement's text repeats.
    fn facts_among(
        &self,
        key: Id,
        parts: &[&str],
        ids: &[Id],
    ) -> StoreResult<Vec<(i64, Id, bool, bool)>> {
        let unique = fast::unique(ids);
        if unique.is_empty() {
            return Ok(vec![]);
        }
        self.db(key.shard()).fast.with(|c| {
            let mut out = Vec::new();
            for chunk in unique.chunks(fast::CHUNK) {
                let (_, len) = fast::in_list(chunk.len());
                let mut sql = String::from("WITH t(id) AS (VALUES ");
                for i in 0..len {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("(?{})", i + 2));
                }
                sql.push_str(") ");
                sql.push_str(&parts.join(" UNION ALL "));
                let mut stmt = c.prepare_cached(&sql)?;
                let params = std::iter::once(key.as_i64()).chain(fast::padded(chunk, len));
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    out.push((r.get(0)?, Id::from_i64(r.get(1)?), r.get(2)?, r.get(3)?));
                }
            }
            Ok(out)
        })
    }

    /// [`Self::facts_among`] for parts most keys have no rows for: the
    /// first statement runs the `always` parts and asks both `guarded`
    /// conditions (SQL booleans on `?1` and `t`, one index seek each); the
    /// parts of a guard that holds run in a second statement only then.
    /// Probing a list per id costs an ephemeral index per part even when
    /// the key has nothing there.
    fn facts_among_guarded(
        &self,
        key: Id,
        always: &[&str],
        guarded: [(&str, &[&str]); 2],
        ids: &[Id],
    ) -> StoreResult<Vec<(i64, Id, bool, bool)>> {
        /// The kind of the row that carries the guards' answers.
        const GUARDS: i64 = -1;
        let asks = format!("SELECT {GUARDS}, 0, {}, {}", guarded[0].0, guarded[1].0);
        let mut parts = always.to_vec();
        parts.push(&asks);
        let mut rows = self.facts_among(key, &parts, ids)?;
        let (first, second) = rows
            .iter()
            .filter(|(kind, ..)| *kind == GUARDS)
            .fold((false, false), |(a, b), (_, _, x, y)| (a || *x, b || *y));
        rows.retain(|(kind, ..)| *kind != GUARDS);
        let mut more = Vec::new();
        for (holds, (_, parts)) in [first, second].into_iter().zip(guarded) {
            if holds {
                more.extend_from_slice(parts);
            }
        }
        if !more.is_empty() {
            rows.extend(self.facts_among(key, &more, ids)?);
        }
        Ok(rows)
    }

    /// The ids in the first column of the rows `head` + `IN (ids)` selects,
    /// `head` having one `?` for `key`.
    fn ids_in(&self, shard_key: Id, head: &str, key: Id, ids: &[Id]) -> StoreResult<Vec<Id>> {
        self.rows_in(shard_key, head, &[key.as_i64()], ids, id0)
    }

    /// `(row id, other id)` pairs, paged on the row id: `sql` selects
    /// `id, other` and ends in a condition with one `?` for `key`.
    async fn pairs(
        &self,
        shard_key: Id,
        sql: &str,
        key: Id,
        page: &Page,
    ) -> StoreResult<Vec<(Id, Id)>> {
        let mut sql = sql.to_owned();
        let mut params = vec![int(key.as_i64())];
        page_sql(&mut sql, &mut params, "id", page);
        let pairs = self.read(shard_key.shard(), &sql, &params, |r| {
            Ok((Id::from_i64(r.get(0)?), Id::from_i64(r.get(1)?)))
        })?;
        Ok(newest_first(pairs, page))
    }

    /// Statuses selected by `sql` (which ends in a condition, with one `?`
    /// bound to `key`), paged on `s.id`.
    fn status_page(
        &self,
        shard_key: Id,
        sql: &str,
        key: Option<Id>,
        page: &Page,
    ) -> StoreResult<Vec<Status>> {
        let mut sql = sql.to_owned();
        let mut params: Vec<Param> = key.map(|k| int(k.as_i64())).into_iter().collect();
        page_sql(&mut sql, &mut params, "s.id", page);
        self.statuses_where(shard_key.shard(), &sql, &params, page)
    }

    /// The statuses `sql` selects, newest first for `page`.
    fn statuses_where(
        &self,
        shard: ShardId,
        sql: &str,
        params: &[Param],
        page: &Page,
    ) -> StoreResult<Vec<Status>> {
        let rows = self.read(shard, sql, params, status_from_fast)?;
        let list = rows.into_iter().collect::<StoreResult<Vec<_>>>()?;
        Ok(newest_first(list, page))
    }
}

#[async_trait]
impl StatusStore for SqliteStore {
    async fn create_status(&self, new: &NewStatus) -> StoreResult<Created> {
        // The post path: one transaction on this thread (see
        // `sqlite/write.rs`), its statements prepared once.
        use rusqlite::OptionalExtension;
        let s = &new.status;
        let event = outbox_row(
            s.id,
            s.created_at_ms,
            EventKind::StatusCreated {
                status_id: s.id,
                author_id: s.account_id,
            },
        );
        let mentions: Vec<String> = s.mentions.iter().map(Id::to_string).collect();
        let (mentions, tags) = (mentions.join(" "), s.tags.join(" "));
        let media = attachments_column(&s.media);
        self.db(s.account_id.shard())
            .write(|tx| {
                let author = s.account_id.as_i64();
                if let Some(key) = &new.idempotency {
                    let live: Option<i64> = tx
                        .prepare_cached(
                            "SELECT status_id FROM idempotency_keys \
                             WHERE account_id = ? AND key = ? AND expires_at > ?",
                        )?
                        .query_row(rusqlite::params![author, key.key, s.created_at_ms], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    if let Some(existing) = live {
                        return Ok(Created::Existing(Id::from_i64(existing)));
                    }
                }
                if let Some(original) = s.reblog_of_id {
                    let earlier: Option<i64> = tx
                        .prepare_cached(
                            "SELECT id FROM statuses WHERE account_id = ? AND reblog_of_id = ?",
                        )?
                        .query_row([author, original.as_i64()], |r| r.get(0))
                        .optional()?;
                    if let Some(existing) = earlier {
                        return Ok(Created::Existing(Id::from_i64(existing)));
                    }
                }
                // Each attachment must still be the author's unattached,
                // processed upload; the write lock held since BEGIN
                // IMMEDIATE keeps it so until the commit.
                for m in &s.media {
                    let free: Option<i64> = tx
                        .prepare_cached(
                            "SELECT id FROM media_attachments WHERE id = ? AND account_id = ? \
                             AND status_id IS NULL AND state = 'ready'",
                        )?
                        .query_row([m.id.as_i64(), author], |r| r.get(0))
                        .optional()?;
                    if free.is_none() {
                        return Ok(Created::MediaUnavailable(m.id));
                    }
                }
                for m in &s.media {
                    tx.prepare_cached("UPDATE media_attachments SET status_id = ? WHERE id = ?")?
                        .execute([s.id.as_i64(), m.id.as_i64()])?;
                }
                tx.prepare_cached(
                    "INSERT INTO statuses (id, account_id, reblog_of_id, in_reply_to_id, \
                     in_reply_to_account_id, text, content, spoiler_text, sensitive, visibility, \
                     language, app_id, mentions, tags, created_at, media) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![
                    s.id.as_i64(),
                    author,
                    s.reblog_of_id.map(Id::as_i64),
                    s.in_reply_to_id.map(Id::as_i64),
                    s.in_reply_to_account_id.map(Id::as_i64),
                    s.text,
                    s.content,
                    s.spoiler_text,
                    s.sensitive,
                    visibility_code(s.visibility),
                    s.language,
                    s.app_id.map(Id::as_i64),
                    mentions,
                    tags,
                    s.created_at_ms,
                    media,
                ])?;
                tx.prepare_cached(
                    "UPDATE accounts SET statuses_count = statuses_count + ?, \
                     last_status_at = MAX(COALESCE(last_status_at, 0), ?) WHERE id = ?",
                )?
                .execute([
                    i64::from(crate::counts_for_author(s.visibility)),
                    s.created_at_ms,
                    author,
                ])?;
                let bump = |column: &str, id: Id| {
                    tx.prepare_cached(&format!(
                        "UPDATE statuses SET {column} = MAX({column} + 1, 0) WHERE id = ?"
                    ))?
                    .execute([id.as_i64()])
                };
                if let Some(parent) = s.in_reply_to_id {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO status_replies (parent_id, reply_id) VALUES (?, ?)",
                    )?
                    .execute([parent.as_i64(), s.id.as_i64()])?;
                    if crate::listed(s.visibility) {
                        bump("replies_count", parent)?;
                    }
                }
                if let Some(original) = s.reblog_of_id {
                    bump("reblogs_count", original)?;
                }
                for tag in &s.tags {
                    tx.prepare_cached(
                        "INSERT INTO tags (name, uses) VALUES (?, 1) \
                         ON CONFLICT(name) DO UPDATE SET uses = uses + 1",
                    )?
                    .execute([tag])?;
                    if s.visibility == Visibility::Public && !s.is_reblog() {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO status_tags (tag, status_id) VALUES (?, ?)",
                        )?
                        .execute(rusqlite::params![tag, s.id.as_i64()])?;
                    }
                }
                if let Some(key) = &new.idempotency {
                    // Expired keys of this author go as new ones come:
                    // bounded per author.
                    tx.prepare_cached(
                        "DELETE FROM idempotency_keys WHERE account_id = ? AND expires_at <= ?",
                    )?
                    .execute([author, s.created_at_ms])?;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency_keys \
                         (account_id, key, status_id, expires_at) VALUES (?, ?, ?, ?)",
                    )?
                    .execute(rusqlite::params![
                        author,
                        key.key,
                        s.id.as_i64(),
                        key.expires_at_ms
                    ])?;
                }
                tx.prepare_cached("INSERT INTO outbox (event) VALUES (?)")?
                    .execute([&event])?;
                Ok(Created::New(Box::new(s.clone())))
            })
            .await
    }

    async fn status(&self, id: Id) -> StoreResult<Option<Status>> {
        let sql = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id = ?");
        let rows = self.read(id.shard(), &sql, &[int(id.as_i64())], status_from_fast)?;
        rows.into_iter().next().transpose()
    }

    async fn statuses(&self, ids: &[Id]) -> StoreResult<Vec<Status>> {
        let Some(first) = ids.first() else {
            return Ok(vec![]);
        };
        let head = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id IN ");
        self.rows_in(*first, &head, &[], ids, status_from_fast)?
            .into_iter()
            .collect()
    }

    async fn delete_status(
        &self,
        account_id: Id,
        id: Id,
        stamp: Stamp,
    ) -> StoreResult<Option<Status>> {
        let mut tx = self.db(id.shard()).writer.begin().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id = ? AND s.account_id = ?"
        ))
        .bind(id.as_i64())
        .bind(account_id.as_i64())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let status = status_from_row(&row)?;

        // Boosts of it go with it.
        let boosters: Vec<(i64, i64)> = sqlx::query_as(
            "DELETE FROM statuses WHERE reblog_of_id = ? RETURNING account_id, visibility",
        )
        .bind(id.as_i64())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for (booster, visibility) in boosters {
            if crate::counts_for_author(visibility_from(visibility)?) {
                bump_account(&mut tx, Id::from_i64(booster), "statuses_count", -1).await?;
            }
        }
        sqlx::query("DELETE FROM statuses WHERE id = ?")
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if crate::counts_for_author(status.visibility) {
            bump_account(&mut tx, account_id, "statuses_count", -1).await?;
        }
        if let Some(parent) = status.in_reply_to_id {
            sqlx::query("DELETE FROM status_replies WHERE parent_id = ? AND reply_id = ?")
                .bind(parent.as_i64())
                .bind(id.as_i64())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if crate::listed(status.visibility) {
                bump_status(&mut tx, parent, "replies_count", -1).await?;
            }
        }
        if let Some(original) = status.reblog_of_id {
            bump_status(&mut tx, original, "reblogs_count", -1).await?;
        }
        sqlx::query("DELETE FROM status_replies WHERE parent_id = ?")
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM favourites WHERE status_id = ?")
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // Its uploads are unattached again, their grace period starting
        // now: a redraft may attach them; else the sweeper removes them.
        sqlx::query(
            "UPDATE media_attachments SET status_id = NULL, created_at = ? WHERE status_id = ?",
        )
        .bind(stamp.at_ms)
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        for tag in &status.tags {
            sqlx::query("DELETE FROM status_tags WHERE tag = ? AND status_id = ?")
                .bind(tag)
                .bind(id.as_i64())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        emit(
            &mut tx,
            stamp.id,
            stamp.at_ms,
            EventKind::StatusDeleted {
                status_id: id,
                author_id: account_id,
                reblog_of_id: status.reblog_of_id,
                public: status.is_public_post(),
                tags: status.tags.clone(),
            },
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(status))
    }

    async fn reblog_by(&self, account_id: Id, status_id: Id) -> StoreResult<Option<Status>> {
        let row = sqlx::query(&format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.account_id = ? AND s.reblog_of_id = ?"
        ))
        .bind(account_id.as_i64())
        .bind(status_id.as_i64())
        .fetch_optional(&self.db(account_id.shard()).reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(status_from_row).transpose()
    }

    async fn reblogged_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>> {
        self.ids_in(
            account_id,
            "SELECT reblog_of_id FROM statuses WHERE account_id = ? AND reblog_of_id IN ",
            account_id,
            ids,
        )
    }

    async fn interactions_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Interactions> {
        // Every home page asks this. A reader has usually neither
        // favourited nor boosted anything in the span of ids a page covers.
        let rows = self.facts_among_guarded(
            account_id,
            &[],
            [
                (
                    "EXISTS (SELECT 1 FROM favourites WHERE account_id = ?1 \
                     AND status_id BETWEEN (SELECT min(id) FROM t) AND (SELECT max(id) FROM t))",
                    &["SELECT 0, status_id, 0, 0 FROM favourites \
                       WHERE account_id = ?1 AND status_id IN t"],
                ),
                (
                    "EXISTS (SELECT 1 FROM statuses WHERE account_id = ?1 \
                     AND reblog_of_id BETWEEN (SELECT min(id) FROM t) AND (SELECT max(id) FROM t))",
                    &["SELECT 1, reblog_of_id, 0, 0 FROM statuses \
                       WHERE account_id = ?1 AND reblog_of_id IN t"],
                ),
            ],
            ids,
        )?;
        let mut out = Interactions::default();
        for (kind, id, _, _) in rows {
            if kind == 0 {
                out.favourited.push(id);
            } else {
                out.reblogged.push(id);
            }
        }
        Ok(out)
    }

    async fn descendants(&self, id: Id, limit: usize) -> StoreResult<Vec<Status>> {
        let rows = sqlx::query(&format!(
            "WITH RECURSIVE d(id, depth) AS ( \
               SELECT reply_id, 1 FROM status_replies WHERE parent_id = ? \
               UNION ALL \
               SELECT r.reply_id, d.depth + 1 FROM status_replies r JOIN d ON r.parent_id = d.id \
               WHERE d.depth < {THREAD_DEPTH_MAX} \
               LIMIT {THREAD_ROWS_MAX}) \
             SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.id IN (SELECT id FROM d) \
             ORDER BY s.id LIMIT ?"
        ))
        .bind(id.as_i64())
        .bind(limit as i64)
        .fetch_all(&self.db(id.shard()).reader)
        .await
        .map_err(map_err)?;
        statuses_from_rows(&rows)
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
        let mut sql = format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.account_id = ? \
             AND (s.visibility <= ?"
        );
        let mut params = vec![int(account_id.as_i64()), int(visibility_code(filter.up_to))];
        if let Some(viewer) = filter.mentioning {
            // `mentions` is a space-separated list of ids.
            sql.push_str(" OR (' ' || s.mentions || ' ') LIKE ?");
            params.push(Param::Text(format!("% {} %", viewer.as_i64())));
        }
        sql.push(')');
        if filter.exclude_replies {
            sql.push_str(
                " AND (s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id)",
            );
        }
        if filter.only_media {
            sql.push_str(" AND s.media <> ''");
        }
        if filter.exclude_reblogs {
            sql.push_str(" AND s.reblog_of_id IS NULL");
        }
        if let Some(tag) = &filter.tagged {
            // `tags` is a space-separated list of names: the whole name,
            // compared exactly (with LIKE, `_` and `%` would be wildcards).
            sql.push_str(" AND instr(' ' || s.tags || ' ', ?) > 0");
            params.push(Param::Text(format!(" {tag} ")));
        }
        page_sql(&mut sql, &mut params, "s.id", page);
        self.statuses_where(account_id.shard(), &sql, &params, page)
    }

    async fn public_statuses(&self, page: &Page) -> StoreResult<Vec<Status>> {
        // The same terms as the partial index `statuses_public`.
        let sql = format!(
            "SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.visibility = 0 \
             AND s.reblog_of_id IS NULL \
             AND (s.in_reply_to_account_id IS NULL OR s.in_reply_to_account_id = s.account_id)"
        );
        let mut out = Vec::new();
        // Every physical database holds public statuses; merge their pages.
        for db in self.physical_dbs() {
            let mut sql = sql.clone();
            let mut params = Vec::new();
            page_sql(&mut sql, &mut params, "s.id", page);
            let rows = db.fast.with(|c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(&params), status_from_fast)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        Ok(page.select(out, |s| s.id))
    }

    async fn tag_statuses(&self, tag: &str, page: &Page) -> StoreResult<Vec<Status>> {
        if crate::names_nothing(tag) {
            return Ok(vec![]);
        }
        let shard = starling_domain::ShardId::for_key(tag);
        let mut sql = format!(
            "SELECT {STATUS_COLUMNS} FROM status_tags t JOIN statuses s ON s.id = t.status_id \
             WHERE t.tag = ?"
        );
        let mut params = vec![Param::Text(tag.to_owned())];
        page_sql(&mut sql, &mut params, "t.status_id", page);
        self.statuses_where(shard, &sql, &params, page)
    }

    async fn statuses_by_authors(&self, authors: &[Id], page: &Page) -> StoreResult<Vec<Status>> {
        // One indexed range read per author, each bounded by the page: the
        // cost follows the number of authors, never their post counts.
        let sql = format!("SELECT {STATUS_COLUMNS} FROM statuses s WHERE s.account_id = ?");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for author in authors {
            if seen.insert(*author) {
                out.extend(self.status_page(*author, &sql, Some(*author), page)?);
            }
        }
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        Ok(page.select(out, |s| s.id))
    }

    async fn recent_status_ids(&self, author: Id, limit: usize) -> StoreResult<Vec<Id>> {
        let ids = self.read(
            author.shard(),
            "SELECT id FROM statuses WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            &[int(author.as_i64()), int(limit as i64)],
            |r| r.get::<_, i64>(0),
        )?;
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
        let mut names = Vec::new();
        for db in self.physical_dbs() {
            let exact: Option<String> =
                sqlx::query_scalar("SELECT name FROM tags WHERE name = ? AND uses > 0")
                    .bind(prefix)
                    .fetch_optional(&db.reader)
                    .await
                    .map_err(map_err)?;
            names.extend(exact);
        }
        let mut rest = Vec::new();
        for db in self.physical_dbs() {
            let found: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM tags WHERE name > ? AND name < ? AND uses > 0 \
                 ORDER BY name LIMIT ?",
            )
            .bind(prefix)
            .bind(format!("{prefix}\u{10ffff}"))
            .bind(want)
            .fetch_all(&db.reader)
            .await
            .map_err(map_err)?;
            rest.extend(found);
        }
        rest.sort_unstable();
        rest.retain(|n| !names.contains(n));
        names.extend(rest);
        Ok(names.into_iter().skip(offset).take(limit).collect())
    }

    async fn favourite(&self, account_id: Id, status_id: Id, stamp: Stamp) -> StoreResult<bool> {
        let mut tx = self
            .db(account_id.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        let author: Option<i64> =
            sqlx::query_scalar("SELECT account_id FROM statuses WHERE id = ?")
                .bind(status_id.as_i64())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some(author) = author else {
            return Ok(false);
        };
        let done = sqlx::query(
            "INSERT INTO favourites (id, account_id, status_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(account_id, status_id) DO NOTHING",
        )
        .bind(stamp.id.as_i64())
        .bind(account_id.as_i64())
        .bind(status_id.as_i64())
        .bind(stamp.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_status(&mut tx, status_id, "favourites_count", 1).await?;
        emit(
            &mut tx,
            stamp.id,
            stamp.at_ms,
            EventKind::Favourited {
                account_id,
                status_id,
                author_id: Id::from_i64(author),
            },
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn unfavourite(&self, account_id: Id, status_id: Id) -> StoreResult<bool> {
        let mut tx = self
            .db(account_id.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        let done = sqlx::query("DELETE FROM favourites WHERE account_id = ? AND status_id = ?")
            .bind(account_id.as_i64())
            .bind(status_id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_status(&mut tx, status_id, "favourites_count", -1).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn favourited_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>> {
        self.ids_in(
            account_id,
            "SELECT status_id FROM favourites WHERE account_id = ? AND status_id IN ",
            account_id,
            ids,
        )
    }

    async fn favourited_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            status_id,
            "SELECT id, account_id FROM favourites WHERE status_id = ?",
            status_id,
            page,
        )
        .await
    }

    async fn reblogged_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            status_id,
            // Only boosts anyone may see listed (as Mastodon lists them).
            "SELECT id, account_id FROM statuses WHERE visibility <= 1 AND reblog_of_id = ?",
            status_id,
            page,
        )
        .await
    }

    async fn favourites(&self, account_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account_id,
            "SELECT id, status_id FROM favourites WHERE account_id = ?",
            account_id,
            page,
        )
        .await
    }
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn accounts(&self, ids: &[Id]) -> StoreResult<Vec<Account>> {
        let Some(first) = ids.first() else {
            return Ok(vec![]);
        };
        let head = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ");
        self.rows_in(*first, &head, &[], ids, account_from_fast)?
            .into_iter()
            .collect()
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
        let mut exact = Vec::new();
        let mut rest: Vec<Account> = Vec::new();
        for db in self.physical_dbs() {
            let rows = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key = ?"
            ))
            .bind(prefix)
            .fetch_all(&db.reader)
            .await
            .map_err(map_err)?;
            for r in &rows {
                exact.push(account_from_row(r)?);
            }
            let rows = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key > ? AND username_key < ? \
                 ORDER BY username_key LIMIT ?"
            ))
            .bind(prefix)
            .bind(&upper)
            .bind(want)
            .fetch_all(&db.reader)
            .await
            .map_err(map_err)?;
            for r in &rows {
                rest.push(account_from_row(r)?);
            }
            let rows = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                 WHERE lower(display_name) >= ? AND lower(display_name) < ? \
                 ORDER BY lower(display_name), id LIMIT ?"
            ))
            .bind(prefix)
            .bind(&upper)
            .bind(want)
            .fetch_all(&db.reader)
            .await
            .map_err(map_err)?;
            for r in &rows {
                rest.push(account_from_row(r)?);
            }
        }
        let mut seen: HashSet<Id> = exact.iter().map(|a| a.id).collect();
        rest.retain(|a| seen.insert(a.id));
        // The others in the order the two queries read them: by the name that
        // matched (the smaller if both did), then id. Each query stops at
        // `want` rows in that same order, so the first `want` of the merge are
        // exact and pages by offset agree (sorting by anything else, such as
        // followers, would pick different candidates for different pages).
        // `to_ascii_lowercase` is what SQLite's `lower()` does.
        let matched_name = |a: &Account| {
            let user = a.username.to_ascii_lowercase();
            let display = a.display_name.to_ascii_lowercase();
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
        let mut tx = self
            .db(follower.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        // Checked inside the transaction (one writer at a time): a block
        // committed while this follow was on its way is seen here, and a
        // block committed after it removes what this writes.
        if blocked_between(&mut tx, follower, followee).await? {
            return Ok(FollowOutcome::Blocked);
        }
        let updated = sqlx::query(
            "UPDATE follows SET reblogs = ?, notify = ? WHERE follower_id = ? AND followee_id = ?",
        )
        .bind(options.reblogs)
        .bind(options.notify)
        .bind(follower.as_i64())
        .bind(followee.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.rows_affected() > 0 {
            tx.commit().await.map_err(map_err)?;
            return Ok(FollowOutcome::Following);
        }
        if request {
            let updated = sqlx::query(
                "UPDATE follow_requests SET reblogs = ?, notify = ? \
                 WHERE follower_id = ? AND followee_id = ?",
            )
            .bind(options.reblogs)
            .bind(options.notify)
            .bind(follower.as_i64())
            .bind(followee.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if updated.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO follow_requests (id, follower_id, followee_id, reblogs, notify, \
                     created_at) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(stamp.id.as_i64())
                .bind(follower.as_i64())
                .bind(followee.as_i64())
                .bind(options.reblogs)
                .bind(options.notify)
                .bind(stamp.at_ms)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                emit(
                    &mut tx,
                    stamp.id,
                    stamp.at_ms,
                    EventKind::FollowRequested {
                        follower_id: follower,
                        followee_id: followee,
                    },
                )
                .await?;
            }
            tx.commit().await.map_err(map_err)?;
            return Ok(FollowOutcome::Requested);
        }
        // A request left from when the account was locked becomes the follow.
        sqlx::query("DELETE FROM follow_requests WHERE follower_id = ? AND followee_id = ?")
            .bind(follower.as_i64())
            .bind(followee.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_follow(&mut tx, follower, followee, options, stamp, false).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(FollowOutcome::Following)
    }

    async fn unfollow(&self, follower: Id, followee: Id, stamp: Stamp) -> StoreResult<bool> {
        let mut tx = self
            .db(follower.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        if remove_follow(&mut tx, follower, followee).await? {
            emit(
                &mut tx,
                stamp.id,
                stamp.at_ms,
                EventKind::Unfollowed {
                    follower_id: follower,
                    followee_id: followee,
                },
            )
            .await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(true);
        }
        let withdrawn =
            sqlx::query("DELETE FROM follow_requests WHERE follower_id = ? AND followee_id = ?")
                .bind(follower.as_i64())
                .bind(followee.as_i64())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(withdrawn.rows_affected() > 0)
    }

    async fn authorize_follow_request(
        &self,
        account: Id,
        requester: Id,
        stamp: Stamp,
    ) -> StoreResult<bool> {
        let mut tx = self
            .db(requester.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        let row = sqlx::query(
            "DELETE FROM follow_requests WHERE follower_id = ? AND followee_id = ? \
             RETURNING reblogs, notify",
        )
        .bind(requester.as_i64())
        .bind(account.as_i64())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(false) };
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM follows WHERE follower_id = ? AND followee_id = ?")
                .bind(requester.as_i64())
                .bind(account.as_i64())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if exists.is_none() {
            insert_follow(
                &mut tx,
                requester,
                account,
                options_from_row(&row),
                stamp,
                true,
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn reject_follow_request(&self, account: Id, requester: Id) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM follow_requests WHERE follower_id = ? AND followee_id = ?")
                .bind(requester.as_i64())
                .bind(account.as_i64())
                .execute(&self.db(requester.shard()).writer)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_follow_requests(&self, account: Id) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM follow_requests WHERE followee_id = ?")
                .bind(account.as_i64())
                .fetch_one(&self.db(account.shard()).reader)
                .await
                .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn follow_requests(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account,
            "SELECT id, follower_id FROM follow_requests WHERE followee_id = ?",
            account,
            page,
        )
        .await
    }

    async fn relationships(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<Relationship>> {
        if targets.is_empty() {
            return Ok(vec![]);
        }
        // One statement for the seven facts.
        let rows = self.facts_among(
            viewer,
            &[
                "SELECT 0, followee_id, reblogs, notify FROM follows \
                 WHERE follower_id = ?1 AND followee_id IN t",
                "SELECT 1, follower_id, 0, 0 FROM follows \
                 WHERE followee_id = ?1 AND follower_id IN t",
                "SELECT 2, target_id, 0, 0 FROM blocks WHERE account_id = ?1 AND target_id IN t",
                "SELECT 3, account_id, 0, 0 FROM blocks WHERE target_id = ?1 AND account_id IN t",
                "SELECT 4, target_id, notifications, 0 FROM mutes \
                 WHERE account_id = ?1 AND target_id IN t",
                "SELECT 5, followee_id, 0, 0 FROM follow_requests \
                 WHERE follower_id = ?1 AND followee_id IN t",
                "SELECT 6, follower_id, 0, 0 FROM follow_requests \
                 WHERE followee_id = ?1 AND follower_id IN t",
            ],
            targets,
        )?;
        let mut by_target: HashMap<Id, Relationship> = HashMap::new();
        for (kind, t, a, b) in rows {
            let r = by_target.entry(t).or_insert_with(|| Relationship::none(t));
            match kind {
                0 => {
                    r.following = true;
                    r.showing_reblogs = a;
                    r.notifying = b;
                }
                1 => r.followed_by = true,
                2 => r.blocking = true,
                3 => r.blocked_by = true,
                4 => {
                    r.muting = true;
                    r.muting_notifications = a;
                }
                5 => r.requested = true,
                _ => r.requested_by = true,
            }
        }
        Ok(targets
            .iter()
            .map(|t| {
                by_target
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| Relationship::none(*t))
            })
            .collect())
    }

    async fn relations(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<RelationFlags>> {
        if targets.is_empty() {
            return Ok(vec![]);
        }
        // Every home page asks this for its authors. Most viewers block,
        // are blocked by and mute nobody; probing those lists for each
        // target cost twice the follows themselves.
        let rows = self.facts_among_guarded(
            viewer,
            &["SELECT 0, followee_id, reblogs, 0 FROM follows \
               WHERE follower_id = ?1 AND followee_id IN t"],
            [
                (
                    "EXISTS (SELECT 1 FROM blocks WHERE account_id = ?1) \
                     OR EXISTS (SELECT 1 FROM blocks WHERE target_id = ?1)",
                    &[
                        "SELECT 1, target_id, 0, 0 FROM blocks \
                         WHERE account_id = ?1 AND target_id IN t",
                        "SELECT 1, account_id, 0, 0 FROM blocks \
                         WHERE target_id = ?1 AND account_id IN t",
                    ],
                ),
                (
                    "EXISTS (SELECT 1 FROM mutes WHERE account_id = ?1)",
                    &["SELECT 2, target_id, 0, 0 FROM mutes WHERE account_id = ?1 AND target_id IN t"],
                ),
            ],
            targets,
        )?;
        let mut by_target: HashMap<Id, RelationFlags> = HashMap::new();
        for (kind, t, a, _) in rows {
            let r = by_target.entry(t).or_insert_with(|| RelationFlags::none(t));
            match kind {
                0 => {
                    r.following = true;
                    r.showing_reblogs = a;
                }
                1 => r.blocked = true,
                _ => r.muting = true,
            }
        }
        Ok(targets
            .iter()
            .map(|t| {
                by_target
                    .get(t)
                    .copied()
                    .unwrap_or_else(|| RelationFlags::none(*t))
            })
            .collect())
    }

    async fn followers(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account,
            "SELECT id, follower_id FROM follows WHERE followee_id = ?",
            account,
            page,
        )
        .await
    }

    async fn following(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account,
            "SELECT id, followee_id FROM follows WHERE follower_id = ?",
            account,
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
        self.read(
            account.shard(),
            "SELECT follower_id, reblogs, notify FROM follows \
             WHERE followee_id = ? AND follower_id > ? ORDER BY follower_id LIMIT ?",
            &[
                int(account.as_i64()),
                int(after.map_or(i64::MIN, Id::as_i64)),
                int(limit as i64),
            ],
            |r| Ok((id0(r)?, options_from_fast(r, 1)?)),
        )
    }

    async fn notified_followers(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>> {
        self.read(
            account.shard(),
            "SELECT follower_id FROM follows \
             WHERE followee_id = ? AND notify = 1 AND follower_id > ? \
             ORDER BY follower_id LIMIT ?",
            &[
                int(account.as_i64()),
                int(after.map_or(i64::MIN, Id::as_i64)),
                int(limit as i64),
            ],
            id0,
        )
    }

    async fn notified_followers_before(
        &self,
        account: Id,
        before: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>> {
        // A follow's id carries the time it was made (the index holds it).
        self.read(
            account.shard(),
            "SELECT follower_id FROM follows \
             WHERE followee_id = ? AND notify = 1 AND follower_id > ? AND id < ? \
             ORDER BY follower_id LIMIT ?",
            &[
                int(account.as_i64()),
                int(after.map_or(i64::MIN, Id::as_i64)),
                int(before.as_i64()),
                int(limit as i64),
            ],
            id0,
        )
    }

    async fn followers_among(&self, account: Id, candidates: &[Id]) -> StoreResult<Vec<Id>> {
        self.ids_in(
            account,
            "SELECT follower_id FROM follows WHERE followee_id = ? AND follower_id IN ",
            account,
            candidates,
        )
    }

    async fn followees(&self, account: Id, limit: usize) -> StoreResult<Vec<(Id, FollowOptions)>> {
        self.read(
            account.shard(),
            "SELECT followee_id, reblogs, notify FROM follows WHERE follower_id = ? \
             ORDER BY id LIMIT ?",
            &[int(account.as_i64()), int(limit as i64)],
            |r| Ok((id0(r)?, options_from_fast(r, 1)?)),
        )
    }

    async fn large_followees(&self, account: Id) -> StoreResult<Vec<(Id, FollowOptions)>> {
        self.read(
            account.shard(),
            "SELECT followee_id, reblogs, notify FROM follows \
             WHERE follower_id = ? AND followee_large = 1",
            &[int(account.as_i64())],
            |r| Ok((id0(r)?, options_from_fast(r, 1)?)),
        )
    }

    async fn is_large(&self, account: Id) -> StoreResult<bool> {
        let large = self.read(
            account.shard(),
            "SELECT large FROM accounts WHERE id = ?",
            &[int(account.as_i64())],
            |r| r.get::<_, bool>(0),
        )?;
        Ok(large.first().copied().unwrap_or(false))
    }

    async fn set_large(&self, account: Id, large: bool) -> StoreResult<bool> {
        let mut tx = self
            .db(account.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        let done = sqlx::query("UPDATE accounts SET large = ? WHERE id = ? AND large <> ?")
            .bind(large)
            .bind(account.as_i64())
            .bind(large)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE follows SET followee_large = ? WHERE followee_id = ?")
            .bind(large)
            .bind(account.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn block(&self, account: Id, target: Id, stamp: Stamp) -> StoreResult<bool> {
        let mut tx = self
            .db(account.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        let done = sqlx::query(
            "INSERT INTO blocks (id, account_id, target_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(account_id, target_id) DO NOTHING",
        )
        .bind(stamp.id.as_i64())
        .bind(account.as_i64())
        .bind(target.as_i64())
        .bind(stamp.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        remove_follow(&mut tx, account, target).await?;
        remove_follow(&mut tx, target, account).await?;
        sqlx::query(
            "DELETE FROM follow_requests WHERE (follower_id = ? AND followee_id = ?) \
             OR (follower_id = ? AND followee_id = ?)",
        )
        .bind(account.as_i64())
        .bind(target.as_i64())
        .bind(target.as_i64())
        .bind(account.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        emit(
            &mut tx,
            stamp.id,
            stamp.at_ms,
            EventKind::Blocked {
                account_id: account,
                target_id: target,
            },
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn unblock(&self, account: Id, target: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM blocks WHERE account_id = ? AND target_id = ?")
            .bind(account.as_i64())
            .bind(target.as_i64())
            .execute(&self.db(account.shard()).writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn mute(
        &self,
        account: Id,
        target: Id,
        notifications: bool,
        stamp: Stamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mutes (id, account_id, target_id, notifications, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT(account_id, target_id) \
             DO UPDATE SET notifications = excluded.notifications",
        )
        .bind(stamp.id.as_i64())
        .bind(account.as_i64())
        .bind(target.as_i64())
        .bind(notifications)
        .bind(stamp.at_ms)
        .execute(&self.db(account.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn unmute(&self, account: Id, target: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM mutes WHERE account_id = ? AND target_id = ?")
            .bind(account.as_i64())
            .bind(target.as_i64())
            .execute(&self.db(account.shard()).writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn blocks(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account,
            "SELECT id, target_id FROM blocks WHERE account_id = ?",
            account,
            page,
        )
        .await
    }

    async fn mutes(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>> {
        self.pairs(
            account,
            "SELECT id, target_id FROM mutes WHERE account_id = ?",
            account,
            page,
        )
        .await
    }

    async fn hidden_among(&self, viewer: Id, candidates: &[Id]) -> StoreResult<Hidden> {
        if candidates.is_empty() {
            return Ok(Hidden::default());
        }
        let rows = self.facts_among(
            viewer,
            &[
                "SELECT 0, target_id, 0, 0 FROM blocks WHERE account_id = ?1 AND target_id IN t",
                "SELECT 0, account_id, 0, 0 FROM blocks WHERE target_id = ?1 AND account_id IN t",
                "SELECT 1, target_id, notifications, 0 FROM mutes \
                 WHERE account_id = ?1 AND target_id IN t",
            ],
            candidates,
        )?;
        let mut blocked: Vec<Id> = rows.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
        blocked.sort_unstable();
        blocked.dedup();
        let mutes: Vec<(Id, bool)> = rows
            .iter()
            .filter(|r| r.0 == 1)
            .map(|r| (r.1, r.2))
            .collect();
        Ok(Hidden {
            blocked,
            muted: mutes.iter().map(|m| m.0).collect(),
            muted_notifications: mutes.iter().filter(|m| m.1).map(|m| m.0).collect(),
        })
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn create_notifications(&self, notifications: &[Notification]) -> StoreResult<()> {
        let Some(first) = notifications.first() else {
            return Ok(());
        };
        // Every post with mentions or notify followers comes here: one
        // transaction on this thread (see `sqlite/write.rs`).
        self.db(first.account_id.shard())
            .write(|tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO notifications \
                     (id, account_id, kind, from_account_id, status_id, created_at, event_id) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )?;
                for n in notifications {
                    insert.execute(rusqlite::params![
                        n.id.as_i64(),
                        n.account_id.as_i64(),
                        n.kind.as_str(),
                        n.from_account_id.as_i64(),
                        n.status_id.map(Id::as_i64),
                        n.created_at_ms,
                        n.event_id.as_i64(),
                    ])?;
                }
                Ok(())
            })
            .await
    }

    async fn notifications(
        &self,
        account: Id,
        filter: &NotificationFilter,
        page: &Page,
    ) -> StoreResult<Vec<Notification>> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT id, account_id, kind, from_account_id, status_id, created_at, event_id \
             FROM notifications WHERE account_id = ",
        );
        qb.push_bind(account.as_i64());
        for (kinds, op) in [
            (&filter.types, " AND kind IN ("),
            (&filter.exclude_types, " AND kind NOT IN ("),
        ] {
            if kinds.is_empty() {
                continue;
            }
            qb.push(op);
            let mut list = qb.separated(", ");
            for k in kinds {
                list.push_bind(k.as_str());
            }
            list.push_unseparated(")");
        }
        if let Some(from) = filter.from_account {
            qb.push(" AND from_account_id = ").push_bind(from.as_i64());
        }
        push_page(&mut qb, "id", page);
        let rows = qb
            .build()
            .fetch_all(&self.db(account.shard()).reader)
            .await
            .map_err(map_err)?;
        let list = rows
            .iter()
            .map(notification_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(newest_first(list, page))
    }

    async fn notification(&self, account: Id, id: Id) -> StoreResult<Option<Notification>> {
        let row = sqlx::query(
            "SELECT id, account_id, kind, from_account_id, status_id, created_at, event_id \
             FROM notifications WHERE id = ? AND account_id = ?",
        )
        .bind(id.as_i64())
        .bind(account.as_i64())
        .fetch_optional(&self.db(account.shard()).reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(notification_from_row).transpose()
    }

    async fn dismiss_notification(&self, account: Id, id: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM notifications WHERE id = ? AND account_id = ?")
            .bind(id.as_i64())
            .bind(account.as_i64())
            .execute(&self.db(account.shard()).writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn dismiss_notifications_from(
        &self,
        account: Id,
        kind: NotificationType,
        from: Id,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM notifications WHERE account_id = ? AND kind = ? AND from_account_id = ?",
        )
        .bind(account.as_i64())
        .bind(kind.as_str())
        .bind(from.as_i64())
        .execute(&self.db(account.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn clear_notifications(&self, account: Id) -> StoreResult<()> {
        sqlx::query("DELETE FROM notifications WHERE account_id = ?")
            .bind(account.as_i64())
            .execute(&self.db(account.shard()).writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn count_notifications_after(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notifications \
             WHERE account_id = ? AND id > ? LIMIT ?)",
        )
        .bind(account.as_i64())
        .bind(after.map_or(i64::MIN, Id::as_i64))
        .bind(limit as i64)
        .fetch_one(&self.db(account.shard()).reader)
        .await
        .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn markers(&self, account: Id) -> StoreResult<Vec<Marker>> {
        let rows = sqlx::query(
            "SELECT timeline, last_read_id, version, updated_at FROM markers \
             WHERE account_id = ? ORDER BY timeline",
        )
        .bind(account.as_i64())
        .fetch_all(&self.db(account.shard()).reader)
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(marker_from_row).collect())
    }

    async fn set_marker(
        &self,
        account: Id,
        timeline: &str,
        last_read_id: Id,
        at_ms: i64,
    ) -> StoreResult<Marker> {
        let row = sqlx::query(
            "INSERT INTO markers (account_id, timeline, last_read_id, version, updated_at) \
             VALUES (?, ?, ?, 1, ?) ON CONFLICT(account_id, timeline) DO UPDATE SET \
             last_read_id = excluded.last_read_id, version = version + 1, \
             updated_at = excluded.updated_at \
             RETURNING timeline, last_read_id, version, updated_at",
        )
        .bind(account.as_i64())
        .bind(timeline)
        .bind(last_read_id.as_i64())
        .bind(at_ms)
        .fetch_one(&self.db(account.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(marker_from_row(&row))
    }
}

fn marker_from_row(row: &SqliteRow) -> Marker {
    Marker {
        timeline: row.get("timeline"),
        last_read_id: id(row, "last_read_id"),
        version: row.get("version"),
        updated_at_ms: row.get("updated_at"),
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for (index, db) in self.physical_dbs().iter().enumerate() {
            // The relay asks after every write: on this thread.
            let rows: Vec<(i64, String)> = db.fast.with(|c| {
                c.prepare_cached("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?")?
                    .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })?;
            for (seq, text) in rows {
                match Event::from_json(&text) {
                    Some(event) => out.push(OutboxEntry {
                        key: (index as u32, seq),
                        event,
                    }),
                    None => {
                        // Unreadable (a bug): set it aside rather than block the relay.
                        tracing::error!(seq, "unreadable outbox row moved to the dead letters");
                        let mut tx = db.writer.begin().await.map_err(map_err)?;
                        sqlx::query(
                            "INSERT INTO dead_letters (consumer, event, error, created_at) \
                             VALUES ('relay', ?, 'unreadable event', ?)",
                        )
                        .bind(&text)
                        .bind(now_ms())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        sqlx::query("DELETE FROM outbox WHERE seq = ?")
                            .bind(seq)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        tx.commit().await.map_err(map_err)?;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn outbox_remove(&self, keys: &[(u32, i64)]) -> StoreResult<()> {
        let dbs = self.physical_dbs();
        for (index, db) in dbs.iter().enumerate() {
            let seqs: Vec<i64> = keys
                .iter()
                .filter(|(i, _)| *i as usize == index)
                .map(|(_, s)| *s)
                .collect();
            if seqs.is_empty() {
                continue;
            }
            // After every relayed batch: one transaction on this thread.
            db.write(|tx| {
                let mut delete = tx.prepare_cached("DELETE FROM outbox WHERE seq = ?")?;
                for seq in &seqs {
                    delete.execute([seq])?;
                }
                Ok(())
            })
            .await?;
        }
        if keys.iter().any(|(i, _)| *i as usize >= dbs.len()) {
            return Err(StoreError::Internal("outbox key of no database".into()));
        }
        Ok(())
    }

    async fn outbox_len(&self) -> StoreResult<u64> {
        let mut total = 0u64;
        for db in self.physical_dbs() {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                .fetch_one(&db.reader)
                .await
                .map_err(map_err)?;
            total += n as u64;
        }
        Ok(total)
    }

    async fn record_dead_letter(
        &self,
        consumer: &str,
        event: &Event,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dead_letters (consumer, event, error, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(consumer)
        .bind(event.to_json())
        .bind(error)
        .bind(now_ms())
        .execute(&self.db(event.id.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

/// Wall-clock time for bookkeeping rows (dead letters); domain times come
/// from the caller's clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
