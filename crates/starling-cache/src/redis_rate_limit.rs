//! The Redis rate limiter: the distributed shape's [`RateLimiter`], so
//! every `api` process counts against the same buckets.
//!
//! Windows are the memory limiter's: aligned to multiples of the period
//! since the epoch, computed from the injected [`Clock`]. One counter per
//! (rule key, window): `<prefix>:rl:<window start ms>:<key>`. The window is
//! part of the key, so a new window (or a clock that jumped ahead) starts a
//! fresh counter whatever happened to the old one.
//!
//! A hit is one round trip, one `MULTI`: `SET key 0 NX PX <ms left in the
//! window>` then `INCR key`. The counter is created with its expiry, so it
//! can never be left without one, and the expiry is relative: Redis drops it
//! when the window ends by the injected clock, whatever Redis' own clock
//! says (an absolute `PEXPIREAT` would delete at once every counter of an
//! application host whose clock runs behind Redis' by more than the time
//! left in the window, and nothing would ever be limited).
//!
//! [`RateLimiter::hit`] cannot fail, and denying every request while Redis
//! is down would take the service down with it. So when Redis fails (within
//! the timeout, or at once while it is known to be down) the hit is counted
//! by an in-process [`MemoryRateLimiter`] instead: limits still hold, per
//! process, until Redis answers again. Such hits are counted in
//! `starling_redis_errors_total{op="rate_limit_hit"}`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_domain::Clock;

use crate::rate_limit::{window, Decision, MemoryRateLimiter, RateLimiter, Rule};
use crate::redis_conn::{ttl_ms, RedisConn};
use crate::timeline::CacheError;

/// How long the default fallback keeps a bucket: at least the longest
/// period in use (longer periods would only reset early while Redis is
/// down).
const FALLBACK_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many buckets the default fallback holds.
const FALLBACK_KEYS: u64 = 100_000;

/// Fixed-window buckets in Redis, shared by every process.
pub struct RedisRateLimiter {
    conn: RedisConn,
    prefix: String,
    clock: Arc<dyn Clock>,
    fallback: MemoryRateLimiter,
}

impl RedisRateLimiter {
    /// Buckets in the Redis at `url`, under keys starting with `prefix`,
    /// windows read from `clock`; every call gives up after `timeout`.
    ///
    /// Fails only on a URL that is not one. A Redis that does not answer yet
    /// is logged, and hits are counted in-process until it does.
    pub async fn connect(
        url: &str,
        prefix: &str,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        if prefix.is_empty() {
            return Err(CacheError("the Redis key prefix must not be empty".into()));
        }
        let this = Self {
            conn: RedisConn::open(url, timeout, "rate limiter")?,
            prefix: prefix.to_owned(),
            fallback: MemoryRateLimiter::new(clock.clone(), FALLBACK_TTL, FALLBACK_KEYS),
            clock,
        };
        this.conn.probe(&[]).await;
        Ok(this)
    }

    /// Counts hits in `fallback` while Redis does not answer (by default, a
    /// memory limiter keeping 100 000 buckets for a day).
    pub fn with_fallback(mut self, fallback: MemoryRateLimiter) -> Self {
        self.fallback = fallback;
        self
    }

    /// The counter of `key` in the window starting at `start_ms`.
    pub fn bucket_key(&self, key: &str, start_ms: i64) -> String {
        format!("{}:rl:{start_ms}:{key}", self.prefix)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, rule: Rule) -> Decision {
        let now = self.clock.now_ms();
        let (start, end) = window(now, rule.period);
        let bucket = self.bucket_key(key, start);
        let left = ttl_ms(Duration::from_millis(
            u64::try_from(end.saturating_sub(now)).unwrap_or(1),
        ));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&bucket)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(left)
            .ignore()
            .cmd("INCR")
            .arg(&bucket);
        match self.conn.eval::<(i64,)>("rate_limit_hit", &pipe, &[]).await {
            Ok((count,)) => {
                let count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
                Decision {
                    allowed: count <= rule.limit,
                    limit: rule.limit,
                    remaining: rule.limit.saturating_sub(count),
                    reset_at_ms: end,
                }
            }
            Err(_) => self.fallback.hit(key, rule).await,
        }
    }
}
