//! The asynchronous half: the outbox relay and the event consumers.
//!
//! Writes leave their events in the outbox (same transaction). The
//! [`Relay`] reads the outbox in commit order, publishes to the event bus and
//! forgets what the bus took. Two consumer groups react:
//!
//! - [`FanOut`] keeps home timelines: it pushes each new status onto the
//!   cached home lists of its author's followers (in batches, walking the
//!   follower rows by cursor), trims deleted statuses and unfollowed
//!   authors, merges a new followee's recent posts, and flips accounts
//!   between fanned-out and large (merged at read time) as their follower
//!   counts cross the threshold.
//! - [`Notifier`] writes notifications: mention, reblog, favourite, follow,
//!   follow_request and status (for `notify: true` follows).
//!
//! Both are idempotent: pushing an entry twice keeps one copy, a
//! notification is unique per (recipient, kind, event), so a redelivered
//! batch changes nothing.
//!
//! Both read the primary only ([`with_primary_reads`]): an event may be
//! about a row a read replica does not have yet. They pin their reads in
//! `handle` itself, since buses run handlers on tasks of their own (which a
//! task-local set by whoever started the worker does not reach).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_bus::{BusError, Consumer, ConsumerError, DeadLetters, EventBus};
use starling_cache::TimelineEntry;
use starling_domain::status::belongs_in_home;
use starling_domain::{
    Event, EventKind, FollowOptions, Id, Notification, NotificationType, Status, Visibility,
};
use starling_store::{with_primary_reads, Store};
use tokio::sync::Notify;

use crate::live::{LiveEvent, LiveTopic};
use crate::timelines::entry_of;
use crate::{Core, CoreError, CoreResult};

/// Followers read per fan-out batch.
const FANOUT_BATCH: usize = 1000;
/// Outbox rows relayed per round.
const RELAY_BATCH: usize = 500;
/// How often the relay looks at the outbox when nobody pokes it (writes by
/// other processes, and leftovers from before a restart).
const RELAY_POLL: Duration = Duration::from_millis(200);

impl From<CoreError> for ConsumerError {
    fn from(e: CoreError) -> Self {
        ConsumerError(e.to_string())
    }
}

/// Subscribes Starling's consumer groups to `bus`.
/// The consumer groups a worker can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerKind {
    /// Home-timeline fan-out.
    Fanout,
    /// Notifications.
    Notifier,
    /// Media processing (uploads too large to process on the request path).
    Media,
}

impl ConsumerKind {
    pub const ALL: [Self; 3] = [Self::Fanout, Self::Notifier, Self::Media];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Notifier => "notifier",
            Self::Media => "media",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Subscribes Starling's consumer groups to `bus`: those in `kinds`, or all
/// of them when `kinds` is empty.
pub async fn subscribe_consumers(
    core: &Core,
    bus: &dyn EventBus,
    kinds: &[ConsumerKind],
) -> Result<(), BusError> {
    for kind in ConsumerKind::ALL {
        if !kinds.is_empty() && !kinds.contains(&kind) {
            continue;
        }
        let consumer: Arc<dyn Consumer> = match kind {
            ConsumerKind::Fanout => Arc::new(FanOut { core: core.clone() }),
            ConsumerKind::Notifier => Arc::new(Notifier { core: core.clone() }),
            ConsumerKind::Media => Arc::new(MediaProcessor { core: core.clone() }),
        };
        bus.subscribe(consumer).await?;
    }
    Ok(())
}

/// Keeps events that consumers gave up on, in the store.
pub struct StoreDeadLetters(pub Arc<dyn Store>);

#[async_trait]
impl DeadLetters for StoreDeadLetters {
    async fn record(&self, consumer: &str, event: &Event, error: &str) {
        if let Err(e) = crate::writes::record_dead_letter(&*self.0, consumer, event, error).await {
            tracing::error!(consumer, event_id = %event.id, error = %e, "could not keep a dead letter");
        }
    }
}

/// Moves events from the outbox to the bus.
pub struct Relay {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    wakeup: Arc<Notify>,
}

impl Relay {
    pub fn new(core: &Core, bus: Arc<dyn EventBus>) -> Self {
        Self {
            store: core.store.clone(),
            bus,
            wakeup: core.outbox_written.clone(),
        }
    }

    /// Relays one batch; how many events it moved.
    pub async fn run_once(&self) -> CoreResult<usize> {
        let pending = self.store.outbox_pending(RELAY_BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let events: Vec<Event> = pending.iter().map(|p| p.event.clone()).collect();
        self.bus
            .publish(&events)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        let keys: Vec<(u32, i64)> = pending.iter().map(|p| p.key).collect();
        crate::writes::outbox_remove(&*self.store, &keys).await?;
        metrics::counter!("starling_relay_events_total").increment(events.len() as u64);
        Ok(events.len())
    }

    /// Relays until `shutdown` resolves; errors are logged and retried with
    /// backoff (the events stay in the outbox meanwhile).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(50);
        loop {
            let wait = match self.run_once().await {
                Ok(0) => RELAY_POLL,
                Ok(_) => {
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relaying the outbox failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Walks an account's followers in batches, by follower id.
struct FollowerCursor {
    account: Id,
    after: Option<Id>,
    done: bool,
}

impl FollowerCursor {
    fn new(account: Id) -> Self {
        Self {
            account,
            after: None,
            done: false,
        }
    }

    async fn next(&mut self, core: &Core) -> CoreResult<Option<Vec<(Id, FollowOptions)>>> {
        if self.done {
            return Ok(None);
        }
        let batch = core
            .store
            .follower_batch(self.account, self.after, FANOUT_BATCH)
            .await?;
        self.done = batch.len() < FANOUT_BATCH;
        self.after = batch.last().map(|(f, _)| *f);
        Ok((!batch.is_empty()).then_some(batch))
    }
}

/// Home-timeline fan-out.
pub struct FanOut {
    core: Core,
}

#[async_trait]
impl Consumer for FanOut {
    fn name(&self) -> &'static str {
        "fanout"
    }

    fn wants(&self, kind: &EventKind) -> bool {
        !matches!(
            kind,
            EventKind::Favourited { .. }
                | EventKind::FollowRequested { .. }
                | EventKind::MediaUploaded { .. }
        )
    }

    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        with_primary_reads(async {
            for event in events {
                hold_while_unavailable("fanout", || self.core.fan_out(event)).await?;
            }
            Ok(())
        })
        .await
    }
}

/// Makes the variants of uploads handed to the workers. Each event is one
/// file's processing (seconds for a video), so events are handled one at a
/// time; a storage outage is waited out like any unavailable dependency.
pub struct MediaProcessor {
    core: Core,
}

#[async_trait]
impl Consumer for MediaProcessor {
    fn name(&self) -> &'static str {
        "media"
    }

    fn wants(&self, kind: &EventKind) -> bool {
        matches!(kind, EventKind::MediaUploaded { .. })
    }

    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        with_primary_reads(async {
            for event in events {
                if let EventKind::MediaUploaded { media_id, .. } = event.kind {
                    hold_while_unavailable("media", || self.core.process_media(media_id)).await?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// Notification writer.
pub struct Notifier {
    core: Core,
}

#[async_trait]
impl Consumer for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }

    fn wants(&self, kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::StatusCreated { .. }
                | EventKind::Followed { .. }
                | EventKind::FollowRequested { .. }
                | EventKind::Favourited { .. }
        )
    }

    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        with_primary_reads(hold_while_unavailable("notifier", || async move {
            let mut out = Vec::new();
            for event in events {
                self.core.notifications_for(event, &mut out).await?;
            }
            self.core.write_notifications(&out).await?;
            // A notification written before (a batch delivered again) is
            // kept under its first id: this one is not found, and the
            // stream says nothing twice.
            for n in &out {
                self.core
                    .publish_live(
                        &LiveTopic::User(n.account_id),
                        LiveEvent::Notification { id: n.id },
                    )
                    .await;
            }
            Ok(())
        }))
        .await
        .map_err(ConsumerError::from)
    }
}

/// How long a consumer keeps retrying an event that failed because
/// something it needs is unavailable (the timeline cache, a database),
/// before it hands the failure to the bus.
const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(60);
/// Pauses between those retries: from the first, doubling, to the last.
const UNAVAILABLE_FIRST_PAUSE: Duration = Duration::from_millis(100);
const UNAVAILABLE_LAST_PAUSE: Duration = Duration::from_secs(2);

/// Runs `attempt` until it succeeds, retrying while it fails with
/// [`CoreError::Unavailable`] (for at most [`UNAVAILABLE_PATIENCE`]).
///
/// The bus retries a failing batch only a few times within a second or two
/// and then dead-letters it, which is right for an event that cannot be
/// handled but wrong for one that could be if Redis or a database answered:
/// a fan-out dead-lettered during a Redis outage leaves the posts missing
/// from every cached timeline that survived it (a Redis that hung, was
/// partitioned away or failed over keeps its lists) until they expire. So
/// the consumer holds the event instead (the bus keeps telling JetStream it
/// is in progress, and keeps the group's order) and applies it when the
/// dependency is back: late, but complete. Each bus attempt waits this
/// long, so an outage of several minutes (the bus's attempts times
/// [`UNAVAILABLE_PATIENCE`]) is waited out before anything is dead-lettered.
async fn hold_while_unavailable<F, Fut>(consumer: &'static str, mut attempt: F) -> CoreResult<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CoreResult<()>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = UNAVAILABLE_FIRST_PAUSE;
    let mut held = false;
    loop {
        match attempt().await {
            Err(CoreError::Unavailable(e)) if started.elapsed() < UNAVAILABLE_PATIENCE => {
                if !held {
                    tracing::warn!(consumer, error = %e, "a dependency is unavailable; holding the event until it answers");
                    held = true;
                }
                metrics::counter!("starling_consumer_unavailable_retries_total", "consumer" => consumer)
                    .increment(1);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(UNAVAILABLE_LAST_PAUSE);
            }
            result => {
                if held && result.is_ok() {
                    tracing::info!(
                        consumer,
                        held_ms = started.elapsed().as_millis() as u64,
                        "dependency available again; the held event is handled"
                    );
                }
                return result;
            }
        }
    }
}

fn cache_err(e: starling_cache::CacheError) -> CoreError {
    CoreError::Unavailable(e.to_string())
}

impl Core {
    async fn fan_out(&self, event: &Event) -> CoreResult<()> {
        match event.kind {
            EventKind::StatusCreated { status_id, .. } => {
                if let Some(status) = self.store.status(status_id).await? {
                    self.deliver(&status).await?;
                    self.tell_public_streams(&status, LiveEvent::Update { id: status.id })
                        .await;
                    let lag = (self.clock.now_ms() - status.created_at_ms).max(0) as f64 / 1000.0;
                    metrics::histogram!("starling_fanout_lag_seconds").record(lag);
                }
            }
            EventKind::StatusDeleted {
                status_id,
                author_id,
                public,
                ref tags,
                ..
            } => {
                let deleted = LiveEvent::Delete { id: status_id };
                self.timelines
                    .remove(author_id, &[status_id])
                    .await
                    .map_err(cache_err)?;
                self.publish_live(&LiveTopic::User(author_id), deleted)
                    .await;
                if self.store.is_large(author_id).await? {
                    self.publish_live(&LiveTopic::Author(author_id), deleted)
                        .await;
                } else {
                    let mut followers = FollowerCursor::new(author_id);
                    while let Some(batch) = followers.next(self).await? {
                        for (f, _) in &batch {
                            self.timelines
                                .remove(*f, &[status_id])
                                .await
                                .map_err(cache_err)?;
                        }
                        self.publish_live_all(
                            batch.iter().map(|(f, _)| LiveTopic::User(*f)).collect(),
                            deleted,
                        )
                        .await;
                    }
                }
                if public {
                    self.publish_live(&LiveTopic::Public, deleted).await;
                    self.publish_live_all(
                        tags.iter().map(|t| LiveTopic::Tag(t.clone())).collect(),
                        deleted,
                    )
                    .await;
                }
            }
            EventKind::Followed {
                follower_id,
                followee_id,
            }
            | EventKind::FollowRequestAuthorized {
                follower_id,
                followee_id,
            } => {
                if self
                    .timelines
                    .exists(follower_id)
                    .await
                    .map_err(cache_err)?
                {
                    let rel = self.relationship(follower_id, followee_id).await?;
                    if rel.following {
                        let options = FollowOptions {
                            reblogs: rel.showing_reblogs,
                            notify: rel.notifying,
                        };
                        self.merge_author_into(followee_id, &[(follower_id, options)])
                            .await?;
                    }
                }
                self.check_size(followee_id).await?;
            }
            EventKind::Unfollowed {
                follower_id,
                followee_id,
            } => {
                self.timelines
                    .remove_author(follower_id, followee_id)
                    .await
                    .map_err(cache_err)?;
                self.check_size(followee_id).await?;
            }
            EventKind::Blocked {
                account_id,
                target_id,
            } => {
                self.timelines
                    .remove_author(account_id, target_id)
                    .await
                    .map_err(cache_err)?;
                self.timelines
                    .remove_author(target_id, account_id)
                    .await
                    .map_err(cache_err)?;
                self.check_size(account_id).await?;
                self.check_size(target_id).await?;
            }
            EventKind::Favourited { .. }
            | EventKind::FollowRequested { .. }
            | EventKind::MediaUploaded { .. } => {}
        }
        Ok(())
    }

    /// Pushes a new status onto the home timelines it belongs in, and tells
    /// their owners' streams.
    async fn deliver(&self, status: &Status) -> CoreResult<()> {
        let author = status.account_id;
        let entry = entry_of(status);
        let update = LiveEvent::Update { id: status.id };
        self.timelines
            .push(&[(author, entry)])
            .await
            .map_err(cache_err)?;
        self.publish_live(&LiveTopic::User(author), update).await;
        if status.visibility == Visibility::Direct {
            // Direct messages reach the mentioned accounts that follow the
            // author: no need to walk every follower.
            let targets = self.store.followers_among(author, &status.mentions).await?;
            let items: Vec<(Id, TimelineEntry)> = targets
                .into_iter()
                .filter(|t| belongs_in_home(status, *t, Some(FollowOptions::default()), false))
                .map(|t| (t, entry))
                .collect();
            self.timelines.push(&items).await.map_err(cache_err)?;
            self.publish_live_all(
                items.iter().map(|(t, _)| LiveTopic::User(*t)).collect(),
                update,
            )
            .await;
            // Everyone in the conversation hears of it on their direct
            // stream, followers or not.
            let conversation = LiveEvent::Conversation { id: status.id };
            let mut people = status.mentions.clone();
            people.push(author);
            people.sort_unstable();
            people.dedup();
            self.publish_live_all(
                people.into_iter().map(LiveTopic::User).collect(),
                conversation,
            )
            .await;
            return Ok(());
        }
        if self.store.is_large(author).await? {
            // Its followers' streams listen to the author itself.
            self.publish_live(&LiveTopic::Author(author), update).await;
            return Ok(());
        }
        let reply_target = status.in_reply_to_account_id.filter(|t| *t != author);
        let mut delivered = 0u64;
        let mut followers = FollowerCursor::new(author);
        while let Some(batch) = followers.next(self).await? {
            let ids: Vec<Id> = batch.iter().map(|(f, _)| *f).collect();
            let follows_target: Vec<Id> = match reply_target {
                Some(t) => self.store.followers_among(t, &ids).await?,
                None => vec![],
            };
            let items: Vec<(Id, TimelineEntry)> = batch
                .iter()
                .filter(|(f, options)| {
                    let follows = follows_target.contains(f) || reply_target == Some(*f);
                    belongs_in_home(status, *f, Some(*options), follows)
                })
                .map(|(f, _)| (*f, entry))
                .collect();
            delivered += items.len() as u64;
            self.timelines.push(&items).await.map_err(cache_err)?;
            self.publish_live_all(
                items.iter().map(|(f, _)| LiveTopic::User(*f)).collect(),
                update,
            )
            .await;
        }
        metrics::counter!("starling_fanout_deliveries_total").increment(delivered);
        Ok(())
    }

    /// Tells the public and hashtag streams about a public post.
    async fn tell_public_streams(&self, status: &Status, event: LiveEvent) {
        if !status.is_public_post() {
            return;
        }
        if status.on_public_timelines() {
            self.publish_live(&LiveTopic::Public, event).await;
        }
        self.publish_live_all(
            status
                .tags
                .iter()
                .map(|t| LiveTopic::Tag(t.clone()))
                .collect(),
            event,
        )
        .await;
    }

    /// Marks an account large when it reaches the threshold, and fanned-out
    /// again when it falls below 90% of it (the gap stops an account at the
    /// edge from flipping on every follow). Coming back, its recent posts are
    /// pushed to its active followers, since those made while it was large
    /// were never fanned out.
    async fn check_size(&self, account: Id) -> CoreResult<()> {
        let threshold = self.settings.large_account_threshold;
        let Some(a) = self.store.account(account).await? else {
            return Ok(());
        };
        let large = self.store.is_large(account).await?;
        if !large && a.followers_count >= threshold {
            self.write_large(account, true).await?;
            tracing::info!(account = %account, followers = a.followers_count, "account is now large: merged at read time");
        } else if large && a.followers_count * 10 < threshold * 9 {
            self.write_large(account, false).await?;
            tracing::info!(account = %account, followers = a.followers_count, "account is no longer large: fanned out on write");
            let mut followers = FollowerCursor::new(account);
            while let Some(batch) = followers.next(self).await? {
                let mut active = Vec::new();
                for (f, options) in batch {
                    if self.timelines.exists(f).await.map_err(cache_err)? {
                        active.push((f, options));
                    }
                }
                self.merge_author_into(account, &active).await?;
            }
        }
        Ok(())
    }

    /// The notifications an event causes, appended to `out`.
    async fn notifications_for(
        &self,
        event: &Event,
        out: &mut Vec<Notification>,
    ) -> CoreResult<()> {
        let mut add = |recipient: Id, kind: NotificationType, from: Id, status_id: Option<Id>| {
            if recipient != from {
                out.push(Notification {
                    id: self.id_for(recipient),
                    account_id: recipient,
                    kind,
                    from_account_id: from,
                    status_id,
                    created_at_ms: event.created_at_ms,
                    event_id: event.id,
                });
            }
        };
        match event.kind {
            EventKind::StatusCreated { status_id, .. } => {
                let Some(status) = self.store.status(status_id).await? else {
                    return Ok(());
                };
                let author = status.account_id;
                for m in &status.mentions {
                    add(*m, NotificationType::Mention, author, Some(status.id));
                }
                if let Some(original_id) = status.reblog_of_id {
                    if let Some(original) = self.store.status(original_id).await? {
                        add(
                            original.account_id,
                            NotificationType::Reblog,
                            author,
                            Some(original.id),
                        );
                    }
                    return Ok(());
                }
                if status.is_reply_to_other() || status.visibility == Visibility::Direct {
                    return Ok(());
                }
                let mut after = None;
                loop {
                    let batch = self
                        .store
                        .notified_followers_before(author, status.id, after, FANOUT_BATCH)
                        .await?;
                    for f in &batch {
                        add(*f, NotificationType::Status, author, Some(status.id));
                    }
                    match batch.last() {
                        Some(last) if batch.len() == FANOUT_BATCH => after = Some(*last),
                        _ => break,
                    }
                }
            }
            EventKind::Followed {
                follower_id,
                followee_id,
            } => add(followee_id, NotificationType::Follow, follower_id, None),
            // An answered or withdrawn request leaves no notification.
            EventKind::FollowRequested {
                follower_id,
                followee_id,
            } if self.relationship(follower_id, followee_id).await?.requested => add(
                followee_id,
                NotificationType::FollowRequest,
                follower_id,
                None,
            ),
            EventKind::Favourited {
                account_id,
                status_id,
                author_id,
            } => add(
                author_id,
                NotificationType::Favourite,
                account_id,
                Some(status_id),
            ),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn an_unavailable_dependency_is_waited_out() {
        let calls = AtomicU32::new(0);
        let result = hold_while_unavailable("test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(CoreError::Unavailable("cache down".into())),
                _ => Ok(()),
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_failures_go_back_to_the_bus_at_once() {
        let calls = AtomicU32::new(0);
        let result = hold_while_unavailable("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CoreError::Internal("a bug".into()))
        })
        .await;
        assert!(matches!(result, Err(CoreError::Internal(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
