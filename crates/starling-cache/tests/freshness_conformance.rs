//! The freshness seam (read-your-writes marks), both adapters: a mark is
//! per writer, seen by every process (for Redis: another connection), and
//! gone after the window. Then what is particular to Redis: the key holds
//! only a prefix of the token's hash, and a Redis that does not answer
//! makes every writer count as fresh (reads go to the primary), fast.
//!
//! The Redis cases run against the Redis the test kit finds; SKIPPED
//! without one unless `STARLING_TEST_REQUIRE_SERVICES=1`. Each test uses
//! its own key prefix.
#![cfg(feature = "redis")]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_cache::{Freshness, MemoryFreshness, RedisFreshness};
use starling_domain::ManualClock;
use starling_testkit::{require, unique_name, Service};

const TIMEOUT: Duration = Duration::from_secs(2);

/// The contract: `one` and `other` are two processes' views; `window_ends`
/// resolves once the window of a mark made before it was called is over.
async fn suite<W: Future<Output = ()>>(
    one: &dyn Freshness,
    other: &dyn Freshness,
    window_ends: impl FnOnce() -> W,
) {
    let (alice, bob) = ([7u8; 32], [8u8; 32]);
    assert!(!other.wrote_recently(&alice).await);
    one.wrote(&alice).await;
    assert!(one.wrote_recently(&alice).await);
    assert!(
        other.wrote_recently(&alice).await,
        "another process sees it"
    );
    assert!(!other.wrote_recently(&bob).await, "per writer");
    window_ends().await;
    assert!(!other.wrote_recently(&alice).await, "gone after the window");
    assert!(!one.wrote_recently(&alice).await);
    other.wrote(&alice).await;
    assert!(
        one.wrote_recently(&alice).await,
        "a new write, a new window"
    );
}

#[tokio::test]
async fn memory_adapter() {
    let clock = Arc::new(ManualClock::new());
    let fresh = MemoryFreshness::new(Duration::from_secs(5), clock.clone(), 100);
    suite(&fresh, &fresh, || async move {
        clock.advance(Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn redis_adapter() {
    let Some(url) = require(Service::Redis, "freshness_conformance") else {
        return;
    };
    let prefix = unique_name("fresh");
    let window = Duration::from_millis(300);
    let one = RedisFreshness::connect(&url, &prefix, window, TIMEOUT)
        .await
        .expect("connect");
    let other = RedisFreshness::connect(&url, &prefix, window, TIMEOUT)
        .await
        .expect("connect");
    let probe = RedisFreshness::connect(&url, &prefix, window, TIMEOUT)
        .await
        .expect("connect");
    suite(&one, &other, || async {
        // Redis' own timer: wait on it, bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.wrote_recently(&[7u8; 32]).await {
            assert!(Instant::now() < deadline, "the mark did not expire");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn redis_keys_hold_a_prefix_of_the_hash_and_expire() {
    let Some(url) = require(Service::Redis, "freshness_conformance") else {
        return;
    };
    let prefix = unique_name("fresh");
    let fresh = RedisFreshness::connect(&url, &prefix, Duration::from_secs(5), TIMEOUT)
        .await
        .expect("connect");
    let key = fresh.key_of(&[7u8; 32]);
    assert_eq!(key, format!("{prefix}:fresh:{}", "07".repeat(16)));
    fresh.wrote(&[7u8; 32]).await;
    let mut con = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(TIMEOUT))
        .expect("connect");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).expect("PTTL");
    assert!((1..=5000).contains(&ttl), "{ttl}");
    let _: i64 = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
}

#[tokio::test]
async fn without_redis_every_writer_counts_as_fresh() {
    // Nothing listens on port 1: connections are refused at once.
    let fresh = RedisFreshness::connect(
        "redis://127.0.0.1:1",
        "starling-test",
        Duration::from_secs(5),
        Duration::from_millis(200),
    )
    .await
    .expect("a URL is enough");
    let started = Instant::now();
    fresh.wrote(&[1u8; 32]).await;
    for _ in 0..10 {
        assert!(fresh.wrote_recently(&[2u8; 32]).await);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "calls fail fast while Redis is down ({:?})",
        started.elapsed()
    );
}
