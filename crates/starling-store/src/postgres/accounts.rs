//! [`Store`] for PostgreSQL: readiness, migrations, accounts and OAuth.
//!
//! Registration spans two shards, the account's (its username's hash) and
//! the email's, and so two databases. It claims the email first (a
//! `pending` directory row: a taken email fails here with
//! `Conflict("email")` and nothing else written), then creates the account
//! and its credentials in one transaction on the account's database (a
//! taken username fails with `Conflict("username")`, and the claim is
//! released), then confirms the claim. A crash in between leaves a pending
//! claim, which [`PgStore::repair_mirrors`] confirms if the account exists
//! and releases if not; meanwhile `login_by_email` only answers for a claim
//! whose account exists.

use async_trait::async_trait;
use sqlx::Row;
use starling_domain::account::ProfileUpdate;
use starling_domain::oauth::{AccessToken, App, AuthCode};
use starling_domain::{Account, Id, SecretHash, ShardId};

use super::mirror::CrashPoint;
use super::rows::{
    account_from_row, app_from_row, display_key, fields_json, hash_from, scopes_from,
    ACCOUNT_COLUMNS,
};
use super::{map_err, PgStore, MIGRATOR};
use crate::{Login, NewAccount, Store, StoreError, StoreResult};

impl PgStore {
    /// The account and its credentials, in one transaction on its shard.
    async fn insert_account(&self, new: &NewAccount) -> StoreResult<()> {
        let a = &new.account;
        let mut tx = self.writer(a.id.shard()).begin().await.map_err(map_err)?;
        sqlx::query(&format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}, username_key, display_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20)"
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
        .bind(display_key(&a.display_name))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO credentials (account_id, email, password_hash, locale) \
             VALUES ($1, $2, $3, $4)",
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

    /// Removes `account`'s claim on `email_key` (best effort: a claim left
    /// behind is released by repair).
    async fn release_claim(&self, email_key: &str, account: Id) {
        let released = sqlx::query(
            "DELETE FROM email_directory WHERE email_key = $1 AND account_id = $2 AND pending",
        )
        .bind(email_key)
        .bind(account.as_i64())
        .execute(self.writer(ShardId::for_key(email_key)))
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release an email claim; repair will");
        }
    }

    /// Confirms the claim; if it vanished (repair released it while this
    /// registration was slow), claims the email again, or undoes the
    /// account if someone else took it meanwhile.
    async fn confirm_claim(&self, new: &NewAccount) -> StoreResult<()> {
        let id = new.account.id;
        let pool = self.writer(ShardId::for_key(&new.email_key));
        let confirmed = sqlx::query(
            "UPDATE email_directory SET pending = FALSE WHERE email_key = $1 AND account_id = $2",
        )
        .bind(&new.email_key)
        .bind(id.as_i64())
        .execute(pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if confirmed > 0 {
            return Ok(());
        }
        let claimed = sqlx::query(
            "INSERT INTO email_directory (email_key, account_id, pending) VALUES ($1, $2, FALSE) \
             ON CONFLICT (email_key) DO NOTHING",
        )
        .bind(&new.email_key)
        .bind(id.as_i64())
        .execute(pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if claimed > 0 {
            return Ok(());
        }
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id.as_i64())
            .execute(self.writer(id.shard()))
            .await
            .map_err(map_err)?;
        Err(StoreError::Conflict("email"))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        for db in self.dbs() {
            sqlx::query("SELECT 1")
                .execute(&db.primary)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn repair(&self, older_than: std::time::Duration) -> StoreResult<usize> {
        self.repair_mirrors(older_than).await
    }

    async fn migrate(&self) -> StoreResult<()> {
        for db in self.dbs() {
            MIGRATOR
                .run(&db.primary)
                .await
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        }
        Ok(())
    }

    async fn max_ids(&self) -> StoreResult<Vec<Id>> {
        let mut out = Vec::new();
        for db in self.dbs() {
            let started = std::time::Instant::now();
            // The primary: a replica may not have the newest ids yet. The
            // graph tables' ids lead no index, so this scans them: on a
            // database of 25M follows that is seconds, past the statement
            // timeout (a process could not start). It runs once per start,
            // so it runs without one.
            let mut tx = db.primary.begin().await.map_err(map_err)?;
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let max: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM accounts \
                 UNION ALL SELECT MAX(id) FROM oauth_apps \
                 UNION ALL SELECT MAX(id) FROM statuses \
                 UNION ALL SELECT MAX(id) FROM favourites \
                 UNION ALL SELECT MAX(favourite_id) FROM status_favourites \
                 UNION ALL SELECT MAX(boost_id) FROM status_reblogs \
                 UNION ALL SELECT MAX(id) FROM follows_out \
                 UNION ALL SELECT MAX(id) FROM follows_in \
                 UNION ALL SELECT MAX(id) FROM follow_requests_out \
                 UNION ALL SELECT MAX(id) FROM follow_requests_in \
                 UNION ALL SELECT MAX(id) FROM blocks \
                 UNION ALL SELECT MAX(id) FROM blocked_by \
                 UNION ALL SELECT MAX(id) FROM mutes \
                 UNION ALL SELECT MAX(id) FROM media_attachments \
                 UNION ALL SELECT MAX(id) FROM notifications) AS t",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            let took = started.elapsed();
            if took > std::time::Duration::from_secs(1) {
                tracing::info!(
                    seconds = took.as_secs_f64(),
                    "read the highest ids of a database (a scan of its graph tables)"
                );
            }
            out.extend(max.map(Id::from_i64));
        }
        Ok(out)
    }

    async fn create_account(&self, new: &NewAccount) -> StoreResult<()> {
        let id = new.account.id;
        sqlx::query(
            "INSERT INTO email_directory (email_key, account_id, pending) VALUES ($1, $2, TRUE)",
        )
        .bind(&new.email_key)
        .bind(id.as_i64())
        .execute(self.writer(ShardId::for_key(&new.email_key)))
        .await
        .map_err(map_err)?;
        if self.crash_point() == Some(CrashPoint::AfterEmailClaim) {
            return Err(StoreError::Unavailable(
                "injected crash after the email claim".into(),
            ));
        }
        match self.insert_account(new).await {
            Ok(()) => {}
            Err(e @ StoreError::Conflict(_)) => {
                // Certainly not created: give the email back now.
                self.release_claim(&new.email_key, id).await;
                return Err(e);
            }
            // Maybe created (a commit whose answer was lost): repair decides
            // by whether the account exists.
            Err(e) => return Err(e),
        }
        if self.crash_point() == Some(CrashPoint::AfterFirstSide) {
            return Ok(());
        }
        self.confirm_claim(new).await
    }

    async fn account(&self, id: Id) -> StoreResult<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row = self
            .reader(id.shard())
            .read_found(|pool| sqlx::query(&sql).bind(id.as_i64()).fetch_optional(pool))
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn account_by_username(&self, username_key: &str) -> StoreResult<Option<Account>> {
        if crate::names_nothing(username_key) {
            return Ok(None);
        }
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key = $1");
        let row = self
            .reader(ShardId::for_key(username_key))
            .read_found(|pool| sqlx::query(&sql).bind(username_key).fetch_optional(pool))
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn login_by_email(&self, email_key: &str) -> StoreResult<Option<Login>> {
        if crate::names_nothing(email_key) {
            return Ok(None);
        }
        // A pending claim counts if its account exists (a registration that
        // crashed before confirming); one whose account does not is ignored.
        let account: Option<i64> = self
            .reader(ShardId::for_key(email_key))
            .read_found(|pool| {
                sqlx::query_scalar("SELECT account_id FROM email_directory WHERE email_key = $1")
                    .bind(email_key)
                    .fetch_optional(pool)
            })
            .await?;
        let Some(account) = account.map(Id::from_i64) else {
            return Ok(None);
        };
        let hash: Option<String> = self
            .reader(account.shard())
            .read_found(|pool| {
                sqlx::query_scalar("SELECT password_hash FROM credentials WHERE account_id = $1")
                    .bind(account.as_i64())
                    .fetch_optional(pool)
            })
            .await?;
        Ok(hash.map(|password_hash| Login {
            account_id: account,
            password_hash,
        }))
    }

    async fn login_by_username(&self, username_key: &str) -> StoreResult<Option<Login>> {
        if crate::names_nothing(username_key) {
            return Ok(None);
        }
        let row = self
            .reader(ShardId::for_key(username_key))
            .read_found(|pool| {
                sqlx::query(
                    "SELECT c.account_id, c.password_hash FROM accounts a \
                     JOIN credentials c ON c.account_id = a.id WHERE a.username_key = $1",
                )
                .bind(username_key)
                .fetch_optional(pool)
            })
            .await?;
        Ok(row.map(|r| Login {
            account_id: Id::from_i64(r.get("account_id")),
            password_hash: r.get("password_hash"),
        }))
    }

    async fn account_email(&self, id: Id) -> StoreResult<Option<String>> {
        self.reader(id.shard())
            .read_found(|pool| {
                sqlx::query_scalar("SELECT email FROM credentials WHERE account_id = $1")
                    .bind(id.as_i64())
                    .fetch_optional(pool)
            })
            .await
    }

    async fn update_profile(&self, id: Id, update: &ProfileUpdate) -> StoreResult<Option<Account>> {
        let mut tx = self.writer(id.shard()).begin().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 FOR UPDATE"
        ))
        .bind(id.as_i64())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut account = account_from_row(&row)?;
        update.apply(&mut account);
        sqlx::query(
            "UPDATE accounts SET display_name = $1, display_key = $2, note = $3, fields = $4, \
             locked = $5, bot = $6, discoverable = $7, privacy = $8, sensitive = $9, \
             language = $10, avatar = $11, header = $12 WHERE id = $13",
        )
        .bind(&account.display_name)
        .bind(display_key(&account.display_name))
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
        for db in self.dbs() {
            let n: i64 = db
                .read(|pool| sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(pool))
                .await?;
            total += n as u64;
        }
        Ok(total)
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_apps (id, client_id, client_secret_hash, name, website, \
             redirect_uris, scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app.id.as_i64())
        .bind(&app.client_id)
        .bind(&app.client_secret_hash.0[..])
        .bind(&app.name)
        .bind(&app.website)
        .bind(app.redirect_uris.join("\n"))
        .bind(app.scopes.to_string())
        .bind(app.created_at_ms)
        .execute(self.writer(app.id.shard()))
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn app(&self, id: Id) -> StoreResult<Option<App>> {
        let row = self
            .reader(id.shard())
            .read_found(|pool| {
                sqlx::query("SELECT * FROM oauth_apps WHERE id = $1")
                    .bind(id.as_i64())
                    .fetch_optional(pool)
            })
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_by_client_id(&self, shard: ShardId, client_id: &str) -> StoreResult<Option<App>> {
        if crate::names_nothing(client_id) {
            return Ok(None);
        }
        let row = self
            .reader(shard)
            .read_found(|pool| {
                sqlx::query("SELECT * FROM oauth_apps WHERE client_id = $1")
                    .bind(client_id)
                    .fetch_optional(pool)
            })
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn create_auth_code(&self, shard: ShardId, code: &AuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, app_id, account_id, redirect_uri, scopes, \
             code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&code.code_hash.0[..])
        .bind(code.app_id.as_i64())
        .bind(code.account_id.as_i64())
        .bind(&code.redirect_uri)
        .bind(code.scopes.to_string())
        .bind(&code.code_challenge)
        .bind(code.expires_at_ms)
        .execute(self.writer(shard))
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn take_auth_code(
        &self,
        shard: ShardId,
        hash: &SecretHash,
    ) -> StoreResult<Option<AuthCode>> {
        let row = sqlx::query("DELETE FROM oauth_codes WHERE code_hash = $1 RETURNING *")
            .bind(&hash.0[..])
            .fetch_optional(self.writer(shard))
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let code_hash: Vec<u8> = row.get("code_hash");
        Ok(Some(AuthCode {
            code_hash: hash_from(&code_hash)?,
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
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.token_hash.0[..])
        .bind(token.app_id.as_i64())
        .bind(token.account_id.map(Id::as_i64))
        .bind(token.scopes.to_string())
        .bind(token.created_at_ms)
        .execute(self.writer(shard))
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<Option<AccessToken>> {
        // A token made a moment ago (by another process) may not be on the
        // replica yet: `read_found` asks the primary before saying "none".
        let row = self
            .reader(shard)
            .read_found(|pool| {
                sqlx::query("SELECT * FROM oauth_tokens WHERE token_hash = $1")
                    .bind(&hash.0[..])
                    .fetch_optional(pool)
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token_hash: Vec<u8> = row.get("token_hash");
        Ok(Some(AccessToken {
            token_hash: hash_from(&token_hash)?,
            app_id: Id::from_i64(row.get("app_id")),
            account_id: row.get::<Option<i64>, _>("account_id").map(Id::from_i64),
            scopes: scopes_from(row.get("scopes"))?,
            created_at_ms: row.get("created_at"),
        }))
    }

    async fn revoke_token(&self, shard: ShardId, hash: &SecretHash) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_tokens WHERE token_hash = $1")
            .bind(&hash.0[..])
            .execute(self.writer(shard))
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
