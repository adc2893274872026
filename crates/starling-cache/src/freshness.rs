//! The freshness seam: who wrote a moment ago, for read-your-writes.
//!
//! With read replicas, a read may be served by a replica a little behind
//! the primary. Someone who just wrote expects to see their write, so for a
//! short window after a write their reads go to the primary. The API layer
//! records each write under a key naming the writer (the SHA-256 of the
//! bearer token: no lookup needed) and asks, per request, whether that key
//! wrote within the window. Every `api` process must agree, since the next
//! request may reach another one: the distributed adapter keeps the marks
//! in Redis (`RedisFreshness`); [`MemoryFreshness`] serves a single process.
//!
//! Both calls are infallible to their callers: an adapter that cannot tell
//! answers "wrote recently" (the primary is always right, only busier), and
//! an adapter that cannot record a write logs and counts it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use starling_domain::Clock;

/// A writer's key: the SHA-256 of its bearer token.
pub type WriterKey = [u8; 32];

#[async_trait]
pub trait Freshness: Send + Sync + 'static {
    /// Records that `key` just wrote; it counts as fresh for the window.
    async fn wrote(&self, key: &WriterKey);

    /// Whether `key` wrote within the window (`true` when unsure).
    async fn wrote_recently(&self, key: &WriterKey) -> bool;
}

/// The freshness marks of one process, each kept for the window.
pub struct MemoryFreshness {
    /// Key -> when its window ends (ms, by `clock`). Entries also expire by
    /// moka's own timer a little later, which bounds memory.
    marks: Cache<WriterKey, i64>,
    window: Duration,
    clock: Arc<dyn Clock>,
}

impl MemoryFreshness {
    /// Marks live for `window`, by `clock`; at most `capacity` writers are
    /// remembered at once (beyond that, the oldest are forgotten early).
    pub fn new(window: Duration, clock: Arc<dyn Clock>, capacity: u64) -> Self {
        Self {
            marks: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window + Duration::from_secs(1))
                .build(),
            window,
            clock,
        }
    }
}

#[async_trait]
impl Freshness for MemoryFreshness {
    async fn wrote(&self, key: &WriterKey) {
        let until = self
            .clock
            .now_ms()
            .saturating_add(i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX));
        self.marks.insert(*key, until);
    }

    async fn wrote_recently(&self, key: &WriterKey) -> bool {
        self.marks
            .get(key)
            .is_some_and(|until| self.clock.now_ms() < until)
    }
}

#[cfg(test)]
mod tests {
    use starling_domain::ManualClock;

    use super::*;

    #[tokio::test]
    async fn a_mark_lasts_for_the_window() {
        let clock = Arc::new(ManualClock::new());
        let fresh = MemoryFreshness::new(Duration::from_secs(5), clock.clone(), 100);
        let (alice, bob) = ([1u8; 32], [2u8; 32]);
        assert!(!fresh.wrote_recently(&alice).await);
        fresh.wrote(&alice).await;
        assert!(fresh.wrote_recently(&alice).await);
        assert!(!fresh.wrote_recently(&bob).await);
        clock.advance(Duration::from_millis(4_999));
        assert!(fresh.wrote_recently(&alice).await);
        clock.advance(Duration::from_millis(1));
        assert!(!fresh.wrote_recently(&alice).await);
        // A new write starts a new window.
        fresh.wrote(&alice).await;
        assert!(fresh.wrote_recently(&alice).await);
    }
}
