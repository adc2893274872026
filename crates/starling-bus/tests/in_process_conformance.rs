//! The in-process bus against the event-bus conformance suite.

use std::sync::Arc;
use std::time::Duration;

use starling_bus::{DeadLetters, EventBus, InProcessBus, RetryPolicy};

/// Fast retries, so the failure cases take milliseconds.
const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    first_backoff: Duration::from_millis(1),
    max_backoff: Duration::from_millis(4),
};

async fn fresh(dead_letters: Arc<dyn DeadLetters>) -> (Box<dyn EventBus>, ()) {
    (Box::new(InProcessBus::new(FAST, dead_letters)), ())
}

starling_bus::bus_conformance_suite!(fresh);
