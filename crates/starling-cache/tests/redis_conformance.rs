//! The Redis adapters against the cache conformance suites, plus what is
//! particular to them: key layout, TTLs (set by reads and rebuilds, never
//! by pushes), trimming and batch pushes at fan-out scale, scripts that
//! Redis forgot, and a Redis that is not there or does not answer; for the
//! shared object level, its keys, TTLs and tombstones, prefixes kept apart,
//! and what an entry costs in Redis memory.
//!
//! They run against the Redis the test kit finds (`STARLING_TEST_REDIS_URL`,
//! by default redis://127.0.0.1:6379) and pass with a "SKIPPED" line when
//! there is none, unless `STARLING_TEST_REQUIRE_SERVICES=1`. Every test
//! works under its own key prefix and deletes its keys when it ends, passed
//! or failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_cache::{RateLimiter, RedisRateLimiter, Rule};
use starling_domain::{Clock, ManualClock};
use starling_testkit::{require, unique_name, Service};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Deletes every key under `prefix` when dropped.
pub struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut con) = sync_con(&self.url) else {
            return;
        };
        for key in keys_under(&mut con, &self.prefix) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query(&mut con);
        }
    }
}

fn sync_con(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(TIMEOUT)
}

/// Every key under `prefix` (SCAN, so a busy Redis is not blocked).
fn keys_under(con: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, batch)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query(con)
        else {
            return keys;
        };
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).expect("PTTL")
}

fn pexpire(con: &mut redis::Connection, key: &str, ms: i64) {
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ms)
        .query(con)
        .expect("PEXPIRE");
}

async fn limiter(clock: Arc<ManualClock>) -> Option<(Box<dyn RateLimiter>, Cleanup)> {
    let (limiter, cleanup) = redis_limiter(clock, "redis rate-limit conformance").await?;
    Some((Box::new(limiter), cleanup))
}

async fn redis_limiter(clock: Arc<ManualClock>, test: &str) -> Option<(RedisRateLimiter, Cleanup)> {
    let url = require(Service::Redis, test)?;
    let prefix = unique_name("starling_test_rl");
    let limiter = RedisRateLimiter::connect(&url, &prefix, clock, TIMEOUT)
        .await
        .expect("connect");
    Some((limiter, Cleanup { url, prefix }))
}

starling_cache::rate_limit_conformance_suite!(optional limiter);

const RULE: Rule = Rule {
    limit: 3,
    period: Duration::from_secs(60),
};

#[tokio::test]
async fn buckets_are_shared_and_expire_with_their_window() {
    let clock = Arc::new(ManualClock::new());
    let Some((a, cleanup)) = redis_limiter(clock.clone(), "shared rate-limit buckets").await else {
        return;
    };
    // A second process: same Redis, same prefix, its own connection.
    let b = RedisRateLimiter::connect(&cleanup.url, &cleanup.prefix, clock.clone(), TIMEOUT)
        .await
        .expect("connect");
    assert_eq!(a.hit("api:token:t", RULE).await.remaining, 2);
    assert_eq!(b.hit("api:token:t", RULE).await.remaining, 1);
    assert_eq!(a.hit("api:token:t", RULE).await.remaining, 0);
    let denied = b.hit("api:token:t", RULE).await;
    assert!(!denied.allowed, "counted in Redis, not per process");

    let mut con = sync_con(&cleanup.url).expect("redis");
    let start = denied.reset_at_ms - 60_000;
    let key = a.bucket_key("api:token:t", start);
    let count: i64 = redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
    assert_eq!(count, 4);
    let left = denied.reset_at_ms - clock.now_ms();
    let ttl = pttl(&mut con, &key);
    assert!(
        ttl > 0 && ttl <= left,
        "expires with its window: {ttl} of {left}"
    );

    clock.advance(Duration::from_secs(60));
    assert!(a.hit("api:token:t", RULE).await.allowed);
    assert_eq!(
        keys_under(&mut con, &cleanup.prefix).len(),
        2,
        "one key per window"
    );
}

#[tokio::test]
async fn an_unreachable_limiter_counts_in_process() {
    let clock = Arc::new(ManualClock::new());
    let limiter = RedisRateLimiter::connect("redis://127.0.0.1:1", "x", clock, TIMEOUT)
        .await
        .expect("a Redis that is down does not stop the start");
    let started = Instant::now();
    let seen: Vec<bool> = {
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(limiter.hit("k", RULE).await.allowed);
        }
        seen
    };
    assert_eq!(seen, vec![true, true, true, false], "limits still hold");
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let clock: Arc<ManualClock> = Arc::new(ManualClock::new());
    assert!(
        RedisRateLimiter::connect("not a url", "x", clock.clone(), TIMEOUT)
            .await
            .is_err()
    );
    assert!(
        RedisRateLimiter::connect("redis://127.0.0.1:1", "", clock, TIMEOUT)
            .await
            .is_err()
    );
    assert!(starling_cache::RedisTimelineCache::connect(
        "redis://127.0.0.1:1",
        "a{b}",
        10,
        TIMEOUT,
        TIMEOUT
    )
    .await
    .is_err());
}

mod timelines {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use starling_cache::{CacheResult, RedisTimelineCache, TimelineCache, TimelineEntry};
    use starling_domain::{Id, IdGenerator, Page, ShardId};
    use starling_testkit::{require, unique_name, Service};

    use super::{keys_under, pexpire, pttl, sync_con, Cleanup, TIMEOUT};

    const IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

    async fn fresh() -> Option<(Box<dyn TimelineCache>, Cleanup)> {
        let (cache, cleanup) = redis_cache(10, IDLE, "redis timeline conformance").await?;
        Some((Box::new(cache), cleanup))
    }

    starling_cache::timeline_conformance_suite!(optional fresh);

    async fn redis_cache(
        cap: usize,
        idle: Duration,
        test: &str,
    ) -> Option<(RedisTimelineCache, Cleanup)> {
        let url = require(Service::Redis, test)?;
        let prefix = unique_name("starling_test_tl");
        let cache = RedisTimelineCache::connect(&url, &prefix, cap, idle, TIMEOUT)
            .await
            .expect("connect");
        Some((cache, Cleanup { url, prefix }))
    }

    struct Ids(IdGenerator);

    impl Ids {
        fn new() -> Self {
            Self(IdGenerator::new())
        }

        fn id(&self) -> Id {
            self.0.next(ShardId::for_key("redis-timeline-tests"))
        }

        fn post(&self, author: Id) -> TimelineEntry {
            TimelineEntry {
                id: self.id(),
                author_id: author,
                reblog_of_id: None,
            }
        }
    }

    async fn all_of(cache: &RedisTimelineCache, owner: Id) -> Vec<TimelineEntry> {
        cache
            .range(owner, &Page::first(cache.cap() + 100))
            .await
            .expect("range")
            .expect("complete")
    }

    /// Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag (the
    /// first non-empty `{...}`), or of the whole key, modulo 16384.
    pub(super) fn key_slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = key.find('{').and_then(|open| {
            let close = key[open + 1..].find('}')? + open + 1;
            (close > open + 1).then(|| &bytes[open + 1..close])
        });
        crc16(tagged.unwrap_or(bytes)) % 16384
    }

    fn crc16(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for byte in data {
            crc ^= u16::from(*byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[tokio::test]
    async fn an_owners_keys_share_one_cluster_slot() {
        // The spec's own examples.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(
            key_slot("{user1000}.following"),
            key_slot("{user1000}.followers")
        );

        let Some((cache, cleanup)) = redis_cache(10, IDLE, "redis timeline keys").await else {
            return;
        };
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        cache.fill(owner, &[ids.post(author)]).await.expect("fill");

        let (entries, state) = (cache.timeline_key(owner), cache.state_key(owner));
        assert_eq!(entries, format!("{}:tl:{{{owner}}}", cleanup.prefix));
        assert_eq!(state, format!("{}:tl:{{{owner}}}:state", cleanup.prefix));
        let mut con = sync_con(&cleanup.url).expect("redis");
        let found: HashSet<String> = keys_under(&mut con, &cleanup.prefix).into_iter().collect();
        assert_eq!(found, HashSet::from([entries.clone(), state.clone()]));
        assert_eq!(key_slot(&entries), key_slot(&state));
        assert_eq!(key_slot(&entries), key_slot(&owner.to_string()));
    }

    #[tokio::test]
    async fn ttls_are_set_by_reads_and_rebuilds_not_by_pushes() {
        let idle = Duration::from_secs(60);
        let Some((cache, cleanup)) = redis_cache(10, idle, "redis timeline TTLs").await else {
            return;
        };
        let mut con = sync_con(&cleanup.url).expect("redis");
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        let (k, s) = (cache.timeline_key(owner), cache.state_key(owner));
        let fresh = |ttl: i64| ttl > 55_000 && ttl <= 60_000;
        let aged = |ttl: i64| ttl > 0 && ttl <= 5_000;

        let first = ids.post(author);
        cache.fill(owner, &[first]).await.expect("fill");
        assert!(fresh(pttl(&mut con, &k)) && fresh(pttl(&mut con, &s)));

        // As if 55 s went by without a read.
        pexpire(&mut con, &k, 5_000);
        pexpire(&mut con, &s, 5_000);
        cache
            .push(&[(owner, ids.post(author))])
            .await
            .expect("push");
        cache.remove(owner, &[ids.id()]).await.expect("remove");
        cache
            .remove_author(owner, ids.id())
            .await
            .expect("remove_author");
        assert!(cache.exists(owner).await.expect("exists"));
        assert!(aged(pttl(&mut con, &k)), "push keeps the deadline");
        assert!(aged(pttl(&mut con, &s)), "push keeps the deadline");

        // A read is what keeps a timeline alive.
        let page = cache.range(owner, &Page::first(5)).await.expect("range");
        assert_eq!(page.map(|p| p.len()), Some(2));
        assert!(fresh(pttl(&mut con, &k)) && fresh(pttl(&mut con, &s)));

        // And so are the rebuild calls.
        for step in ["begin_rebuild", "fill"] {
            pexpire(&mut con, &k, 5_000);
            pexpire(&mut con, &s, 5_000);
            match step {
                "begin_rebuild" => cache.begin_rebuild(owner).await.expect("begin_rebuild"),
                _ => cache.fill(owner, &[first]).await.expect("fill"),
            }
            assert!(fresh(pttl(&mut con, &k)), "{step}");
            assert!(fresh(pttl(&mut con, &s)), "{step}");
        }

        // A push that creates the entries' key gives it the timeline's
        // deadline, and later pushes keep the two together.
        let rebuilding = ids.id();
        let (k2, s2) = (cache.timeline_key(rebuilding), cache.state_key(rebuilding));
        cache
            .begin_rebuild(rebuilding)
            .await
            .expect("begin_rebuild");
        assert_eq!(pttl(&mut con, &k2), -2, "no entries yet");
        pexpire(&mut con, &s2, 5_000);
        cache
            .push(&[(rebuilding, ids.post(author))])
            .await
            .expect("push");
        let (entries_ttl, state_ttl) = (pttl(&mut con, &k2), pttl(&mut con, &s2));
        assert!(
            aged(entries_ttl) && entries_ttl <= state_ttl + 5,
            "{entries_ttl} {state_ttl}"
        );
    }

    #[tokio::test]
    async fn idle_timelines_expire_in_redis() {
        let idle = Duration::from_millis(200);
        let Some((cache, _cleanup)) = redis_cache(10, idle, "redis timeline expiry").await else {
            return;
        };
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        cache.fill(owner, &[ids.post(author)]).await.expect("fill");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.exists(owner).await.expect("exists") {
            assert!(Instant::now() < deadline, "never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            cache.range(owner, &Page::first(5)).await.expect("range"),
            None
        );
        cache
            .push(&[(owner, ids.post(author))])
            .await
            .expect("push");
        assert!(
            !cache.exists(owner).await.expect("exists"),
            "push creates nothing"
        );
    }

    #[tokio::test]
    async fn a_timeline_without_its_state_is_missing_and_rebuilt_from_nothing() {
        let Some((cache, cleanup)) = redis_cache(10, IDLE, "redis half-evicted timeline").await
        else {
            return;
        };
        let mut con = sync_con(&cleanup.url).expect("redis");
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        cache.fill(owner, &[ids.post(author)]).await.expect("fill");
        // Evicted (or expired) alone: the entries stay behind.
        let _: i64 = redis::cmd("DEL")
            .arg(cache.state_key(owner))
            .query(&mut con)
            .expect("DEL");
        assert!(!cache.exists(owner).await.expect("exists"));
        assert_eq!(
            cache.range(owner, &Page::first(5)).await.expect("range"),
            None
        );
        cache
            .push(&[(owner, ids.post(author))])
            .await
            .expect("push");
        cache.begin_rebuild(owner).await.expect("begin_rebuild");
        let fresh = ids.post(author);
        cache.fill(owner, &[fresh]).await.expect("fill");
        assert_eq!(all_of(&cache, owner).await, vec![fresh]);

        // fill alone starts from nothing too.
        let other = ids.id();
        cache.fill(other, &[ids.post(author)]).await.expect("fill");
        let _: i64 = redis::cmd("DEL")
            .arg(cache.state_key(other))
            .query(&mut con)
            .expect("DEL");
        let only = ids.post(author);
        cache.fill(other, &[only]).await.expect("fill");
        assert_eq!(all_of(&cache, other).await, vec![only]);
    }

    #[tokio::test]
    async fn the_cap_holds_at_scale() {
        let Some((cache, cleanup)) = redis_cache(800, IDLE, "redis timeline cap").await else {
            return;
        };
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        cache.fill(owner, &[]).await.expect("fill");
        let all: Vec<TimelineEntry> = (0..2_000).map(|_| ids.post(author)).collect();
        let started = Instant::now();
        for batch in all.chunks(100) {
            // Newest first within a batch, as parallel fan-outs deliver.
            let items: Vec<(Id, TimelineEntry)> = batch.iter().rev().map(|e| (owner, *e)).collect();
            cache.push(&items).await.expect("push");
        }
        let pushed = started.elapsed();
        let mut con = sync_con(&cleanup.url).expect("redis");
        let len: i64 = redis::cmd("ZCARD")
            .arg(cache.timeline_key(owner))
            .query(&mut con)
            .expect("ZCARD");
        assert_eq!(len, 800);
        let mut newest: Vec<TimelineEntry> = all[1_200..].to_vec();
        newest.reverse();
        assert_eq!(all_of(&cache, owner).await, newest);
        eprintln!("2,000 entries pushed in 20 batches onto one timeline in {pushed:?}");
    }

    #[tokio::test]
    async fn one_push_reaches_5000_owners() {
        let Some((cache, cleanup)) = redis_cache(800, IDLE, "redis batch push").await else {
            return;
        };
        let cache = Arc::new(cache);
        let ids = Ids::new();
        let author = ids.id();
        let active: Vec<Id> = (0..5_000).map(|_| ids.id()).collect();
        let inactive: Vec<Id> = (0..5_000).map(|_| ids.id()).collect();

        // Concurrent calls share the one connection, pipelined.
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for owner in active.clone() {
            let cache = cache.clone();
            set.spawn(async move { cache.fill(owner, &[]).await });
        }
        while let Some(done) = set.join_next().await {
            let filled: CacheResult<()> = done.expect("task");
            filled.expect("fill");
        }
        let setup = started.elapsed();

        let entry = ids.post(author);
        let items: Vec<(Id, TimelineEntry)> = active
            .iter()
            .zip(&inactive)
            .flat_map(|(a, i)| [(*a, entry), (*i, entry)])
            .collect();
        let started = Instant::now();
        cache.push(&items).await.expect("one call");
        let pushed = started.elapsed();
        assert!(pushed < TIMEOUT, "{pushed:?}");

        let mut con = sync_con(&cleanup.url).expect("redis");
        let mut pipe = redis::pipe();
        for owner in &active {
            pipe.cmd("ZCARD").arg(cache.timeline_key(*owner));
        }
        let lens: Vec<i64> = pipe.query(&mut con).expect("ZCARD");
        assert!(lens.iter().all(|n| *n == 1), "every active owner got it");
        assert_eq!(
            keys_under(&mut con, &cleanup.prefix).len(),
            2 * active.len(),
            "no key for inactive owners"
        );
        assert_eq!(
            cache
                .range(active[4_999], &Page::first(5))
                .await
                .expect("range"),
            Some(vec![entry])
        );
        eprintln!(
            "5,000 timelines created in {setup:?}; one push to 10,000 owners (5,000 active) in {pushed:?}"
        );
    }

    #[tokio::test]
    async fn forgotten_scripts_are_loaded_again() {
        let Some((cache, cleanup)) = redis_cache(10, IDLE, "redis NOSCRIPT").await else {
            return;
        };
        let mut con = sync_con(&cleanup.url).expect("redis");
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        let (a, b) = (ids.post(author), ids.post(author));
        cache.fill(owner, &[a]).await.expect("fill");
        // As after a Redis restart.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut con)
            .expect("SCRIPT FLUSH");
        cache.push(&[(owner, b)]).await.expect("push");
        assert_eq!(all_of(&cache, owner).await, vec![b, a]);
    }

    /// Every call of a cache that cannot reach Redis fails within `limit`.
    async fn every_call_fails(cache: &RedisTimelineCache, limit: Duration) {
        let owner = Id::from_i64(1);
        let entry = TimelineEntry {
            id: Id::from_i64(2),
            author_id: Id::from_i64(3),
            reblog_of_id: None,
        };
        for call in 0..8 {
            let started = Instant::now();
            let failed = match call {
                0 => cache.push(&[(owner, entry)]).await.is_err(),
                1 => cache.range(owner, &Page::first(5)).await.is_err(),
                2 => cache.begin_rebuild(owner).await.is_err(),
                3 => cache.fill(owner, &[entry]).await.is_err(),
                4 => cache.remove(owner, &[entry.id]).await.is_err(),
                5 => cache.remove_author(owner, entry.author_id).await.is_err(),
                6 => cache.forget(owner).await.is_err(),
                _ => cache.exists(owner).await.is_err(),
            };
            assert!(failed, "call {call} failed");
            assert!(
                started.elapsed() <= limit,
                "call {call}: {:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_every_call_fast() {
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let cache = RedisTimelineCache::connect("redis://127.0.0.1:1", "x", 10, IDLE, timeout)
            .await
            .expect("a Redis that is down does not stop the start");
        assert!(started.elapsed() <= timeout + Duration::from_millis(200));
        every_call_fails(&cache, timeout + Duration::from_millis(200)).await;
        // Past the pause after a failure, calls try again (and fail again).
        tokio::time::sleep(starling_cache::REDIS_RETRY_AFTER).await;
        every_call_fails(&cache, timeout + Duration::from_millis(200)).await;
    }

    #[tokio::test]
    async fn a_silent_redis_times_out() {
        // Accepts connections (the kernel does) and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("redis://{}", listener.local_addr().expect("addr"));
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let cache = RedisTimelineCache::connect(&url, "x", 10, IDLE, timeout)
            .await
            .expect("connect");
        assert!(started.elapsed() <= timeout + Duration::from_millis(300));
        every_call_fails(&cache, timeout + Duration::from_millis(300)).await;
        tokio::time::sleep(starling_cache::REDIS_RETRY_AFTER).await;
        every_call_fails(&cache, timeout + Duration::from_millis(300)).await;
        drop(listener);
    }

    /// A `redis-server` of the test's own on a free port, stopped (by its
    /// pid) when dropped.
    struct OwnRedis {
        child: std::process::Child,
    }

    impl OwnRedis {
        /// `None` when there is no `redis-server` to run.
        fn start(port: u16) -> Option<Self> {
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let this = Self { child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while sync_con(&format!("redis://127.0.0.1:{port}")).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(this)
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Retries `call` until it succeeds, within `limit`.
    async fn recovers<F, Fut>(what: &str, limit: Duration, mut call: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CacheResult<()>>,
    {
        let started = Instant::now();
        while let Err(e) = call().await {
            assert!(started.elapsed() < limit, "{what}: still failing: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    #[tokio::test]
    async fn calls_recover_when_redis_comes_back() {
        let port = {
            let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            free.local_addr().expect("addr").port()
        };
        let url = format!("redis://127.0.0.1:{port}");
        let timeout = Duration::from_millis(500);
        // Down when the process starts.
        let cache = RedisTimelineCache::connect(&url, "own", 10, IDLE, timeout)
            .await
            .expect("connect");
        let ids = Ids::new();
        let (owner, author) = (ids.id(), ids.id());
        assert!(cache.exists(owner).await.is_err());

        let Some(server) = OwnRedis::start(port) else {
            eprintln!("SKIPPED calls_recover_when_redis_comes_back: no redis-server to run");
            return;
        };
        let first = [ids.post(author)];
        let took = recovers("after start", Duration::from_secs(10), || {
            cache.fill(owner, &first)
        })
        .await;
        eprintln!("calls succeed {took:?} after Redis came up");
        assert_eq!(all_of(&cache, owner).await, first.to_vec());

        // Restarted: the connection is gone, and so are the data and the
        // scripts (loaded again on NOSCRIPT).
        drop(server);
        assert!(cache.exists(owner).await.is_err());
        let _server = OwnRedis::start(port).expect("restart");
        let took = recovers("after restart", Duration::from_secs(10), || async {
            cache.exists(owner).await.map(drop)
        })
        .await;
        eprintln!("calls succeed {took:?} after Redis restarted");
        assert!(!cache.exists(owner).await.expect("exists"), "data lost");
        let second = ids.post(author);
        cache.fill(owner, &[second]).await.expect("fill");
        cache
            .push(&[(owner, ids.post(author))])
            .await
            .expect("push");
        assert_eq!(all_of(&cache, owner).await.len(), 2);
    }
}

mod objects {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use starling_cache::{CachedObject, ObjectKind, RedisSharedObjects, SharedObjects};
    use starling_domain::{Account, Id, IdGenerator, ShardId, Status, Visibility};
    use starling_testkit::{require, unique_name, Service};

    use super::timelines::key_slot;
    use super::{keys_under, pttl, sync_con, Cleanup, TIMEOUT};

    async fn fresh() -> Option<(Box<dyn SharedObjects>, Cleanup)> {
        let (objects, cleanup) = redis_objects("redis shared objects conformance").await?;
        Some((Box::new(objects), cleanup))
    }

    starling_cache::shared_objects_conformance_suite!(optional fresh);

    async fn redis_objects(test: &str) -> Option<(RedisSharedObjects, Cleanup)> {
        let url = require(Service::Redis, test)?;
        let prefix = unique_name("starling_test_obj");
        let objects = RedisSharedObjects::connect(&url, &prefix, TIMEOUT)
            .await
            .expect("connect");
        Some((objects, Cleanup { url, prefix }))
    }

    fn ids(n: usize) -> Vec<Id> {
        let gen = IdGenerator::new();
        (0..n)
            .map(|_| gen.next(ShardId::for_key("redis-object-tests")))
            .collect()
    }

    /// A status of typical size: 200 characters of text, its HTML, a tag.
    fn status(id: Id) -> Status {
        let text = "word ".repeat(40);
        Status {
            id,
            account_id: Id::from_i64(id.as_i64() - 1),
            reblog_of_id: None,
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            content: format!("<p>{text}<a href=\"https://starling.test/tags/rust\">#rust</a></p>"),
            text: format!("{text}#rust"),
            spoiler_text: String::new(),
            sensitive: false,
            visibility: Visibility::Public,
            language: Some("en".into()),
            app_id: Some(Id::from_i64(3)),
            mentions: vec![],
            tags: vec!["rust".into()],
            created_at_ms: 1_700_000_000_000,
            replies_count: 2,
            reblogs_count: 10,
            favourites_count: 31,
            media: Vec::new(),
        }
    }

    fn account(id: Id) -> Account {
        let mut a = Account::new(id, "someone_typical", Some("en".into()), 1_700_000_000_000);
        a.display_name = "Someone Typical".into();
        a.note = "Writes about Rust and birds. ".repeat(3);
        a.statuses_count = 1_234;
        a.followers_count = 567;
        a.following_count = 89;
        a
    }

    #[tokio::test]
    async fn keys_ttls_and_tombstones() {
        let Some((objects, cleanup)) = redis_objects("redis object keys").await else {
            return;
        };
        let mut con = sync_con(&cleanup.url).expect("redis");
        let id = ids(1)[0];
        let (a, s) = (
            objects.key(ObjectKind::Account, id),
            objects.key(ObjectKind::Status, id),
        );
        assert_eq!(a, format!("{}:obj:a:{{{id}}}", cleanup.prefix));
        assert_eq!(s, format!("{}:obj:s:{{{id}}}", cleanup.prefix));
        // Redis Cluster: the slot is the id's, whatever the prefix.
        assert_eq!(key_slot(&a), key_slot(&id.to_string()));
        assert_eq!(key_slot(&s), key_slot(&a));

        let ttl = Duration::from_secs(60);
        objects
            .put_many(ObjectKind::Account, &[(id, b"account".to_vec())], ttl)
            .await
            .expect("put_many");
        objects
            .put_many(ObjectKind::Status, &[(id, b"status".to_vec())], ttl)
            .await
            .expect("put_many");
        let found: HashSet<String> = keys_under(&mut con, &cleanup.prefix).into_iter().collect();
        assert_eq!(found, HashSet::from([a.clone(), s.clone()]));
        let left = pttl(&mut con, &s);
        assert!(left > 55_000 && left <= 60_000, "{left}");
        let raw: Vec<u8> = redis::cmd("GET").arg(&s).query(&mut con).expect("GET");
        assert_eq!(raw, b"status", "the caller's bytes as they are");

        objects
            .invalidate_many(ObjectKind::Status, &[id], Duration::from_secs(5))
            .await
            .expect("invalidate_many");
        let raw: Vec<u8> = redis::cmd("GET").arg(&s).query(&mut con).expect("GET");
        assert!(raw.is_empty(), "a tombstone is the empty string");
        let left = pttl(&mut con, &s);
        assert!(
            left > 0 && left <= 5_000,
            "the tombstone's own life: {left}"
        );
        assert!(pttl(&mut con, &a) > 55_000, "the account is untouched");
    }

    #[tokio::test]
    async fn prefixes_keep_deployments_apart() {
        let Some((one, cleanup)) = redis_objects("redis object prefixes").await else {
            return;
        };
        let other_prefix = format!("{}_other", cleanup.prefix);
        let other = RedisSharedObjects::connect(&cleanup.url, &other_prefix, TIMEOUT)
            .await
            .expect("connect");
        let _other_cleanup = Cleanup {
            url: cleanup.url.clone(),
            prefix: other_prefix,
        };
        let id = ids(1)[0];
        let kind = ObjectKind::Status;
        let ttl = Duration::from_secs(60);
        one.put_many(kind, &[(id, b"one".to_vec())], ttl)
            .await
            .expect("put_many");
        assert_eq!(other.get_many(kind, &[id]).await.expect("get"), vec![None]);
        other
            .put_many(kind, &[(id, b"other".to_vec())], ttl)
            .await
            .expect("put_many");
        other
            .invalidate_many(kind, &[id], ttl)
            .await
            .expect("invalidate_many");
        assert_eq!(
            one.get_many(kind, &[id]).await.expect("get"),
            vec![Some(b"one".to_vec())]
        );
        assert_eq!(other.get_many(kind, &[id]).await.expect("get"), vec![None]);
    }

    /// What an object costs in Redis (the Sizing section of OPERATIONS.md).
    #[tokio::test]
    async fn what_an_entry_costs() {
        let Some((objects, cleanup)) = redis_objects("redis object sizes").await else {
            return;
        };
        let mut con = sync_con(&cleanup.url).expect("redis");
        let id = ids(1)[0];
        let ttl = Duration::from_secs(60);
        let (s, a) = (status(id), account(id));
        let (s_bytes, a_bytes) = (s.encode(), a.encode());
        objects
            .put_many(ObjectKind::Status, &[(id, s_bytes.clone())], ttl)
            .await
            .expect("put_many");
        objects
            .put_many(ObjectKind::Account, &[(id, a_bytes.clone())], ttl)
            .await
            .expect("put_many");
        let got = objects
            .get_many(ObjectKind::Status, &[id])
            .await
            .expect("get_many");
        let back = got[0].as_deref().and_then(Status::decode);
        assert_eq!(back, Some(s.clone()));
        let mut usage = |key: String| -> i64 {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .query(&mut con)
                .expect("MEMORY USAGE")
        };
        let s_mem = usage(objects.key(ObjectKind::Status, id));
        let a_mem = usage(objects.key(ObjectKind::Account, id));
        eprintln!(
            "a status of {} text bytes: {} bytes encoded, {s_mem} bytes in Redis; \
             an account: {} bytes encoded, {a_mem} bytes in Redis",
            s.text.len(),
            s_bytes.len(),
            a_bytes.len()
        );
        assert!(s_mem < 1_024 && a_mem < 1_024, "{s_mem} {a_mem}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_every_call_fast() {
        let timeout = Duration::from_millis(300);
        let limit = timeout + Duration::from_millis(200);
        let started = Instant::now();
        let objects = RedisSharedObjects::connect("redis://127.0.0.1:1", "x", timeout)
            .await
            .expect("a Redis that is down does not stop the start");
        assert!(started.elapsed() <= limit);
        let id = Id::from_i64(1);
        let kind = ObjectKind::Account;
        for call in 0..6 {
            let started = Instant::now();
            let failed = match call % 3 {
                0 => objects.get_many(kind, &[id]).await.is_err(),
                1 => objects
                    .put_many(kind, &[(id, b"x".to_vec())], timeout)
                    .await
                    .is_err(),
                _ => objects.invalidate_many(kind, &[id], timeout).await.is_err(),
            };
            assert!(failed, "call {call} failed");
            assert!(
                started.elapsed() <= limit,
                "call {call}: {:?}",
                started.elapsed()
            );
        }
        // Empty batches need no Redis at all.
        assert_eq!(objects.get_many(kind, &[]).await.expect("empty"), vec![]);
        objects.put_many(kind, &[], timeout).await.expect("empty");
        objects
            .invalidate_many(kind, &[], timeout)
            .await
            .expect("empty");
    }
}
