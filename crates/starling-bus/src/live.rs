//! The live-event seam: what streaming connections are told, as it happens.
//!
//! Domain events ([`crate::EventBus`]) are durable and delivered at least
//! once to consumer groups. Live events are the opposite kind of message:
//! small notes ("status 42 is in user 7's home now") that the consumers
//! publish on a *topic* after they did their work, for whichever processes
//! hold a streaming connection interested in that topic *now*. Nobody
//! listening means nobody is told, and a process that misses one loses
//! nothing durable: the home timeline or the notification is in the store,
//! and clients read it back when they reconnect.
//!
//! Topics are short strings (`user.7`, `public`, `tag.rust`); a topic is
//! heard only by the processes subscribed to it, so an api process receives
//! the events of the users connected to it and not the others'.
//!
//! Adapters: [`InProcessLive`] (the embedded shape: a broadcast channel per
//! topic) and, in the distributed shape, core NATS subjects
//! ([`crate::nats_live::NatsLive`]). Both pass the suite in
//! [`crate::conformance`] (`live_conformance_suite!`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::BusResult;

/// Messages a topic's listeners may fall behind by before they lose some
/// (counted in `starling_live_dropped_total`). The channel's slots are
/// allocated up front, per topic (per connected user): 4 096 cost about
/// 230 KiB each, 256 about 14 KiB (docs/BENCHMARKS.md, "Streaming"); the
/// hub drains each topic at once into the connections' own queues, so a
/// short buffer loses nothing in practice.
pub const TOPIC_BUFFER: usize = 256;

/// One subscription to a topic: the messages published on it after the
/// subscription was made, in the order each publisher sent them. Dropping
/// it unsubscribes.
#[async_trait]
pub trait LiveSubscription: Send + 'static {
    /// The next message; `None` once the subscription is over (the adapter
    /// shut down).
    async fn next(&mut self) -> Option<Bytes>;
}

#[async_trait]
pub trait LiveBus: Send + Sync + 'static {
    /// Tells whoever listens to `topic` now, in any process. At most once:
    /// a message nobody listens to is dropped.
    async fn publish(&self, topic: &str, payload: Bytes) -> BusResult<()>;

    /// Listens to `topic`. Once this returns, every message published on it
    /// (by any process) reaches the subscription.
    async fn subscribe(&self, topic: &str) -> BusResult<Box<dyn LiveSubscription>>;
}

/// Whether `topic` is a name the adapters accept: 1 to 200 bytes of ASCII
/// letters, digits, `.`, `_` and `-`, not starting or ending with a dot and
/// without empty parts (NATS subject rules, kept everywhere so that what
/// works alone works in the cluster).
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 200
        && topic.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

pub(crate) fn check_topic(topic: &str) -> BusResult<()> {
    if valid_topic(topic) {
        Ok(())
    } else {
        Err(crate::BusError::Unavailable(format!(
            "invalid live topic {topic:?}"
        )))
    }
}

type Topics = Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>;

/// The embedded shape's adapter: one broadcast channel per topic someone
/// listens to, in this process.
#[derive(Clone, Default)]
pub struct InProcessLive {
    topics: Topics,
}

impl InProcessLive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Topics with at least one listener (for tests and metrics).
    pub fn topics_heard(&self) -> usize {
        lock(&self.topics).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl LiveBus for InProcessLive {
    async fn publish(&self, topic: &str, payload: Bytes) -> BusResult<()> {
        check_topic(topic)?;
        let topics = lock(&self.topics);
        if let Some(sender) = topics.get(topic) {
            // No receiver left is not an error: nobody listens.
            let _ = sender.send(payload);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> BusResult<Box<dyn LiveSubscription>> {
        check_topic(topic)?;
        let receiver = lock(&self.topics)
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(TOPIC_BUFFER).0)
            .subscribe();
        Ok(Box::new(InProcessSubscription {
            topic: topic.to_owned(),
            topics: self.topics.clone(),
            receiver,
        }))
    }
}

struct InProcessSubscription {
    topic: String,
    topics: Topics,
    receiver: broadcast::Receiver<Bytes>,
}

#[async_trait]
impl LiveSubscription for InProcessSubscription {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.receiver.recv().await {
                Ok(message) => return Some(message),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("starling_live_dropped_total").increment(missed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for InProcessSubscription {
    fn drop(&mut self) {
        // The last listener of a topic takes its channel away, so topics of
        // users who left do not pile up.
        let mut topics = lock(&self.topics);
        if let Some(sender) = topics.get(&self.topic) {
            if sender.receiver_count() <= 1 {
                topics.remove(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_subject_rules() {
        assert!(valid_topic("user.123"));
        assert!(valid_topic("tag.x_e2_9c_a8"));
        assert!(valid_topic("public"));
        for bad in ["", "user.", ".user", "a..b", "a b", "a.*", "a.>", "tag.é"] {
            assert!(!valid_topic(bad), "{bad:?}");
        }
        assert!(!valid_topic(&"a".repeat(201)));
    }
}
