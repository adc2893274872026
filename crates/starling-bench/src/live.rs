//! `starling-bench live`: the live-event seam (`starling_bus::LiveBus`) on
//! core NATS against Redis pub/sub, publish to receive.
//!
//! Streaming connections hear what the fan-out did through topics (one per
//! user, `user.<id>`, and a few shared ones); the distributed shape carries
//! them on core NATS subjects ([`starling_bus::nats_live::NatsLive`]).
//! This measures that adapter against the other candidate, Redis pub/sub
//! ([`RedisLive`] below: the adapter Starling would have had, one
//! subscriber connection per process with every channel on it, the
//! messages dispatched by channel name), used the way the server uses the
//! seam:
//!
//! - a publisher connection and a subscriber connection (a worker process
//!   and an api process), each subscription read by a task of its own, as
//!   the live hub does;
//! - publishes awaited one after the other, as the fan-out's
//!   `publish_live_all` does for a post's followers.
//!
//! For each backend and each `--subjects` count S:
//!
//! - **latency**: `--pings` messages, each published on the next subject
//!   and awaited on its subscription before the next is sent (unloaded
//!   publish-to-receive time; the time the publish call itself took is
//!   reported apart, since the fan-out pays it per follower);
//! - **fan-out bursts** (S > 1): `--bursts` times, one message to each of
//!   the S subjects back to back, as a post to S followers with streams;
//!   every message's time from the burst's start to its receipt, and the
//!   time until the last one arrived;
//! - **throughput**: `--messages` messages published back to back over the
//!   subjects in turn, until the last was received (and how many were not).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use starling_bus::nats_live::NatsLive;
use starling_bus::{BusError, BusResult, LiveBus, LiveSubscription};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::report::{Environment, Percentiles};

/// A live-event transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Core NATS subjects (Starling's `NatsLive`).
    Nats,
    /// Redis pub/sub channels (one subscriber connection, dispatched by
    /// channel).
    Redis,
}

#[derive(Args, Clone, Debug)]
pub struct LiveArgs {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222", value_name = "URL")]
    pub nats: String,
    /// The Redis server.
    #[arg(long, default_value = "redis://127.0.0.1:6379", value_name = "URL")]
    pub redis: String,
    /// Which transports to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Nats, Backend::Redis])]
    pub backends: Vec<Backend>,
    /// Subject counts, each with one subscriber (1 = one shared topic, 1000
    /// = a topic per user).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 1000])]
    pub subjects: Vec<usize>,
    /// Messages of the latency measurement, one at a time.
    #[arg(long, default_value_t = 5_000)]
    pub pings: usize,
    /// Fan-out bursts (one message to every subject) when there are many
    /// subjects.
    #[arg(long, default_value_t = 50)]
    pub bursts: usize,
    /// Messages of the throughput measurement.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Publishes in flight at once in the bursts and the throughput phase:
    /// 1 awaits each before the next, as the server's fan-out does; more
    /// shows what each transport could do if the seam published
    /// concurrently (Redis pipelines them on its multiplexed connection).
    #[arg(long, default_value_t = 1)]
    pub publish_concurrency: usize,
    /// Payload size in bytes (a live event is about 45: an event name and
    /// an id).
    #[arg(long, default_value_t = 45)]
    pub payload_bytes: usize,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Redis pub/sub behind the live-event seam: `PUBLISH` on a multiplexed
/// connection; one subscriber connection per adapter (Redis takes a
/// connection in subscribe mode out of ordinary use), its messages handed
/// to each channel's subscriptions by name.
#[derive(Clone)]
pub struct RedisLive {
    publisher: redis::aio::MultiplexedConnection,
    sink: Arc<tokio::sync::Mutex<redis::aio::PubSubSink>>,
    routes: Routes,
}

type Routes = Arc<Mutex<std::collections::HashMap<String, Vec<mpsc::UnboundedSender<Bytes>>>>>;

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl RedisLive {
    pub async fn connect(url: &str) -> BusResult<Self> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let publisher = client
            .get_multiplexed_async_connection()
            .await
            .map_err(unavailable)?;
        let (sink, mut stream) = client
            .get_async_pubsub()
            .await
            .map_err(unavailable)?
            .split();
        let routes: Routes = Arc::default();
        let r = routes.clone();
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                let mut routes = r.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(subs) = routes.get_mut(msg.get_channel_name()) {
                    subs.retain(|s| s.send(payload.clone()).is_ok());
                }
            }
        });
        Ok(Self {
            publisher,
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
            routes,
        })
    }
}

#[async_trait]
impl LiveBus for RedisLive {
    async fn publish(&self, topic: &str, payload: Bytes) -> BusResult<()> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(topic)
            .arg(payload.as_ref())
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn subscribe(&self, topic: &str) -> BusResult<Box<dyn LiveSubscription>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let first = {
            let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
            let subs = routes.entry(topic.to_owned()).or_default();
            subs.push(tx);
            subs.len() == 1
        };
        if first {
            // Answered once Redis confirmed the subscription.
            self.sink
                .lock()
                .await
                .subscribe(topic)
                .await
                .map_err(unavailable)?;
        }
        Ok(Box::new(RedisSubscription { rx }))
    }
}

struct RedisSubscription {
    rx: mpsc::UnboundedReceiver<Bytes>,
}

#[async_trait]
impl LiveSubscription for RedisSubscription {
    async fn next(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    // Nanosecond resolution is kept as tenths of a microsecond would be
    // lost: record in ns, report in ms.
    h.saturating_record(d.as_nanos().max(1) as u64);
}

/// Percentiles of a histogram recorded in nanoseconds, in milliseconds.
fn of_ns(h: &Histogram<u64>) -> Percentiles {
    let ms = |ns: u64| ns as f64 / 1e6;
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1e6,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveCase {
    pub backend: Backend,
    pub subjects: usize,
    /// Seconds to subscribe to every subject (each confirmed by the
    /// server before the next).
    pub subscribe_seconds: f64,
    /// One message at a time: publish to receipt.
    pub latency_ms: Percentiles,
    /// One message at a time: how long the publish call took.
    pub publish_call_ms: Percentiles,
    /// Per message of a burst: from the burst's start to its receipt.
    pub burst_latency_ms: Option<Percentiles>,
    /// Per burst: from its start until the last message was received.
    pub burst_complete_ms: Option<Percentiles>,
    /// Per burst: how long publishing it took.
    pub burst_publish_ms: Option<Percentiles>,
    pub throughput_messages: usize,
    /// Messages received per second, back-to-back publishing.
    pub throughput_per_second: f64,
    /// Publish calls per second in that phase.
    pub publish_per_second: f64,
    pub lost: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    pub environment: Environment,
    pub payload_bytes: usize,
    pub publish_concurrency: usize,
    pub cases: Vec<LiveCase>,
}

impl LiveReport {
    pub fn print(&self) {
        eprintln!(
            "live events, publish to receive, {} B payloads, {} publishes in flight in bursts and back to back:",
            self.payload_bytes, self.publish_concurrency
        );
        for c in &self.cases {
            eprintln!(
                "  {:?} x {} subjects (subscribed in {:.2} s): one at a time p50 {:.3} ms, p99 {:.3} ms (publish call p50 {:.3} ms, p99 {:.3} ms); {:.0} msg/s back to back ({:.0} publishes/s), {} lost",
                c.backend,
                c.subjects,
                c.subscribe_seconds,
                c.latency_ms.p50,
                c.latency_ms.p99,
                c.publish_call_ms.p50,
                c.publish_call_ms.p99,
                c.throughput_per_second,
                c.publish_per_second,
                c.lost
            );
            if let (Some(l), Some(done), Some(p)) = (
                &c.burst_latency_ms,
                &c.burst_complete_ms,
                &c.burst_publish_ms,
            ) {
                eprintln!(
                    "      fan-out bursts of {}: a message p50 {:.2} ms, p99 {:.2} ms; the last p50 {:.2} ms, p99 {:.2} ms; publishing a burst p50 {:.2} ms",
                    c.subjects, l.p50, l.p99, done.p50, done.p99, p.p50
                );
            }
        }
    }
}

async fn connect(backend: Backend, args: &LiveArgs, prefix: &str) -> BusResult<Arc<dyn LiveBus>> {
    Ok(match backend {
        Backend::Nats => Arc::new(NatsLive::connect(&args.nats, prefix).await?),
        Backend::Redis => Arc::new(RedisLive::connect(&args.redis).await?),
    })
}

/// Receives until `count` messages arrived or `deadline` passed; how many
/// arrived.
async fn receive(
    rx: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    count: usize,
    deadline: Instant,
    mut each: impl FnMut(usize, Instant),
) -> usize {
    let mut got = 0;
    while got < count {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((subject, at))) => {
                got += 1;
                each(subject, at);
            }
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// Publishes `payload` on each topic, `concurrency` at a time (1: each
/// awaited before the next).
async fn publish_all<'a>(
    bus: &dyn LiveBus,
    topics: impl Iterator<Item = &'a String>,
    payload: &Bytes,
    concurrency: usize,
) -> BusResult<()> {
    if concurrency <= 1 {
        for t in topics {
            bus.publish(t, payload.clone()).await?;
        }
        return Ok(());
    }
    let topics: Vec<&String> = topics.collect();
    for chunk in topics.chunks(concurrency) {
        let calls = chunk.iter().map(|t| bus.publish(t, payload.clone()));
        for done in futures_util::future::join_all(calls).await {
            done?;
        }
    }
    Ok(())
}

async fn one_case(
    backend: Backend,
    subjects: usize,
    args: &LiveArgs,
    run: u64,
) -> anyhow::Result<LiveCase> {
    let prefix = format!("bench-live-{}-{run}", std::process::id());
    let publisher = connect(backend, args, &prefix)
        .await
        .with_context(|| format!("{backend:?}: connecting the publisher"))?;
    let subscriber = connect(backend, args, &prefix)
        .await
        .with_context(|| format!("{backend:?}: connecting the subscriber"))?;
    // Redis channels share one namespace: the prefix keeps runs apart.
    let topic = |i: usize| match backend {
        Backend::Nats => format!("user.{i}"),
        Backend::Redis => format!("{prefix}.user.{i}"),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut readers = tokio::task::JoinSet::new();
    let subscribe_start = Instant::now();
    for i in 0..subjects {
        let mut sub = subscriber
            .subscribe(&topic(i))
            .await
            .with_context(|| format!("{backend:?}: subscribing"))?;
        let tx = tx.clone();
        readers.spawn(async move {
            while sub.next().await.is_some() {
                if tx.send((i, Instant::now())).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let subscribe_seconds = subscribe_start.elapsed().as_secs_f64();
    let payload = Bytes::from(vec![b'x'; args.payload_bytes.max(1)]);
    let topics: Vec<String> = (0..subjects).map(topic).collect();

    // Latency, one message at a time.
    let (mut latency, mut call) = (histogram(), histogram());
    for k in 0..args.pings {
        let s = k % subjects;
        let t0 = Instant::now();
        publisher
            .publish(&topics[s], payload.clone())
            .await
            .with_context(|| format!("{backend:?}: publishing"))?;
        record(&mut call, t0.elapsed());
        let got = receive(&mut rx, 1, t0 + Duration::from_secs(5), |_, at| {
            record(&mut latency, at - t0);
        })
        .await;
        if got == 0 {
            bail!("{backend:?}: a message on {} was not received", topics[s]);
        }
    }

    // Fan-out bursts.
    let (mut burst_latency, mut burst_complete, mut burst_publish) = (None, None, None);
    if subjects > 1 {
        let (mut l, mut c, mut p) = (histogram(), histogram(), histogram());
        for _ in 0..args.bursts {
            let t0 = Instant::now();
            publish_all(
                &*publisher,
                topics.iter(),
                &payload,
                args.publish_concurrency,
            )
            .await?;
            record(&mut p, t0.elapsed());
            let mut last = t0;
            let got = receive(&mut rx, subjects, t0 + Duration::from_secs(30), |_, at| {
                record(&mut l, at - t0);
                last = last.max(at);
            })
            .await;
            if got < subjects {
                bail!("{backend:?}: a burst lost {} messages", subjects - got);
            }
            record(&mut c, last - t0);
        }
        burst_latency = Some(of_ns(&l));
        burst_complete = Some(of_ns(&c));
        burst_publish = Some(of_ns(&p));
    }

    // Throughput, back to back.
    let messages = args.messages.max(1);
    let t0 = Instant::now();
    let counting = tokio::spawn(async move {
        let got = receive(
            &mut rx,
            messages,
            Instant::now() + Duration::from_secs(120),
            |_, _| {},
        )
        .await;
        (got, Instant::now())
    });
    publish_all(
        &*publisher,
        (0..messages).map(|k| &topics[k % subjects]),
        &payload,
        args.publish_concurrency,
    )
    .await?;
    let published = t0.elapsed().as_secs_f64();
    let (got, done) = counting.await.context("the counting task")?;
    let seconds = (done - t0).as_secs_f64();
    readers.abort_all();
    Ok(LiveCase {
        backend,
        subjects,
        subscribe_seconds,
        latency_ms: of_ns(&latency),
        publish_call_ms: of_ns(&call),
        burst_latency_ms: burst_latency,
        burst_complete_ms: burst_complete,
        burst_publish_ms: burst_publish,
        throughput_messages: messages,
        throughput_per_second: got as f64 / seconds.max(1e-9),
        publish_per_second: messages as f64 / published.max(1e-9),
        lost: (messages - got) as u64,
    })
}

pub async fn live(args: &LiveArgs) -> anyhow::Result<LiveReport> {
    let mut cases = Vec::new();
    let mut run = 0;
    for &subjects in &args.subjects {
        for &backend in &args.backends {
            run += 1;
            cases.push(one_case(backend, subjects.max(1), args, run).await?);
        }
    }
    Ok(LiveReport {
        environment: Environment::here(),
        payload_bytes: args.payload_bytes,
        publish_concurrency: args.publish_concurrency.max(1),
        cases,
    })
}
