//! The in-memory adapters against the cache conformance suites, plus the
//! memory timeline cache's own policy (idle expiry, the bound on how many
//! timelines it holds), tested with a hand-moved clock, and the memory
//! shared object level's expiry on its clock.

use std::sync::Arc;
use std::time::Duration;

use starling_cache::{MemoryRateLimiter, RateLimiter};
use starling_domain::ManualClock;

async fn fresh(clock: Arc<ManualClock>) -> (Box<dyn RateLimiter>, ()) {
    (
        Box::new(MemoryRateLimiter::new(
            clock,
            Duration::from_secs(3600),
            10_000,
        )),
        (),
    )
}

starling_cache::rate_limit_conformance_suite!(fresh);

mod timelines {
    use std::sync::Arc;
    use std::time::Duration;

    use starling_cache::{MemoryTimelineCache, TimelineCache, TimelineEntry};
    use starling_domain::{Id, ManualClock, Page, SystemClock};

    const IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

    async fn fresh() -> (Box<dyn TimelineCache>, ()) {
        (
            Box::new(MemoryTimelineCache::new(
                10,
                IDLE,
                10_000,
                Arc::new(SystemClock),
            )),
            (),
        )
    }

    starling_cache::timeline_conformance_suite!(fresh);

    fn entry(n: i64) -> TimelineEntry {
        TimelineEntry {
            id: Id::from_i64(n),
            author_id: Id::from_i64(1),
            reblog_of_id: None,
        }
    }

    fn owner(n: i64) -> Id {
        Id::from_i64(1_000_000 + n)
    }

    fn cache(max_timelines: u64) -> (MemoryTimelineCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (
            MemoryTimelineCache::new(10, IDLE, max_timelines, clock.clone()),
            clock,
        )
    }

    async fn exists(cache: &MemoryTimelineCache, owner: Id) -> bool {
        cache.exists(owner).await.expect("exists")
    }

    #[tokio::test]
    async fn unread_timelines_expire() {
        let (cache, clock) = cache(100);
        cache.fill(owner(1), &[entry(1)]).await.unwrap();
        clock.advance(IDLE + Duration::from_secs(1));
        assert!(!exists(&cache, owner(1)).await);
        assert_eq!(cache.range(owner(1), &Page::first(5)).await.unwrap(), None);
        // Expired means no more fan-out onto it.
        cache.push(&[(owner(1), entry(2))]).await.unwrap();
        assert!(!exists(&cache, owner(1)).await);
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn reads_keep_a_timeline_alive_and_pushes_do_not() {
        let (cache, clock) = cache(100);
        let most = IDLE.mul_f64(0.6);
        cache.fill(owner(1), &[entry(1)]).await.unwrap();
        cache.fill(owner(2), &[entry(1)]).await.unwrap();
        for round in 0..3 {
            clock.advance(most);
            let page = cache.range(owner(1), &Page::first(5)).await.unwrap();
            assert!(page.is_some(), "read {round}");
            cache
                .push(&[(owner(1), entry(10 + round)), (owner(2), entry(10 + round))])
                .await
                .unwrap();
        }
        assert!(exists(&cache, owner(1)).await, "read every 0.6 idle");
        assert!(!exists(&cache, owner(2)).await, "only pushed to");
        assert_eq!(
            cache.range(owner(1), &Page::first(2)).await.unwrap(),
            Some(vec![entry(12), entry(11)])
        );
    }

    #[tokio::test]
    async fn creating_a_timeline_counts_as_a_read() {
        let (cache, clock) = cache(100);
        cache.begin_rebuild(owner(1)).await.unwrap();
        clock.advance(IDLE.mul_f64(0.6));
        cache.fill(owner(1), &[entry(1)]).await.unwrap();
        assert!(exists(&cache, owner(1)).await);
        clock.advance(IDLE.mul_f64(0.6));
        assert!(!exists(&cache, owner(1)).await, "fill is not a read");
    }

    #[tokio::test]
    async fn idle_timelines_are_swept() {
        let (cache, clock) = cache(1_000);
        for n in 0..50 {
            cache.fill(owner(n), &[entry(1)]).await.unwrap();
        }
        assert_eq!(cache.len(), 50);
        clock.advance(IDLE + Duration::from_secs(1));
        cache.fill(owner(100), &[entry(1)]).await.unwrap();
        // A push or read after the sweep interval sweeps every shard.
        cache.push(&[]).await.unwrap();
        assert_eq!(cache.len(), 1);
        // And so does an explicit sweep.
        clock.advance(IDLE + Duration::from_secs(1));
        cache.sweep();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn the_least_recently_read_go_first() {
        let (cache, clock) = cache(3);
        for n in 1..=3 {
            cache.fill(owner(n), &[entry(1)]).await.unwrap();
            clock.advance(Duration::from_millis(10));
        }
        // Owner 1 is read: owner 2 is now the least recently read.
        cache.range(owner(1), &Page::first(5)).await.unwrap();
        clock.advance(Duration::from_millis(10));
        cache.begin_rebuild(owner(4)).await.unwrap();
        assert_eq!(cache.len(), 3);
        assert!(!exists(&cache, owner(2)).await);
        for n in [1, 3, 4] {
            assert!(exists(&cache, owner(n)).await, "owner {n}");
        }
        // Pushes do not count as reads: owner 3 goes next.
        cache.push(&[(owner(3), entry(2))]).await.unwrap();
        clock.advance(Duration::from_millis(10));
        cache.fill(owner(5), &[]).await.unwrap();
        assert_eq!(cache.len(), 3);
        assert!(!exists(&cache, owner(3)).await);
    }

    #[tokio::test]
    async fn large_caches_evict_with_slack() {
        let (cache, clock) = cache(100);
        for n in 0..=100 {
            cache.fill(owner(n), &[entry(1)]).await.unwrap();
            clock.advance(Duration::from_millis(1));
        }
        // Down to 95%, the oldest reads first, the newest kept.
        assert_eq!(cache.len(), 95);
        assert!(!exists(&cache, owner(5)).await);
        assert!(exists(&cache, owner(6)).await);
        assert!(exists(&cache, owner(100)).await);
    }
}

mod objects {
    use std::sync::Arc;
    use std::time::Duration;

    use starling_cache::{MemorySharedObjects, ObjectKind, SharedObjects};
    use starling_domain::{Id, ManualClock, SystemClock};

    async fn fresh() -> (Box<dyn SharedObjects>, ()) {
        (
            Box::new(MemorySharedObjects::new(100_000, Arc::new(SystemClock))),
            (),
        )
    }

    starling_cache::shared_objects_conformance_suite!(fresh);

    #[tokio::test]
    async fn entries_and_tombstones_expire_by_the_clock() {
        let clock = Arc::new(ManualClock::new());
        let objects = MemorySharedObjects::new(100, clock.clone());
        let (a, b) = (Id::from_i64(1), Id::from_i64(2));
        let kind = ObjectKind::Status;
        let ttl = Duration::from_secs(60);
        objects
            .put_many(kind, &[(a, b"a1".to_vec()), (b, b"b1".to_vec())], ttl)
            .await
            .unwrap();
        objects
            .invalidate_many(kind, &[b], Duration::from_secs(5))
            .await
            .unwrap();
        clock.advance(Duration::from_millis(4_999));
        objects
            .put_many(kind, &[(b, b"b2".to_vec())], ttl)
            .await
            .unwrap();
        assert_eq!(
            objects.get_many(kind, &[a, b]).await.unwrap(),
            vec![Some(b"a1".to_vec()), None]
        );
        clock.advance(Duration::from_millis(1));
        objects
            .put_many(kind, &[(b, b"b3".to_vec())], ttl)
            .await
            .unwrap();
        assert_eq!(
            objects.get_many(kind, &[b]).await.unwrap(),
            vec![Some(b"b3".to_vec())]
        );
        clock.advance(Duration::from_millis(55_000));
        assert_eq!(
            objects.get_many(kind, &[a, b]).await.unwrap(),
            vec![None, Some(b"b3".to_vec())]
        );
    }
}
