//! The Redis freshness marks: the distributed shape's [`Freshness`], so a
//! write seen by one `api` process pins the writer's next reads to the
//! primary on every process.
//!
//! One key per writer, `<prefix>:fresh:<hex of 16 bytes of the key>`, set
//! with `SET key 1 PX <window>` on each write (a later write restarts the
//! window) and read with `EXISTS`. Each is one round trip on the shared,
//! pipelined connection ([`RedisConn`]: every call has a deadline, and
//! fails at once while Redis is known to be down). No key spans two
//! writers, so the keys need no hash tag on Redis Cluster.
//!
//! When Redis fails, [`Freshness::wrote_recently`] answers `true` (the
//! primary serves the read: slower, never stale) and a lost
//! [`Freshness::wrote`] is logged at debug level (the failure is counted in
//! `starling_redis_errors_total{op}` by the connection; its outage is
//! logged there once).

use std::time::Duration;

use async_trait::async_trait;

use crate::freshness::{Freshness, WriterKey};
use crate::redis_conn::{ttl_ms, RedisConn};
use crate::timeline::CacheError;

/// Freshness marks in Redis, shared by every process.
pub struct RedisFreshness {
    conn: RedisConn,
    prefix: String,
    window_ms: i64,
}

impl RedisFreshness {
    /// Marks in the Redis at `url`, under keys starting with `prefix`, each
    /// kept for `window`; every call gives up after `timeout`.
    ///
    /// Fails only on a URL that is not one (or an empty prefix); a Redis
    /// that does not answer yet is logged, and meanwhile every writer counts
    /// as fresh.
    pub async fn connect(
        url: &str,
        prefix: &str,
        window: Duration,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        if prefix.is_empty() {
            return Err(CacheError("the Redis key prefix must not be empty".into()));
        }
        let this = Self {
            conn: RedisConn::open(url, timeout, "read-your-writes marks")?,
            prefix: prefix.to_owned(),
            window_ms: ttl_ms(window),
        };
        this.conn.probe(&[]).await;
        Ok(this)
    }

    /// The Redis key of a writer.
    pub fn key_of(&self, key: &WriterKey) -> String {
        let hex: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:fresh:{hex}", self.prefix)
    }
}

#[async_trait]
impl Freshness for RedisFreshness {
    async fn wrote(&self, key: &WriterKey) {
        let key = self.key_of(key);
        let window_ms = self.window_ms;
        let done = self
            .conn
            .run("fresh_mark", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(window_ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = done {
            tracing::debug!(error = %e, "could not mark a writer fresh; its next reads may be stale");
        }
    }

    async fn wrote_recently(&self, key: &WriterKey) -> bool {
        let key = self.key_of(key);
        self.conn
            .run("fresh_check", |mut c| async move {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            // Unsure: the primary is never stale.
            .map_or(true, |n| n > 0)
    }
}
