//! The SQLite adapter: the embedded shape's store.
//!
//! One database file in WAL mode holds all 1024 logical shards. Writes go
//! through a pool of exactly one connection (SQLite has one writer at a time
//! anyway; queuing in the pool is cheaper and fairer than retrying on
//! `SQLITE_BUSY`), reads through a pool of several, which WAL lets run beside
//! the writer. The hot reads do not go through sqlx at all: they run on the
//! calling thread ([`fast`]), which spares each query two thread hand-offs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::OptionalExtension;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use starling_domain::account::{Privacy, ProfileField, ProfileUpdate};
use starling_domain::oauth::{AccessToken, App, AuthCode};
use starling_domain::{Account, Id, ScopeSet, SecretHash, ShardId};

use crate::{Login, NewAccount, ShardMap, Store, StoreError, StoreResult};

pub(crate) mod fast;
mod write;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The pools of one SQLite file.
#[derive(Clone)]
pub struct SqliteDb {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// Reads on the calling thread (the hot ones).
    pub(crate) fast: Arc<fast::FastReader>,
    /// Hot write transactions on the calling thread ([`SqliteDb::write`]).
    pub(crate) fast_writer: Arc<write::FastWriter>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb").finish_non_exhaustive()
    }
}

pub struct SqliteStore {
    shards: ShardMap<SqliteDb>,
}

/// How long a call may wait for a connection before the store reports itself
/// unavailable (no call to another system without a timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, readers: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(ACQUIRE_TIMEOUT)
            // The file mapped (SQLite caps it at 2 GiB), a larger page
            // cache than the default 2 MB, temporary b-trees in memory.
            .pragma("mmap_size", "17179869184")
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory")
            .statement_cache_capacity(256);
        // No ping before each acquisition: a ping is a round trip to the
        // connection's thread, and a SQLite file does not hang up.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        let fast = Arc::new(fast::FastReader::new(
            path,
            readers.max(1) as usize,
            ACQUIRE_TIMEOUT,
        ));
        Ok(Self {
            shards: ShardMap::single(SqliteDb {
                writer,
                reader,
                fast,
                fast_writer: Arc::new(write::FastWriter::new(path, ACQUIRE_TIMEOUT)),
            }),
        })
    }

    /// An in-memory-like store in a fresh file under `dir` (tests).
    pub async fn open_in(dir: &Path) -> StoreResult<Self> {
        Self::open(&dir.join("starling.db"), 4).await
    }

    pub(crate) fn db(&self, shard: ShardId) -> &SqliteDb {
        self.shards.get(shard)
    }

    /// Every physical database (queries that are not keyed by a shard).
    pub(crate) fn physical_dbs(&self) -> &[SqliteDb] {
        self.shards.physical()
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // SQLite names the violated column: "UNIQUE constraint failed:
        // email_directory.email_key" or "accounts.username_key".
        sqlx::Error::Database(ref db) if db.is_unique_violation() => {
            let msg = db.message();
            if msg.contains("email") {
                StoreError::Conflict("email")
            } else if msg.contains("username") {
                StoreError::Conflict("username")
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        other => StoreError::Internal(other.to_string()),
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}

pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, username, display_name, note, fields, locked, bot, discoverable, \
     privacy, sensitive, language, created_at, statuses_count, followers_count, following_count, \
     last_status_at, avatar, header";

pub(crate) fn account_from_row(row: &SqliteRow) -> StoreResult<Account> {
    let fields_json: String = row.get("fields");
    let fields: Vec<serde_json::Value> =
        serde_json::from_str(&fields_json).map_err(|_| corrupt("accounts.fields"))?;
    let fields = fields
        .iter()
        .map(|f| ProfileField {
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            value: f["value"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let privacy: String = row.get("privacy");
    Ok(Account {
        id: Id::from_i64(row.get("id")),
        username: row.get("username"),
        display_name: row.get("display_name"),
        note: row.get("note"),
        fields,
        locked: row.get("locked"),
        bot: row.get("bot"),
        discoverable: row.get("discoverable"),
        privacy: Privacy::parse(&privacy).ok_or_else(|| corrupt("accounts.privacy"))?,
        sensitive: row.get("sensitive"),
        language: row.get("language"),
        created_at_ms: row.get("created_at"),
        statuses_count: row.get("statuses_count"),
        followers_count: row.get("followers_count"),
        following_count: row.get("following_count"),
        last_status_at_ms: row.get("last_status_at"),
        avatar: row.get("avatar"),
        header: row.get("header"),
    })
}

/// [`account_from_row`] for the read path's rows.
pub(crate) fn account_from_fast(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Account>> {
    let fields_json: String = row.get("fields")?;
    let privacy: String = row.get("privacy")?;
    let Ok(fields) = serde_json::from_str::<Vec<serde_json::Value>>(&fields_json) else {
        return Ok(Err(corrupt("accounts.fields")));
    };
    let Some(privacy) = Privacy::parse(&privacy) else {
        return Ok(Err(corrupt("accounts.privacy")));
    };
    Ok(Ok(Account {
        id: Id::from_i64(row.get("id")?),
        username: row.get("username")?,
        display_name: row.get("display_name")?,
        note: row.get("note")?,
        fields: fields
            .iter()
            .map(|f| ProfileField {
                name: f["name"].as_str().unwrap_or_default().to_owned(),
                value: f["value"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
        locked: row.get("locked")?,
        bot: row.get("bot")?,
        discoverable: row.get("discoverable")?,
        privacy,
        sensitive: row.get("sensitive")?,
        language: row.get("language")?,
        created_at_ms: row.get("created_at")?,
        statuses_count: row.get("statuses_count")?,
        followers_count: row.get("followers_count")?,
        following_count: row.get("following_count")?,
        last_status_at_ms: row.get("last_status_at")?,
        avatar: row.get("avatar")?,
        header: row.get("header")?,
    }))
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

fn scopes_from(text: &str) -> StoreResult<ScopeSet> {
    ScopeSet::parse(text).map_err(|_| corrupt("scopes"))
}

fn hash_from(bytes: &[u8]) -> StoreResult<SecretHash> {
    SecretHash::from_slice(bytes).ok_or_else(|| corrupt("hash"))
}

fn app_from_row(row: &SqliteRow) -> StoreResult<App> {
    let uris: String = row.get("redirect_uris");
    Ok(App {
        id: Id::from_i64(row.get("id")),
        client_id: row.get("client_id"),
        client_secret_hash: hash_from(row.get("client_secret_hash"))?,
        name: row.get("name"),
        website: row.get("website"),
        redirect_uris: uris.lines().map(str::to_owned).collect(),
        scopes: scopes_from(row.get("scopes"))?,
        created_at_ms: row.get("created_at"),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        for db in self.shards.physical() {
            sqlx::query("SELECT 1")
                .execute(&db.reader)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        for db in self.shards.physical() {
            MIGRATOR
                .run(&db.writer)
                .await
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        }
        Ok(())
    }

    async fn max_ids(&self) -> StoreResult<Vec<Id>> {
        let mut out = Vec::new();
        for db in self.shards.physical() {
            let row = sqlx::query(
                "SELECT MAX(m) AS m FROM (SELECT MAX(id) AS m FROM accounts \
                 UNION ALL SELECT MAX(id) FROM oauth_apps \
                 UNION ALL SELECT MAX(id) FROM statuses \
                 UNION ALL SELECT MAX(id) FROM favourites \
                 UNION ALL SELECT MAX(id) FROM follows \
                 UNION ALL SELECT MAX(id) FROM follow_requests \
                 UNION ALL SELECT MAX(id) FROM blocks \
                 UNION ALL SELECT MAX(id) FROM mutes \
                 UNION ALL SELECT MAX(id) FROM media_attachments \
                 UNION ALL SELECT MAX(id) FROM notifications)",
            )
            .fetch_one(&db.reader)
            .await
            .map_err(map_err)?;
            if let Some(m) = row.get::<Option<i64>, _>("m") {
                out.push(Id::from_i64(m));
            }
        }
        Ok(out)
    }

    async fn create_account(&self, new: &NewAccount) -> StoreResult<()> {
        // Both the account's shard and the email's shard live in this file,
        // so one transaction claims the email and creates the account.
        let a = &new.account;
        let mut tx = self
            .db(a.id.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO email_directory (email_key, account_id) VALUES (?, ?)")
            .bind(&new.email_key)
            .bind(a.id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(&format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}, username_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(a.id.as_i64())
        .bind(&a.username)
        .bind(&a.display_name)
        .bind(&a.note)
        .bind(fields_json(&a.fields))
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
        .bind(&a.avatar)
        .bind(&a.header)
        .bind(a.username.to_ascii_lowercase())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO credentials (account_id, email, password_hash, locale) VALUES (?, ?, ?, ?)",
        )
        .bind(a.id.as_i64())
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(&new.locale)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn account(&self, id: Id) -> StoreResult<Option<Account>> {
        self.db(id.shard())
            .fast
            .with(|c| {
                c.prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
                ))?
                .query_row([id.as_i64()], account_from_fast)
                .optional()
            })?
            .transpose()
    }

    async fn account_by_username(&self, username_key: &str) -> StoreResult<Option<Account>> {
        if crate::names_nothing(username_key) {
            return Ok(None);
        }
        self.db(ShardId::for_key(username_key))
            .fast
            .with(|c| {
                c.prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key = ?"
                ))?
                .query_row([username_key], account_from_fast)
                .optional()
            })?
            .transpose()
    }

    async fn login_by_email(&self, email_key: &str) -> StoreResult<Option<Login>> {
        if crate::names_nothing(email_key) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT account_id FROM email_directory WHERE email_key = ?")
            .bind(email_key)
            .fetch_optional(&self.db(ShardId::for_key(email_key)).reader)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let id = Id::from_i64(row.get("account_id"));
        let row = sqlx::query("SELECT password_hash FROM credentials WHERE account_id = ?")
            .bind(id.as_i64())
            .fetch_optional(&self.db(id.shard()).reader)
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| Login {
            account_id: id,
            password_hash: r.get("password_hash"),
        }))
    }

    async fn login_by_username(&self, username_key: &str) -> StoreResult<Option<Login>> {
        if crate::names_nothing(username_key) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT c.account_id, c.password_hash FROM accounts a \
             JOIN credentials c ON c.account_id = a.id WHERE a.username_key = ?",
        )
        .bind(username_key)
        .fetch_optional(&self.db(ShardId::for_key(username_key)).reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(|r| Login {
            account_id: Id::from_i64(r.get("account_id")),
            password_hash: r.get("password_hash"),
        }))
    }

    async fn account_email(&self, id: Id) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT email FROM credentials WHERE account_id = ?")
            .bind(id.as_i64())
            .fetch_optional(&self.db(id.shard()).reader)
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| r.get("email")))
    }

    async fn update_profile(&self, id: Id, update: &ProfileUpdate) -> StoreResult<Option<Account>> {
        let mut tx = self.db(id.shard()).writer.begin().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
        ))
        .bind(id.as_i64())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut account = account_from_row(&row)?;
        update.apply(&mut account);
        sqlx::query(
            "UPDATE accounts SET display_name = ?, note = ?, fields = ?, locked = ?, bot = ?, \
             discoverable = ?, privacy = ?, sensitive = ?, language = ?, avatar = ?, header = ? \
             WHERE id = ?",
        )
        .bind(&account.display_name)
        .bind(&account.note)
        .bind(fields_json(&account.fields))
        .bind(account.locked)
        .bind(account.bot)
        .bind(account.discoverable)
        .bind(account.privacy.as_str())
        .bind(account.sensitive)
        .bind(&account.language)
        .bind(&account.avatar)
        .bind(&account.header)
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(account))
    }

    async fn count_accounts(&self) -> StoreResult<u64> {
        let mut total = 0u64;
        for db in self.shards.physical() {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                .fetch_one(&db.reader)
                .await
                .map_err(map_err)?;
            total += n as u64;
        }
        Ok(total)
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_apps (id, client_id, client_secret_hash, name, website, \
             redirect_uris, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app.id.as_i64())
        .bind(&app.client_id)
        .bind(&app.client_secret_hash.0[..])
        .bind(&app.name)
        .bind(&app.website)
        .bind(app.redirect_uris.join("\n"))
        .bind(app.scopes.to_string())
        .bind(app.created_at_ms)
        .execute(&self.db(app.id.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn app(&self, id: Id) -> StoreResult<Option<App>> {
        let row = sqlx::query("SELECT * FROM oauth_apps WHERE id = ?")
            .bind(id.as_i64())
            .fetch_optional(&self.db(id.shard()).reader)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_by_client_id(&self, shard: ShardId, client_id: &str) -> StoreResult<Option<App>> {
        if crate::names_nothing(client_id) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM oauth_apps WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.db(shard).reader)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn create_auth_code(&self, shard: ShardId, code: &AuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, app_id, account_id, redirect_uri, scopes, \
             code_challenge, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash.0[..])
        .bind(code.app_id.as_i64())
        .bind(code.account_id.as_i64())
        .bind(&code.redirect_uri)
        .bind(code.scopes.to_string())
        .bind(&code.code_challenge)
        .bind(code.expires_at_ms)
        .execute(&self.db(shard).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn take_auth_code(
        &self,
        shard: ShardId,
        hash: &SecretHash,
    ) -> StoreResult<Option<AuthCode>> {
        let row = sqlx::query("DELETE FROM oauth_codes WHERE code_hash = ? RETURNING *")
            .bind(&hash.0[..])
            .fetch_optional(&self.db(shard).writer)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AuthCode {
            code_hash: hash_from(row.get("code_hash"))?,
            app_id: Id::from_i64(row.get("app_id")),
            account_id: Id::from_i64(row.get("account_id")),
            redirect_uri: row.get("redirect_uri"),
            scopes: scopes_from(row.get("scopes"))?,
            code_challenge: row.get("code_challenge"),
            expires_at_ms: row.get("expires_at"),
        }))
    }

    async fn create_token(&self, shard: ShardId, token: &AccessToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_tokens (token_hash, app_id, account_id, scopes, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&token.token_hash.0[..])
        .bind(token.app_id.as_i64())
        .bind(token.account_id.map(Id::as_i64))
        .bind(token.scopes.to_string())
        .bind(token.created_at_ms)
        .execute(&self.db(shard).writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<Option<AccessToken>> {
        // Every authenticated request starts here: the read path.
        type Row = (Vec<u8>, i64, Option<i64>, String, i64);
        let row: Option<Row> = self.db(shard).fast.with(|c| {
            c.prepare_cached(
                "SELECT token_hash, app_id, account_id, scopes, created_at \
                 FROM oauth_tokens WHERE token_hash = ?",
            )?
            .query_row([&hash.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })?;
        let Some((token_hash, app_id, account_id, scopes, created_at)) = row else {
            return Ok(None);
        };
        Ok(Some(AccessToken {
            token_hash: hash_from(&token_hash)?,
            app_id: Id::from_i64(app_id),
            account_id: account_id.map(Id::from_i64),
            scopes: scopes_from(&scopes)?,
            created_at_ms: created_at,
        }))
    }

    async fn revoke_token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_tokens WHERE token_hash = ?")
            .bind(&hash.0[..])
            .execute(&self.db(shard).writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
