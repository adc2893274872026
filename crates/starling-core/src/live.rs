//! Live events: what streaming connections hear, and the hub that hands
//! them to the connections of this process.
//!
//! The consumers that fill home timelines and write notifications
//! ([`crate::workers`]) publish a [`LiveEvent`] on a [`LiveTopic`] once
//! their work is in the store: never the request that wrote. The event
//! names what happened by id only ("status 42 is in user 7's home"); the
//! api process holding the connection reads and renders it for its viewer,
//! with the viewer's own filters, when it delivers it.
//!
//! The [`LiveHub`] is one per process. It holds one subscription on the
//! [`LiveBus`] per topic that any connection of this process listens to
//! (counted: the last one to leave unsubscribes), decodes each message once
//! and hands it to the listeners' queues. A queue is bounded
//! ([`LiveHub::new`]'s `queue`): a listener that falls that far behind is
//! dropped (its connection is closed, and the client reconnects), so one
//! slow reader cannot grow this process's memory.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use starling_bus::{LiveBus, LiveSubscription};
use starling_domain::status::belongs_in_home;
use starling_domain::{FollowOptions, Id, Page};
use tokio::sync::{mpsc, watch};

use crate::views::{Filter, StatusView};
use crate::{Core, CoreError, CoreResult};

/// Who hears an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LiveTopic {
    /// One user: their home's new entries and deletes, their notifications
    /// and direct conversations.
    User(Id),
    /// The posts and deletes of a large account (its followers' homes merge
    /// it at read time, so its posts are not pushed to each of them).
    Author(Id),
    /// Public posts (local: Starling does not federate) and their deletes.
    Public,
    /// Public posts with this hashtag (lowercased).
    Tag(String),
}

impl LiveTopic {
    /// The topic's name on the [`LiveBus`]. A tag that is not plain ASCII
    /// is spelled in hex under `tagx` (bus topics are ASCII).
    pub fn key(&self) -> String {
        match self {
            Self::User(id) => format!("user.{id}"),
            Self::Author(id) => format!("author.{id}"),
            Self::Public => "public".to_owned(),
            Self::Tag(tag)
                if !tag.is_empty()
                    && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                format!("tag.{tag}")
            }
            Self::Tag(tag) => {
                let mut key = String::from("tagx.");
                for b in tag.as_bytes() {
                    let _ = write!(key, "{b:02x}");
                }
                key
            }
        }
    }
}

/// What happened, by id; rendered per viewer on delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A status entered the topic's timeline.
    Update { id: Id },
    /// A status was deleted.
    Delete { id: Id },
    /// A notification was written for the topic's user.
    Notification { id: Id },
    /// A direct message involving the topic's user.
    Conversation { id: Id },
}

/// One event as a listener receives it: which of its topics it came on.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub topic: Arc<str>,
    pub event: LiveEvent,
}

struct TopicState {
    listeners: HashSet<u64>,
    task: tokio::task::AbortHandle,
}

struct ListenerState {
    queue: mpsc::Sender<Delivery>,
    topics: HashSet<String>,
}

#[derive(Default)]
struct HubState {
    topics: HashMap<String, TopicState>,
    listeners: HashMap<u64, ListenerState>,
}

/// This process's streaming listeners and their bus subscriptions.
pub struct LiveHub {
    bus: Arc<dyn LiveBus>,
    queue: usize,
    state: Mutex<HubState>,
    next_id: AtomicU64,
    closing: watch::Sender<bool>,
    me: Weak<LiveHub>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LiveHub {
    /// A hub over `bus` whose listeners may queue `queue` events each.
    pub fn new(bus: Arc<dyn LiveBus>, queue: usize) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            bus,
            queue: queue.max(1),
            state: Mutex::new(HubState::default()),
            next_id: AtomicU64::new(1),
            closing: watch::channel(false).0,
            me: me.clone(),
        })
    }

    /// The bus live events are published on.
    pub fn bus(&self) -> &Arc<dyn LiveBus> {
        &self.bus
    }

    /// A new listener with no topics yet.
    pub fn listener(&self) -> Listener {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        lock(&self.state).listeners.insert(
            id,
            ListenerState {
                queue: tx,
                topics: HashSet::new(),
            },
        );
        metrics::gauge!("starling_streaming_listeners").increment(1.0);
        Listener {
            hub: self.me.upgrade().expect("a hub is alive while used"),
            id,
            rx,
            closing: self.closing.subscribe(),
        }
    }

    /// Closes every listener (shutdown): their `recv` returns `None` and
    /// [`Listener::closing`] says why.
    pub fn close_all(&self) {
        let _ = self.closing.send(true);
        let mut state = lock(&self.state);
        for (_, topic) in state.topics.drain() {
            topic.task.abort();
        }
        state.listeners.clear();
    }

    /// Topics this process listens to now.
    pub fn topics_heard(&self) -> usize {
        lock(&self.state).topics.len()
    }

    async fn add(&self, listener: u64, key: String) -> CoreResult<()> {
        {
            let mut state = lock(&self.state);
            let HubState { topics, listeners } = &mut *state;
            let Some(l) = listeners.get_mut(&listener) else {
                return Ok(()); // dropped meanwhile
            };
            if let Some(topic) = topics.get_mut(&key) {
                topic.listeners.insert(listener);
                l.topics.insert(key);
                return Ok(());
            }
        }
        let subscription = self
            .bus
            .subscribe(&key)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        let mut state = lock(&self.state);
        let HubState { topics, listeners } = &mut *state;
        let Some(l) = listeners.get_mut(&listener) else {
            return Ok(());
        };
        l.topics.insert(key.clone());
        match topics.get_mut(&key) {
            // Another listener subscribed while this one waited: ours goes.
            Some(topic) => {
                topic.listeners.insert(listener);
            }
            None => {
                let task = tokio::spawn(dispatch(self.me.clone(), key.clone(), subscription));
                topics.insert(
                    key,
                    TopicState {
                        listeners: HashSet::from([listener]),
                        task: task.abort_handle(),
                    },
                );
            }
        }
        Ok(())
    }

    fn remove(&self, listener: u64, key: &str) {
        let mut state = lock(&self.state);
        if let Some(l) = state.listeners.get_mut(&listener) {
            l.topics.remove(key);
        }
        leave(&mut state, listener, key);
    }

    fn drop_listener(&self, listener: u64) {
        let mut state = lock(&self.state);
        if let Some(l) = state.listeners.remove(&listener) {
            for key in l.topics {
                leave(&mut state, listener, &key);
            }
        }
    }
}

/// Takes `listener` off `key`, unsubscribing when nobody is left.
fn leave(state: &mut HubState, listener: u64, key: &str) {
    if let Some(topic) = state.topics.get_mut(key) {
        topic.listeners.remove(&listener);
        if topic.listeners.is_empty() {
            topic.task.abort();
            state.topics.remove(key);
        }
    }
}

/// Reads one topic's subscription and hands each event to its listeners.
async fn dispatch(hub: Weak<LiveHub>, key: String, mut subscription: Box<dyn LiveSubscription>) {
    let topic: Arc<str> = Arc::from(key.as_str());
    while let Some(message) = subscription.next().await {
        let Some(hub) = hub.upgrade() else { return };
        let event: LiveEvent = match serde_json::from_slice(&message) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(topic = %key, error = %e, "a live event that does not decode; skipped");
                continue;
            }
        };
        let delivery = Delivery {
            topic: topic.clone(),
            event,
        };
        let mut overflowed = Vec::new();
        {
            let state = lock(&hub.state);
            let Some(t) = state.topics.get(&key) else {
                return;
            };
            for id in &t.listeners {
                if let Some(l) = state.listeners.get(id) {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        l.queue.try_send(delivery.clone())
                    {
                        overflowed.push(*id);
                    }
                }
            }
        }
        for id in overflowed {
            metrics::counter!("starling_streaming_overflows_total").increment(1);
            tracing::info!(
                listener = id,
                "a streaming reader fell too far behind; closing it"
            );
            hub.drop_listener(id);
        }
    }
}

/// One connection's subscription to live events. Dropping it leaves every
/// topic it listened to.
pub struct Listener {
    hub: Arc<LiveHub>,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
    closing: watch::Receiver<bool>,
}

impl Listener {
    /// Starts listening to `topics`; once this returns, every event
    /// published on them reaches [`Listener::recv`].
    pub async fn listen(&mut self, topics: &[LiveTopic]) -> CoreResult<()> {
        for topic in topics {
            self.hub.add(self.id, topic.key()).await?;
        }
        Ok(())
    }

    /// Stops listening to `topic`.
    pub fn unlisten(&mut self, topic: &LiveTopic) {
        self.hub.remove(self.id, &topic.key());
    }

    /// The next event; `None` when the listener was closed: it fell too far
    /// behind, or the process is shutting down ([`Listener::closing`]).
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// Whether the process is shutting down.
    pub fn closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Resolves when the process starts shutting down.
    pub async fn closed(&mut self) {
        let _ = self.closing.wait_for(|c| *c).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.hub.drop_listener(self.id);
        metrics::gauge!("starling_streaming_listeners").decrement(1.0);
    }
}

impl Core {
    /// This process's live hub.
    pub fn live(&self) -> &Arc<LiveHub> {
        &self.live
    }

    /// Tells `topic`'s listeners about `event`, in every process. Best
    /// effort: a failure is counted and logged, never returned (what the
    /// event is about is in the store; clients read it when they
    /// reconnect).
    pub(crate) async fn publish_live(&self, topic: &LiveTopic, event: LiveEvent) {
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        if let Err(e) = self.live.bus().publish(&topic.key(), payload).await {
            metrics::counter!("starling_live_publish_failures_total").increment(1);
            tracing::debug!(error = %e, "publishing a live event failed");
        }
    }

    /// As [`Core::publish_live`], for many topics.
    pub(crate) async fn publish_live_all(&self, topics: Vec<LiveTopic>, event: LiveEvent) {
        for topic in &topics {
            self.publish_live(topic, event).await;
        }
    }
}

/// What a user stream needs to know of its viewer: the large accounts they
/// follow, whose posts it hears from the authors' topics.
#[derive(Clone, Debug, Default)]
pub struct HomeSources {
    pub large: Vec<(Id, FollowOptions)>,
}

impl Core {
    /// The large accounts `me` follows, with the follows' options.
    pub async fn home_sources(&self, me: Id) -> CoreResult<HomeSources> {
        Ok(HomeSources {
            large: self.store.large_followees(me).await?,
        })
    }

    /// Status `id` as `viewer` sees it on a stream, if they may see it
    /// there: the filters of the timeline the stream mirrors.
    pub async fn live_status(
        &self,
        viewer: Option<Id>,
        id: Id,
        filter: Filter,
    ) -> CoreResult<Option<StatusView>> {
        Ok(self.hydrate(viewer, &[id], filter).await?.pop())
    }

    /// A large account's new status as `me`'s home would show it: only if
    /// it belongs there (hidden boosts, replies to strangers and direct
    /// messages to others do not), with the home's filters.
    pub async fn live_home_status_of_large(
        &self,
        me: Id,
        id: Id,
        sources: &HomeSources,
    ) -> CoreResult<Option<StatusView>> {
        let Some(status) = self.objects.statuses(&*self.store, &[id]).await?.pop() else {
            return Ok(None);
        };
        let options = sources
            .large
            .iter()
            .find(|(a, _)| *a == status.account_id)
            .map(|(_, o)| *o);
        let follows_target = status.in_reply_to_account_id.is_some_and(|t| t == me)
            || !self
                .reply_targets_followed(me, std::slice::from_ref(&*status))
                .await?
                .is_empty();
        if !belongs_in_home(&status, me, options, follows_target) {
            return Ok(None);
        }
        self.live_status(Some(me), id, Filter::Home).await
    }

    /// Public and hashtag streams' backlog after `after` (a client that
    /// reconnects with the id of the last event it had), oldest first.
    pub async fn public_since(
        &self,
        viewer: Option<Id>,
        tag: Option<&str>,
        after: Id,
        limit: usize,
    ) -> CoreResult<Vec<StatusView>> {
        let page = Page {
            min_id: Some(after),
            ..Page::first(limit)
        };
        let mut views = match tag {
            Some(tag) => self.tag_timeline(viewer, tag, false, false, &page).await?,
            None => self.public_timeline(viewer, false, false, &page).await?,
        };
        views.sort_unstable_by_key(|v| v.status.id);
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use starling_bus::InProcessLive;

    use super::*;

    fn id(n: i64) -> Id {
        Id::from_i64(n)
    }

    #[test]
    fn topic_keys_are_bus_topics() {
        for topic in [
            LiveTopic::User(id(7)),
            LiveTopic::Author(id(8)),
            LiveTopic::Public,
            LiveTopic::Tag("rust_lang2".into()),
            LiveTopic::Tag("café".into()),
            LiveTopic::Tag("日本".into()),
        ] {
            assert!(starling_bus::live::valid_topic(&topic.key()), "{topic:?}");
        }
        assert_ne!(
            LiveTopic::Tag("café".into()).key(),
            LiveTopic::Tag("cafe".into()).key()
        );
    }

    async fn next(l: &mut Listener) -> Option<Delivery> {
        tokio::time::timeout(Duration::from_secs(2), l.recv())
            .await
            .expect("an event or a close within 2 s")
    }

    #[tokio::test]
    async fn listeners_hear_their_topics_once_per_process_subscription() {
        let bus = InProcessLive::new();
        let hub = LiveHub::new(Arc::new(bus.clone()), 16);
        let mut a = hub.listener();
        let mut b = hub.listener();
        a.listen(&[LiveTopic::User(id(1)), LiveTopic::Public])
            .await
            .unwrap();
        b.listen(&[LiveTopic::Public]).await.unwrap();
        assert_eq!(bus.topics_heard(), 2, "one bus subscription per topic");
        let publish = |topic: LiveTopic, event: LiveEvent| {
            let bus = bus.clone();
            async move {
                bus.publish(&topic.key(), serde_json::to_vec(&event).unwrap().into())
                    .await
                    .unwrap()
            }
        };
        publish(LiveTopic::Public, LiveEvent::Update { id: id(5) }).await;
        publish(
            LiveTopic::User(id(1)),
            LiveEvent::Notification { id: id(6) },
        )
        .await;
        // Each topic keeps its order; two topics may interleave.
        let mut got = [next(&mut a).await.unwrap(), next(&mut a).await.unwrap()];
        got.sort_by_key(|d| d.topic.to_string());
        assert_eq!(&*got[0].topic, "public");
        assert_eq!(got[0].event, LiveEvent::Update { id: id(5) });
        assert_eq!(&*got[1].topic, "user.1");
        assert_eq!(got[1].event, LiveEvent::Notification { id: id(6) });
        assert_eq!(
            next(&mut b).await.unwrap().event,
            LiveEvent::Update { id: id(5) }
        );
        a.unlisten(&LiveTopic::User(id(1)));
        assert_eq!(hub.topics_heard(), 1);
        drop(a);
        drop(b);
        assert_eq!(hub.topics_heard(), 0, "the last listener unsubscribes");
        // The aborted dispatch task drops its bus subscription when the
        // runtime gets to it.
        for _ in 0..100 {
            if bus.topics_heard() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(bus.topics_heard(), 0);
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_closed_and_others_go_on() {
        let bus = InProcessLive::new();
        let hub = LiveHub::new(Arc::new(bus.clone()), 4);
        let mut slow = hub.listener();
        let mut fast = hub.listener();
        slow.listen(&[LiveTopic::Public]).await.unwrap();
        fast.listen(&[LiveTopic::Public]).await.unwrap();
        for n in 0..10 {
            let event = LiveEvent::Update { id: id(100 + n) };
            bus.publish("public", serde_json::to_vec(&event).unwrap().into())
                .await
                .unwrap();
            assert_eq!(next(&mut fast).await.unwrap().event, event);
        }
        let mut received = 0;
        while next(&mut slow).await.is_some() {
            received += 1;
        }
        assert_eq!(received, 4, "it got its queue's worth, then was closed");
        assert!(!slow.closing(), "closed for falling behind, not shutdown");
        assert_eq!(hub.topics_heard(), 1, "the fast one still listens");
    }

    #[tokio::test]
    async fn shutdown_closes_every_listener() {
        let hub = LiveHub::new(Arc::new(InProcessLive::new()), 4);
        let mut l = hub.listener();
        l.listen(&[LiveTopic::Public]).await.unwrap();
        hub.close_all();
        assert!(next(&mut l).await.is_none());
        assert!(l.closing());
    }
}
