//! The NATS JetStream bus against the event-bus conformance suite, and what
//! only a broker does: dropping duplicate publishes, redelivering the events
//! of a worker that died, failing fast while NATS is down and delivering when
//! it returns, keeping dead letters in a stream.
//!
//! Runs against the NATS server the test kit finds (`STARLING_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`, JetStream enabled); each test makes its
//! own streams and deletes them at the end. Without a server the tests say
//! they are skipped and pass (fail, with `STARLING_TEST_REQUIRE_SERVICES=1`).
//! The restart test runs a private `nats-server` on a free port.
#![cfg(feature = "nats")]

use std::collections::HashSet;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_trait::async_trait;
use starling_bus::conformance::{Events, Failure, RecordedDeadLetters, Recorder, Wants};
use starling_bus::{
    BusError, Consumer, ConsumerError, DeadLetters, EventBus, NatsBus, NatsBusConfig, RetryPolicy,
};
use starling_domain::{Event, EventKind, Id};
use starling_testkit::Service;

/// Fast retries, so the failure cases take milliseconds.
const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    first_backoff: Duration::from_millis(1),
    max_backoff: Duration::from_millis(4),
};
/// Short, so redelivery after a worker died takes a second.
const ACK_WAIT: Duration = Duration::from_secs(1);
/// How long the adapter-specific cases wait for an effect.
const DEADLINE: Duration = Duration::from_secs(10);

/// A configuration with streams and subjects no other test uses.
fn config(url: &str, test: &str) -> NatsBusConfig {
    let unique = starling_testkit::unique_name(&format!("starling_{test}"));
    NatsBusConfig {
        url: url.to_owned(),
        stream: unique.to_uppercase(),
        subject_prefix: format!("{unique}.events"),
        retry: FAST,
        ack_wait: ACK_WAIT,
        duplicate_window: Duration::from_secs(60),
        publish_timeout: Duration::from_secs(2),
        batch: 32,
        max_age: Duration::from_secs(600),
        replicas: 1,
    }
}

/// Deletes a test's streams when dropped.
struct Streams {
    url: String,
    names: Vec<String>,
}

impl Streams {
    fn of(config: &NatsBusConfig) -> Self {
        Self {
            url: config.url.clone(),
            names: vec![config.stream.clone(), config.dead_letter_stream()],
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one running
        // this: delete from a thread with a runtime of its own.
        let (url, names) = (self.url.clone(), std::mem::take(&mut self.names));
        let deleting = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = async_nats::connect(url.as_str()).await else {
                    return;
                };
                let js = jetstream::new(client);
                for name in names {
                    // Already gone (or never made) is fine.
                    let _ = js.delete_stream(&name).await;
                }
            });
        });
        let _ = deleting.join();
    }
}

async fn jetstream_at(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("connect to NATS"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `done` holds, failing the test after `deadline`.
async fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn fresh(dead_letters: Arc<dyn DeadLetters>) -> Option<(Box<dyn EventBus>, Streams)> {
    let url = starling_testkit::require(Service::Nats, "nats_conformance")?;
    let config = config(&url, "conformance");
    let streams = Streams::of(&config);
    let bus = NatsBus::connect(config, dead_letters)
        .await
        .expect("connect to NATS");
    Some((Box::new(bus), streams))
}

starling_bus::bus_conformance_suite!(optional fresh);

/// A bus on a fresh pair of streams, with its dead-letter sink.
async fn bus_for(
    test: &str,
) -> Option<(NatsBus, Arc<RecordedDeadLetters>, NatsBusConfig, Streams)> {
    let url = starling_testkit::require(Service::Nats, test)?;
    let config = config(&url, test);
    let streams = Streams::of(&config);
    let dead = Arc::new(RecordedDeadLetters::default());
    let bus = NatsBus::connect(config.clone(), dead.clone())
        .await
        .expect("connect to NATS");
    Some((bus, dead, config, streams))
}

#[tokio::test]
async fn the_same_event_id_published_twice_is_delivered_once() {
    let Some((bus, dead, config, _streams)) = bus_for("duplicates").await else {
        return;
    };
    let all = Recorder::new("all", Wants::All, Failure::Never);
    bus.subscribe(all.clone()).await.expect("subscribe");

    let events = Events::default();
    let (event, sentinel) = (events.created(), events.favourited());
    // The relay published, crashed before forgetting its outbox rows, and
    // publishes them again after the restart.
    bus.publish(std::slice::from_ref(&event))
        .await
        .expect("publish");
    bus.publish(&[event.clone(), sentinel.clone()])
        .await
        .expect("publish again");

    wait_until("the sentinel is handled", DEADLINE, || {
        all.handled().contains(&sentinel.id)
    })
    .await;
    assert_eq!(all.handled(), vec![event.id, sentinel.id], "each once");
    let js = jetstream_at(&config.url).await;
    let mut stream = js.get_stream(&config.stream).await.expect("stream");
    let stored = stream.info().await.expect("stream info").state.messages;
    assert_eq!(stored, 2, "the stream kept one copy of the duplicate");
    assert!(dead.letters().is_empty());
}

/// A consumer that takes its events and never finishes handling them: the
/// worker holding them will die.
struct Stuck {
    seen: Mutex<Vec<Id>>,
}

#[async_trait]
impl Consumer for Stuck {
    fn name(&self) -> &'static str {
        "workers"
    }
    fn wants(&self, _: &EventKind) -> bool {
        true
    }
    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        lock(&self.seen).extend(events.iter().map(|e| e.id));
        std::future::pending().await
    }
}

#[tokio::test]
async fn events_of_a_worker_that_died_go_to_another_after_ack_wait() {
    let Some((first, _, config, _streams)) = bus_for("redelivery").await else {
        return;
    };
    let stuck = Arc::new(Stuck {
        seen: Mutex::new(Vec::new()),
    });
    first.subscribe(stuck.clone()).await.expect("subscribe");
    let events = Events::default();
    let batch = [events.created(), events.favourited(), events.created()];
    first.publish(&batch).await.expect("publish");
    wait_until("the first worker holds events", DEADLINE, || {
        !lock(&stuck.seen).is_empty()
    })
    .await;
    let held: Vec<Id> = lock(&stuck.seen).clone();

    // The first worker dies mid-batch: its task is gone, nothing was
    // acknowledged, nobody tells NATS it is still working.
    first.shutdown(Duration::ZERO).await;
    let died = Instant::now();

    // A second process runs the same group on the same stream.
    let dead = Arc::new(RecordedDeadLetters::default());
    let second = NatsBus::connect(config.clone(), dead.clone())
        .await
        .expect("connect to NATS");
    let workers = Recorder::new("workers", Wants::All, Failure::Never);
    second.subscribe(workers.clone()).await.expect("subscribe");
    let every: Vec<Id> = batch.iter().map(|e| e.id).collect();
    wait_until("the second worker handled every event", DEADLINE, || {
        let handled: HashSet<Id> = workers.handled().into_iter().collect();
        every.iter().all(|id| handled.contains(id))
    })
    .await;
    let taken_over = died.elapsed();
    assert_eq!(workers.handled_once(), every, "in stream order");
    assert!(held.iter().all(|id| workers.handled().contains(id)));
    // The held events came back only once their ack wait ran out (the dead
    // worker last said it was busy at most a third of it before dying).
    assert!(
        taken_over >= ACK_WAIT / 2,
        "redelivered after {taken_over:?}, before the ack wait ran out"
    );
    assert!(dead.letters().is_empty());
    second.shutdown(Duration::from_secs(5)).await;
}

/// Handles slowly, and says when it starts.
struct Slow {
    started: Mutex<Vec<Id>>,
    finished: Mutex<Vec<Id>>,
}

#[async_trait]
impl Consumer for Slow {
    fn name(&self) -> &'static str {
        "workers"
    }
    fn wants(&self, _: &EventKind) -> bool {
        true
    }
    async fn handle(&self, events: &[Event]) -> Result<(), ConsumerError> {
        lock(&self.started).extend(events.iter().map(|e| e.id));
        tokio::time::sleep(Duration::from_millis(300)).await;
        lock(&self.finished).extend(events.iter().map(|e| e.id));
        Ok(())
    }
}

#[tokio::test]
async fn shutdown_finishes_and_acknowledges_the_batch_in_hand() {
    let Some((first, _, config, _streams)) = bus_for("shutdown").await else {
        return;
    };
    let slow = Arc::new(Slow {
        started: Mutex::new(Vec::new()),
        finished: Mutex::new(Vec::new()),
    });
    first.subscribe(slow.clone()).await.expect("subscribe");
    let events = Events::default();
    let before = [events.created()];
    first.publish(&before).await.expect("publish");
    wait_until("the handler started", DEADLINE, || {
        !lock(&slow.started).is_empty()
    })
    .await;
    first.shutdown(Duration::from_secs(5)).await;
    assert_eq!(*lock(&slow.finished), vec![before[0].id]);
    assert!(first.subscribe(slow.clone()).await.is_err(), "shut down");

    // What the first worker handled is acknowledged: a second one, started
    // well after the ack wait, gets only what came later.
    tokio::time::sleep(ACK_WAIT + ACK_WAIT / 2).await;
    let second = NatsBus::connect(config, Arc::new(RecordedDeadLetters::default()))
        .await
        .expect("connect to NATS");
    let workers = Recorder::new("workers", Wants::All, Failure::Never);
    second.subscribe(workers.clone()).await.expect("subscribe");
    let after = [events.created()];
    second.publish(&after).await.expect("publish");
    wait_until("the later event is handled", DEADLINE, || {
        workers.handled().contains(&after[0].id)
    })
    .await;
    assert_eq!(workers.handled(), vec![after[0].id]);
}

#[tokio::test]
async fn shutdown_hands_back_at_once_what_it_was_retrying() {
    let Some(url) = starling_testkit::require(Service::Nats, "hand_back") else {
        return;
    };
    // A long ack wait, so an event that comes back soon was handed back,
    // not timed out; a long backoff, so the shutdown finds the group
    // waiting to retry.
    let mut config = config(&url, "hand_back");
    config.ack_wait = Duration::from_secs(30);
    config.retry = RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(30),
    };
    let _streams = Streams::of(&config);
    let first = NatsBus::connect(config.clone(), Arc::new(RecordedDeadLetters::default()))
        .await
        .expect("connect to NATS");
    let failing = Recorder::new("workers", Wants::All, Failure::Always);
    first.subscribe(failing.clone()).await.expect("subscribe");
    let events = Events::default();
    let batch = [events.created(), events.favourited()];
    first.publish(&batch).await.expect("publish");
    wait_until("the first worker failed once", DEADLINE, || {
        failing.calls() >= 1
    })
    .await;

    let started = Instant::now();
    first.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped waiting"
    );

    let dead = Arc::new(RecordedDeadLetters::default());
    let second = NatsBus::connect(config, dead.clone())
        .await
        .expect("connect to NATS");
    let workers = Recorder::new("workers", Wants::All, Failure::Never);
    second.subscribe(workers.clone()).await.expect("subscribe");
    let every: Vec<Id> = batch.iter().map(|e| e.id).collect();
    wait_until(
        "the second worker handled the handed-back events",
        DEADLINE,
        || workers.handled_once() == every,
    )
    .await;
    assert!(dead.letters().is_empty());
    second.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_without_panicking() {
    let mut config = config("nats://127.0.0.1:1", "unreachable");
    config.publish_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let connected = NatsBus::connect(config, Arc::new(RecordedDeadLetters::default())).await;
    assert!(
        matches!(connected, Err(BusError::Unavailable(_))),
        "{:?}",
        connected.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dead_letters_land_in_the_dead_letter_stream() {
    let Some((bus, dead, config, _streams)) = bus_for("dead_letters").await else {
        return;
    };
    let events = Events::default();
    let batch = [events.created(), events.favourited(), events.created()];
    let poison = batch[1].clone();
    let picky = Recorder::new(
        "picky",
        Wants::All,
        Failure::Poison(HashSet::from([poison.id])),
    );
    bus.subscribe(picky.clone()).await.expect("subscribe");
    bus.publish(&batch).await.expect("publish");

    // Something that is not an event, on the events' subjects.
    let js = jetstream_at(&config.url).await;
    let garbage_subject = format!("{}.status_created", config.subject_prefix);
    js.publish(garbage_subject.clone(), "not an event".into())
        .await
        .expect("publish garbage")
        .await
        .expect("garbage stored");
    let after = [events.created()];
    bus.publish(&after).await.expect("publish");

    wait_until("the group handled everything else", DEADLINE, || {
        let handled = picky.handled();
        [batch[0].id, batch[2].id, after[0].id]
            .iter()
            .all(|id| handled.contains(id))
    })
    .await;
    wait_until("the poison event is a dead letter", DEADLINE, || {
        dead.letters() == vec![("picky".to_owned(), poison.id)]
    })
    .await;

    let mut stream = js
        .get_stream(config.dead_letter_stream())
        .await
        .expect("dead-letter stream");
    let until = Instant::now() + DEADLINE;
    while stream.info().await.expect("stream info").state.messages < 2 {
        assert!(Instant::now() < until, "dead letters were not copied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stream.info().await.expect("info").state.messages, 2);

    let first = stream.get_raw_message(1).await.expect("first dead letter");
    assert_eq!(first.subject.as_str(), config.dead_letter_subject("picky"));
    let header = |name: &str| {
        first
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("Starling-Consumer"), "picky");
    assert_eq!(header("Starling-Subject"), config.subject(&poison));
    assert!(
        header("Starling-Error").contains("refuses"),
        "{}",
        header("Starling-Error")
    );
    let copied = Event::from_json(std::str::from_utf8(&first.payload).expect("utf-8"));
    assert_eq!(copied, Some(poison));

    let second = stream.get_raw_message(2).await.expect("second dead letter");
    assert_eq!(&second.payload[..], b"not an event");
    assert_eq!(
        second.headers.get("Starling-Subject").map(|v| v.as_str()),
        Some(garbage_subject.as_str())
    );

    // Terminated, not waiting to come back.
    let mut consumer = js
        .get_stream(&config.stream)
        .await
        .expect("stream")
        .get_consumer::<jetstream::consumer::pull::Config>("picky")
        .await
        .expect("consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
}

/// A `nats-server` of this test's own, to stop and start again.
struct PrivateNats {
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts one, or `None` (skipped) when there is no `nats-server`.
    fn start(test: &str) -> Option<Self> {
        let binary =
            std::env::var("STARLING_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let present = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            assert!(
                !starling_testkit::services_required(),
                "{test}: no {binary} to run (set STARLING_TEST_NATS_SERVER); \
                 STARLING_TEST_REQUIRE_SERVICES is set, so this is a failure"
            );
            eprintln!("SKIPPED {test}: no {binary} to run (set STARLING_TEST_NATS_SERVER)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            store: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        server.resume();
        Some(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let binary =
            std::env::var("STARLING_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn while_nats_is_down_publish_fails_fast_and_delivery_resumes_after() {
    let Some(mut server) = PrivateNats::start("nats_restart") else {
        return;
    };
    let config = config(&server.url(), "restart");
    let dead = Arc::new(RecordedDeadLetters::default());
    let bus = NatsBus::connect(config.clone(), dead.clone())
        .await
        .expect("connect to NATS");
    let all = Recorder::new("all", Wants::All, Failure::Never);
    bus.subscribe(all.clone()).await.expect("subscribe");
    let events = Events::default();
    let before = [events.created()];
    bus.publish(&before).await.expect("publish");
    wait_until("the first event is handled", DEADLINE, || {
        all.handled().contains(&before[0].id)
    })
    .await;

    server.kill();
    // Whether or not the client noticed yet, the publish fails within its
    // timeout: the relay keeps the outbox rows.
    let during = [events.favourited()];
    let started = Instant::now();
    let failed = bus.publish(&during).await;
    assert!(
        matches!(failed, Err(BusError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(started.elapsed() < config.publish_timeout + Duration::from_secs(1));
    // Once it knows the connection is gone, at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert!(bus.publish(&during).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // NATS comes back (with its stored state); the relay's retries get
    // through, and the group's task, which kept running, delivers.
    server.resume();
    let until = Instant::now() + Duration::from_secs(20);
    while bus.publish(&during).await.is_err() {
        assert!(Instant::now() < until, "publish never succeeded again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(
        "the event published after the restart is handled",
        Duration::from_secs(20),
        || all.handled().contains(&during[0].id),
    )
    .await;
    assert_eq!(all.handled_once(), vec![before[0].id, during[0].id]);
    assert!(dead.letters().is_empty());
    bus.shutdown(Duration::from_secs(5)).await;
}
