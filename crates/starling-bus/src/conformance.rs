//! The event-bus conformance suite: what every [`EventBus`] adapter must do.
//!
//! Each case is a function taking a fresh bus with no subscribers and the
//! dead-letter sink that bus was built with. An adapter's tests run them all
//! with [`bus_conformance_suite!`]:
//!
//! ```ignore
//! async fn fresh(dead_letters: Arc<dyn DeadLetters>) -> (Box<dyn EventBus>, Guard) { ... }
//! starling_bus::bus_conformance_suite!(fresh);
//! ```
//!
//! The cases are adapter-neutral. The in-process bus handles events before
//! `publish` returns; a broker (NATS JetStream) returns as soon as it has
//! stored them and delivers later. So every case waits for the effect it
//! expects, polling with a deadline, and never assumes delivery happened
//! by the time `publish` returned. Delivery is at least once, so the cases
//! allow duplicates and check order by first sighting.
//!
//! What the adapter's test must provide: a bus isolated from every other
//! test (its own stream, say), and a retry policy that allows at least three
//! attempts and retries fast (a few milliseconds), so failure cases finish
//! quickly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use starling_domain::{Event, EventKind, Id, IdGenerator, ShardId};

use crate::{Consumer, ConsumerError, DeadLetters, EventBus};

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async
/// fn taking the dead-letter sink (`Arc<dyn DeadLetters>`) and returning
/// `(bus, guard)`; the guard lives as long as the test.
///
/// An adapter that needs a server the machine may not have uses the
/// `optional` form: `$make` then returns `Option<(bus, guard)>`, and `None`
/// (the server is missing; `$make` says so) ends the case early, passing.
///
/// ```ignore
/// async fn fresh(dead_letters: Arc<dyn DeadLetters>) -> Option<(Box<dyn EventBus>, Guard)> { ... }
/// starling_bus::bus_conformance_suite!(optional fresh);
/// ```
#[macro_export]
macro_rules! bus_conformance_suite {
    (@cases $mode:ident $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let dead = std::sync::Arc::new(
                    $crate::conformance::RecordedDeadLetters::default(),
                );
                let sink: std::sync::Arc<dyn $crate::DeadLetters> = dead.clone();
                let made = $crate::bus_conformance_suite!(@make $mode $make, sink);
                let Some((bus, _guard)) = made else { return };
                $crate::conformance::$case(&*bus, dead).await;
            }
        )*
    };
    (@make required $make:path, $sink:ident) => {
        Some($make($sink).await)
    };
    (@make optional $make:path, $sink:ident) => {
        $make($sink).await
    };
    (@all $mode:ident $make:path) => {
        $crate::bus_conformance_suite!(@cases $mode $make;
            empty_publishes_and_no_subscribers_are_fine,
            each_group_gets_what_it_wants_in_order,
            failing_group_does_not_block_others,
            failed_batches_are_delivered_again,
            poison_event_is_dead_lettered_and_neighbours_handled,
            panicking_consumer_counts_as_failing,
            many_publishes_deliver_everything_in_order,
            late_subscribers_get_later_events,
        );
    };
    (optional $make:path) => {
        $crate::bus_conformance_suite!(@all optional $make);
    };
    ($make:path) => {
        $crate::bus_conformance_suite!(@all required $make);
    };
}

/// How long a case waits for an effect before failing.
const DEADLINE: Duration = Duration::from_secs(5);
/// How often it looks.
const POLL: Duration = Duration::from_millis(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A dead-letter sink that remembers what it was given.
#[derive(Default)]
pub struct RecordedDeadLetters {
    letters: Mutex<Vec<(String, Id)>>,
}

impl RecordedDeadLetters {
    /// `(consumer, event id)` of every dead letter so far.
    pub fn letters(&self) -> Vec<(String, Id)> {
        lock(&self.letters).clone()
    }

    fn ids_of(&self, consumer: &str) -> HashSet<Id> {
        lock(&self.letters)
            .iter()
            .filter(|(c, _)| c == consumer)
            .map(|(_, id)| *id)
            .collect()
    }
}

#[async_trait]
impl DeadLetters for RecordedDeadLetters {
    async fn record(&self, consumer: &str, event: &Event, _error: &str) {
        lock(&self.letters).push((consumer.to_owned(), event.id));
    }
}

/// How a [`Recorder`] fails.
pub enum Failure {
    /// Never.
    Never,
    /// Its first `n` `handle` calls.
    FirstCalls(AtomicU32),
    /// Every batch containing one of these events.
    Poison(HashSet<Id>),
    /// Every batch.
    Always,
    /// Panics on every batch containing one of these events.
    Panic(HashSet<Id>),
}

/// Which events a [`Recorder`] wants.
#[derive(Clone, Copy)]
pub enum Wants {
    All,
    /// `StatusCreated` only.
    StatusCreated,
}

/// A test consumer: records the ids of the events of every batch it handled
/// successfully, in order, and fails as told.
pub struct Recorder {
    name: &'static str,
    wants: Wants,
    failure: Failure,
    handled: Mutex<Vec<Id>>,
    calls: AtomicU32,
}

impl Recorder {
    pub fn new(name: &'static str, wants: Wants, failure: Failure) -> Arc<Self> {
        Arc::new(Self {
            name,
            wants,
            failure,
            handled: Mutex::new(Vec::new()),
            calls: AtomicU32::new(0),
        })
    }

    /// Ids of the events handled successfully, in handling order, with any
    /// redelivered duplicates.
    pub fn handled(&self) -> Vec<Id> {
        lock(&self.handled).clone()
    }

    /// Ids handled, each once, in order of first sighting.
    pub fn handled_once(&self) -> Vec<Id> {
        let mut seen = HashSet::new();
        self.handled()
            .into_iter()
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// How many times `handle` was called.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn wants(&self, kind: &EventKind) -> bool {
        match self.wants {
            Wants::All => true,
            Wants::StatusCreated => matches!(kind, EventKind::StatusCreated { .. }),
        }
    }

    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fail = match &self.failure {
            Failure::Never => false,
            Failure::FirstCalls(left) => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
            Failure::Poison(ids) => events.iter().any(|e| ids.contains(&e.id)),
            Failure::Always => true,
            Failure::Panic(ids) => {
                assert!(
                    !events.iter().any(|e| ids.contains(&e.id)),
                    "{} panics on this batch",
                    self.name
                );
                false
            }
        };
        if fail {
            return Err(ConsumerError(format!("{} refuses this batch", self.name)));
        }
        lock(&self.handled).extend(events.iter().map(|e| e.id));
        Ok(())
    }
}

/// Makes events with increasing ids.
pub struct Events {
    ids: IdGenerator,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            ids: IdGenerator::new(),
        }
    }
}

impl Events {
    fn id(&self) -> Id {
        self.ids.next(ShardId::for_key("conformance"))
    }

    /// A `StatusCreated` event.
    pub fn created(&self) -> Event {
        let (status_id, author_id) = (self.id(), self.id());
        self.event(EventKind::StatusCreated {
            status_id,
            author_id,
        })
    }

    /// A `Favourited` event.
    pub fn favourited(&self) -> Event {
        let (account_id, status_id, author_id) = (self.id(), self.id(), self.id());
        self.event(EventKind::Favourited {
            account_id,
            status_id,
            author_id,
        })
    }

    fn event(&self, kind: EventKind) -> Event {
        let id = self.id();
        Event {
            id,
            created_at_ms: id.unix_ms() as i64,
            kind,
        }
    }
}

fn ids(events: &[Event]) -> Vec<Id> {
    events.iter().map(|e| e.id).collect()
}

/// Waits until `done` holds, failing the test after [`DEADLINE`].
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `consumer` has handled every one of `expected`.
async fn handled_all(consumer: &Recorder, expected: &[Id]) {
    eventually(&format!("{} handled every event", consumer.name), || {
        let handled: HashSet<Id> = consumer.handled().into_iter().collect();
        expected.iter().all(|id| handled.contains(id))
    })
    .await;
}

async fn subscribe(bus: &dyn EventBus, consumer: &Arc<Recorder>) {
    bus.subscribe(consumer.clone()).await.expect("subscribe");
}

async fn publish(bus: &dyn EventBus, events: &[Event]) {
    bus.publish(events).await.expect("publish");
}

pub async fn empty_publishes_and_no_subscribers_are_fine(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let events = Events::default();
    publish(bus, &[]).await;
    let early = [events.created(), events.favourited()];
    publish(bus, &early).await;

    let all = Recorder::new("all", Wants::All, Failure::Never);
    subscribe(bus, &all).await;
    publish(bus, &[]).await;
    let later = [events.created()];
    publish(bus, &later).await;
    handled_all(&all, &ids(&later)).await;
    // What was published before the subscription need not arrive.
    assert!(all.handled_once().ends_with(&ids(&later)));
    assert!(dead.letters().is_empty());
}

pub async fn each_group_gets_what_it_wants_in_order(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let all = Recorder::new("all", Wants::All, Failure::Never);
    let created = Recorder::new("created", Wants::StatusCreated, Failure::Never);
    subscribe(bus, &all).await;
    subscribe(bus, &created).await;

    let events = Events::default();
    let batch = [
        events.created(),
        events.favourited(),
        events.created(),
        events.favourited(),
        events.created(),
    ];
    publish(bus, &batch).await;

    let wanted: Vec<Id> = batch
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StatusCreated { .. }))
        .map(|e| e.id)
        .collect();
    handled_all(&all, &ids(&batch)).await;
    handled_all(&created, &wanted).await;
    assert_eq!(all.handled_once(), ids(&batch), "publish order");
    // Delivery is in order, so once the last wanted event is in, anything
    // unwanted would have arrived before it.
    assert_eq!(
        created.handled_once(),
        wanted,
        "only what it wants, in order"
    );
    assert!(dead.letters().is_empty());
}

pub async fn failing_group_does_not_block_others(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let broken = Recorder::new("broken", Wants::All, Failure::Always);
    let healthy = Recorder::new("healthy", Wants::All, Failure::Never);
    subscribe(bus, &broken).await;
    subscribe(bus, &healthy).await;

    let events = Events::default();
    let first = [events.created(), events.favourited()];
    let second = [events.created()];
    publish(bus, &first).await;
    publish(bus, &second).await;

    let every: Vec<Id> = ids(&first).into_iter().chain(ids(&second)).collect();
    handled_all(&healthy, &every).await;
    assert_eq!(healthy.handled_once(), every);
    // The broken group gives up on each event in the end, and only its own.
    eventually("the broken group's events are dead letters", || {
        let lost = dead.ids_of("broken");
        every.iter().all(|id| lost.contains(id))
    })
    .await;
    assert!(broken.handled().is_empty());
    assert!(dead.ids_of("healthy").is_empty());
}

pub async fn failed_batches_are_delivered_again(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let flaky = Recorder::new("flaky", Wants::All, Failure::FirstCalls(AtomicU32::new(2)));
    subscribe(bus, &flaky).await;

    let events = Events::default();
    let batch = [events.created(), events.favourited(), events.created()];
    publish(bus, &batch).await;

    handled_all(&flaky, &ids(&batch)).await;
    assert!(flaky.calls() >= 3, "failed twice, then handled");
    assert_eq!(flaky.handled_once(), ids(&batch));
    assert!(
        dead.letters().is_empty(),
        "nothing lost to a passing failure"
    );
}

pub async fn poison_event_is_dead_lettered_and_neighbours_handled(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let events = Events::default();
    let batch = [
        events.created(),
        events.created(),
        events.favourited(),
        events.created(),
    ];
    let poison = batch[1].id;
    let picky = Recorder::new(
        "picky",
        Wants::All,
        Failure::Poison(HashSet::from([poison])),
    );
    subscribe(bus, &picky).await;
    publish(bus, &batch).await;

    let neighbours: Vec<Id> = ids(&batch).into_iter().filter(|id| *id != poison).collect();
    handled_all(&picky, &neighbours).await;
    eventually("the poison event is a dead letter", || {
        dead.letters().contains(&("picky".to_owned(), poison))
    })
    .await;
    assert_eq!(picky.handled_once(), neighbours, "neighbours in order");
    assert_eq!(
        dead.ids_of("picky"),
        HashSet::from([poison]),
        "only the poison event is dead-lettered"
    );

    // The group keeps working after a dead letter.
    let after = [events.created()];
    publish(bus, &after).await;
    handled_all(&picky, &ids(&after)).await;
}

pub async fn panicking_consumer_counts_as_failing(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let events = Events::default();
    let batch = [events.created(), events.favourited(), events.created()];
    let bomb = batch[1].id;
    let fragile = Recorder::new("fragile", Wants::All, Failure::Panic(HashSet::from([bomb])));
    let calm = Recorder::new("calm", Wants::All, Failure::Never);
    subscribe(bus, &fragile).await;
    subscribe(bus, &calm).await;
    publish(bus, &batch).await;

    // A panic is a failure like any other: the event that causes it ends
    // up a dead letter, its neighbours are handled, other groups and later
    // events are unaffected.
    let neighbours: Vec<Id> = ids(&batch).into_iter().filter(|id| *id != bomb).collect();
    handled_all(&fragile, &neighbours).await;
    handled_all(&calm, &ids(&batch)).await;
    eventually("the event that panics is a dead letter", || {
        dead.letters().contains(&("fragile".to_owned(), bomb))
    })
    .await;
    assert_eq!(fragile.handled_once(), neighbours, "neighbours in order");
    assert_eq!(dead.ids_of("fragile"), HashSet::from([bomb]));
    assert!(dead.ids_of("calm").is_empty());

    let after = [events.created()];
    publish(bus, &after).await;
    handled_all(&fragile, &ids(&after)).await;
}

pub async fn many_publishes_deliver_everything_in_order(
    bus: &dyn EventBus,
    dead: Arc<RecordedDeadLetters>,
) {
    let all = Recorder::new("all", Wants::All, Failure::Never);
    let created = Recorder::new("created", Wants::StatusCreated, Failure::Never);
    subscribe(bus, &all).await;
    subscribe(bus, &created).await;

    let events = Events::default();
    let mut published = Vec::new();
    for round in 0..20 {
        let batch: Vec<Event> = (0..50)
            .map(|i| {
                if (round + i) % 3 == 0 {
                    events.favourited()
                } else {
                    events.created()
                }
            })
            .collect();
        publish(bus, &batch).await;
        published.extend(batch);
    }
    assert_eq!(published.len(), 1000);

    let wanted: Vec<Id> = published
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StatusCreated { .. }))
        .map(|e| e.id)
        .collect();
    handled_all(&all, &ids(&published)).await;
    handled_all(&created, &wanted).await;
    assert_eq!(all.handled_once(), ids(&published), "order per group");
    assert_eq!(created.handled_once(), wanted, "order per group");
    assert!(dead.letters().is_empty());
}

pub async fn late_subscribers_get_later_events(bus: &dyn EventBus, dead: Arc<RecordedDeadLetters>) {
    let early = Recorder::new("early", Wants::All, Failure::Never);
    let late = Recorder::new("late", Wants::All, Failure::Never);
    subscribe(bus, &early).await;

    let events = Events::default();
    let before = [events.created()];
    publish(bus, &before).await;
    handled_all(&early, &ids(&before)).await;

    subscribe(bus, &late).await;
    let after = [events.created(), events.favourited()];
    publish(bus, &after).await;

    handled_all(&early, &ids(&after)).await;
    handled_all(&late, &ids(&after)).await;
    let mut both = ids(&before);
    both.extend(ids(&after));
    assert_eq!(early.handled_once(), both);
    // Events from before the subscription need not reach the late group,
    // but it may see them (a broker may replay what it still holds).
    assert!(late.handled_once().ends_with(&ids(&after)));
    assert!(dead.letters().is_empty());
}

// ------------------------------------------------------------------ live

/// Generates one `#[tokio::test]` per live-bus conformance case. `$make` is
/// an async fn returning `Option<(a, b, guard)>`: two handles on one
/// deployment, as two processes would hold them (clones of one in-process
/// adapter; two connections to one NATS), or `None` when the server is
/// missing (`$make` says so).
#[macro_export]
macro_rules! live_conformance_suite {
    ($make:path) => {
        $crate::live_conformance_suite!(@cases $make;
            live_messages_arrive_in_order_across_processes,
            live_topics_are_separate,
            live_every_subscription_hears_its_topic,
            live_nobody_listening_is_fine,
            live_dropped_subscriptions_stop_and_new_ones_start_fresh,
            live_invalid_topics_are_refused,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((a, b, _guard)) = $make().await else { return };
                $crate::conformance::$case(&*a, &*b).await;
            }
        )*
    };
}

/// Waits for the next message of `sub`, failing after [`DEADLINE`].
pub async fn live_next(sub: &mut Box<dyn crate::LiveSubscription>) -> bytes::Bytes {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a live message within the deadline")
        .expect("the subscription is open")
}

/// Whether `sub` stays quiet for a moment.
pub async fn live_quiet(sub: &mut Box<dyn crate::LiveSubscription>) -> bool {
    tokio::time::timeout(Duration::from_millis(200), sub.next())
        .await
        .is_err()
}

fn topic(name: &str) -> String {
    // Unique per run, so cases sharing a NATS server never hear each other.
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    format!("test-{run}.{name}")
}

pub async fn live_messages_arrive_in_order_across_processes(
    a: &dyn crate::LiveBus,
    b: &dyn crate::LiveBus,
) {
    let t = topic("order");
    let mut sub = b.subscribe(&t).await.expect("subscribe");
    for i in 0..200u32 {
        a.publish(&t, bytes::Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    for i in 0..200u32 {
        assert_eq!(live_next(&mut sub).await, i.to_string().as_bytes());
    }
    assert!(
        live_quiet(&mut sub).await,
        "nothing more than was published"
    );
}

pub async fn live_topics_are_separate(a: &dyn crate::LiveBus, b: &dyn crate::LiveBus) {
    let (one, two) = (topic("sep.one"), topic("sep.two"));
    let mut sub_one = b.subscribe(&one).await.expect("subscribe");
    let mut sub_two = a.subscribe(&two).await.expect("subscribe");
    a.publish(&one, "for one".into()).await.expect("publish");
    b.publish(&two, "for two".into()).await.expect("publish");
    assert_eq!(live_next(&mut sub_one).await, "for one".as_bytes());
    assert_eq!(live_next(&mut sub_two).await, "for two".as_bytes());
    assert!(live_quiet(&mut sub_one).await);
    assert!(live_quiet(&mut sub_two).await);
}

pub async fn live_every_subscription_hears_its_topic(
    a: &dyn crate::LiveBus,
    b: &dyn crate::LiveBus,
) {
    let t = topic("many");
    let mut subs = vec![
        a.subscribe(&t).await.expect("subscribe"),
        a.subscribe(&t).await.expect("subscribe"),
        b.subscribe(&t).await.expect("subscribe"),
    ];
    a.publish(&t, "hello".into()).await.expect("publish");
    for sub in &mut subs {
        assert_eq!(live_next(sub).await, "hello".as_bytes());
    }
}

pub async fn live_nobody_listening_is_fine(a: &dyn crate::LiveBus, _b: &dyn crate::LiveBus) {
    for i in 0..100u32 {
        a.publish(&topic(&format!("nobody.{i}")), "x".into())
            .await
            .expect("a publish nobody hears is fine");
    }
}

pub async fn live_dropped_subscriptions_stop_and_new_ones_start_fresh(
    a: &dyn crate::LiveBus,
    b: &dyn crate::LiveBus,
) {
    let t = topic("again");
    let sub = b.subscribe(&t).await.expect("subscribe");
    a.publish(&t, "old".into()).await.expect("publish");
    drop(sub);
    a.publish(&t, "unheard".into()).await.expect("publish");
    let mut again = b.subscribe(&t).await.expect("subscribe again");
    a.publish(&t, "new".into()).await.expect("publish");
    assert_eq!(
        live_next(&mut again).await,
        "new".as_bytes(),
        "a new subscription hears only what is published after it"
    );
}

pub async fn live_invalid_topics_are_refused(a: &dyn crate::LiveBus, _b: &dyn crate::LiveBus) {
    for bad in ["", "a..b", "a.*", "a.>", "with space", "tag.\u{e9}"] {
        assert!(a.subscribe(bad).await.is_err(), "subscribe {bad:?}");
        assert!(a.publish(bad, "x".into()).await.is_err(), "publish {bad:?}");
    }
}
