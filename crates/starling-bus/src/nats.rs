//! The NATS JetStream event bus: the distributed shape's adapter.
//!
//! Layout on the server (created or updated by [`NatsBus::connect`]):
//!
//! - one stream, [`NatsBusConfig::stream`] (file storage, limits retention
//!   with [`NatsBusConfig::max_age`]), holding every event on the subject
//!   `<subject_prefix>.<kind name>` ([`EventKind::name`]), with the event id
//!   as `Nats-Msg-Id`. JetStream drops a second message with the same id
//!   within [`NatsBusConfig::duplicate_window`], so the relay publishing the
//!   same outbox rows again after a crash stores each event once;
//! - a dead-letter stream, `<stream>_DEAD` on `<subject_prefix>-dead.>`,
//!   where each group copies the events it gave up on (subject
//!   `<subject_prefix>-dead.<consumer>`, the original payload, headers
//!   saying which group, why, and the original subject);
//! - one durable pull consumer per consumer group, named after
//!   [`Consumer::name`], explicit ack, [`NatsBusConfig::ack_wait`],
//!   delivering what is published after it was first created. Every process
//!   subscribing the same group pulls from the same durable consumer, so they
//!   share the work.
//!
//! [`EventBus::publish`] returns `Ok` only once JetStream acknowledged every
//! event, that is, stored it in the stream. It fails fast with
//! [`BusError::Unavailable`] when NATS is not connected, and within
//! [`NatsBusConfig::publish_timeout`] otherwise; the relay then keeps its
//! outbox rows and tries again later, which is how writes are accepted
//! while NATS is down and delivered when it returns.
//!
//! One task per subscribed group pulls batches (up to
//! [`NatsBusConfig::batch`]) and handles them the way the in-process bus
//! does, so the conformance suite holds for both:
//!
//! - the events the group does not [`want`](Consumer::wants) are
//!   acknowledged without being handled; an event that does not decode is
//!   copied to the dead-letter stream and terminated;
//! - the wanted events go to [`Consumer::handle`] in stream order; once it
//!   returns `Ok` they are acknowledged, each ack awaited (so it is known to
//!   have reached the server);
//! - a failing batch is retried in this process with backoff
//!   ([`RetryPolicy`]); after `max_attempts` its events are tried one at a
//!   time (each up to `max_attempts`) and an event that still fails is given
//!   to [`DeadLetters`], copied to the dead-letter stream and terminated
//!   (`+TERM`), so JetStream never offers it again;
//! - while a batch is being handled or retried, the task tells JetStream it
//!   is still working on it (`+WPI` every third of `ack_wait`), so a slow
//!   handler is not mistaken for a dead one;
//! - a worker that dies stops doing that: after `ack_wait` JetStream
//!   delivers its unacknowledged events again, to any process of the group.
//!   An event that reaches a worker already delivered more than
//!   `max_attempts` times without an ack (it keeps killing or wedging
//!   workers) is dead-lettered without being handled;
//! - a consumer that panics is treated like one that returned an error.
//!
//! Why retries stay in the worker instead of a `-NAK` with a delay: a nak'd
//! event comes back only after its delay, and meanwhile the worker's next
//! pull would hand it newer events, so a failing group would see events out
//! of order. Holding the batch keeps each group's order, as the in-process
//! bus does; JetStream's redelivery covers the worker that dies. Naks are
//! used when a worker shuts down with events it has not handled: they go
//! back at once, for another process of the group.
//!
//! The tasks survive NATS restarts: the client reconnects by itself, and a
//! pull that fails is logged and retried with backoff. They stop when the
//! [`NatsBus`] is dropped (each finishes the batch it is handling, hands back
//! what it pulled but did not handle, and ends) or on
//! [`NatsBus::shutdown`], which also waits for them, up to a deadline.
//!
//! Metrics (label `consumer`), as the in-process bus:
//! `starling_bus_events_handled_total`, `starling_bus_redeliveries_total`
//! (deliveries of an event beyond its first, in this process or by
//! JetStream), `starling_bus_dead_letters_total`, the histogram
//! `starling_bus_handle_seconds`; and `starling_bus_publish_errors_total`
//! (failed `publish` calls).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream, AckKind, Message};
use async_nats::Subject;
use async_trait::async_trait;
use futures_util::StreamExt;
use starling_domain::{Event, Id};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::in_process::backoff;
use crate::{BusError, BusResult, Consumer, ConsumerError, DeadLetters, EventBus, RetryPolicy};

/// How long an idle group's pull waits on the server for an event.
const PULL_WAIT: Duration = Duration::from_secs(3);
/// How much longer the client waits for that pull to end before it gives up
/// on it (a pull lost in a reconnection never ends by itself).
const PULL_MARGIN: Duration = Duration::from_secs(1);
/// How often a group whose connection is down looks again.
const RECONNECT_POLL: Duration = Duration::from_millis(100);
/// Backoff of a group's pulls while they fail: from the first, doubling, to
/// the last.
const PULL_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    first_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(5),
};
/// Publishes sent before waiting for their acks; well under the client's
/// limit of acks in flight (5000), which would otherwise stall a large
/// `publish` that only waits once everything is sent.
const PUBLISH_WINDOW: usize = 256;
/// Headers of a message in the dead-letter stream.
pub const DEAD_CONSUMER_HEADER: &str = "Starling-Consumer";
pub const DEAD_ERROR_HEADER: &str = "Starling-Error";
pub const DEAD_SUBJECT_HEADER: &str = "Starling-Subject";
/// Longest error text kept in a dead letter's header.
const MAX_ERROR_HEADER: usize = 1024;

/// Where the NATS bus keeps its events and how it treats them.
#[derive(Clone)]
pub struct NatsBusConfig {
    /// The NATS server(s), e.g. `nats://127.0.0.1:4222` (comma-separated
    /// for several). May hold credentials; never printed.
    pub url: String,
    /// The stream name, e.g. `STARLING_EVENTS`. The dead-letter stream is
    /// this plus `_DEAD`.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<kind>`, e.g. `starling.events`.
    pub subject_prefix: String,
    /// How a failing batch is retried before its events are dead-lettered.
    pub retry: RetryPolicy,
    /// How long JetStream waits for an ack (or a sign of progress) before it
    /// delivers an event again: how soon the events of a worker that died
    /// are taken over.
    pub ack_wait: Duration,
    /// How long JetStream remembers event ids to drop duplicates.
    pub duplicate_window: Duration,
    /// Longest wait for NATS: a publish with its acks, an API request, the
    /// connection itself.
    pub publish_timeout: Duration,
    /// Most events handed to one `handle` call.
    pub batch: usize,
    /// How long the stream keeps an event (zero: until removed by hand).
    /// An event not handled by then is lost to the groups that lag that far.
    pub max_age: Duration,
    /// Copies of each stream in a NATS cluster (1 for a single server).
    pub replicas: usize,
}

impl NatsBusConfig {
    /// The production defaults: stream `STARLING_EVENTS` on
    /// `starling.events.>`, kept 7 days, 30 s ack wait, 2 min duplicate
    /// window, 5 s timeout, batches of 100.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "STARLING_EVENTS".to_owned(),
            subject_prefix: "starling.events".to_owned(),
            retry: RetryPolicy::default(),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            publish_timeout: Duration::from_secs(5),
            batch: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
            replicas: 1,
        }
    }

    /// The dead-letter stream's name.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD", self.stream)
    }

    /// The subject a group's dead letters are copied to.
    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        format!("{}-dead.{consumer}", self.subject_prefix)
    }

    /// The subject an event is published on.
    pub fn subject(&self, event: &Event) -> String {
        format!("{}.{}", self.subject_prefix, event.kind.name())
    }

    fn validate(&self) -> Result<(), String> {
        valid_name("stream", &self.stream)?;
        let prefix = &self.subject_prefix;
        if prefix.is_empty()
            || prefix.starts_with('.')
            || prefix.ends_with('.')
            || prefix.contains("..")
            || prefix
                .chars()
                .any(|c| matches!(c, '*' | '>') || c.is_whitespace() || c.is_control())
        {
            return Err(format!("subject prefix {prefix:?} is not a plain subject"));
        }
        if self.batch == 0 {
            return Err("batch must be at least 1".to_owned());
        }
        if self.ack_wait < Duration::from_millis(100) {
            return Err("ack_wait must be at least 100 ms".to_owned());
        }
        if self.publish_timeout.is_zero() {
            return Err("publish_timeout must not be zero".to_owned());
        }
        if !self.max_age.is_zero() && self.duplicate_window > self.max_age {
            return Err("duplicate_window must not exceed max_age".to_owned());
        }
        Ok(())
    }
}

impl fmt::Debug for NatsBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBusConfig")
            .field("url", &redacted(&self.url))
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("retry", &self.retry)
            .field("ack_wait", &self.ack_wait)
            .field("duplicate_window", &self.duplicate_window)
            .field("publish_timeout", &self.publish_timeout)
            .field("batch", &self.batch)
            .field("max_age", &self.max_age)
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// `url` without the credentials it may hold.
pub(crate) fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***{}", &one[..scheme], &one[at..])
            }
            (None, Some(at)) => format!("***{}", &one[at..]),
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Stream and consumer names: no dots, wildcards, separators or spaces.
fn valid_name(what: &str, name: &str) -> Result<(), String> {
    let bad =
        |c: char| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.chars().any(bad) {
        return Err(format!("{what} name {name:?} is not a valid NATS name"));
    }
    Ok(())
}

/// The distributed shape's event bus: events stored in a JetStream stream,
/// consumer groups as durable pull consumers.
pub struct NatsBus {
    shared: Arc<Shared>,
    /// Set to `true` (or dropped with the bus) to stop the group tasks.
    stop: watch::Sender<bool>,
    /// The groups subscribed by this bus and their tasks. A tokio mutex, so
    /// two `subscribe` calls for one group cannot both start a task.
    groups: tokio::sync::Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

/// What the bus and its group tasks share.
struct Shared {
    config: NatsBusConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    dead_letters: Arc<dyn DeadLetters>,
}

impl NatsBus {
    /// Connects to NATS and creates (or updates) the stream and the
    /// dead-letter stream. Fails with [`BusError::Unavailable`] if NATS does
    /// not answer (no retry: the caller decides), if JetStream is not
    /// enabled, or if the configuration is invalid.
    pub async fn connect(
        config: NatsBusConfig,
        dead_letters: Arc<dyn DeadLetters>,
    ) -> BusResult<Self> {
        config
            .validate()
            .map_err(|e| BusError::Unavailable(format!("invalid NATS bus configuration: {e}")))?;
        let client = async_nats::ConnectOptions::new()
            .name("starling")
            .connection_timeout(config.publish_timeout)
            .request_timeout(Some(config.publish_timeout))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost the connection to NATS; reconnecting")
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| {
                BusError::Unavailable(format!(
                    "cannot connect to NATS at {}: {e}",
                    redacted(&config.url)
                ))
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.publish_timeout)
            .ack_timeout(config.publish_timeout)
            .build(client.clone());

        let events = stream::Config {
            name: config.stream.clone(),
            description: Some("Starling domain events".to_owned()),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: config.duplicate_window,
            max_age: config.max_age,
            num_replicas: config.replicas,
            ..Default::default()
        };
        let dead = stream::Config {
            name: config.dead_letter_stream(),
            description: Some("Starling events that consumer groups gave up on".to_owned()),
            subjects: vec![format!("{}-dead.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: config.duplicate_window,
            num_replicas: config.replicas,
            ..Default::default()
        };
        for stream in [events, dead] {
            let name = stream.name.clone();
            js.create_or_update_stream(stream).await.map_err(|e| {
                BusError::Unavailable(format!("cannot create the NATS stream {name}: {e}"))
            })?;
        }
        let (stop, _) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                client,
                js,
                dead_letters,
            }),
            stop,
            groups: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &NatsBusConfig {
        &self.shared.config
    }

    /// The names of the groups this bus subscribed, in subscription order.
    pub async fn consumer_names(&self) -> Vec<&'static str> {
        self.groups.lock().await.iter().map(|(n, _)| *n).collect()
    }

    /// Stops the group tasks: each finishes the `handle` call it is in (and
    /// acknowledges it), hands back what it pulled but did not handle, and
    /// ends. Waits up to `grace` for that; a task still running then is
    /// aborted, and JetStream delivers its events again after `ack_wait`, as
    /// for a worker that died. Later `subscribe` calls fail.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let tasks: Vec<(&'static str, JoinHandle<()>)> =
            std::mem::take(&mut *self.groups.lock().await);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut task) in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(
                    consumer = name,
                    "consumer group did not stop in time; aborted"
                );
                task.abort();
            }
        }
    }
}

#[async_trait]
impl EventBus for NatsBus {
    /// Publishes every event and waits until JetStream stored each one.
    async fn publish(&self, events: &[Event]) -> BusResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let timeout = shared.config.publish_timeout;
        let result = if shared.client.connection_state() == State::Connected {
            tokio::time::timeout(timeout, shared.publish_all(events))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "NATS did not acknowledge the events within {} ms",
                        timeout.as_millis()
                    ))
                })
        } else {
            Err("not connected to NATS".to_owned())
        };
        result.map_err(|e| {
            metrics::counter!("starling_bus_publish_errors_total").increment(1);
            BusError::Unavailable(e)
        })
    }

    /// Creates (or updates) the group's durable consumer and starts pulling.
    /// A group subscribed twice on one bus is a wiring bug: logged and
    /// ignored, as by the in-process bus.
    async fn subscribe(&self, consumer: Arc<dyn Consumer>) -> BusResult<()> {
        let name = consumer.name();
        valid_name("consumer", name).map_err(BusError::Unavailable)?;
        let mut groups = self.groups.lock().await;
        if *self.stop.borrow() {
            return Err(BusError::Unavailable("the bus is shut down".to_owned()));
        }
        if groups.iter().any(|(n, _)| *n == name) {
            tracing::warn!(
                consumer = name,
                "consumer group already subscribed; ignoring"
            );
            return Ok(());
        }
        let pull = self
            .shared
            .ensure_consumer(name)
            .await
            .map_err(BusError::Unavailable)?;
        let group = Group {
            shared: self.shared.clone(),
            consumer,
            name,
            pull,
            stop: self.stop.subscribe(),
        };
        groups.push((name, tokio::spawn(group.run())));
        Ok(())
    }
}

impl Shared {
    async fn publish_all(&self, events: &[Event]) -> Result<(), String> {
        // Send a window of events, then wait for its acks: JetStream stores
        // them in the order sent, and one round trip serves the window.
        for window in events.chunks(PUBLISH_WINDOW) {
            let mut acks = Vec::with_capacity(window.len());
            for event in window {
                let message = PublishMessage::build()
                    .payload(event.to_json().into())
                    .message_id(event.id.to_string());
                let ack = self
                    .js
                    .send_publish(self.config.subject(event), message)
                    .await
                    .map_err(|e| format!("cannot publish event {} to NATS: {e}", event.id))?;
                acks.push(ack);
            }
            for (event, ack) in window.iter().zip(acks) {
                ack.await
                    .map_err(|e| format!("NATS did not store event {}: {e}", event.id))?;
            }
        }
        Ok(())
    }

    async fn ensure_consumer(&self, name: &str) -> Result<PullConsumer, String> {
        let config = pull::Config {
            durable_name: Some(name.to_owned()),
            description: Some(format!("Starling consumer group {name}")),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            filter_subject: format!("{}.>", self.config.subject_prefix),
            ..Default::default()
        };
        self.js
            .create_consumer_on_stream(config, self.config.stream.as_str())
            .await
            .map_err(|e| {
                format!(
                    "cannot create the NATS consumer {name} on {}: {e}",
                    self.config.stream
                )
            })
    }

    /// Copies a message a group gave up on to the dead-letter stream.
    async fn copy_to_dead_letters(
        &self,
        consumer: &str,
        message: &Message,
        event_id: Option<Id>,
        error: &str,
    ) {
        // One copy per group and event, even if a crash makes us do it twice.
        let id = match (event_id, message.info()) {
            (Some(id), _) => format!("{consumer}:{id}"),
            (None, Ok(info)) => format!("{consumer}:seq:{}", info.stream_sequence),
            (None, Err(_)) => format!("{consumer}:subject:{}", message.subject),
        };
        let copy = PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(id)
            .header(DEAD_CONSUMER_HEADER, consumer)
            .header(DEAD_ERROR_HEADER, header_safe(error))
            .header(DEAD_SUBJECT_HEADER, message.subject.as_str());
        let subject = self.config.dead_letter_subject(consumer);
        let stored = async { self.js.send_publish(subject, copy).await?.await };
        if let Err(e) = stored.await {
            tracing::warn!(
                consumer,
                event_id = event_id.map(Id::as_i64),
                error = %e,
                "could not copy a dead letter to the dead-letter stream"
            );
        }
    }
}

/// `text` as a header value: one line, not too long.
fn header_safe(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_ERROR_HEADER {
        let mut end = MAX_ERROR_HEADER;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Whether the bus asked its tasks to stop (or is gone).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Resolves once the bus asks its tasks to stop, or is dropped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps for `wait`; `true` if the bus asked to stop meanwhile.
async fn pause(stop: &watch::Receiver<bool>, wait: Duration) -> bool {
    let mut stop = stop.clone();
    tokio::select! {
        () = stopped(&mut stop) => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// One subscribed consumer group in this process: the task pulling its
/// events.
struct Group {
    shared: Arc<Shared>,
    consumer: Arc<dyn Consumer>,
    name: &'static str,
    pull: PullConsumer,
    stop: watch::Receiver<bool>,
}

/// How handling some events ended.
enum Outcome {
    Handled,
    /// Every attempt failed; the last error.
    Failed(ConsumerError),
    /// The bus is stopping; the events were not handled.
    Stopped,
}

impl Group {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            if stopping(&self.stop) {
                break;
            }
            // A pull sent while disconnected would be queued and reach the
            // server after the reconnection, which would then deliver events
            // to a subscription that no longer exists.
            if self.shared.client.connection_state() != State::Connected {
                if pause(&self.stop, RECONNECT_POLL).await {
                    break;
                }
                continue;
            }
            match self.pull().await {
                Ok(messages) => {
                    failures = 0;
                    if messages.is_empty() {
                        continue;
                    }
                    if stopping(&self.stop) {
                        // Pulled as the bus was stopping: not ours to start.
                        self.settle(messages.iter(), AckKind::Nak(None)).await;
                        break;
                    }
                    self.process(messages).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(&PULL_RETRY, failures);
                    tracing::warn!(
                        consumer = self.name,
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "pulling events from NATS failed; retrying"
                    );
                    if pause(&self.stop, wait).await {
                        break;
                    }
                    // The consumer may be gone (deleted by hand, or a server
                    // that lost its state): make sure it exists again.
                    if failures > 1 {
                        match self.shared.ensure_consumer(self.name).await {
                            Ok(pull) => self.pull = pull,
                            Err(e) => {
                                tracing::warn!(consumer = self.name, error = %e, "cannot restore the NATS consumer")
                            }
                        }
                    }
                }
            }
        }
        tracing::debug!(consumer = self.name, "consumer group stopped");
    }

    /// Waits for the next event, then takes whatever else is ready, up to a
    /// batch. Nothing (and no error) when no event came within the wait or
    /// the bus is stopping. Only the wait is cut short by a stop: events
    /// already received are returned, to be handled or handed back.
    async fn pull(&self) -> Result<Vec<Message>, String> {
        let mut first = self
            .pull
            .batch()
            .max_messages(1)
            .expires(PULL_WAIT)
            .messages()
            .await
            .map_err(|e| format!("cannot ask NATS for events: {e}"))?;
        let mut stop = self.stop.clone();
        let first = tokio::select! {
            () = stopped(&mut stop) => return Ok(Vec::new()),
            first = tokio::time::timeout(PULL_WAIT + PULL_MARGIN, first.next()) => first,
        };
        let first = match first {
            Err(_) | Ok(None) => return Ok(Vec::new()),
            Ok(Some(Err(e))) => return Err(format!("cannot receive events from NATS: {e}")),
            Ok(Some(Ok(message))) => message,
        };
        let mut messages = vec![first];
        let more = self.shared.config.batch.saturating_sub(1);
        if more > 0 {
            match self.fetch_ready(more, &mut messages).await {
                Ok(()) => {}
                // Handle what came; the next pull tries again.
                Err(e) => {
                    tracing::debug!(consumer = self.name, error = %e, "fetching more events failed")
                }
            }
        }
        Ok(messages)
    }

    /// Appends up to `max` events that are ready now, without waiting.
    async fn fetch_ready(&self, max: usize, into: &mut Vec<Message>) -> Result<(), String> {
        let mut ready = self
            .pull
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::sleep(self.shared.config.publish_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return Ok(()),
                next = ready.next() => match next {
                    None => return Ok(()),
                    Some(Ok(message)) => into.push(message),
                    Some(Err(e)) => return Err(e.to_string()),
                },
            }
        }
    }

    /// Handles one pulled batch to the end: every message is acknowledged,
    /// terminated as a dead letter, or handed back.
    async fn process(&self, mut messages: Vec<Message>) {
        let max_attempts = i64::from(self.shared.config.retry.max_attempts.max(1));
        // Redeliveries come first from the server; handle in stream order.
        messages.sort_by_key(|m| m.info().map(|i| i.stream_sequence).unwrap_or(0));
        let mut unwanted = Vec::new();
        let mut work: Vec<(Message, Event)> = Vec::new();
        for message in messages {
            let Ok(delivered) = message.info().map(|i| i.delivered) else {
                tracing::warn!(
                    consumer = self.name,
                    subject = %message.subject,
                    "a message without JetStream metadata; ignored"
                );
                continue;
            };
            if delivered > 1 {
                metrics::counter!("starling_bus_redeliveries_total", "consumer" => self.name)
                    .increment(1);
            }
            let event = std::str::from_utf8(&message.payload)
                .ok()
                .and_then(Event::from_json);
            let Some(event) = event else {
                self.dead_letter_undecodable(&message).await;
                continue;
            };
            if !self.consumer.wants(&event.kind) {
                unwanted.push(message);
            } else if delivered > max_attempts {
                // Delivered that often and never acknowledged: it killed or
                // wedged the workers that had it. Do not let it take this
                // one down too.
                let error = format!(
                    "delivered {delivered} times without an acknowledgement; workers died handling it"
                );
                self.dead_letter(&message, &event, &error).await;
            } else {
                work.push((message, event));
            }
        }
        let _lease = Lease::hold(
            self.shared.client.clone(),
            work.iter().filter_map(|(m, _)| m.reply.clone()).collect(),
            self.shared.config.ack_wait / 3,
        );
        self.settle(unwanted.iter(), AckKind::Ack).await;
        if !work.is_empty() {
            self.deliver(&work).await;
        }
    }

    /// The in-process bus's delivery: the batch with retries, then one
    /// event at a time, then dead letters.
    async fn deliver(&self, work: &[(Message, Event)]) {
        let batch: Arc<[Event]> = work.iter().map(|(_, e)| e.clone()).collect();
        let error = match self.attempt(batch).await {
            Outcome::Handled => {
                return self.settle(work.iter().map(|(m, _)| m), AckKind::Ack).await
            }
            Outcome::Stopped => return self.hand_back(work).await,
            Outcome::Failed(error) => error,
        };
        // The batch keeps failing: isolate the culprits, one event at a time.
        // A batch of one was just tried alone already.
        if let [(message, event)] = work {
            return self.dead_letter(message, event, &error.0).await;
        }
        for (i, (message, event)) in work.iter().enumerate() {
            metrics::counter!("starling_bus_redeliveries_total", "consumer" => self.name)
                .increment(1);
            match self.attempt(Arc::from([event.clone()])).await {
                Outcome::Handled => self.settle([message].into_iter(), AckKind::Ack).await,
                Outcome::Failed(e) => self.dead_letter(message, event, &e.0).await,
                Outcome::Stopped => return self.hand_back(&work[i..]).await,
            }
        }
    }

    /// Offers `batch` up to `max_attempts` times with backoff.
    async fn attempt(&self, batch: Arc<[Event]>) -> Outcome {
        let name = self.name;
        let retry = &self.shared.config.retry;
        let attempts = retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = handle_isolated(self.consumer.clone(), batch.clone()).await;
            metrics::histogram!("starling_bus_handle_seconds", "consumer" => name)
                .record(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(()) => {
                    metrics::counter!("starling_bus_events_handled_total", "consumer" => name)
                        .increment(batch.len() as u64);
                    return Outcome::Handled;
                }
                Err(e) => e,
            };
            if attempt >= attempts {
                return Outcome::Failed(error);
            }
            let wait = backoff(retry, attempt);
            tracing::warn!(
                consumer = name,
                event_id = batch.first().map(|e| e.id.as_i64()),
                batch_len = batch.len(),
                attempt,
                error = %error,
                retry_in_ms = wait.as_millis() as u64,
                "consumer failed a batch; retrying"
            );
            metrics::counter!("starling_bus_redeliveries_total", "consumer" => name)
                .increment(batch.len() as u64);
            if pause(&self.stop, wait).await {
                return Outcome::Stopped;
            }
            attempt += 1;
        }
    }

    /// Gives events back to JetStream at once, for another process.
    async fn hand_back(&self, work: &[(Message, Event)]) {
        tracing::info!(
            consumer = self.name,
            events = work.len(),
            "stopping; handing unhandled events back to NATS"
        );
        self.settle(work.iter().map(|(m, _)| m), AckKind::Nak(None))
            .await;
    }

    async fn dead_letter(&self, message: &Message, event: &Event, error: &str) {
        let name = self.name;
        tracing::error!(
            consumer = name,
            event_id = %event.id,
            event_kind = event.kind.name(),
            error,
            "event keeps failing; dead-lettered"
        );
        metrics::counter!("starling_bus_dead_letters_total", "consumer" => name).increment(1);
        self.shared.dead_letters.record(name, event, error).await;
        self.shared
            .copy_to_dead_letters(name, message, Some(event.id), error)
            .await;
        self.settle([message].into_iter(), AckKind::Term).await;
    }

    /// A message that is not an event (another writer on our subjects, or
    /// an incompatible release): nothing can handle it, and the dead-letter
    /// sink takes events only, so it goes to the dead-letter stream alone.
    async fn dead_letter_undecodable(&self, message: &Message) {
        let name = self.name;
        tracing::error!(
            consumer = name,
            subject = %message.subject,
            bytes = message.payload.len(),
            "a message on the event bus is not an event; dead-lettered"
        );
        metrics::counter!("starling_bus_dead_letters_total", "consumer" => name).increment(1);
        self.shared
            .copy_to_dead_letters(name, message, None, "not an event")
            .await;
        self.settle([message].into_iter(), AckKind::Term).await;
    }

    /// Sends `kind` for every message and waits until the server confirmed
    /// each. A failed ack only means the event comes again (consumers are
    /// idempotent), so it is logged, not retried.
    async fn settle<'m>(&self, messages: impl Iterator<Item = &'m Message>, kind: AckKind) {
        let acks = messages.map(|m| m.double_ack_with(kind));
        let failed = futures_util::future::join_all(acks)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>();
        if let Some(e) = failed.first() {
            tracing::warn!(
                consumer = self.name,
                failed = failed.len(),
                ack = ?kind,
                error = %e,
                "NATS did not confirm an acknowledgement; the events may be delivered again"
            );
        }
    }
}

/// Tells JetStream that the worker is still on some events (`+WPI`), so
/// their ack wait starts again, until dropped.
struct Lease(JoinHandle<()>);

impl Lease {
    fn hold(client: async_nats::Client, replies: Vec<Subject>, every: Duration) -> Self {
        let every = every.max(Duration::from_millis(10));
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for reply in &replies {
                    if client
                        .publish(reply.clone(), AckKind::Progress.into())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one `handle` call in its own task so a panic becomes an error; the
/// task is aborted if the caller is dropped.
async fn handle_isolated(
    consumer: Arc<dyn Consumer>,
    batch: Arc<[Event]>,
) -> Result<(), ConsumerError> {
    let mut task = AbortOnDrop(tokio::spawn(async move { consumer.handle(&batch).await }));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ConsumerError("consumer panicked".to_owned())),
        Err(e) => Err(ConsumerError(format!("consumer task ended: {e}"))),
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_without_credentials() {
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redacted("nats://user:secret@nats.example:4222,tls://tok@other:4222"),
            "nats://***@nats.example:4222,tls://***@other:4222"
        );
        let config = NatsBusConfig::new("nats://u:hunter2@localhost:4222");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn configuration_is_checked() {
        let good = NatsBusConfig::new("nats://localhost");
        assert!(good.validate().is_ok());
        let bad = |f: fn(&mut NatsBusConfig)| {
            let mut c = good.clone();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.stream = "has.dot".into()));
        assert!(bad(|c| c.stream = String::new()));
        assert!(bad(|c| c.subject_prefix = "a.*".into()));
        assert!(bad(|c| c.subject_prefix = "a.".into()));
        assert!(bad(|c| c.batch = 0));
        assert!(bad(
            |c| c.duplicate_window = Duration::from_secs(10 * 24 * 3600)
        ));
        assert_eq!(good.dead_letter_stream(), "STARLING_EVENTS_DEAD");
        assert_eq!(
            good.dead_letter_subject("fanout"),
            "starling.events-dead.fanout"
        );
    }

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
        let long = "é".repeat(MAX_ERROR_HEADER);
        let cut = header_safe(&long);
        assert!(cut.len() <= MAX_ERROR_HEADER && cut.chars().all(|c| c == 'é'));
    }
}
