//! The in-memory rate limiter against the conformance suite.

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
