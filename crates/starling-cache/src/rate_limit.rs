//! Fixed-window rate limits, the way Mastodon counts them.
//!
//! A rule allows `limit` hits per `period`; windows are aligned to multiples
//! of the period since the Unix epoch, so every process (and Redis) agrees on
//! where a window ends without talking to each other. That end is what
//! `X-RateLimit-Reset` reports.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_domain::Clock;

/// `limit` hits per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub limit: u32,
    pub period: Duration,
}

/// The verdict on one hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// End of the current window, Unix ms.
    pub reset_at_ms: i64,
}

impl Decision {
    fn of(rule: Rule, count: u32, reset_at_ms: i64) -> Self {
        Self {
            allowed: count <= rule.limit,
            limit: rule.limit,
            remaining: rule.limit.saturating_sub(count),
            reset_at_ms,
        }
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one hit against `key` under `rule` and says whether it is
    /// allowed. Keys are namespaced by the caller (`"api:token:…"`).
    async fn hit(&self, key: &str, rule: Rule) -> Decision;
}

/// Window start and end (Unix ms) containing `now_ms`.
pub fn window(now_ms: i64, period: Duration) -> (i64, i64) {
    let p = (period.as_millis() as i64).max(1);
    let start = now_ms - now_ms.rem_euclid(p);
    (start, start + p)
}

/// In-process buckets (moka), for the embedded shape. Entries expire after
/// the longest period in use, so memory stays bounded by the active keys.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    buckets: moka::sync::Cache<(String, i64), Arc<AtomicU32>>,
}

impl MemoryRateLimiter {
    pub fn new(clock: Arc<dyn Clock>, longest_period: Duration, max_keys: u64) -> Self {
        Self {
            clock,
            buckets: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .time_to_live(longest_period)
                .build(),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, rule: Rule) -> Decision {
        let (start, end) = window(self.clock.now_ms(), rule.period);
        let bucket = self
            .buckets
            .get_with((key.to_owned(), start), || Arc::new(AtomicU32::new(0)));
        let count = bucket.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        Decision::of(rule, count, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_period() {
        assert_eq!(window(1_000, Duration::from_secs(1)), (1_000, 2_000));
        assert_eq!(window(1_999, Duration::from_secs(1)), (1_000, 2_000));
        assert_eq!(
            window(301_000, Duration::from_secs(300)),
            (300_000, 600_000)
        );
    }
}
