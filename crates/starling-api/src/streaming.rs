//! Mastodon's streaming API, transport aside: which channels exist, what
//! each listens to, and what each event looks like for its viewer.
//!
//! A [`Session`] is one connection (an SSE response, or a WebSocket that
//! may carry several subscriptions). It holds a [`Listener`] on this
//! process's live hub, and turns each [`Delivery`] into the frames of the
//! subscriptions it matches: read for the viewer (their blocks, mutes,
//! hidden boosts and visibility, with the filters of the timeline the
//! channel mirrors), rendered as the REST API renders it, and sent once per
//! subscription (an event delivered again, by the at-least-once consumers
//! or by a backlog replay, is not sent twice).
//!
//! The transports ([`crate::routes::streaming`]) only frame what
//! [`Session::frames`] returns.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use starling_core::live::{Delivery, HomeSources, Listener, LiveEvent, LiveTopic};
use starling_core::views::{Filter, StatusView};
use starling_core::{CoreError, Principal};
use starling_domain::text::normalize_tag;
use starling_domain::{Id, Page, Scope};
use starling_store::NotificationFilter;

use crate::entities::{AccountJson, NotificationJson};
use crate::render::write_status;
use crate::AppState;

/// Events replayed to a client that reconnects with the id of the last one
/// it had (`Last-Event-ID`), per kind.
pub const BACKLOG: usize = 40;
/// Recently sent events remembered per connection, so that none is sent
/// twice.
const SENT_MEMORY: usize = 1024;

/// A channel a client can subscribe to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    User,
    UserNotification,
    /// `public`, `public:local` (the same here: everything is local),
    /// `public:remote` (always quiet), and their `:media` forms.
    Public {
        media: bool,
        remote: bool,
    },
    /// `hashtag` and `hashtag:local`, with the normalised tag.
    Hashtag {
        tag: String,
    },
    Direct,
}

/// A subscription: its channel and the `stream` array its events carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub kind: ChannelKind,
    /// The channel's name followed by its parameter as the client sent it
    /// (masto.js matches events to subscriptions on it).
    pub stream: Vec<String>,
}

/// Why a subscription was refused (a 4xx, or an error frame).
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelError {
    Unknown,
    MissingTag,
    UnknownList,
    NeedsUser,
    Scope,
}

impl ChannelError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Unknown | Self::MissingTag => 400,
            Self::UnknownList => 404,
            Self::NeedsUser => 401,
            Self::Scope => 403,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            Self::Unknown => "Unknown stream type",
            Self::MissingTag => "No tag for stream provided",
            Self::UnknownList => "List not found",
            Self::NeedsUser => "Missing access token",
            Self::Scope => "Access token does not have the required scopes",
        }
    }
}

impl Channel {
    /// Parses a channel name (`user`, `public:local:media`, `hashtag`, …)
    /// with its parameters, and checks that `caller` may subscribe to it.
    pub fn parse(
        name: &str,
        tag: Option<&str>,
        list: Option<&str>,
        caller: Option<&Principal>,
    ) -> Result<Self, ChannelError> {
        let plain = |kind| Channel {
            kind,
            stream: vec![name.to_owned()],
        };
        let channel = match name {
            "user" => plain(ChannelKind::User),
            "user:notification" => plain(ChannelKind::UserNotification),
            "public" | "public:local" => plain(ChannelKind::Public {
                media: false,
                remote: false,
            }),
            "public:media" | "public:local:media" => plain(ChannelKind::Public {
                media: true,
                remote: false,
            }),
            "public:remote" | "public:remote:media" => plain(ChannelKind::Public {
                media: name.ends_with(":media"),
                remote: true,
            }),
            "hashtag" | "hashtag:local" => {
                let sent = tag
                    .filter(|t| !t.is_empty())
                    .ok_or(ChannelError::MissingTag)?;
                // A tag that cannot exist is a stream that never speaks.
                let normalized = normalize_tag(sent.trim_start_matches('#'))
                    .unwrap_or_else(|| "\u{0}".to_owned());
                Channel {
                    kind: ChannelKind::Hashtag { tag: normalized },
                    stream: vec![name.to_owned(), sent.to_owned()],
                }
            }
            "list" => {
                // Lists are not built yet: no list id names one.
                let _ = list;
                return Err(ChannelError::UnknownList);
            }
            "direct" => plain(ChannelKind::Direct),
            _ => return Err(ChannelError::Unknown),
        };
        channel.check_access(caller)?;
        Ok(channel)
    }

    fn check_access(&self, caller: Option<&Principal>) -> Result<(), ChannelError> {
        let (needs_user, scope) = match self.kind {
            ChannelKind::User | ChannelKind::Direct => (true, Scope::ReadStatuses),
            ChannelKind::UserNotification => (true, Scope::ReadNotifications),
            ChannelKind::Public { .. } | ChannelKind::Hashtag { .. } => {
                (false, Scope::ReadStatuses)
            }
        };
        match caller {
            None if needs_user => Err(ChannelError::NeedsUser),
            None => Ok(()),
            Some(p) if needs_user && p.account_id.is_none() => Err(ChannelError::NeedsUser),
            Some(p) if !p.scopes.grants_any(&[scope]) => Err(ChannelError::Scope),
            Some(_) => Ok(()),
        }
    }

    /// The live topics this channel hears.
    fn topics(&self, me: Option<Id>, sources: &HomeSources) -> Vec<LiveTopic> {
        match (&self.kind, me) {
            (ChannelKind::User, Some(me)) => {
                let mut topics = vec![LiveTopic::User(me)];
                topics.extend(sources.large.iter().map(|(a, _)| LiveTopic::Author(*a)));
                topics
            }
            (ChannelKind::UserNotification | ChannelKind::Direct, Some(me)) => {
                vec![LiveTopic::User(me)]
            }
            (ChannelKind::Public { remote: false, .. }, _) => vec![LiveTopic::Public],
            (ChannelKind::Hashtag { tag }, _) if !tag.contains('\u{0}') => {
                vec![LiveTopic::Tag(tag.clone())]
            }
            _ => vec![],
        }
    }

    /// Whether this channel carries `event` heard on `topic`.
    /// Whether this channel, listening to the topics `heard`, carries
    /// `event` heard on `topic`.
    fn carries(&self, heard: &[String], topic: &str, event: &LiveEvent) -> bool {
        heard.iter().any(|t| t == topic)
            && match (&self.kind, event) {
                (ChannelKind::User, LiveEvent::Conversation { .. }) => false,
                (ChannelKind::User, _) => true,
                (ChannelKind::UserNotification, LiveEvent::Notification { .. }) => true,
                (ChannelKind::Direct, LiveEvent::Conversation { .. }) => true,
                (
                    ChannelKind::Public { .. } | ChannelKind::Hashtag { .. },
                    LiveEvent::Update { .. } | LiveEvent::Delete { .. },
                ) => true,
                _ => false,
            }
    }
}

/// One frame to send: an event of a subscription.
#[derive(Clone, Debug)]
pub struct Frame {
    pub stream: Vec<String>,
    pub event: &'static str,
    /// The payload: an entity's JSON, or a bare id for `delete`.
    pub payload: String,
    /// The id a client may resume after (SSE `id:`): the status or
    /// notification id, which grow with time. None for deletes.
    pub resume_id: Option<Id>,
}

/// One streaming connection.
pub struct Session {
    state: AppState,
    caller: Option<Principal>,
    token: Option<String>,
    listener: Listener,
    sources: HomeSources,
    channels: Vec<Channel>,
    /// The bus keys of each channel's topics, decided when it subscribed
    /// (compared with every delivery's topic).
    heard: Vec<Vec<String>>,
    sent: HashSet<(usize, &'static str, Id)>,
    sent_order: VecDeque<(usize, &'static str, Id)>,
}

impl Session {
    pub fn new(state: AppState, caller: Option<Principal>, token: Option<String>) -> Self {
        let listener = state.core.live().listener();
        Self {
            state,
            caller,
            token,
            listener,
            sources: HomeSources::default(),
            channels: Vec::new(),
            heard: Vec::new(),
            sent: HashSet::new(),
            sent_order: VecDeque::new(),
        }
    }

    pub fn caller(&self) -> Option<&Principal> {
        self.caller.as_ref()
    }

    fn me(&self) -> Option<Id> {
        self.caller.as_ref().and_then(|p| p.account_id)
    }

    /// Subscribes to `channel` (a second subscription to the same one is a
    /// no-op); once this returns, its events are heard.
    pub async fn subscribe(&mut self, channel: Channel) -> Result<(), CoreError> {
        if self.channels.contains(&channel) {
            return Ok(());
        }
        if channel.kind == ChannelKind::User {
            if let Some(me) = self.me() {
                self.sources = self.state.core.home_sources(me).await?;
            }
        }
        let topics = channel.topics(self.me(), &self.sources);
        self.listener.listen(&topics).await?;
        self.heard.push(topics.iter().map(LiveTopic::key).collect());
        self.channels.push(channel);
        Ok(())
    }

    /// Ends the subscription named `stream` (the name and parameter).
    pub fn unsubscribe(&mut self, stream: &[String]) {
        let Some(at) = self.channels.iter().position(|c| c.stream == stream) else {
            return;
        };
        let channel = self.channels.remove(at);
        self.heard.remove(at);
        let still: HashSet<&String> = self.heard.iter().flatten().collect();
        for topic in channel.topics(self.me(), &self.sources) {
            if !still.contains(&topic.key()) {
                self.listener.unlisten(&topic);
            }
        }
        // Its memory of what was sent goes with it: indexes shift.
        self.sent.clear();
        self.sent_order.clear();
    }

    /// The next delivery; `None` when the connection must end (this process
    /// is shutting down, or the reader fell too far behind).
    pub async fn next(&mut self) -> Option<Delivery> {
        self.listener.recv().await
    }

    /// Whether the process is shutting down (else a `None` from
    /// [`Session::next`] means the reader was too slow).
    pub fn closing(&self) -> bool {
        self.listener.closing()
    }

    /// Whether the connection's token still resolves (checked at each
    /// heartbeat: a revoked token's streams end).
    pub async fn still_authorized(&self) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        !matches!(self.state.core.authenticate(token).await, Ok(None))
    }

    /// The frames `delivery` makes for this connection's subscriptions.
    pub async fn frames(&mut self, delivery: &Delivery) -> Vec<Frame> {
        let mut out = Vec::new();
        for i in 0..self.channels.len() {
            let channel = &self.channels[i];
            if !channel.carries(&self.heard[i], &delivery.topic, &delivery.event) {
                continue;
            }
            let (name, id) = key_of(&delivery.event);
            if self.sent.contains(&(i, name, id)) {
                continue;
            }
            let channel = channel.clone();
            // Memory first (every stream of this process renders the same
            // status and author); the primary only when that finds nothing,
            // as a read replica may not have what the event is about yet.
            let frame = match self.render(&channel, delivery).await {
                Ok(Some(frame)) => Ok(Some(frame)),
                _ => starling_store::with_primary_reads(self.render(&channel, delivery)).await,
            };
            let frame = frame.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "a live event could not be read; skipped");
                None
            });
            if let Some(frame) = frame {
                self.remember(i, name, id);
                out.push(frame);
            }
        }
        out
    }

    fn remember(&mut self, channel: usize, name: &'static str, id: Id) {
        if self.sent.insert((channel, name, id)) {
            self.sent_order.push_back((channel, name, id));
            if self.sent_order.len() > SENT_MEMORY {
                if let Some(old) = self.sent_order.pop_front() {
                    self.sent.remove(&old);
                }
            }
        }
    }

    async fn render(&self, channel: &Channel, d: &Delivery) -> Result<Option<Frame>, CoreError> {
        let core = &self.state.core;
        let me = self.me();
        let frame = |event, payload, resume_id| Frame {
            stream: channel.stream.clone(),
            event,
            payload,
            resume_id,
        };
        Ok(match d.event {
            LiveEvent::Delete { id } => Some(frame("delete", id.to_string(), None)),
            LiveEvent::Update { id } => {
                let view = match (&channel.kind, me) {
                    (ChannelKind::User, Some(me)) if d.topic.starts_with("author.") => {
                        core.live_home_status_of_large(me, id, &self.sources)
                            .await?
                    }
                    (ChannelKind::User, Some(_)) => core.live_status(me, id, Filter::Home).await?,
                    (ChannelKind::Public { media, .. }, _) => core
                        .live_status(me, id, Filter::Timeline)
                        .await?
                        .filter(|v| !*media || !v.status.media.is_empty()),
                    (ChannelKind::Hashtag { .. }, _) => {
                        core.live_status(me, id, Filter::Timeline).await?
                    }
                    _ => None,
                };
                view.map(|v| frame("update", self.status_json(&v), Some(id)))
            }
            LiveEvent::Notification { id } => {
                let Some(caller) = &self.caller else {
                    return Ok(None);
                };
                match core.notification(caller, id).await {
                    Ok(n) => Some(frame(
                        "notification",
                        json_string(&NotificationJson::new(&n, &self.state.settings)),
                        Some(id),
                    )),
                    Err(CoreError::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
            LiveEvent::Conversation { id } => core
                .live_status(me, id, Filter::Direct)
                .await?
                .map(|v| frame("conversation", self.conversation_json(&v), None)),
        })
    }

    fn status_json(&self, v: &StatusView) -> String {
        let mut out = Vec::with_capacity(2048);
        write_status(
            &mut out,
            v,
            &self.state.settings,
            Some(&self.state.render),
            None,
        );
        String::from_utf8(out).unwrap_or_default()
    }

    /// A conversation entity for a direct message: keyed by the message,
    /// with everyone else in it.
    fn conversation_json(&self, v: &StatusView) -> String {
        let me = self.me();
        let mut accounts: Vec<&Arc<starling_domain::Account>> = v
            .mentions
            .iter()
            .chain(std::iter::once(&v.account))
            .filter(|a| Some(a.id) != me)
            .collect();
        accounts.sort_by_key(|a| a.id);
        accounts.dedup_by_key(|a| a.id);
        let accounts: Vec<AccountJson> = accounts
            .iter()
            .map(|a| AccountJson::new(a, &self.state.settings))
            .collect();
        format!(
            "{{\"id\":\"{}\",\"unread\":true,\"accounts\":{},\"last_status\":{}}}",
            v.status.id,
            json_string(&accounts),
            self.status_json(v)
        )
    }

    /// What a client that reconnects after `after` missed (home entries and
    /// notifications, or the public or hashtag timeline), oldest first, as
    /// frames of this connection's first subscription; remembered, so the
    /// live copies of the same events are not sent again.
    pub async fn backlog(&mut self, after: Id) -> Vec<Frame> {
        let Some(channel) = self.channels.first().cloned() else {
            return vec![];
        };
        let result = starling_store::with_primary_reads(self.backlog_of(&channel, after)).await;
        let frames = result.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "a stream's backlog could not be read");
            vec![]
        });
        for f in &frames {
            if let Some(id) = f.resume_id {
                self.remember(0, f.event, id);
            }
        }
        frames
    }

    async fn backlog_of(&self, channel: &Channel, after: Id) -> Result<Vec<Frame>, CoreError> {
        let core = &self.state.core;
        let me = self.me();
        let page = Page {
            min_id: Some(after),
            ..Page::first(BACKLOG)
        };
        let frame = |event, payload, resume_id| Frame {
            stream: channel.stream.clone(),
            event,
            payload,
            resume_id: Some(resume_id),
        };
        let mut frames: Vec<Frame> = Vec::new();
        match (&channel.kind, &self.caller) {
            (ChannelKind::User | ChannelKind::UserNotification, Some(caller)) => {
                if channel.kind == ChannelKind::User {
                    for v in core.home_timeline(caller, &page).await? {
                        frames.push(frame("update", self.status_json(&v), v.status.id));
                    }
                }
                let filter = NotificationFilter::default();
                for n in core.notifications(caller, &filter, &page).await? {
                    let id = n.notification.id;
                    let json = json_string(&NotificationJson::new(&n, &self.state.settings));
                    frames.push(frame("notification", json, id));
                }
            }
            (
                ChannelKind::Public {
                    media,
                    remote: false,
                },
                _,
            ) => {
                for v in core.public_since(me, None, after, BACKLOG).await? {
                    if !*media || !v.status.media.is_empty() {
                        frames.push(frame("update", self.status_json(&v), v.status.id));
                    }
                }
            }
            (ChannelKind::Hashtag { tag }, _) => {
                for v in core.public_since(me, Some(tag), after, BACKLOG).await? {
                    frames.push(frame("update", self.status_json(&v), v.status.id));
                }
            }
            _ => {}
        }
        frames.sort_by_key(|f| f.resume_id);
        Ok(frames)
    }
}

fn key_of(event: &LiveEvent) -> (&'static str, Id) {
    match *event {
        LiveEvent::Update { id } => ("update", id),
        LiveEvent::Delete { id } => ("delete", id),
        LiveEvent::Notification { id } => ("notification", id),
        LiveEvent::Conversation { id } => ("conversation", id),
    }
}

fn json_string<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_as_mastodon_names_them() {
        let public = Channel::parse("public:local", None, None, None).unwrap();
        assert_eq!(public.stream, vec!["public:local"]);
        let tag = Channel::parse("hashtag", Some("Rust"), None, None).unwrap();
        assert_eq!(tag.stream, vec!["hashtag", "Rust"]);
        assert_eq!(tag.kind, ChannelKind::Hashtag { tag: "rust".into() });
        assert_eq!(
            Channel::parse("hashtag", None, None, None),
            Err(ChannelError::MissingTag)
        );
        assert_eq!(
            Channel::parse("user", None, None, None),
            Err(ChannelError::NeedsUser)
        );
        assert_eq!(
            Channel::parse("nope", None, None, None),
            Err(ChannelError::Unknown)
        );
        assert_eq!(
            Channel::parse("list", None, Some("1"), None),
            Err(ChannelError::UnknownList)
        );
    }
}
