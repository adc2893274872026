//! The event-bus seam: domain events from the outbox to the consumers.
//!
//! Writes store their [`Event`] in the outbox of their shard, in the same
//! transaction as the change. The relay reads the outbox and calls
//! [`EventBus::publish`]; once that returns `Ok`, every consumer group that
//! is subscribed will see the events at least once, and the relay forgets
//! them. Consumers are idempotent (dedupe by event id) and report an error to
//! have a batch delivered again; an event that keeps failing goes to the
//! dead letters after [`RetryPolicy::max_attempts`] tries, with a metric.
//!
//! Adapters: [`InProcessBus`] (the embedded shape: `publish` hands the events
//! to every consumer in this process and returns when each has handled them,
//! so an event leaves the outbox only once its effects are durable) and, in
//! the distributed shape, NATS JetStream (durable consumers, explicit ack).
//! Both pass the suite in [`conformance`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_domain::{Event, EventKind};

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod in_process;
pub mod live;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "nats")]
pub mod nats_live;

pub use in_process::InProcessBus;
pub use live::{InProcessLive, LiveBus, LiveSubscription};
#[cfg(feature = "nats")]
pub use nats::{NatsBus, NatsBusConfig};
#[cfg(feature = "nats")]
pub use nats_live::NatsLive;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus could not take the events now; the relay retries later.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

pub type BusResult<T> = Result<T, BusError>;

/// A consumer failed to handle a batch; it will be offered again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConsumerError(pub String);

/// A consumer group: one durable subscription, whatever number of processes
/// run it.
#[async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The durable group name (stable across releases).
    fn name(&self) -> &'static str;

    /// Whether this consumer cares about an event at all.
    fn wants(&self, kind: &EventKind) -> bool;

    /// Handles a batch of events it wants, in publish order. Must be
    /// idempotent: a batch may be delivered again after an error or a crash.
    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError>;
}

/// Where events go after too many failed tries.
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    async fn record(&self, consumer: &str, event: &Event, error: &str);
}

/// How a failing batch is retried before its events are dead-lettered.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Takes `events` (in order). `Ok` means every subscribed group will
    /// handle them at least once; the caller may then forget them.
    async fn publish(&self, events: &[Event]) -> BusResult<()>;

    /// Subscribes a consumer group; events published from now on reach it.
    async fn subscribe(&self, consumer: Arc<dyn Consumer>) -> BusResult<()>;
}
