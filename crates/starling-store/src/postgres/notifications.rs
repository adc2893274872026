//! [`NotificationStore`] and [`OutboxStore`] for PostgreSQL.
//!
//! Notifications and markers live on their owner's shard: one database per
//! call. The outbox is per physical database; an entry's key is
//! `(database index, seq)`. `seq` order is commit order on each database
//! (a transaction takes the database's outbox lock right before its outbox
//! insert, its last statement; see [`super::mirror::emit`]), so the relay
//! never hands out an event before one that committed earlier on the same
//! database, and a lower `seq` can never appear after a higher one was
//! read. Events of different databases have no order between them; a page
//! of the outbox interleaves the databases by event time.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use starling_domain::{Event, Id, Notification, NotificationType, Page};

use super::rows::{
    id, newest_first, notification_from_row, now_ms, push_page, NOTIFICATION_COLUMNS,
};
use super::{map_err, PgDb, PgStore};
use crate::social::{Marker, NotificationFilter, NotificationStore, OutboxEntry, OutboxStore};
use crate::{StoreError, StoreResult};

fn marker_from_row(row: &PgRow) -> Marker {
    Marker {
        timeline: row.get("timeline"),
        last_read_id: id(row, "last_read_id"),
        version: row.get("version"),
        updated_at_ms: row.get("updated_at"),
    }
}

#[async_trait]
impl NotificationStore for PgStore {
    async fn create_notifications(&self, notifications: &[Notification]) -> StoreResult<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        // One batch is for one recipient's shard (as the consumers write
        // them); any other recipient's go to their own databases.
        let mut groups: std::collections::BTreeMap<usize, Vec<&Notification>> =
            std::collections::BTreeMap::new();
        for n in notifications {
            groups
                .entry(self.physical_index(n.account_id.shard()))
                .or_default()
                .push(n);
        }
        for (index, batch) in groups {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO notifications \
                 (id, account_id, kind, from_account_id, status_id, created_at, event_id) ",
            );
            qb.push_values(batch, |mut row, n| {
                row.push_bind(n.id.as_i64())
                    .push_bind(n.account_id.as_i64())
                    .push_bind(n.kind.as_str())
                    .push_bind(n.from_account_id.as_i64())
                    .push_bind(n.status_id.map(Id::as_i64))
                    .push_bind(n.created_at_ms)
                    .push_bind(n.event_id.as_i64());
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build()
                .execute(&self.db_at(index)?.primary)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn notifications(
        &self,
        account: Id,
        filter: &NotificationFilter,
        page: &Page,
    ) -> StoreResult<Vec<Notification>> {
        let rows = self
            .reader(account.shard())
            .read(|pool| async move {
                let mut qb = QueryBuilder::<Postgres>::new(format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE account_id = "
                ));
                qb.push_bind(account.as_i64());
                for (kinds, op) in [
                    (&filter.types, " AND kind = ANY("),
                    (&filter.exclude_types, " AND NOT kind = ANY("),
                ] {
                    if kinds.is_empty() {
                        continue;
                    }
                    let names: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
                    qb.push(op).push_bind(names).push(")");
                }
                if let Some(from) = filter.from_account {
                    qb.push(" AND from_account_id = ").push_bind(from.as_i64());
                }
                push_page(&mut qb, "id", page);
                qb.build().fetch_all(pool).await
            })
            .await?;
        let list = rows
            .iter()
            .map(notification_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(newest_first(list, page))
    }

    async fn notification(&self, account: Id, id: Id) -> StoreResult<Option<Notification>> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1 AND account_id = $2"
        );
        let row = self
            .reader(account.shard())
            .read_found(|pool| {
                sqlx::query(&sql)
                    .bind(id.as_i64())
                    .bind(account.as_i64())
                    .fetch_optional(pool)
            })
            .await?;
        row.as_ref().map(notification_from_row).transpose()
    }

    async fn dismiss_notification(&self, account: Id, id: Id) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM notifications WHERE id = $1 AND account_id = $2")
            .bind(id.as_i64())
            .bind(account.as_i64())
            .execute(self.writer(account.shard()))
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
            "DELETE FROM notifications \
             WHERE account_id = $1 AND kind = $2 AND from_account_id = $3",
        )
        .bind(account.as_i64())
        .bind(kind.as_str())
        .bind(from.as_i64())
        .execute(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn clear_notifications(&self, account: Id) -> StoreResult<()> {
        sqlx::query("DELETE FROM notifications WHERE account_id = $1")
            .bind(account.as_i64())
            .execute(self.writer(account.shard()))
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
        let n: i64 = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM notifications \
                     WHERE account_id = $1 AND id > $2 LIMIT $3) AS t",
                )
                .bind(account.as_i64())
                .bind(after.map_or(i64::MIN, Id::as_i64))
                .bind(limit as i64)
                .fetch_one(pool)
            })
            .await?;
        Ok(n as u64)
    }

    async fn markers(&self, account: Id) -> StoreResult<Vec<Marker>> {
        let rows = self
            .reader(account.shard())
            .read(|pool| {
                sqlx::query(
                    "SELECT timeline, last_read_id, version, updated_at FROM markers \
                     WHERE account_id = $1 ORDER BY timeline",
                )
                .bind(account.as_i64())
                .fetch_all(pool)
            })
            .await?;
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
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (account_id, timeline) DO UPDATE SET \
             last_read_id = EXCLUDED.last_read_id, version = markers.version + 1, \
             updated_at = EXCLUDED.updated_at \
             RETURNING timeline, last_read_id, version, updated_at",
        )
        .bind(account.as_i64())
        .bind(timeline)
        .bind(last_read_id.as_i64())
        .bind(at_ms)
        .fetch_one(self.writer(account.shard()))
        .await
        .map_err(map_err)?;
        Ok(marker_from_row(&row))
    }
}

impl PgStore {
    /// Up to `limit` outbox entries of `db`, oldest first; an unreadable
    /// row (a bug) is set aside in the dead letters rather than block the
    /// relay.
    async fn outbox_of(&self, db: &PgDb, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        let rows = sqlx::query("SELECT seq, event FROM outbox ORDER BY seq LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&db.primary)
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.get("seq");
            let text: String = row.get("event");
            match Event::from_json(&text) {
                Some(event) => out.push(OutboxEntry {
                    key: (db.index, seq),
                    event,
                }),
                None => {
                    tracing::error!(seq, "unreadable outbox row moved to the dead letters");
                    let mut tx = db.primary.begin().await.map_err(map_err)?;
                    sqlx::query(
                        "INSERT INTO dead_letters (consumer, event, error, created_at) \
                         VALUES ('relay', $1, 'unreadable event', $2)",
                    )
                    .bind(&text)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    sqlx::query("DELETE FROM outbox WHERE seq = $1")
                        .bind(seq)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        let mut queues = Vec::new();
        for db in self.dbs() {
            queues.push(self.outbox_of(db, limit).await?.into_iter().peekable());
        }
        // Each database's entries stay in their (commit) order; between
        // databases, the oldest event goes first, so a busy database does
        // not starve the others.
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            let next = queues
                .iter_mut()
                .enumerate()
                .filter_map(|(i, q)| q.peek().map(|e| (e.event.created_at_ms, i)))
                .min();
            let Some((_, i)) = next else { break };
            out.extend(queues[i].next());
        }
        Ok(out)
    }

    async fn outbox_remove(&self, keys: &[(u32, i64)]) -> StoreResult<()> {
        for db in self.dbs() {
            let seqs: Vec<i64> = keys
                .iter()
                .filter(|(i, _)| *i == db.index)
                .map(|(_, s)| *s)
                .collect();
            if seqs.is_empty() {
                continue;
            }
            sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
                .bind(&seqs)
                .execute(&db.primary)
                .await
                .map_err(map_err)?;
        }
        if keys
            .iter()
            .any(|(i, _)| *i as usize >= self.physical_count())
        {
            return Err(StoreError::Internal("outbox key of no database".into()));
        }
        Ok(())
    }

    async fn outbox_len(&self) -> StoreResult<u64> {
        let mut total = 0u64;
        for db in self.dbs() {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                .fetch_one(&db.primary)
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
            "INSERT INTO dead_letters (consumer, event, error, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(consumer)
        .bind(event.to_json())
        .bind(error)
        .bind(now_ms())
        .execute(self.writer(event.id.shard()))
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
