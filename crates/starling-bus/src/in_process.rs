//! The in-process event bus: the embedded shape's adapter.
//!
//! [`InProcessBus::publish`] hands the events straight to the consumer
//! groups of this process and returns only once every group has handled
//! them (or dead-lettered the ones it could not). That is what makes the
//! outbox relay safe without a broker: the relay forgets outbox rows only
//! after `publish` returns `Ok`, so a crash in the middle leaves the rows in
//! the outbox and they are delivered again after the restart (consumers are
//! idempotent, so a second delivery changes nothing).
//!
//! Shape of one `publish`:
//!
//! - each group gets one batch: the events it [`wants`](Consumer::wants), in
//!   publish order. Groups run concurrently (one task each), so a slow or
//!   failing group delays `publish` but never another group's deliveries;
//! - one group handles one batch at a time, in the order `publish` calls
//!   reached it, even if several callers publish at once;
//! - a failing batch is retried with exponential backoff
//!   ([`RetryPolicy`]); if it still fails after `max_attempts`, its events
//!   are tried one at a time (each up to `max_attempts`), so one poison event
//!   does not sink its neighbours, and each event that still fails goes to
//!   [`DeadLetters`] and is skipped;
//! - a consumer that panics is treated like one that returned an error (each
//!   attempt runs in its own task), so a panicking event is dead-lettered
//!   rather than wedging the relay.
//!
//! **Do not cancel `publish` midway.** Dropping its future aborts the
//! deliveries in flight at their next await point: nothing is lost (the
//! caller still holds the events and publishes them again, which is how the
//! relay behaves after a crash), but consumer work is abandoned half done
//! and redelivered. The relay awaits `publish` to completion, and shutdown
//! should let the current `publish` finish (with a deadline) before exiting.
//!
//! Metrics (label `consumer`): `starling_bus_events_handled_total`,
//! `starling_bus_redeliveries_total` (deliveries of an event beyond its
//! first), `starling_bus_dead_letters_total`, and the histogram
//! `starling_bus_handle_seconds` (one observation per `handle` call).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use starling_domain::Event;
use tokio::task::{JoinHandle, JoinSet};

use crate::{BusResult, Consumer, ConsumerError, DeadLetters, EventBus, RetryPolicy};

/// The embedded shape's event bus: consumers run in this process, and
/// `publish` returns when they have handled the events.
pub struct InProcessBus {
    retry: RetryPolicy,
    dead_letters: Arc<dyn DeadLetters>,
    groups: RwLock<Vec<Arc<Group>>>,
}

/// One subscribed consumer group.
struct Group {
    consumer: Arc<dyn Consumer>,
    name: &'static str,
    /// Held while the group handles a batch, so its batches never overlap
    /// and keep the order in which `publish` calls reached it (tokio's mutex
    /// is fair).
    turn: tokio::sync::Mutex<()>,
}

impl InProcessBus {
    pub fn new(retry: RetryPolicy, dead_letters: Arc<dyn DeadLetters>) -> Self {
        Self {
            retry,
            dead_letters,
            groups: RwLock::new(Vec::new()),
        }
    }

    /// The names of the subscribed groups, in subscription order.
    pub fn consumer_names(&self) -> Vec<&'static str> {
        self.snapshot().iter().map(|g| g.name).collect()
    }

    fn snapshot(&self) -> Vec<Arc<Group>> {
        // The list is only ever pushed to, so a panic elsewhere cannot have
        // left it half-written.
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: &[Event]) -> BusResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut deliveries = JoinSet::new();
        for group in self.snapshot() {
            let batch: Arc<[Event]> = events
                .iter()
                .filter(|e| group.consumer.wants(&e.kind))
                .cloned()
                .collect();
            if batch.is_empty() {
                continue;
            }
            let delivery = Delivery {
                group,
                retry: self.retry,
                dead_letters: self.dead_letters.clone(),
            };
            deliveries.spawn(delivery.run(batch));
        }
        while let Some(done) = deliveries.join_next().await {
            if let Err(e) = done {
                // `Delivery::run` catches consumer panics itself; this is a
                // panic in the bus (or the dead-letter sink). The events may
                // not have been handled, so the caller must keep them.
                tracing::error!(error = %e, "event delivery task failed");
                return Err(crate::BusError::Unavailable(format!(
                    "event delivery task failed: {e}"
                )));
            }
        }
        Ok(())
    }

    /// Subscribes a group. Subscribing a second consumer under a name that is
    /// already subscribed is a wiring bug: it is logged and ignored (the
    /// first consumer stays), and `Ok` is returned, so a group never
    /// receives each event twice from one process.
    async fn subscribe(&self, consumer: Arc<dyn Consumer>) -> BusResult<()> {
        let name = consumer.name();
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if groups.iter().any(|g| g.name == name) {
            tracing::warn!(
                consumer = name,
                "consumer group already subscribed; ignoring"
            );
            return Ok(());
        }
        groups.push(Arc::new(Group {
            consumer,
            name,
            turn: tokio::sync::Mutex::new(()),
        }));
        Ok(())
    }
}

/// Backoff before retry number `retry` (1 for the first retry): the first
/// backoff doubled each time, never above the maximum.
pub fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    policy
        .first_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff)
}

/// One group's share of one `publish`.
struct Delivery {
    group: Arc<Group>,
    retry: RetryPolicy,
    dead_letters: Arc<dyn DeadLetters>,
}

impl Delivery {
    async fn run(self, batch: Arc<[Event]>) {
        let _turn = self.group.turn.lock().await;
        let error = match self.attempt(batch.clone()).await {
            Ok(()) => return,
            Err(e) => e,
        };
        // The batch keeps failing: isolate the culprits, one event at a time.
        // A batch of one was just tried alone already.
        if let [only] = &*batch {
            return self.dead_letter(only, &error).await;
        }
        for event in batch.iter() {
            metrics::counter!("starling_bus_redeliveries_total", "consumer" => self.group.name)
                .increment(1);
            if let Err(e) = self.attempt(Arc::from([event.clone()])).await {
                self.dead_letter(event, &e).await;
            }
        }
    }

    async fn dead_letter(&self, event: &Event, error: &ConsumerError) {
        let name = self.group.name;
        tracing::error!(
            consumer = name,
            event_id = %event.id,
            event_kind = event.kind.name(),
            error = %error,
            "event keeps failing; dead-lettered"
        );
        metrics::counter!("starling_bus_dead_letters_total", "consumer" => name).increment(1);
        self.dead_letters.record(name, event, &error.0).await;
    }

    /// Offers `batch` up to `max_attempts` times with backoff; the last error
    /// if every attempt failed.
    async fn attempt(&self, batch: Arc<[Event]>) -> Result<(), ConsumerError> {
        let name = self.group.name;
        let attempts = self.retry.max_attempts.max(1);
        let first_id = batch.first().map(|e| e.id);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = handle_isolated(self.group.consumer.clone(), batch.clone()).await;
            metrics::histogram!("starling_bus_handle_seconds", "consumer" => name)
                .record(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(()) => {
                    metrics::counter!("starling_bus_events_handled_total", "consumer" => name)
                        .increment(batch.len() as u64);
                    return Ok(());
                }
                Err(e) => e,
            };
            if attempt >= attempts {
                return Err(error);
            }
            let wait = backoff(&self.retry, attempt);
            tracing::warn!(
                consumer = name,
                event_id = first_id.map(|id| id.as_i64()),
                batch_len = batch.len(),
                attempt,
                error = %error,
                retry_in_ms = wait.as_millis() as u64,
                "consumer failed a batch; retrying"
            );
            metrics::counter!("starling_bus_redeliveries_total", "consumer" => name)
                .increment(batch.len() as u64);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Runs one `handle` call in its own task so a panic becomes an error; the
/// task is aborted if the caller is dropped, so nothing outlives `publish`.
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
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use starling_domain::{EventKind, Id};
    use tokio::sync::Barrier;

    use super::*;

    const FAST: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };

    #[derive(Default)]
    struct Letters(Mutex<Vec<(String, Id, String)>>);

    #[async_trait]
    impl DeadLetters for Letters {
        async fn record(&self, consumer: &str, event: &Event, error: &str) {
            self.0
                .lock()
                .unwrap()
                .push((consumer.to_owned(), event.id, error.to_owned()));
        }
    }

    fn event(n: i64) -> Event {
        Event {
            id: Id::from_i64(n),
            created_at_ms: 0,
            kind: EventKind::StatusCreated {
                status_id: Id::from_i64(n),
                author_id: Id::from_i64(1),
            },
        }
    }

    /// Records what it handled; panics on event 13; waits at `barrier`
    /// first if there is one.
    struct Probe {
        name: &'static str,
        seen: Mutex<Vec<Id>>,
        barrier: Option<Arc<Barrier>>,
        calls: AtomicU32,
    }

    impl Probe {
        fn new(name: &'static str, barrier: Option<Arc<Barrier>>) -> Arc<Self> {
            Arc::new(Self {
                name,
                seen: Mutex::new(vec![]),
                barrier,
                calls: AtomicU32::new(0),
            })
        }
    }

    #[async_trait]
    impl Consumer for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn wants(&self, _: &EventKind) -> bool {
            true
        }
        async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(b) = &self.barrier {
                b.wait().await;
            }
            if events.iter().any(|e| e.id == Id::from_i64(13)) {
                panic!("unlucky event");
            }
            self.seen
                .lock()
                .unwrap()
                .extend(events.iter().map(|e| e.id));
            Ok(())
        }
    }

    #[tokio::test]
    async fn publish_returns_after_every_group_handled() {
        let bus = InProcessBus::new(FAST, Arc::new(Letters::default()));
        let (a, b) = (Probe::new("a", None), Probe::new("b", None));
        bus.subscribe(a.clone()).await.unwrap();
        bus.subscribe(b.clone()).await.unwrap();
        bus.publish(&[event(1), event(2)]).await.unwrap();
        let both = vec![Id::from_i64(1), Id::from_i64(2)];
        assert_eq!(*a.seen.lock().unwrap(), both);
        assert_eq!(*b.seen.lock().unwrap(), both);
    }

    #[tokio::test]
    async fn groups_run_concurrently() {
        // Each handler waits for the other: run one after the other, they
        // would wait forever.
        let barrier = Arc::new(Barrier::new(2));
        let bus = InProcessBus::new(FAST, Arc::new(Letters::default()));
        bus.subscribe(Probe::new("a", Some(barrier.clone())))
            .await
            .unwrap();
        bus.subscribe(Probe::new("b", Some(barrier))).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), bus.publish(&[event(1)]))
            .await
            .expect("groups ran concurrently")
            .unwrap();
    }

    #[tokio::test]
    async fn a_panicking_consumer_dead_letters_the_event() {
        let letters = Arc::new(Letters::default());
        let bus = InProcessBus::new(FAST, letters.clone());
        let probe = Probe::new("p", None);
        bus.subscribe(probe.clone()).await.unwrap();
        bus.publish(&[event(12), event(13), event(14)])
            .await
            .unwrap();
        assert_eq!(
            *probe.seen.lock().unwrap(),
            vec![Id::from_i64(12), Id::from_i64(14)]
        );
        let letters = letters.0.lock().unwrap().clone();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].0, "p");
        assert_eq!(letters[0].1, Id::from_i64(13));
        assert!(letters[0].2.contains("panicked"), "{}", letters[0].2);
        // 3 batch attempts, then 3 x event 13 and once each neighbour.
        assert_eq!(probe.calls.load(Ordering::SeqCst), 3 + 3 + 2);
    }

    #[tokio::test]
    async fn a_duplicate_group_name_is_ignored() {
        let bus = InProcessBus::new(FAST, Arc::new(Letters::default()));
        let (first, second) = (Probe::new("same", None), Probe::new("same", None));
        bus.subscribe(first.clone()).await.unwrap();
        bus.subscribe(second.clone()).await.unwrap();
        assert_eq!(bus.consumer_names(), vec!["same"]);
        bus.publish(&[event(1)]).await.unwrap();
        assert_eq!(first.seen.lock().unwrap().len(), 1);
        assert!(second.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn nothing_to_do_returns_at_once() {
        let bus = InProcessBus::new(FAST, Arc::new(Letters::default()));
        bus.publish(&[event(1)]).await.unwrap();
        let probe = Probe::new("p", None);
        bus.subscribe(probe.clone()).await.unwrap();
        bus.publish(&[]).await.unwrap();
        assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let policy = RetryPolicy {
            max_attempts: 10,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        };
        let waits: Vec<u128> = (1..=5).map(|r| backoff(&policy, r).as_millis()).collect();
        assert_eq!(waits, vec![20, 40, 80, 100, 100]);
        assert_eq!(backoff(&policy, 60), Duration::from_millis(100));
    }
}
