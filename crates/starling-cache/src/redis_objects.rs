//! The shared object level in Redis: the distributed shape's
//! [`SharedObjects`], read and filled by every `api` process.
//!
//! # Keys
//!
//! One string key per object: `<prefix>:obj:a:{<id>}` for an account,
//! `<prefix>:obj:s:{<id>}` for a status. The value is the caller's bytes
//! (the object cache's versioned encoding), or the empty string for a
//! tombstone. The hash tag is the object's id: every command here names one
//! key, so a batch is spread over the cluster's slots by id (a statuses'
//! author is not known when it is looked up by id, so objects cannot be
//! grouped per user), and anything later kept beside an object (under the
//! same tag) lands in its slot.
//!
//! # Commands
//!
//! A batch is one pipeline, one round trip on the shared connection
//! ([`RedisConn`]: deadline on every call, fails fast while Redis is down):
//!
//! - [`get_many`](SharedObjects::get_many): `GET` per id (not `MGET`, whose
//!   keys would have to share a slot on Redis Cluster);
//! - [`put_many`](SharedObjects::put_many): `SET key value NX PX ttl` per
//!   entry: a fill never replaces a value or a tombstone;
//! - [`invalidate_many`](SharedObjects::invalidate_many):
//!   `SET key "" PX tombstone` per id.
//!
//! Nothing here is a script: every command is idempotent enough to be lost
//! or repeated (a lost invalidation is the caller's to retry).

use std::time::Duration;

use async_trait::async_trait;
use starling_domain::Id;

use crate::objects::{ObjectKind, SharedObjects};
use crate::redis_conn::{check_key_prefix, ttl_ms, RedisConn};
use crate::timeline::{CacheError, CacheResult};

/// Accounts and statuses in Redis, shared by every process.
pub struct RedisSharedObjects {
    conn: RedisConn,
    prefix: String,
}

impl RedisSharedObjects {
    /// Objects in the Redis at `url`, under keys starting with `prefix`;
    /// every call gives up after `timeout`.
    ///
    /// Fails only on a URL or prefix that is not one. A Redis that does not
    /// answer yet is logged, and calls fail with [`CacheError`] until it
    /// does (the object cache then reads the store).
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, CacheError> {
        check_key_prefix(prefix)?;
        let this = Self {
            conn: RedisConn::open(url, timeout, "object cache")?,
            prefix: prefix.to_owned(),
        };
        this.conn.probe(&[]).await;
        Ok(this)
    }

    /// The key of an object.
    pub fn key(&self, kind: ObjectKind, id: Id) -> String {
        let tag = match kind {
            ObjectKind::Account => 'a',
            ObjectKind::Status => 's',
        };
        format!("{}:obj:{tag}:{{{id}}}", self.prefix)
    }
}

#[async_trait]
impl SharedObjects for RedisSharedObjects {
    async fn get_many(&self, kind: ObjectKind, ids: &[Id]) -> CacheResult<Vec<Option<Vec<u8>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("GET").arg(self.key(kind, *id));
        }
        let values: Vec<Option<Vec<u8>>> = self.conn.eval("objects_get", &pipe, &[]).await?;
        if values.len() != ids.len() {
            metrics::counter!("starling_redis_errors_total", "op" => "objects_get").increment(1);
            return Err(CacheError(format!(
                "Redis answered {} values for {} keys",
                values.len(),
                ids.len()
            )));
        }
        // The empty value is a tombstone.
        Ok(values
            .into_iter()
            .map(|v| v.filter(|v| !v.is_empty()))
            .collect())
    }

    async fn put_many(
        &self,
        kind: ObjectKind,
        items: &[(Id, Vec<u8>)],
        ttl: Duration,
    ) -> CacheResult<()> {
        let ttl = ttl_ms(ttl);
        let mut pipe = redis::pipe();
        let mut any = false;
        for (id, value) in items.iter().filter(|(_, v)| !v.is_empty()) {
            pipe.cmd("SET")
                .arg(self.key(kind, *id))
                .arg(value.as_slice())
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.conn.eval::<()>("objects_put", &pipe, &[]).await
    }

    async fn invalidate_many(
        &self,
        kind: ObjectKind,
        ids: &[Id],
        tombstone: Duration,
    ) -> CacheResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tombstone = ttl_ms(tombstone);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SET")
                .arg(self.key(kind, *id))
                .arg("")
                .arg("PX")
                .arg(tombstone)
                .ignore();
        }
        self.conn.eval::<()>("objects_invalidate", &pipe, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_carry_the_kind_and_the_id_as_hash_tag() {
        let objects = RedisSharedObjects {
            conn: RedisConn::open("redis://127.0.0.1:1", Duration::from_millis(10), "test")
                .expect("a URL"),
            prefix: "p".into(),
        };
        let id = Id::from_i64(42);
        assert_eq!(objects.key(ObjectKind::Account, id), "p:obj:a:{42}");
        assert_eq!(objects.key(ObjectKind::Status, id), "p:obj:s:{42}");
        assert!(RedisSharedObjects::connect(
            "redis://127.0.0.1:1",
            "a{b}",
            Duration::from_millis(10)
        )
        .await
        .is_err());
        assert!(
            RedisSharedObjects::connect("redis://127.0.0.1:1", "", Duration::from_millis(10))
                .await
                .is_err()
        );
    }
}
