//! The cache conformance suites: what every adapter of each cache seam must
//! do, one `pub async fn` per case and one macro per seam generating a
//! `#[tokio::test]` for each.
//!
//! - [`rate_limit_conformance_suite!`]: adapters get a limiter reading the
//!   given [`ManualClock`], so windows are crossed without sleeping.
//! - [`timeline_conformance_suite!`]: adapters get a fresh
//!   [`TimelineCache`] with a small cap (10, say; at least 6) so capping is
//!   cheap to test; the cases read it with [`TimelineCache::cap`]. Owners
//!   get fresh ids in every case, so a shared Redis works too. Idle expiry
//!   and size bounds are adapter policy and are tested by each adapter.
//! - [`shared_objects_conformance_suite!`]: adapters get a fresh
//!   [`SharedObjects`]; batches keep their order, fills never replace a
//!   value or a tombstone, entries and tombstones expire (short TTLs, waited
//!   for on the adapter's clock), 500-id batches, kinds apart.
//!
//! The macros also take `optional $make`, for adapters of a server that
//! may be absent (Redis): `$make` then returns an `Option` of what it
//! returns otherwise, and `None` (the server is not there) makes the case
//! return at once and pass; the server's test kit prints why.

use std::sync::Arc;
use std::time::Duration;

use starling_domain::{Id, IdGenerator, ManualClock, Page, ShardId};

use crate::{ObjectKind, RateLimiter, Rule, SharedObjects, TimelineCache, TimelineEntry};

#[macro_export]
macro_rules! rate_limit_conformance_suite {
    (optional $make:path) => {
        $crate::rate_limit_conformance_suite!(@list @optional_cases $make);
    };
    ($make:path) => {
        $crate::rate_limit_conformance_suite!(@list @cases $make);
    };
    (@list @$arm:ident $make:path) => {
        $crate::rate_limit_conformance_suite!(@$arm $make;
            counts_down_then_denies,
            new_window_starts_fresh,
            keys_are_independent,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let clock = std::sync::Arc::new(starling_domain::ManualClock::new());
                let (limiter, _guard) = $make(clock.clone()).await;
                $crate::conformance::$case(&*limiter, clock).await;
            }
        )*
    };
    (@optional_cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let clock = std::sync::Arc::new(starling_domain::ManualClock::new());
                let Some((limiter, _guard)) = $make(clock.clone()).await else {
                    return;
                };
                $crate::conformance::$case(&*limiter, clock).await;
            }
        )*
    };
}

const RULE: Rule = Rule {
    limit: 3,
    period: Duration::from_secs(60),
};

fn unique(name: &str) -> String {
    format!("conformance:{name}:{}", uuid_like())
}

fn uuid_like() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub async fn counts_down_then_denies(limiter: &dyn RateLimiter, _clock: Arc<ManualClock>) {
    let key = unique("countdown");
    let mut seen = vec![];
    for _ in 0..5 {
        let d = limiter.hit(&key, RULE).await;
        assert_eq!(d.limit, 3);
        seen.push((d.allowed, d.remaining));
    }
    assert_eq!(
        seen,
        vec![(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
    );
}

pub async fn new_window_starts_fresh(limiter: &dyn RateLimiter, clock: Arc<ManualClock>) {
    let key = unique("window");
    let mut last = None;
    for _ in 0..4 {
        last = Some(limiter.hit(&key, RULE).await);
    }
    let denied = last.expect("hit");
    assert!(!denied.allowed);
    assert!(denied.reset_at_ms > clock_ms(&clock));
    assert!(denied.reset_at_ms <= clock_ms(&clock) + 60_000);
    clock.advance(Duration::from_secs(61));
    let d = limiter.hit(&key, RULE).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 2);
    assert!(d.reset_at_ms > denied.reset_at_ms);
}

pub async fn keys_are_independent(limiter: &dyn RateLimiter, _clock: Arc<ManualClock>) {
    let (a, b) = (unique("a"), unique("b"));
    for _ in 0..3 {
        assert!(limiter.hit(&a, RULE).await.allowed);
    }
    assert!(!limiter.hit(&a, RULE).await.allowed);
    assert!(limiter.hit(&b, RULE).await.allowed);
}

fn clock_ms(clock: &ManualClock) -> i64 {
    use starling_domain::Clock;
    clock.now_ms()
}

/// Generates one `#[tokio::test]` per timeline-cache case. `$make` is an
/// async fn returning `(cache, guard)`; the guard lives as long as the test.
/// With `optional $make`, it returns `Option<(cache, guard)>` and `None`
/// skips the case.
#[macro_export]
macro_rules! timeline_conformance_suite {
    (optional $make:path) => {
        $crate::timeline_conformance_suite!(@list @optional_cases $make);
    };
    ($make:path) => {
        $crate::timeline_conformance_suite!(@list @cases $make);
    };
    (@list @$arm:ident $make:path) => {
        $crate::timeline_conformance_suite!(@$arm $make;
            missing_timeline_is_none,
            rebuild_is_incomplete_until_filled,
            fill_merges_and_pages_like_mastodon,
            push_lands_only_on_existing_timelines_once,
            cap_keeps_the_newest,
            older_pushes_keep_the_order,
            remove_takes_out_ids,
            remove_author_takes_posts_and_boosts,
            forget_drops_the_timeline,
            owners_are_independent,
            ids_order_exactly_at_64_bits,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (cache, _guard) = $make().await;
                $crate::conformance::$case(&*cache).await;
            }
        )*
    };
    (@optional_cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((cache, _guard)) = $make().await else {
                    return;
                };
                $crate::conformance::$case(&*cache).await;
            }
        )*
    };
}

/// Fresh owners and entries, with ids increasing in creation order.
struct Ids(IdGenerator);

impl Ids {
    fn new() -> Self {
        Self(IdGenerator::new())
    }

    fn id(&self) -> Id {
        self.0.next(ShardId::for_key("timeline-conformance"))
    }

    fn post(&self, author: Id) -> TimelineEntry {
        TimelineEntry {
            id: self.id(),
            author_id: author,
            reblog_of_id: None,
        }
    }

    fn boost(&self, booster: Id, of: Id) -> TimelineEntry {
        TimelineEntry {
            id: self.id(),
            author_id: booster,
            reblog_of_id: Some(of),
        }
    }

    /// `n` posts by `author`, oldest first.
    fn posts(&self, author: Id, n: usize) -> Vec<TimelineEntry> {
        (0..n).map(|_| self.post(author)).collect()
    }
}

fn page(max: Option<Id>, since: Option<Id>, min: Option<Id>, limit: usize) -> Page {
    Page {
        max_id: max,
        since_id: since,
        min_id: min,
        limit,
    }
}

/// Newest first.
fn newest_first(entries: &[TimelineEntry]) -> Vec<TimelineEntry> {
    let mut v = entries.to_vec();
    v.sort_by_key(|e| std::cmp::Reverse(e.id));
    v
}

/// The whole complete timeline, newest first (panics if it is not there).
async fn all_of(cache: &dyn TimelineCache, owner: Id) -> Vec<TimelineEntry> {
    cache
        .range(owner, &Page::first(cache.cap().saturating_add(100)))
        .await
        .expect("range")
        .expect("a complete timeline")
}

async fn is_missing(cache: &dyn TimelineCache, owner: Id) -> bool {
    let range = cache.range(owner, &Page::first(20)).await.expect("range");
    let exists = cache.exists(owner).await.expect("exists");
    range.is_none() && !exists
}

pub async fn missing_timeline_is_none(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let owner = ids.id();
    assert!(is_missing(cache, owner).await);
    // Housekeeping on a missing timeline is a no-op, and creates nothing.
    cache.remove(owner, &[ids.id()]).await.expect("remove");
    cache
        .remove_author(owner, ids.id())
        .await
        .expect("remove_author");
    cache.forget(owner).await.expect("forget");
    assert!(is_missing(cache, owner).await);
}

pub async fn rebuild_is_incomplete_until_filled(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    let from_store = ids.posts(author, 3);

    cache.begin_rebuild(owner).await.expect("begin_rebuild");
    assert!(
        cache.exists(owner).await.expect("exists"),
        "a fan-out target now"
    );
    assert_eq!(
        cache.range(owner, &Page::first(20)).await.expect("range"),
        None
    );

    // Posted while the reader was reading the store: kept by the fill.
    let during = ids.post(author);
    cache.push(&[(owner, during)]).await.expect("push");
    assert_eq!(
        cache.range(owner, &Page::first(20)).await.expect("range"),
        None
    );

    cache.fill(owner, &from_store).await.expect("fill");
    let mut expected = from_store.clone();
    expected.push(during);
    assert_eq!(all_of(cache, owner).await, newest_first(&expected));

    // A second rebuild of a complete timeline changes nothing.
    cache.begin_rebuild(owner).await.expect("begin_rebuild");
    assert_eq!(all_of(cache, owner).await, newest_first(&expected));

    // fill alone creates a complete timeline too.
    let other = ids.id();
    cache.fill(other, &from_store).await.expect("fill");
    assert_eq!(all_of(cache, other).await, newest_first(&from_store));
    // And an empty fill makes an empty, complete timeline.
    let empty = ids.id();
    cache.fill(empty, &[]).await.expect("fill");
    assert_eq!(all_of(cache, empty).await, vec![]);
}

pub async fn fill_merges_and_pages_like_mastodon(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    let e = ids.posts(author, 9); // e[0] oldest .. e[8] newest
                                  // Fill in two overlapping, unsorted parts: merged, one copy each.
    let mut first: Vec<TimelineEntry> = e[..6].to_vec();
    first.reverse();
    cache.fill(owner, &first).await.expect("fill");
    let second = [e[8], e[3], e[7], e[6], e[5], e[4]];
    cache.fill(owner, &second).await.expect("fill again");
    let all = newest_first(&e);
    assert_eq!(all_of(cache, owner).await, all);

    let at = |i: usize| Some(e[i].id);
    let pick = |idx: &[usize]| idx.iter().map(|i| e[*i]).collect::<Vec<_>>();
    let cases = [
        (page(None, None, None, 3), pick(&[8, 7, 6])),
        (page(at(6), None, None, 3), pick(&[5, 4, 3])),
        (page(at(1), None, None, 3), pick(&[0])),
        (page(at(0), None, None, 3), vec![]),
        // since_id: the newest page above the cutoff.
        (page(None, at(2), None, 2), pick(&[8, 7])),
        // min_id: the entries just above it, newest first.
        (page(None, None, at(2), 2), pick(&[4, 3])),
        (page(at(7), None, at(2), 10), pick(&[6, 5, 4, 3])),
        (page(at(7), at(2), None, 2), pick(&[6, 5])),
        (page(None, None, at(8), 5), vec![]),
        (page(at(4), None, at(3), 5), vec![]),
        (page(None, None, None, 0), vec![]),
        (page(None, None, None, 100), all.clone()),
    ];
    for (p, expected) in cases {
        let got = cache
            .range(owner, &p)
            .await
            .expect("range")
            .expect("complete");
        assert_eq!(got, expected, "{p:?}");
        // Exactly what the store's paging would pick.
        assert_eq!(got, p.select(all.clone(), |t| t.id), "{p:?}");
    }
}

pub async fn push_lands_only_on_existing_timelines_once(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (active, absent, author) = (ids.id(), ids.id(), ids.id());
    let old = ids.post(author);
    cache.fill(active, &[old]).await.expect("fill");

    let new = ids.post(author);
    cache
        .push(&[(active, new), (absent, new), (active, new)])
        .await
        .expect("push");
    cache.push(&[(active, new)]).await.expect("push again");
    cache.push(&[]).await.expect("empty push");
    cache
        .fill(active, &[new, old])
        .await
        .expect("fill with copies");
    assert_eq!(all_of(cache, active).await, vec![new, old], "one copy");
    assert!(is_missing(cache, absent).await, "push creates nothing");
}

pub async fn cap_keeps_the_newest(cache: &dyn TimelineCache) {
    let cap = cache.cap();
    assert!(cap >= 2, "the suite needs a cap of at least 2");
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());

    // A fill beyond the cap keeps the newest `cap`.
    let many = ids.posts(author, cap + 3);
    cache.fill(owner, &many).await.expect("fill");
    let kept = all_of(cache, owner).await;
    assert_eq!(kept, newest_first(&many[3..]));

    // Pushes beyond the cap push the oldest out.
    let newer = ids.posts(author, 2);
    let items: Vec<(Id, TimelineEntry)> = newer.iter().map(|e| (owner, *e)).collect();
    cache.push(&items).await.expect("push");
    let mut expected = many[5..].to_vec();
    expected.extend(newer);
    assert_eq!(all_of(cache, owner).await, newest_first(&expected));
    assert_eq!(expected.len(), cap);
}

pub async fn older_pushes_keep_the_order(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    let e = ids.posts(author, 4);
    cache.fill(owner, &[e[0], e[3]]).await.expect("fill");
    // Out of order, as parallel fan-outs deliver.
    cache
        .push(&[(owner, e[2]), (owner, e[1])])
        .await
        .expect("push");
    assert_eq!(all_of(cache, owner).await, newest_first(&e));

    // On a full timeline, an entry older than all of it does not stay.
    let full = ids.id();
    let cap = cache.cap();
    let oldest = ids.post(author);
    let rest = ids.posts(author, cap);
    cache.fill(full, &rest).await.expect("fill");
    cache.push(&[(full, oldest)]).await.expect("push");
    assert_eq!(all_of(cache, full).await, newest_first(&rest));
}

pub async fn remove_takes_out_ids(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    let e = ids.posts(author, 4);
    cache.fill(owner, &e).await.expect("fill");
    cache
        .remove(owner, &[e[1].id, ids.id(), e[3].id])
        .await
        .expect("remove");
    assert_eq!(all_of(cache, owner).await, vec![e[2], e[0]]);
    cache.remove(owner, &[]).await.expect("remove nothing");
    assert_eq!(all_of(cache, owner).await, vec![e[2], e[0]]);
}

pub async fn remove_author_takes_posts_and_boosts(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, gone, stays, other) = (ids.id(), ids.id(), ids.id(), ids.id());
    let post_by_gone = ids.post(gone);
    let post_by_stays = ids.post(stays);
    let boost_by_gone = ids.boost(gone, ids.id());
    let boost_by_stays = ids.boost(stays, ids.id());
    let later_by_gone = ids.post(gone);
    let entries = [
        post_by_gone,
        post_by_stays,
        boost_by_gone,
        boost_by_stays,
        later_by_gone,
    ];
    cache.fill(owner, &entries).await.expect("fill");
    cache
        .remove_author(owner, gone)
        .await
        .expect("remove_author");
    assert_eq!(
        all_of(cache, owner).await,
        vec![boost_by_stays, post_by_stays],
        "a boost's author is its booster"
    );
    cache
        .remove_author(owner, other)
        .await
        .expect("nobody's entries");
    assert_eq!(all_of(cache, owner).await.len(), 2);
}

pub async fn forget_drops_the_timeline(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    cache
        .fill(owner, &ids.posts(author, 3))
        .await
        .expect("fill");
    cache.forget(owner).await.expect("forget");
    assert!(is_missing(cache, owner).await);
    // Forgotten means no more fan-out onto it.
    cache
        .push(&[(owner, ids.post(author))])
        .await
        .expect("push");
    assert!(is_missing(cache, owner).await);
    // A rebuild starts from nothing.
    cache.begin_rebuild(owner).await.expect("begin_rebuild");
    let fresh = ids.post(author);
    cache.fill(owner, &[fresh]).await.expect("fill");
    assert_eq!(all_of(cache, owner).await, vec![fresh]);

    // Forgetting an incomplete timeline drops it too.
    let rebuilding = ids.id();
    cache
        .begin_rebuild(rebuilding)
        .await
        .expect("begin_rebuild");
    cache.forget(rebuilding).await.expect("forget");
    assert!(is_missing(cache, rebuilding).await);
}

pub async fn owners_are_independent(cache: &dyn TimelineCache) {
    let ids = Ids::new();
    let (a, b, author) = (ids.id(), ids.id(), ids.id());
    let shared = ids.post(author);
    cache.fill(a, &[shared]).await.expect("fill a");
    cache.fill(b, &[shared]).await.expect("fill b");

    let only_a = ids.post(author);
    cache.push(&[(a, only_a)]).await.expect("push");
    assert_eq!(all_of(cache, a).await, vec![only_a, shared]);
    assert_eq!(all_of(cache, b).await, vec![shared]);

    cache.remove(b, &[shared.id]).await.expect("remove");
    assert_eq!(all_of(cache, a).await, vec![only_a, shared]);
    assert_eq!(all_of(cache, b).await, vec![]);

    cache.remove_author(a, author).await.expect("remove_author");
    cache.push(&[(b, only_a)]).await.expect("push");
    assert_eq!(all_of(cache, b).await, vec![only_a]);

    cache.forget(a).await.expect("forget");
    assert!(is_missing(cache, a).await);
    assert_eq!(all_of(cache, b).await, vec![only_a]);
}

/// Ids near 2^63 differ in bits an `f64` cannot hold (above 2^53 it steps by
/// 2 or more, near 2^63 by 1024): they must still order, bound, dedupe and
/// remove exactly. Real ids are `ms << 16 | ...`, about 2^60 today.
pub async fn ids_order_exactly_at_64_bits(cache: &dyn TimelineCache) {
    assert!(cache.cap() >= 6, "the suite needs a cap of at least 6");
    let ids = Ids::new();
    let (owner, author) = (ids.id(), ids.id());
    let raw = [
        (1i64 << 53) + 1,
        (1 << 62) + 1,
        (1 << 62) + 2,
        i64::MAX - 2,
        i64::MAX - 1,
        i64::MAX,
    ];
    // e[0] oldest .. e[5] newest.
    let e: Vec<TimelineEntry> = raw
        .iter()
        .map(|n| TimelineEntry {
            id: Id::from_i64(*n),
            author_id: author,
            reblog_of_id: None,
        })
        .collect();
    cache.fill(owner, &[e[5], e[0], e[3]]).await.expect("fill");
    cache
        .push(&[(owner, e[4]), (owner, e[1]), (owner, e[2]), (owner, e[4])])
        .await
        .expect("push");
    let all = newest_first(&e);
    assert_eq!(all_of(cache, owner).await, all, "one copy each, in order");

    let at = |i: usize| Some(e[i].id);
    let pick = |idx: &[usize]| idx.iter().map(|i| e[*i]).collect::<Vec<_>>();
    let cases = [
        (page(at(5), None, None, 2), pick(&[4, 3])),
        (page(at(4), None, None, 10), pick(&[3, 2, 1, 0])),
        (page(None, at(3), None, 10), pick(&[5, 4])),
        (page(None, None, at(1), 2), pick(&[3, 2])),
        (page(None, None, at(5), 2), vec![]),
        (page(at(2), None, at(0), 10), pick(&[1])),
        (page(at(3), at(1), None, 10), pick(&[2])),
    ];
    for (p, expected) in cases {
        let got = cache
            .range(owner, &p)
            .await
            .expect("range")
            .expect("complete");
        assert_eq!(got, expected, "{p:?}");
        assert_eq!(got, p.select(all.clone(), |t| t.id), "{p:?}");
    }

    cache.remove(owner, &[e[4].id]).await.expect("remove");
    assert_eq!(all_of(cache, owner).await, pick(&[5, 3, 2, 1, 0]));
}

/// Generates one `#[tokio::test]` per case of the shared object seam
/// ([`SharedObjects`]). `$make` is an async fn returning `(objects,
/// guard)`, or with `optional`, an `Option` of that. Ids are fresh in every
/// case, so a shared Redis works too. Expiry is waited for on the adapter's
/// own clock (Redis keeps time itself), with short TTLs and a deadline; no
/// case asserts how fast anything is.
#[macro_export]
macro_rules! shared_objects_conformance_suite {
    (optional $make:path) => {
        $crate::shared_objects_conformance_suite!(@list @optional_cases $make);
    };
    ($make:path) => {
        $crate::shared_objects_conformance_suite!(@list @cases $make);
    };
    (@list @$arm:ident $make:path) => {
        $crate::shared_objects_conformance_suite!(@$arm $make;
            objects_batch_get_answers_each_id_in_order,
            objects_fill_keeps_what_is_there,
            objects_fill_is_refused_on_a_tombstone_until_it_expires,
            objects_entries_expire,
            objects_large_batches_in_one_call,
            objects_kinds_are_independent,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (objects, _guard) = $make().await;
                $crate::conformance::$case(&*objects).await;
            }
        )*
    };
    (@optional_cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((objects, _guard)) = $make().await else {
                    return;
                };
                $crate::conformance::$case(&*objects).await;
            }
        )*
    };
}

/// Long enough never to run out during a case.
const LONG: Duration = Duration::from_secs(60);
/// Short enough to wait for.
const SHORT: Duration = Duration::from_millis(300);
/// How long a case waits for an expiry before it fails.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

fn object_ids(n: usize) -> Vec<Id> {
    let ids = IdGenerator::new();
    (0..n)
        .map(|_| ids.next(ShardId::for_key("objects-conformance")))
        .collect()
}

fn value(id: Id, version: u8) -> Vec<u8> {
    format!("v{version}:{id}").into_bytes()
}

async fn get_one(objects: &dyn SharedObjects, kind: ObjectKind, id: Id) -> Option<Vec<u8>> {
    let mut got = objects.get_many(kind, &[id]).await.expect("get_many");
    assert_eq!(got.len(), 1);
    got.pop().flatten()
}

/// Waits until `done` holds (checked every 20 ms), failing after the
/// deadline.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < EXPIRY_DEADLINE,
            "{what}: not within {EXPIRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn objects_batch_get_answers_each_id_in_order(objects: &dyn SharedObjects) {
    let ids = object_ids(4);
    let kind = ObjectKind::Status;
    assert_eq!(objects.get_many(kind, &[]).await.expect("empty"), vec![]);
    objects
        .put_many(
            kind,
            &[(ids[0], value(ids[0], 1)), (ids[2], value(ids[2], 1))],
            LONG,
        )
        .await
        .expect("put_many");
    objects.put_many(kind, &[], LONG).await.expect("no items");
    let got = objects
        .get_many(kind, &[ids[3], ids[0], ids[1], ids[2], ids[0]])
        .await
        .expect("get_many");
    assert_eq!(
        got,
        vec![
            None,
            Some(value(ids[0], 1)),
            None,
            Some(value(ids[2], 1)),
            Some(value(ids[0], 1)),
        ]
    );
    // Empty values are not stored (they could not be told from nothing).
    objects
        .put_many(kind, &[(ids[1], Vec::new())], LONG)
        .await
        .expect("put_many");
    assert_eq!(get_one(objects, kind, ids[1]).await, None);
}

pub async fn objects_fill_keeps_what_is_there(objects: &dyn SharedObjects) {
    let ids = object_ids(2);
    let kind = ObjectKind::Account;
    objects
        .put_many(kind, &[(ids[0], value(ids[0], 1))], LONG)
        .await
        .expect("put_many");
    // A second fill (say from a slower reader) does not replace the first.
    objects
        .put_many(
            kind,
            &[(ids[0], value(ids[0], 2)), (ids[1], value(ids[1], 2))],
            LONG,
        )
        .await
        .expect("put_many");
    assert_eq!(
        objects.get_many(kind, &ids).await.expect("get_many"),
        vec![Some(value(ids[0], 1)), Some(value(ids[1], 2))]
    );
}

pub async fn objects_fill_is_refused_on_a_tombstone_until_it_expires(objects: &dyn SharedObjects) {
    let ids = object_ids(3);
    let (cached, never_cached, other) = (ids[0], ids[1], ids[2]);
    let kind = ObjectKind::Status;
    objects
        .put_many(
            kind,
            &[(cached, value(cached, 1)), (other, value(other, 1))],
            LONG,
        )
        .await
        .expect("put_many");
    objects
        .invalidate_many(kind, &[cached, never_cached], LONG)
        .await
        .expect("invalidate_many");
    // A tombstone reads as a miss, and a late fill (a reader that read the
    // row before the write) does not get past it.
    assert_eq!(get_one(objects, kind, cached).await, None);
    objects
        .put_many(
            kind,
            &[
                (cached, value(cached, 1)),
                (never_cached, value(never_cached, 1)),
            ],
            LONG,
        )
        .await
        .expect("put_many");
    assert_eq!(
        objects
            .get_many(kind, &[cached, never_cached, other])
            .await
            .expect("get_many"),
        vec![None, None, Some(value(other, 1))],
        "tombstones hold; other ids are untouched"
    );
    // Invalidating again renews the tombstone (here: with a short one),
    // and once it is gone a fill lands again.
    objects
        .invalidate_many(kind, &[cached], SHORT)
        .await
        .expect("invalidate_many");
    objects
        .put_many(kind, &[(cached, value(cached, 2))], LONG)
        .await
        .expect("put_many");
    assert_eq!(get_one(objects, kind, cached).await, None);
    eventually("a fill after the tombstone expired", || async {
        objects
            .put_many(kind, &[(cached, value(cached, 3))], LONG)
            .await
            .expect("put_many");
        get_one(objects, kind, cached).await.is_some()
    })
    .await;
    assert_eq!(get_one(objects, kind, cached).await, Some(value(cached, 3)));
    assert_eq!(get_one(objects, kind, never_cached).await, None);
}

pub async fn objects_entries_expire(objects: &dyn SharedObjects) {
    let ids = object_ids(2);
    let (brief, lasting) = (ids[0], ids[1]);
    let kind = ObjectKind::Account;
    objects
        .put_many(kind, &[(brief, value(brief, 1))], SHORT)
        .await
        .expect("put_many");
    objects
        .put_many(kind, &[(lasting, value(lasting, 1))], LONG)
        .await
        .expect("put_many");
    eventually("the short entry expires", || async {
        get_one(objects, kind, brief).await.is_none()
    })
    .await;
    assert_eq!(
        get_one(objects, kind, lasting).await,
        Some(value(lasting, 1))
    );
    // An expired entry is no obstacle to a fill.
    objects
        .put_many(kind, &[(brief, value(brief, 2))], LONG)
        .await
        .expect("put_many");
    assert_eq!(get_one(objects, kind, brief).await, Some(value(brief, 2)));
}

pub async fn objects_large_batches_in_one_call(objects: &dyn SharedObjects) {
    let ids = object_ids(1_000);
    let (cached, missing) = ids.split_at(500);
    let kind = ObjectKind::Status;
    // About the size of a status entry each.
    let big = |id: Id| {
        let mut v = value(id, 1);
        v.resize(400, b'x');
        v
    };
    let items: Vec<(Id, Vec<u8>)> = cached.iter().map(|id| (*id, big(*id))).collect();
    objects
        .put_many(kind, &items, LONG)
        .await
        .expect("put_many");
    // Hits and misses interleaved.
    let asked: Vec<Id> = cached
        .iter()
        .zip(missing)
        .flat_map(|(c, m)| [*m, *c])
        .collect();
    let got = objects.get_many(kind, &asked).await.expect("get_many");
    assert_eq!(got.len(), 1_000);
    for (i, (id, v)) in asked.iter().zip(&got).enumerate() {
        if i % 2 == 0 {
            assert_eq!(v, &None, "{id} was never stored");
        } else {
            assert_eq!(v.as_deref(), Some(big(*id).as_slice()), "{id}");
        }
    }
    objects
        .invalidate_many(kind, &cached[..250], LONG)
        .await
        .expect("invalidate_many");
    let got = objects.get_many(kind, cached).await.expect("get_many");
    assert!(got[..250].iter().all(Option::is_none));
    assert!(got[250..].iter().all(Option::is_some));
}

pub async fn objects_kinds_are_independent(objects: &dyn SharedObjects) {
    let id = object_ids(1)[0];
    objects
        .put_many(ObjectKind::Account, &[(id, value(id, 1))], LONG)
        .await
        .expect("put_many");
    assert_eq!(get_one(objects, ObjectKind::Status, id).await, None);
    objects
        .put_many(ObjectKind::Status, &[(id, value(id, 2))], LONG)
        .await
        .expect("put_many");
    objects
        .invalidate_many(ObjectKind::Account, &[id], LONG)
        .await
        .expect("invalidate_many");
    assert_eq!(get_one(objects, ObjectKind::Account, id).await, None);
    assert_eq!(
        get_one(objects, ObjectKind::Status, id).await,
        Some(value(id, 2))
    );
}
