//! The PostgreSQL adapter's bulk loader ([`BulkLoad`]): `COPY` into every
//! physical database at once, each side of a fact on the shard that owns it.
//!
//! A bulk load writes exactly the rows the normal write path would have left
//! behind once its mirror ops were applied, and nothing else (no outbox
//! events, no mirror ops, no `applied_mirror_ops`):
//!
//! - an account, its credentials on its shard; its email's directory row,
//!   confirmed (`pending = FALSE`), on the email's shard;
//! - a token on its account's shard (an app token on its app's);
//! - a follow twice: `follows_out` on the follower's shard, `follows_in` on
//!   the followee's;
//! - a status on its author's shard; its tag's `tags.uses` (and, for a
//!   public original, its `status_tags` row) on the tag's shard; a reply's
//!   `status_replies` row on the parent's shard; a boost's `status_reblogs`
//!   row on the original's shard. Status counters are loaded as given.
//!
//! How it is fast:
//!
//! - **`COPY ... FROM STDIN`** (text format) per table, the rows of one
//!   `load_*` call routed by shard to their physical database, and the
//!   databases loaded in parallel (one task each). Each call is one
//!   transaction per database: atomic per database, not across them (a
//!   crash between two databases' commits leaves that batch on some of them).
//! - **Durability relaxed per transaction** (`SET LOCAL synchronous_commit =
//!   off`, and no statement timeout): nothing leaks into the pool's other
//!   sessions, and a crash loses at most the last commits, never the
//!   database's consistency.
//! - **The big tables' indexes built once, where keys arrive out of order.**
//!   Follows arrive follower by follower and statuses oldest first, so
//!   `follows_out`'s and `statuses`' primary keys grow at their right edge,
//!   but every other index of `follows_out`, `follows_in` and `statuses`
//!   (and `follows_in`'s primary key, keyed by followee) would take random
//!   inserts all load long. `begin_bulk` drops them, saving the statements
//!   that make them again (`pg_get_indexdef`, `pg_get_constraintdef`) in a
//!   side table in the same transaction, so an interrupted load is repaired
//!   by the next `begin_bulk` (which keeps what was saved) or `finish_bulk`
//!   (which builds it, one sort each; the primary key comes back checked,
//!   so duplicate follows fail there). Measured at 100k users, two
//!   databases (docs/BENCHMARKS.md, "The local cluster"): the 5M follows
//!   load in 15 to 18 s, against 43 s with only the secondary indexes
//!   dropped and 112 s with every index kept, for 4 s of primary key
//!   build at the end.
//! - **Counters derived once at the end**, per database, from that
//!   database's rows (every counter is kept on the side whose rows it
//!   counts: followers from `follows_in`, following from `follows_out`,
//!   statuses and `last_status_at` from `statuses`), by hash aggregates over
//!   whole tables rather than millions of `+1` updates.
//! - **Large accounts as `set_large` leaves them**: the mark and a new
//!   `large_version` on the account, and the mark with that version copied
//!   onto every `follows_out` row pointing at it, wherever the follower
//!   lives (one hash join per database). Accounts marked by an earlier load
//!   or by the server have their copies fixed on newly loaded rows too.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::Write as _;
use std::time::Instant;

use async_trait::async_trait;
use sqlx::{Connection, Executor, PgPool};
use starling_domain::oauth::AccessToken;
use starling_domain::{ShardId, Status, Visibility};
use tokio::task::JoinSet;

use super::rows::{display_key, fields_json, visibility_code};
use super::{map_err, PgStore};
use crate::bulk::{BulkFollow, BulkLoad, BulkOptions, FinishOptions, FinishReport};
use crate::{NewAccount, StoreError, StoreResult};

/// The tables whose secondary indexes are dropped during a load.
const DEFERRED_INDEX_TABLES: [&str; 3] = ["follows_out", "follows_in", "statuses"];

/// The constraints dropped during a load: the followee side's primary key,
/// whose keys arrive in random order (the follower side's and the
/// statuses' arrive nearly in key order and stay). Made again at the end,
/// which checks them: duplicate follows fail `finish_bulk`.
const DEFERRED_CONSTRAINTS: [&str; 1] = ["follows_in_pkey"];

/// Where dropped indexes' definitions wait for `finish_bulk`, per database.
const SAVED_INDEXES: &str = "_bulk_load_deferred_indexes";

/// Every bulk transaction: no waiting for the disk at commit, no statement
/// timeout (the pool's sessions have one; a big `COPY` may outlast it).
const RELAX: &str = "SET LOCAL synchronous_commit = off; SET LOCAL statement_timeout = 0";

/// Index builds and whole-table aggregates: room to sort in memory.
const BUILD: &str = "SET LOCAL synchronous_commit = off; SET LOCAL statement_timeout = 0; \
     SET LOCAL maintenance_work_mem = '512MB'; SET LOCAL work_mem = '256MB'";

/// A table `COPY` fills, with its columns in the order rows are written.
struct Table {
    name: &'static str,
    columns: &'static str,
}

const ACCOUNTS: Table = Table {
    name: "accounts",
    columns: "id, username, username_key, display_name, display_key, note, fields, locked, bot, \
              discoverable, privacy, sensitive, language, created_at, statuses_count, \
              followers_count, following_count, last_status_at",
};
const CREDENTIALS: Table = Table {
    name: "credentials",
    columns: "account_id, email, password_hash, locale",
};
const EMAIL_DIRECTORY: Table = Table {
    name: "email_directory",
    columns: "email_key, account_id, pending",
};
const OAUTH_TOKENS: Table = Table {
    name: "oauth_tokens",
    columns: "token_hash, app_id, account_id, scopes, created_at",
};
const FOLLOWS_OUT: Table = Table {
    name: "follows_out",
    columns: "follower_id, followee_id, id, reblogs, notify, followee_large, large_version, \
              created_at",
};
const FOLLOWS_IN: Table = Table {
    name: "follows_in",
    columns: "followee_id, follower_id, id, reblogs, notify, created_at",
};
const STATUSES: Table = Table {
    name: "statuses",
    columns: "id, account_id, reblog_of_id, in_reply_to_id, in_reply_to_account_id, text, \
              content, spoiler_text, sensitive, visibility, language, app_id, mentions, tags, \
              created_at, replies_count, reblogs_count, favourites_count",
};
const STATUS_TAGS: Table = Table {
    name: "status_tags",
    columns: "tag, status_id",
};
const STATUS_REPLIES: Table = Table {
    name: "status_replies",
    columns: "parent_id, reply_id, counted",
};
const STATUS_REBLOGS: Table = Table {
    name: "status_reblogs",
    columns: "status_id, boost_id, account_id, listed",
};

/// Rows of one table in `COPY`'s text format: fields separated by tabs,
/// rows ended by newlines, `\N` for NULL, backslash escapes.
#[derive(Default)]
struct Rows {
    buf: Vec<u8>,
    count: u64,
    /// Whether the row being written has a field already.
    open: bool,
}

impl Rows {
    fn field(&mut self) -> &mut Vec<u8> {
        if self.open {
            self.buf.push(b'\t');
        }
        self.open = true;
        &mut self.buf
    }

    fn int(&mut self, v: i64) -> &mut Self {
        // Writing into a Vec cannot fail.
        let _ = write!(self.field(), "{v}");
        self
    }

    fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    fn null(&mut self) -> &mut Self {
        self.field().extend_from_slice(b"\\N");
        self
    }

    fn bool(&mut self, v: bool) -> &mut Self {
        self.field().push(if v { b't' } else { b'f' });
        self
    }

    fn text(&mut self, v: &str) -> &mut Self {
        escape_into(self.field(), v);
        self
    }

    fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// `bytea` in hex (`\x...`, its backslash escaped for `COPY`).
    fn bytea(&mut self, v: &[u8]) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let buf = self.field();
        buf.extend_from_slice(b"\\\\x");
        for b in v {
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 15)]);
        }
        self
    }

    /// A `BIGINT[]` literal: `{1,2,3}`.
    fn int_array(&mut self, v: impl IntoIterator<Item = i64>) -> &mut Self {
        let buf = self.field();
        buf.push(b'{');
        for (i, n) in v.into_iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let _ = write!(buf, "{n}");
        }
        buf.push(b'}');
        self
    }

    /// A `TEXT[]` literal, every element quoted: `{"a","b"}`.
    fn text_array(&mut self, v: &[String]) -> &mut Self {
        let mut literal = String::from("{");
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            literal.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    literal.push('\\');
                }
                literal.push(c);
            }
            literal.push('"');
        }
        literal.push('}');
        self.text(&literal)
    }

    fn end(&mut self) {
        self.buf.push(b'\n');
        self.open = false;
        self.count += 1;
    }
}

/// Appends `s` escaped for `COPY`'s text format.
fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        buf.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

/// What one `load_*` call writes on one physical database.
struct DbRows {
    /// One [`Rows`] per table of the batch, in the batch's order.
    tables: Vec<Rows>,
    /// Tag -> how many of the batch's statuses carry it (added to
    /// `tags.uses`).
    tag_uses: BTreeMap<String, i64>,
}

impl DbRows {
    fn is_empty(&self) -> bool {
        self.tag_uses.is_empty() && self.tables.iter().all(|t| t.count == 0)
    }
}

/// One `load_*` call's rows, routed to their physical databases.
struct Batch<'s> {
    store: &'s PgStore,
    tables: &'static [&'static Table],
    dbs: Vec<DbRows>,
}

impl<'s> Batch<'s> {
    fn new(store: &'s PgStore, tables: &'static [&'static Table]) -> Self {
        let dbs = (0..store.physical_count())
            .map(|_| DbRows {
                tables: tables.iter().map(|_| Rows::default()).collect(),
                tag_uses: BTreeMap::new(),
            })
            .collect();
        Self { store, tables, dbs }
    }

    /// The rows of table `table` (its position in the batch's tables) on
    /// the database of `shard`.
    fn rows(&mut self, shard: ShardId, table: usize) -> &mut Rows {
        let db = self.store.physical_index(shard);
        &mut self.dbs[db].tables[table]
    }

    /// Loads every database's rows, the databases in parallel, each in one
    /// transaction.
    async fn load(self) -> StoreResult<()> {
        let mut tasks = JoinSet::new();
        for (db, rows) in self.store.dbs().iter().zip(self.dbs) {
            if rows.is_empty() {
                continue;
            }
            let (pool, tables) = (db.primary.clone(), self.tables);
            tasks.spawn(load_into(pool, tables, rows));
        }
        join_all(tasks).await.map(|_| ())
    }
}

/// One database's part of a batch, in one transaction.
async fn load_into(
    pool: PgPool,
    tables: &'static [&'static Table],
    rows: DbRows,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(RELAX).await.map_err(map_err)?;
    for (table, rows) in tables.iter().zip(rows.tables) {
        if rows.count == 0 {
            continue;
        }
        let sql = format!("COPY {} ({}) FROM STDIN", table.name, table.columns);
        let mut copy = tx.copy_in_raw(&sql).await.map_err(map_err)?;
        copy.send(rows.buf).await.map_err(map_err)?;
        copy.finish().await.map_err(map_err)?;
    }
    if !rows.tag_uses.is_empty() {
        let (names, uses): (Vec<String>, Vec<i64>) = rows.tag_uses.into_iter().unzip();
        sqlx::query(
            "INSERT INTO tags (name, uses) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (name) DO UPDATE SET uses = tags.uses + EXCLUDED.uses",
        )
        .bind(&names)
        .bind(&uses)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// Waits for every task; the first error if any failed.
async fn join_all<T: 'static>(mut tasks: JoinSet<StoreResult<T>>) -> StoreResult<Vec<T>> {
    let mut out = Vec::with_capacity(tasks.len());
    let mut failed = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(value)) => out.push(value),
            Ok(Err(e)) => {
                failed.get_or_insert(e);
            }
            Err(e) => {
                failed.get_or_insert(StoreError::Internal(format!("bulk load task: {e}")));
            }
        }
    }
    failed.map_or(Ok(out), Err)
}

/// Index names built on several databases, each once.
fn names(mut built: Vec<String>) -> String {
    built.sort_unstable();
    built.dedup();
    built.join(", ")
}

fn step(report: &mut FinishReport, name: &str, started: Instant) {
    report
        .steps
        .push((name.to_owned(), started.elapsed().as_secs_f64()));
}

impl PgStore {
    /// Runs `work` on every physical database's primary at once; the
    /// results in the databases' order.
    async fn on_every_db<T, F, Fut>(&self, work: F) -> StoreResult<Vec<T>>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for (index, db) in self.dbs().iter().enumerate() {
            let job = work(db.primary.clone());
            tasks.spawn(async move { job.await.map(|value| (index, value)) });
        }
        let mut done = join_all(tasks).await?;
        done.sort_by_key(|(index, _)| *index);
        Ok(done.into_iter().map(|(_, value)| value).collect())
    }

    /// The size of every physical database (primaries), in bytes, summed:
    /// for the loader's report.
    pub async fn database_bytes(&self) -> StoreResult<u64> {
        let sizes = self
            .on_every_db(|pool| async move {
                sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
                    .fetch_one(&pool)
                    .await
                    .map_err(map_err)
            })
            .await?;
        Ok(sizes.into_iter().map(|s| s.max(0) as u64).sum())
    }
}

/// Creates the side table of dropped indexes (if missing) and, unless
/// `keep_indexes`, drops the deferred indexes, saving their definitions, in
/// one transaction.
async fn begin_on(pool: PgPool, keep_indexes: bool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(RELAX).await.map_err(map_err)?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {SAVED_INDEXES} (name TEXT PRIMARY KEY, sql TEXT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    if !keep_indexes {
        // Indexes behind a constraint (primary keys, UNIQUE) stay, but for
        // the deferred constraints. Each comes with the statement that
        // drops it and the one that makes it again.
        let deferred: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT i.relname::text, format('DROP INDEX %I', i.relname), \
                    pg_get_indexdef(i.oid) \
             FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_class t ON t.oid = x.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = current_schema() AND t.relname = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) \
             UNION ALL \
             SELECT c.conname::text, format('ALTER TABLE %I DROP CONSTRAINT %I', t.relname, c.conname), \
                    format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, c.conname, \
                           pg_get_constraintdef(c.oid)) \
             FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = current_schema() AND c.conname = ANY($2) \
             ORDER BY 1",
        )
        .bind(&DEFERRED_INDEX_TABLES[..])
        .bind(&DEFERRED_CONSTRAINTS[..])
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for (name, drop, sql) in deferred {
            sqlx::query(&format!(
                "INSERT INTO {SAVED_INDEXES} (name, sql) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET sql = EXCLUDED.sql"
            ))
            .bind(&name)
            .bind(&sql)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            (&mut *tx).execute(drop.as_str()).await.map_err(map_err)?;
        }
    }
    tx.commit().await.map_err(map_err)
}

/// Builds the saved indexes that are partial (`partial`) or not, each built
/// and struck off the saved list in one transaction (an interruption leaves
/// the rest listed). Their names.
async fn restore_on(pool: PgPool, partial: bool) -> StoreResult<Vec<String>> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let saved: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT name, sql FROM {SAVED_INDEXES} ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await
    .or_else(|e| match &e {
        // No side table: nothing was deferred (or a finish already ran).
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(vec![]),
        _ => Err(map_err(e)),
    })?;
    let mut built = Vec::new();
    for (name, sql) in saved {
        if sql.to_ascii_uppercase().contains(" WHERE ") != partial {
            continue;
        }
        let mut tx = conn.begin().await.map_err(map_err)?;
        (&mut *tx).execute(BUILD).await.map_err(map_err)?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass(quote_ident($1)) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if !exists {
            (&mut *tx).execute(sql.as_str()).await.map_err(map_err)?;
        }
        sqlx::query(&format!("DELETE FROM {SAVED_INDEXES} WHERE name = $1"))
            .bind(&name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        built.push(name);
    }
    Ok(built)
}

/// Every account's counters from this database's rows (where each is
/// kept), written only where they differ.
async fn counters_on(pool: PgPool) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(BUILD).await.map_err(map_err)?;
    let updated = sqlx::query(
        "UPDATE accounts a SET followers_count = c.followers, following_count = c.following, \
         statuses_count = c.statuses, last_status_at = c.last \
         FROM (SELECT x.id, COALESCE(fi.n, 0) AS followers, COALESCE(fo.n, 0) AS following, \
                      COALESCE(s.n, 0) AS statuses, s.last \
               FROM accounts x \
               LEFT JOIN (SELECT followee_id AS id, COUNT(*) AS n FROM follows_in \
                          GROUP BY followee_id) fi ON fi.id = x.id \
               LEFT JOIN (SELECT follower_id AS id, COUNT(*) AS n FROM follows_out \
                          GROUP BY follower_id) fo ON fo.id = x.id \
               LEFT JOIN (SELECT account_id AS id, COUNT(*) FILTER (WHERE visibility <> 3) AS n, \
                                 MAX(created_at) AS last \
                          FROM statuses GROUP BY account_id) s ON s.id = x.id) c \
         WHERE a.id = c.id AND (a.followers_count, a.following_count, a.statuses_count, \
               a.last_status_at) IS DISTINCT FROM (c.followers, c.following, c.statuses, c.last)",
    )
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(updated)
}

/// An account's large mark and its version, as `set_large` leaves them.
type Mark = (i64, bool, i64);

/// Marks (or unmarks) this database's accounts by the threshold, bumping
/// `large_version` of each that changed as `set_large` does. Returns the
/// accounts whose mark ever changed (their follow rows' copies must carry
/// it) and how many are large.
async fn mark_on(pool: PgPool, threshold: i64) -> StoreResult<(Vec<Mark>, u64)> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(BUILD).await.map_err(map_err)?;
    sqlx::query(
        "UPDATE accounts SET large = (followers_count >= $1), large_version = large_version + 1 \
         WHERE large <> (followers_count >= $1)",
    )
    .bind(threshold)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let marks: Vec<Mark> =
        sqlx::query_as("SELECT id, large, large_version FROM accounts WHERE large_version > 0")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    let large = marks.iter().filter(|(_, large, _)| *large).count() as u64;
    Ok((marks, large))
}

/// Copies the marks onto this database's follow rows pointing at those
/// accounts, where the copy is older (as `LargeChanged` does).
async fn copy_marks_on(pool: PgPool, marks: std::sync::Arc<Vec<Mark>>) -> StoreResult<u64> {
    let ids: Vec<i64> = marks.iter().map(|m| m.0).collect();
    let large: Vec<bool> = marks.iter().map(|m| m.1).collect();
    let versions: Vec<i64> = marks.iter().map(|m| m.2).collect();
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(BUILD).await.map_err(map_err)?;
    let updated = sqlx::query(
        "UPDATE follows_out f SET followee_large = m.large, large_version = m.version \
         FROM UNNEST($1::bigint[], $2::boolean[], $3::bigint[]) AS m(id, large, version) \
         WHERE f.followee_id = m.id AND f.large_version < m.version",
    )
    .bind(&ids)
    .bind(&large)
    .bind(&versions)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(updated)
}

/// Fresh planner statistics, and the side table gone.
async fn analyze_on(pool: PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    (&mut *tx).execute(RELAX).await.map_err(map_err)?;
    (&mut *tx).execute("ANALYZE").await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}

async fn drop_saved_on(pool: PgPool) -> StoreResult<()> {
    sqlx::query(&format!("DROP TABLE IF EXISTS {SAVED_INDEXES}"))
        .execute(&pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl BulkLoad for PgStore {
    async fn begin_bulk(&self, options: &BulkOptions) -> StoreResult<()> {
        let keep = options.keep_indexes;
        self.on_every_db(move |pool| begin_on(pool, keep)).await?;
        Ok(())
    }

    async fn load_accounts(&self, batch: &[NewAccount]) -> StoreResult<()> {
        const TABLES: &[&Table] = &[&ACCOUNTS, &CREDENTIALS, &EMAIL_DIRECTORY];
        let mut rows = Batch::new(self, TABLES);
        for n in batch {
            let a = &n.account;
            let shard = a.id.shard();
            rows.rows(shard, 0)
                .int(a.id.as_i64())
                .text(&a.username)
                .text(&a.username.to_ascii_lowercase())
                .text(&a.display_name)
                .text(&display_key(&a.display_name))
                .text(&a.note)
                .text(&fields_json(&a.fields))
                .bool(a.locked)
                .bool(a.bot)
                .bool(a.discoverable)
                .text(a.privacy.as_str())
                .bool(a.sensitive)
                .opt_text(a.language.as_deref())
                .int(a.created_at_ms)
                .int(a.statuses_count)
                .int(a.followers_count)
                .int(a.following_count)
                .opt_int(a.last_status_at_ms)
                .end();
            rows.rows(shard, 1)
                .int(a.id.as_i64())
                .text(&n.email)
                .text(&n.password_hash)
                .opt_text(n.locale.as_deref())
                .end();
            // Confirmed, as registration leaves it.
            rows.rows(ShardId::for_key(&n.email_key), 2)
                .text(&n.email_key)
                .int(a.id.as_i64())
                .bool(false)
                .end();
        }
        rows.load().await
    }

    async fn load_tokens(&self, batch: &[AccessToken]) -> StoreResult<()> {
        const TABLES: &[&Table] = &[&OAUTH_TOKENS];
        let mut rows = Batch::new(self, TABLES);
        for t in batch {
            // Where the server issues it (and its text says to look).
            let shard = t.account_id.map_or(t.app_id.shard(), |a| a.shard());
            rows.rows(shard, 0)
                .bytea(&t.token_hash.0)
                .int(t.app_id.as_i64())
                .opt_int(t.account_id.map(|a| a.as_i64()))
                .text(&t.scopes.to_string())
                .int(t.created_at_ms)
                .end();
        }
        rows.load().await
    }

    async fn load_follows(&self, batch: &[BulkFollow]) -> StoreResult<()> {
        const TABLES: &[&Table] = &[&FOLLOWS_OUT, &FOLLOWS_IN];
        let mut rows = Batch::new(self, TABLES);
        for f in batch {
            // Default options (boosts shown, no notifications); the large
            // copy is set by `finish_bulk`.
            rows.rows(f.follower.shard(), 0)
                .int(f.follower.as_i64())
                .int(f.followee.as_i64())
                .int(f.id.as_i64())
                .bool(true)
                .bool(false)
                .bool(false)
                .int(0)
                .int(f.created_at_ms)
                .end();
            rows.rows(f.followee.shard(), 1)
                .int(f.followee.as_i64())
                .int(f.follower.as_i64())
                .int(f.id.as_i64())
                .bool(true)
                .bool(false)
                .int(f.created_at_ms)
                .end();
        }
        rows.load().await
    }

    async fn load_statuses(&self, batch: &[Status]) -> StoreResult<()> {
        const TABLES: &[&Table] = &[&STATUSES, &STATUS_TAGS, &STATUS_REPLIES, &STATUS_REBLOGS];
        let mut rows = Batch::new(self, TABLES);
        for s in batch {
            let id = s.id.as_i64();
            rows.rows(s.account_id.shard(), 0)
                .int(id)
                .int(s.account_id.as_i64())
                .opt_int(s.reblog_of_id.map(|i| i.as_i64()))
                .opt_int(s.in_reply_to_id.map(|i| i.as_i64()))
                .opt_int(s.in_reply_to_account_id.map(|i| i.as_i64()))
                .text(&s.text)
                .text(&s.content)
                .text(&s.spoiler_text)
                .bool(s.sensitive)
                .int(i64::from(visibility_code(s.visibility)))
                .opt_text(s.language.as_deref())
                .opt_int(s.app_id.map(|i| i.as_i64()))
                .int_array(s.mentions.iter().map(|m| m.as_i64()))
                .text_array(&s.tags)
                .int(s.created_at_ms)
                .int(s.replies_count)
                .int(s.reblogs_count)
                .int(s.favourites_count)
                .end();
            // As the `Tagged` op: every occurrence counts a use; a public
            // original is listed once per tag.
            let public = s.visibility == Visibility::Public && !s.is_reblog();
            let mut listed = HashSet::new();
            for tag in &s.tags {
                let shard = ShardId::for_key(tag);
                let db = self.physical_index(shard);
                *rows.dbs[db].tag_uses.entry(tag.clone()).or_default() += 1;
                if public && listed.insert(tag.as_str()) {
                    rows.rows(shard, 1).text(tag).int(id).end();
                }
            }
            if let Some(parent) = s.in_reply_to_id {
                rows.rows(parent.shard(), 2)
                    .int(parent.as_i64())
                    .int(id)
                    .bool(crate::listed(s.visibility))
                    .end();
            }
            if let Some(original) = s.reblog_of_id {
                rows.rows(original.shard(), 3)
                    .int(original.as_i64())
                    .int(id)
                    .int(s.account_id.as_i64())
                    .bool(crate::listed(s.visibility))
                    .end();
            }
        }
        rows.load().await
    }

    async fn finish_bulk(&self, options: &FinishOptions) -> StoreResult<FinishReport> {
        let mut report = FinishReport::default();

        // 1. The deferred full indexes, every database at once.
        let started = Instant::now();
        let built = self
            .on_every_db(|pool| restore_on(pool, false))
            .await?
            .concat();
        if !built.is_empty() {
            step(&mut report, &format!("indexes ({})", names(built)), started);
        }

        // 2. Account counters.
        let started = Instant::now();
        self.on_every_db(counters_on).await?;
        step(&mut report, "account counters", started);

        // 3. Large accounts: marked on their own databases, then the marks
        // copied onto the follow rows on every database.
        let started = Instant::now();
        let threshold = options.large_account_threshold;
        let marked = self
            .on_every_db(move |pool| mark_on(pool, threshold))
            .await?;
        report.large_accounts = marked.iter().map(|(_, large)| large).sum();
        let marks: Vec<Mark> = marked.into_iter().flat_map(|(marks, _)| marks).collect();
        if !marks.is_empty() {
            let marks = std::sync::Arc::new(marks);
            self.on_every_db(move |pool| copy_marks_on(pool, marks.clone()))
                .await?;
        }
        step(&mut report, "large accounts", started);

        // 4. The deferred partial indexes (one of them is on the marks).
        let started = Instant::now();
        let built = self
            .on_every_db(|pool| restore_on(pool, true))
            .await?
            .concat();
        self.on_every_db(drop_saved_on).await?;
        if !built.is_empty() {
            step(
                &mut report,
                &format!("partial indexes ({})", names(built)),
                started,
            );
        }

        // 5. Statistics for the planner.
        let started = Instant::now();
        self.on_every_db(analyze_on).await?;
        step(&mut report, "analyze", started);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(write: impl FnOnce(&mut Rows)) -> String {
        let mut rows = Rows::default();
        write(&mut rows);
        rows.end();
        String::from_utf8(rows.buf).expect("utf-8")
    }

    #[test]
    fn copy_text_escapes_what_it_must() {
        assert_eq!(
            row(|r| {
                r.int(-5).text("a\tb\nc\\d\re").null().bool(true);
            }),
            "-5\ta\\tb\\nc\\\\d\\re\t\\N\tt\n"
        );
        assert_eq!(
            row(|r| {
                r.opt_int(None).opt_text(Some("é")).bytea(&[0, 0xab, 0x7f]);
            }),
            "\\N\té\t\\\\x00ab7f\n"
        );
    }

    #[test]
    fn arrays_are_literals() {
        assert_eq!(
            row(|r| {
                r.int_array([]).int_array([1, -2]);
            }),
            "{}\t{1,-2}\n"
        );
        assert_eq!(
            row(|r| {
                r.text_array(&["rust".into(), "a\"b\\c".into()]);
            }),
            // {"rust","a\"b\\c"}, its backslashes escaped again for COPY.
            "{\"rust\",\"a\\\\\"b\\\\\\\\c\"}\n"
        );
    }
}
