//! [`MediaStore`] for SQLite.

use async_trait::async_trait;
use sqlx::Row;
use starling_domain::{EventKind, Id, MediaAttachment};

use crate::media::{decode, encode, MediaStore, MEDIA_COLUMNS};
use crate::sqlite::{map_err, SqliteStore};
use crate::sqlite_social::emit;
use crate::StoreResult;

fn from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<MediaAttachment> {
    decode(
        &row.get::<String, _>("data"),
        row.get("status_id"),
        row.get("created_at"),
    )
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn create_media(&self, media: &MediaAttachment, process_later: bool) -> StoreResult<()> {
        let mut tx = self
            .db(media.account_id.shard())
            .writer
            .begin()
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO media_attachments (id, account_id, status_id, state, created_at, data) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(media.id.as_i64())
        .bind(media.account_id.as_i64())
        .bind(media.status_id.map(Id::as_i64))
        .bind(media.state.as_str())
        .bind(media.created_at_ms)
        .bind(encode(media))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if process_later {
            emit(
                &mut tx,
                media.id,
                media.created_at_ms,
                EventKind::MediaUploaded {
                    media_id: media.id,
                    account_id: media.account_id,
                },
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn media(&self, id: Id) -> StoreResult<Option<MediaAttachment>> {
        let row = sqlx::query(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media_attachments \
             WHERE id = ? AND state <> 'discarded'"
        ))
        .bind(id.as_i64())
        .fetch_optional(&self.db(id.shard()).reader)
        .await
        .map_err(map_err)?;
        row.map(|r| from_row(&r)).transpose()
    }

    async fn update_media(
        &self,
        current: &MediaAttachment,
        next: &MediaAttachment,
    ) -> StoreResult<bool> {
        if current.id != next.id || current.account_id != next.account_id {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE media_attachments SET state = ?, data = ? \
             WHERE id = ? AND account_id = ? AND status_id IS NULL AND data = ? \
             AND state <> 'discarded'",
        )
        .bind(next.state.as_str())
        .bind(encode(next))
        .bind(next.id.as_i64())
        .bind(next.account_id.as_i64())
        .bind(encode(current))
        .execute(&self.db(next.id.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn stale_media(&self, before_ms: i64, limit: usize) -> StoreResult<Vec<MediaAttachment>> {
        let mut out = Vec::new();
        for db in self.physical_dbs() {
            let rows = sqlx::query(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media_attachments \
                 WHERE status_id IS NULL AND created_at < ? ORDER BY created_at LIMIT ?"
            ))
            .bind(before_ms)
            .bind(limit as i64)
            .fetch_all(&db.reader)
            .await
            .map_err(map_err)?;
            for row in &rows {
                out.push(from_row(row)?);
            }
        }
        out.sort_by_key(|m| m.created_at_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn delete_unattached_media(&self, id: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM media_attachments WHERE id = ? AND status_id IS NULL")
            .bind(id.as_i64())
            .execute(&self.db(id.shard()).writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard_media(&self, id: Id) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE media_attachments SET state = 'discarded', created_at = 0 \
             WHERE id = ? AND status_id IS NULL AND state <> 'discarded'",
        )
        .bind(id.as_i64())
        .execute(&self.db(id.shard()).writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
