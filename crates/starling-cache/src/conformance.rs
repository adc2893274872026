//! The rate-limiter conformance suite. Adapters get a limiter reading the
//! given [`ManualClock`], so windows are crossed without sleeping.

use std::sync::Arc;
use std::time::Duration;

use starling_domain::ManualClock;

use crate::{RateLimiter, Rule};

#[macro_export]
macro_rules! rate_limit_conformance_suite {
    ($make:path) => {
        $crate::rate_limit_conformance_suite!(@cases $make;
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
