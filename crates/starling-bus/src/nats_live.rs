//! Live events on core NATS subjects: the distributed shape's adapter of
//! [`LiveBus`].
//!
//! A topic `user.7` is the subject `<prefix>.user.7` (prefix
//! `starling-live` by default: outside the JetStream stream's
//! `<events prefix>.>`, so live events are never stored). Core NATS is
//! at-most-once and routes by interest: the server sends a message only to
//! the connections subscribed to its subject, so an api process receives the
//! events of the users it holds streams for, and a publish nobody listens to
//! costs the server one lookup.
//!
//! Why NATS rather than Redis pub/sub (both are in the distributed shape):
//! the event bus already holds a NATS connection in every process; a NATS
//! subscription is a local id on that connection (tens of thousands per
//! process are routine), while a Redis subscriber needs a connection of its
//! own in subscribe mode and `PUBLISH` is answered by the one Redis that
//! every timeline read also waits on. docs/BENCHMARKS.md ("Streaming") has
//! the figures.
//!
//! [`LiveBus::subscribe`] waits for a round trip to the server (a message to
//! an inbox of its own coming back) before it returns, so the server has the
//! subscription by then and every later publish, from any process, reaches
//! it. While NATS is down,
//! publishes fail fast (the consumers log and go on: nothing durable is
//! lost) and subscriptions resume by themselves when the client reconnects.

use async_nats::connection::State;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::live::{check_topic, LiveBus, LiveSubscription};
use crate::{BusError, BusResult};

/// Longest wait for the server to confirm a subscription.
const ROUND_TRIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The default subject prefix of live events.
pub const DEFAULT_LIVE_PREFIX: &str = "starling-live";

/// Live events over a NATS connection.
#[derive(Clone)]
pub struct NatsLive {
    client: async_nats::Client,
    prefix: String,
}

impl NatsLive {
    /// Connects to `url` (comma-separated for several servers); subjects
    /// are `<prefix>.<topic>`.
    pub async fn connect(url: &str, prefix: &str) -> BusResult<Self> {
        if !crate::live::valid_topic(prefix) {
            return Err(BusError::Unavailable(format!(
                "invalid live subject prefix {prefix:?}"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("starling-live")
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| {
                BusError::Unavailable(format!(
                    "cannot connect to NATS at {}: {e}",
                    crate::nats::redacted(url)
                ))
            })?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
        })
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    /// Returns once the server has processed everything this connection
    /// sent before (a subscription, say): a message to a fresh inbox of
    /// ours comes back, and the server handles one connection's protocol
    /// in order. (`flush` only empties the client's buffer: a publish by
    /// another process could still reach the server before the
    /// subscription.)
    async fn round_trip(&self) -> BusResult<()> {
        let inbox = self.client.new_inbox();
        let mut echo = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        self.client
            .publish(inbox, Bytes::new())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        match tokio::time::timeout(ROUND_TRIP_TIMEOUT, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(BusError::Unavailable(
                "NATS did not answer in time".to_owned(),
            )),
        }
    }

    fn down(&self) -> Option<BusError> {
        (self.client.connection_state() != State::Connected)
            .then(|| BusError::Unavailable("not connected to NATS".to_owned()))
    }
}

#[async_trait]
impl LiveBus for NatsLive {
    async fn publish(&self, topic: &str, payload: Bytes) -> BusResult<()> {
        check_topic(topic)?;
        if let Some(e) = self.down() {
            metrics::counter!("starling_live_publish_errors_total").increment(1);
            return Err(e);
        }
        self.client
            .publish(self.subject(topic), payload)
            .await
            .map_err(|e| {
                metrics::counter!("starling_live_publish_errors_total").increment(1);
                BusError::Unavailable(e.to_string())
            })
    }

    async fn subscribe(&self, topic: &str) -> BusResult<Box<dyn LiveSubscription>> {
        check_topic(topic)?;
        let subscriber = self
            .client
            .subscribe(self.subject(topic))
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        self.round_trip().await?;
        Ok(Box::new(NatsSubscription { subscriber }))
    }
}

struct NatsSubscription {
    subscriber: async_nats::Subscriber,
}

#[async_trait]
impl LiveSubscription for NatsSubscription {
    async fn next(&mut self) -> Option<Bytes> {
        self.subscriber.next().await.map(|m| m.payload)
    }
}
