//! The SQLite adapter's bulk loader ([`BulkLoad`]).
//!
//! SQLite has one writer, so speed comes from doing less per row, not from
//! parallelism:
//!
//! - **Multi-row inserts.** Each statement inserts up to [`ROWS_PER_STMT`]
//!   rows; the same SQL text is reused, so sqlx's per-connection statement
//!   cache keeps it prepared. One `load_*` call is one transaction.
//! - **Durability relaxed while loading.** `synchronous = OFF` and a 1 GiB
//!   page cache on the writer connection (set again at every call, since the
//!   pool may have recycled the connection); `finish_bulk` restores the
//!   store's settings (`synchronous = NORMAL`, the default cache) and
//!   truncates the WAL. A crash mid-load loses at most the batch in hand.
//! - **Big secondary indexes built once.** Follows and statuses arrive in id
//!   order, so their rowid B-trees grow at the right edge, but their other
//!   indexes (by followee, by author...) would take random inserts all load
//!   long. `begin_bulk` drops them, remembering their exact `CREATE`
//!   statements in a side table in the same transaction; `finish_bulk`
//!   recreates them (one sort each) before deriving the counters. The side
//!   table makes this safe to interrupt: the next `begin_bulk` keeps what
//!   was saved, and `finish_bulk` restores it.
//! - **Counters derived in SQL at the end** from the indexes just built: one
//!   pass over the accounts with indexed counts, then the large-account
//!   marks, instead of millions of `+1` updates while loading.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Connection, Sqlite, SqliteConnection};
use starling_domain::account::ProfileField;
use starling_domain::oauth::AccessToken;
use starling_domain::{Status, Visibility};

use crate::bulk::{BulkFollow, BulkLoad, BulkOptions, FinishOptions, FinishReport};
use crate::sqlite::{map_err, SqliteStore};
use crate::{NewAccount, StoreResult};

/// Most rows per `INSERT` statement (the widest table has 17 columns, well
/// under SQLite's 32 766 bound parameters).
const ROWS_PER_STMT: usize = 256;

/// The tables whose secondary indexes are dropped during a load.
const DEFERRED_INDEX_TABLES: &str = "'follows', 'statuses'";

/// Where dropped indexes' `CREATE` statements wait for `finish_bulk`.
const SAVED_INDEXES: &str = "_bulk_load_deferred_indexes";

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// `INSERT ... VALUES (?, ...), (?, ...)` for `rows` rows of `cols` columns.
fn insert_sql(head: &str, cols: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    let mut sql = String::with_capacity(head.len() + 8 + rows * (one.len() + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&one);
    }
    sql
}

/// Inserts `rows` with multi-row statements: `bind` binds one row's `cols`
/// values in column order.
async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    head: &str,
    cols: usize,
    rows: &[T],
    bind: impl for<'q> Fn(Query<'q>, &'q T) -> Query<'q>,
) -> StoreResult<()> {
    let full = insert_sql(head, cols, ROWS_PER_STMT);
    for chunk in rows.chunks(ROWS_PER_STMT) {
        let partial;
        let sql: &str = if chunk.len() == ROWS_PER_STMT {
            &full
        } else {
            partial = insert_sql(head, cols, chunk.len());
            &partial
        };
        let mut q = sqlx::query(sql);
        for row in chunk {
            q = bind(q, row);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

fn fields_json(fields: &[ProfileField]) -> String {
    serde_json::Value::Array(
        fields
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "value": f.value}))
            .collect(),
    )
    .to_string()
}

fn visibility_code(v: Visibility) -> i64 {
    i64::from(v.rank())
}

fn step(report: &mut FinishReport, name: &str, started: Instant) {
    report
        .steps
        .push((name.to_owned(), started.elapsed().as_secs_f64()));
}

/// Recreates the indexes `begin_bulk` dropped: the partial ones (with a
/// `WHERE`) or the others. Each is created and struck off the saved list in
/// one transaction, so an interruption leaves the rest listed.
async fn restore_indexes(
    conn: &mut SqliteConnection,
    report: &mut FinishReport,
    partial: bool,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {SAVED_INDEXES} (name TEXT PRIMARY KEY, sql TEXT NOT NULL)"
    ))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let saved: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT name, sql FROM {SAVED_INDEXES} ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for (name, sql) in saved {
        if sql.to_ascii_uppercase().contains(" WHERE ") != partial {
            continue;
        }
        let started = Instant::now();
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?")
                .bind(&name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
        let mut tx = conn.begin().await.map_err(map_err)?;
        if exists.is_none() {
            sqlx::query(&sql).execute(&mut *tx).await.map_err(map_err)?;
        }
        sqlx::query(&format!("DELETE FROM {SAVED_INDEXES} WHERE name = ?"))
            .bind(&name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        step(report, &format!("index {name}"), started);
    }
    Ok(())
}

impl SqliteStore {
    /// The writer connection with the loading pragmas applied.
    async fn bulk_writer(&self) -> StoreResult<PoolConnection<Sqlite>> {
        // The SQLite adapter keeps every logical shard in one file.
        let db = &self.physical_dbs()[0];
        let mut conn = db.writer.acquire().await.map_err(map_err)?;
        sqlx::query("PRAGMA synchronous = OFF")
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        sqlx::query("PRAGMA cache_size = -1048576")
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        Ok(conn)
    }
}

/// Runs `f` in one transaction on the bulk writer.
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut conn = $self.bulk_writer().await?;
        let mut $tx = conn.begin().await.map_err(map_err)?;
        $body;
        $tx.commit().await.map_err(map_err)?;
        Ok(())
    }};
}

#[async_trait]
impl BulkLoad for SqliteStore {
    async fn begin_bulk(&self, options: &BulkOptions) -> StoreResult<()> {
        let mut conn = self.bulk_writer().await?;
        let mut tx = conn.begin().await.map_err(map_err)?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {SAVED_INDEXES} (name TEXT PRIMARY KEY, sql TEXT NOT NULL)"
        ))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if !options.keep_indexes {
            // Explicit indexes only (`sql IS NULL` marks the automatic ones
            // behind UNIQUE and PRIMARY KEY constraints).
            let indexes: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name IN ({DEFERRED_INDEX_TABLES}) AND sql IS NOT NULL"
            ))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            for (name, sql) in indexes {
                sqlx::query(&format!(
                    "INSERT OR REPLACE INTO {SAVED_INDEXES} (name, sql) VALUES (?, ?)"
                ))
                .bind(&name)
                .bind(&sql)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query(&format!("DROP INDEX \"{name}\""))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn load_accounts(&self, batch: &[NewAccount]) -> StoreResult<()> {
        let fields: Vec<String> = batch
            .iter()
            .map(|n| fields_json(&n.account.fields))
            .collect();
        let rows: Vec<(&NewAccount, &String)> = batch.iter().zip(&fields).collect();
        in_tx!(self, |tx| {
            insert_rows(
                &mut tx,
                "INSERT INTO email_directory (email_key, account_id)",
                2,
                batch,
                |q, n| q.bind(&n.email_key).bind(n.account.id.as_i64()),
            )
            .await?;
            insert_rows(
                &mut tx,
                "INSERT INTO accounts (id, username, display_name, note, fields, locked, bot, \
                 discoverable, privacy, sensitive, language, created_at, statuses_count, \
                 followers_count, following_count, last_status_at, username_key)",
                17,
                &rows,
                |q, (n, fields)| {
                    let a = &n.account;
                    q.bind(a.id.as_i64())
                        .bind(&a.username)
                        .bind(&a.display_name)
                        .bind(&a.note)
                        .bind(fields.as_str())
                        .bind(a.locked)
                        .bind(a.bot)
                        .bind(a.discoverable)
                        .bind(a.privacy.as_str())
                        .bind(a.sensitive)
                        .bind(&a.language)
                        .bind(a.created_at_ms)
                        .bind(a.statuses_count)
                        .bind(a.followers_count)
                        .bind(a.following_count)
                        .bind(a.last_status_at_ms)
                        .bind(a.username.to_ascii_lowercase())
                },
            )
            .await?;
            insert_rows(
                &mut tx,
                "INSERT INTO credentials (account_id, email, password_hash, locale)",
                4,
                batch,
                |q, n| {
                    q.bind(n.account.id.as_i64())
                        .bind(&n.email)
                        .bind(&n.password_hash)
                        .bind(&n.locale)
                },
            )
            .await?
        })
    }

    async fn load_tokens(&self, batch: &[AccessToken]) -> StoreResult<()> {
        in_tx!(self, |tx| {
            insert_rows(
                &mut tx,
                "INSERT INTO oauth_tokens (token_hash, app_id, account_id, scopes, created_at)",
                5,
                batch,
                |q, t| {
                    q.bind(&t.token_hash.0[..])
                        .bind(t.app_id.as_i64())
                        .bind(t.account_id.map(|a| a.as_i64()))
                        .bind(t.scopes.to_string())
                        .bind(t.created_at_ms)
                },
            )
            .await?
        })
    }

    async fn load_follows(&self, batch: &[BulkFollow]) -> StoreResult<()> {
        in_tx!(self, |tx| {
            insert_rows(
                &mut tx,
                "INSERT INTO follows (id, follower_id, followee_id, reblogs, notify, \
                 followee_large, created_at)",
                7,
                batch,
                |q, f| {
                    q.bind(f.id.as_i64())
                        .bind(f.follower.as_i64())
                        .bind(f.followee.as_i64())
                        .bind(true)
                        .bind(false)
                        .bind(false)
                        .bind(f.created_at_ms)
                },
            )
            .await?
        })
    }

    async fn load_statuses(&self, batch: &[Status]) -> StoreResult<()> {
        let mentions: Vec<String> = batch
            .iter()
            .map(|s| {
                s.mentions
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let rows: Vec<(&Status, &String)> = batch.iter().zip(&mentions).collect();
        let mut uses: HashMap<&str, i64> = HashMap::new();
        let mut tagged: Vec<(&str, i64)> = Vec::new();
        let mut replies: Vec<(i64, i64)> = Vec::new();
        for s in batch {
            for tag in &s.tags {
                *uses.entry(tag.as_str()).or_default() += 1;
                if s.visibility == Visibility::Public && !s.is_reblog() {
                    tagged.push((tag.as_str(), s.id.as_i64()));
                }
            }
            if let Some(parent) = s.in_reply_to_id {
                replies.push((parent.as_i64(), s.id.as_i64()));
            }
        }
        let uses: Vec<(&str, i64)> = uses.into_iter().collect();
        in_tx!(self, |tx| {
            insert_rows(
                &mut tx,
                "INSERT INTO statuses (id, account_id, reblog_of_id, in_reply_to_id, \
                 in_reply_to_account_id, text, content, spoiler_text, sensitive, visibility, \
                 language, app_id, mentions, tags, created_at, replies_count, reblogs_count, \
                 favourites_count)",
                18,
                &rows,
                |q, (s, mentions)| {
                    q.bind(s.id.as_i64())
                        .bind(s.account_id.as_i64())
                        .bind(s.reblog_of_id.map(|i| i.as_i64()))
                        .bind(s.in_reply_to_id.map(|i| i.as_i64()))
                        .bind(s.in_reply_to_account_id.map(|i| i.as_i64()))
                        .bind(&s.text)
                        .bind(&s.content)
                        .bind(&s.spoiler_text)
                        .bind(s.sensitive)
                        .bind(visibility_code(s.visibility))
                        .bind(&s.language)
                        .bind(s.app_id.map(|i| i.as_i64()))
                        .bind(mentions.as_str())
                        .bind(s.tags.join(" "))
                        .bind(s.created_at_ms)
                        .bind(s.replies_count)
                        .bind(s.reblogs_count)
                        .bind(s.favourites_count)
                },
            )
            .await?;
            insert_rows(
                &mut tx,
                "INSERT OR IGNORE INTO status_tags (tag, status_id)",
                2,
                &tagged,
                |q, (tag, id)| q.bind(*tag).bind(*id),
            )
            .await?;
            insert_rows(
                &mut tx,
                "INSERT OR IGNORE INTO status_replies (parent_id, reply_id)",
                2,
                &replies,
                |q, (parent, reply)| q.bind(*parent).bind(*reply),
            )
            .await?;
            for (tag, n) in &uses {
                sqlx::query(
                    "INSERT INTO tags (name, uses) VALUES (?, ?) \
                     ON CONFLICT(name) DO UPDATE SET uses = uses + excluded.uses",
                )
                .bind(*tag)
                .bind(*n)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        })
    }

    async fn finish_bulk(&self, options: &FinishOptions) -> StoreResult<FinishReport> {
        let mut report = FinishReport::default();
        let mut conn = self.bulk_writer().await?;
        // Let SQLite sort index keys on both cores.
        sqlx::query("PRAGMA threads = 4")
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;

        // 1. The deferred full indexes (the counters below read them).
        restore_indexes(&mut conn, &mut report, false).await?;

        // 2. Account counters, each an indexed count.
        let started = Instant::now();
        sqlx::query(
            "UPDATE accounts SET \
             followers_count = (SELECT COUNT(*) FROM follows WHERE followee_id = accounts.id), \
             following_count = (SELECT COUNT(*) FROM follows WHERE follower_id = accounts.id), \
             statuses_count = (SELECT COUNT(*) FROM statuses WHERE account_id = accounts.id \
                               AND visibility <> 3), \
             last_status_at = (SELECT created_at FROM statuses WHERE account_id = accounts.id \
                               ORDER BY id DESC LIMIT 1)",
        )
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        step(&mut report, "account counters", started);

        // 3. Large accounts, and the mark copied onto the follow rows of the
        // accounts whose mark changed (found through the followee index;
        // the partial index on the mark is built after, in one sort).
        let started = Instant::now();
        let mut tx = conn.begin().await.map_err(map_err)?;
        let changed: Vec<(i64, bool)> = sqlx::query_as(
            "SELECT id, followers_count >= ? FROM accounts WHERE large <> (followers_count >= ?)",
        )
        .bind(options.large_account_threshold)
        .bind(options.large_account_threshold)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for (id, large) in changed {
            sqlx::query("UPDATE accounts SET large = ? WHERE id = ?")
                .bind(large)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query(
                "UPDATE follows SET followee_large = ? WHERE followee_id = ? AND followee_large <> ?",
            )
            .bind(large)
            .bind(id)
            .bind(large)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let large: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE large = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        report.large_accounts = large as u64;
        step(&mut report, "large accounts", started);

        // 4. The deferred partial indexes.
        restore_indexes(&mut conn, &mut report, true).await?;
        sqlx::query(&format!("DROP TABLE IF EXISTS {SAVED_INDEXES}"))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;

        // 5. The store's own settings back, and the WAL folded in.
        let started = Instant::now();
        for pragma in [
            "PRAGMA synchronous = NORMAL",
            "PRAGMA cache_size = -2000",
            "PRAGMA threads = 0",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::query(pragma)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        step(&mut report, "checkpoint", started);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    //! What only SQLite shows: the dropped indexes come back. That a
    //! bulk-loaded store answers like one written normally is the
    //! conformance case `bulk_load_answers_like_the_normal_path`
    //! (tests/sqlite_conformance.rs).

    use super::*;
    use crate::Store;

    async fn index_names(store: &SqliteStore) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&store.physical_dbs()[0].reader)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn deferred_indexes_are_dropped_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let indexes = index_names(&store).await;
        let finish = FinishOptions {
            large_account_threshold: 2,
        };

        store.begin_bulk(&BulkOptions::default()).await.unwrap();
        let during = index_names(&store).await;
        assert!(during.len() < indexes.len(), "indexes are dropped");
        // Interrupted: begun again before finishing keeps what was saved.
        store.begin_bulk(&BulkOptions::default()).await.unwrap();
        store.finish_bulk(&finish).await.unwrap();
        assert_eq!(index_names(&store).await, indexes, "every index is back");

        // Finishing again is harmless; keeping the indexes drops none.
        store.finish_bulk(&finish).await.unwrap();
        store
            .begin_bulk(&BulkOptions { keep_indexes: true })
            .await
            .unwrap();
        assert_eq!(index_names(&store).await, indexes);
        store.finish_bulk(&finish).await.unwrap();
        assert_eq!(index_names(&store).await, indexes);
    }
}
