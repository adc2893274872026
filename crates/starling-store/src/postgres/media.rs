//! [`MediaStore`] for PostgreSQL: an upload's row is on its uploader's
//! shard, written on that shard's primary with its event, if any.

use async_trait::async_trait;
use sqlx::Row;
use starling_domain::{Event, EventKind, Id, MediaAttachment};

use super::mirror::emit;
use super::{map_err, PgStore};
use crate::media::{decode, encode, MediaStore, MEDIA_COLUMNS};
use crate::StoreResult;

fn from_row(row: &sqlx::postgres::PgRow) -> StoreResult<MediaAttachment> {
    decode(
        &row.get::<String, _>("data"),
        row.get("status_id"),
        row.get("created_at"),
    )
}

#[async_trait]
impl MediaStore for PgStore {
    async fn create_media(&self, media: &MediaAttachment, process_later: bool) -> StoreResult<()> {
        let mut tx = self
            .writer(media.account_id.shard())
            .begin()
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO media_attachments (id, account_id, status_id, state, created_at, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
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
            let event = Event {
                id: media.id,
                created_at_ms: media.created_at_ms,
                kind: EventKind::MediaUploaded {
                    media_id: media.id,
                    account_id: media.account_id,
                },
            };
            emit(&mut tx, &event).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn media(&self, id: Id) -> StoreResult<Option<MediaAttachment>> {
        // Polled right after the upload and after each processing step:
        // read where the writes are.
        let row = sqlx::query(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media_attachments \
             WHERE id = $1 AND state <> 'discarded'"
        ))
        .bind(id.as_i64())
        .fetch_optional(self.writer(id.shard()))
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
            "UPDATE media_attachments SET state = $1, data = $2 \
             WHERE id = $3 AND account_id = $4 AND status_id IS NULL AND data = $5 \
             AND state <> 'discarded'",
        )
        .bind(next.state.as_str())
        .bind(encode(next))
        .bind(next.id.as_i64())
        .bind(next.account_id.as_i64())
        .bind(encode(current))
        .execute(self.writer(next.id.shard()))
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn stale_media(&self, before_ms: i64, limit: usize) -> StoreResult<Vec<MediaAttachment>> {
        let mut out = Vec::new();
        for db in self.dbs() {
            let rows = sqlx::query(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media_attachments \
                 WHERE status_id IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2"
            ))
            .bind(before_ms)
            .bind(limit as i64)
            .fetch_all(&db.primary)
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
        let done = sqlx::query("DELETE FROM media_attachments WHERE id = $1 AND status_id IS NULL")
            .bind(id.as_i64())
            .execute(self.writer(id.shard()))
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard_media(&self, id: Id) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE media_attachments SET state = 'discarded', created_at = 0 \
             WHERE id = $1 AND status_id IS NULL AND state <> 'discarded'",
        )
        .bind(id.as_i64())
        .execute(self.writer(id.shard()))
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
