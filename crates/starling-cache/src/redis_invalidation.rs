//! Invalidations over Redis pub/sub (the distributed shape).
//!
//! `publish` is a `PUBLISH` on one channel through the shared connection,
//! with its deadline; `subscribe` keeps a dedicated pub/sub connection in a
//! task that reconnects with backoff when Redis goes away, and tells the
//! handler [`Invalidation::Everything`] each time it (re)subscribes, since
//! messages sent meanwhile were lost.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::invalidation::{decode, encode, Invalidation, InvalidationHandler, Invalidations};
use crate::redis_conn::RedisConn;
use crate::timeline::{CacheError, CacheResult};

/// Longest pause between two attempts to subscribe again.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

pub struct RedisInvalidations {
    conn: RedisConn,
    channel: String,
}

impl RedisInvalidations {
    /// Invalidations on the channel `<prefix>:invalidate`.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> CacheResult<Self> {
        if prefix.is_empty() {
            return Err(CacheError("the Redis key prefix must not be empty".into()));
        }
        Ok(Self {
            conn: RedisConn::open(url, timeout, "invalidations")?,
            channel: format!("{prefix}:invalidate"),
        })
    }
}

#[async_trait]
impl Invalidations for RedisInvalidations {
    async fn publish(&self, what: &Invalidation) -> CacheResult<()> {
        let message = encode(what);
        let channel = self.channel.clone();
        self.conn
            .run("publish", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
    }

    async fn subscribe(&self, handler: InvalidationHandler) -> CacheResult<()> {
        let client = self.conn.client().clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            pause = Duration::from_millis(100);
                            // Whatever was published while we were not
                            // listening is lost.
                            handler(Invalidation::Everything);
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let text: String = msg.get_payload().unwrap_or_default();
                                handler(decode(&text));
                            }
                            tracing::warn!(
                                "lost the Redis invalidation channel; subscribing again"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "subscribing to Redis invalidations failed")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "connecting to Redis for invalidations failed")
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RESUBSCRIBE_MAX);
            }
        });
        Ok(())
    }
}
