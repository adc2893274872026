//! The steady load: requests at a fixed rate (open loop: a slow answer does
//! not slow the next request down), a mix of timeline and status reads and
//! posts, every one recorded with when it started and ended and how it
//! ended.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Semaphore};

use crate::api::{id_of, post_status, Method, Reply};
use crate::world::World;

/// Most requests in flight; a tick that finds them all busy is skipped (and
/// counted), so a server that stops answering does not pile up tasks.
pub const MAX_IN_FLIGHT: usize = 512;
/// How long the load waits for the requests in flight when it stops.
const DRAIN: Duration = Duration::from_secs(45);

#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Requests per second.
    pub rate: f64,
    /// Share of them that are posts (the rest are reads).
    pub posts: f64,
}

/// One request the load sent.
#[derive(Clone, Debug)]
pub struct Sample {
    pub method: Method,
    pub started: Instant,
    pub ended: Instant,
    pub reply: Reply,
}

/// A post the server acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct Posted {
    pub id: i64,
    pub poster: usize,
    pub started: Instant,
}

#[derive(Default)]
struct Shared {
    samples: Vec<Sample>,
    posted: Vec<Posted>,
    skipped: u64,
    /// Requests started (answered or not).
    sent: u64,
}

pub struct Load {
    shared: Arc<Mutex<Shared>>,
    stop: watch::Sender<bool>,
    driver: tokio::task::JoinHandle<()>,
    started: Instant,
}

/// What a load did, once stopped.
pub struct Done {
    /// When the load started.
    pub started: Instant,
    pub samples: Vec<Sample>,
    pub posted: Vec<Posted>,
    /// Ticks that found `MAX_IN_FLIGHT` requests busy and sent nothing.
    pub skipped: u64,
    pub seconds: f64,
    /// Requests still unanswered when the load gave up waiting.
    pub unfinished: u64,
}

impl Load {
    pub fn start(world: Arc<World>, mix: Mix, label: &'static str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stopped) = watch::channel(false);
        let driver = tokio::spawn(drive(world, mix, label, shared.clone(), stopped));
        Self {
            shared,
            stop,
            driver,
            started: Instant::now(),
        }
    }

    /// Stops sending and waits for the answers in flight.
    pub async fn stop(self) -> Done {
        let _ = self.stop.send(true);
        let _ = self.driver.await;
        let seconds = self.started.elapsed().as_secs_f64();
        let mut s = lock(&self.shared);
        let samples = std::mem::take(&mut s.samples);
        let unfinished = s.sent.saturating_sub(samples.len() as u64);
        Done {
            started: self.started,
            samples,
            posted: std::mem::take(&mut s.posted),
            skipped: s.skipped,
            seconds,
            unfinished,
        }
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn drive(
    world: Arc<World>,
    mix: Mix,
    label: &'static str,
    shared: Arc<Mutex<Shared>>,
    mut stopped: watch::Receiver<bool>,
) {
    let period = Duration::from_secs_f64(1.0 / mix.rate.max(1.0));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = ticks.tick() => {}
        }
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            lock(&shared).skipped += 1;
            continue;
        };
        n += 1;
        lock(&shared).sent += 1;
        let (world, shared) = (world.clone(), shared.clone());
        tasks.spawn(async move {
            one_request(&world, mix, label, n, &shared).await;
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
}

async fn one_request(world: &World, mix: Mix, label: &str, n: u64, shared: &Mutex<Shared>) {
    let api = &world.api;
    // Choose before awaiting: the generator is not Send.
    let (roll, reader, poster, pick) = {
        let mut rng = rand::thread_rng();
        (
            rng.gen::<f64>(),
            rng.gen_range(0..world.audience.len()),
            rng.gen_range(0..world.posters.len()),
            rng.gen_range(0..50usize),
        )
    };
    let token = world.audience[reader].as_str();
    let started = Instant::now();
    let (method, reply) = if roll < mix.posts {
        let poster_token = &world.posters[poster].token;
        let text = format!("fault test {label} #{n}: status from poster {poster}");
        (Method::Post, post_status(api, poster_token, &text).await)
    } else {
        // Reads: home timelines most, then account timelines, single
        // statuses, notifications and the public timeline (which reads
        // every shard).
        let reads = (roll - mix.posts) / (1.0 - mix.posts).max(f64::EPSILON);
        let recent = {
            let s = lock(shared);
            let len = s.posted.len();
            (len > 0).then(|| s.posted[len - 1 - pick.min(len - 1)].id)
        };
        let path = if reads < 0.45 {
            "/api/v1/timelines/home?limit=20".to_owned()
        } else if reads < 0.65 {
            let account = world.posters[poster].id;
            format!("/api/v1/accounts/{account}/statuses?limit=20")
        } else if reads < 0.80 {
            match recent {
                Some(id) => format!("/api/v1/statuses/{id}"),
                None => "/api/v1/timelines/home?limit=20".to_owned(),
            }
        } else if reads < 0.92 {
            "/api/v1/notifications?limit=20".to_owned()
        } else {
            "/api/v1/timelines/public?limit=20".to_owned()
        };
        (
            Method::Get,
            api.call(Method::Get, &path, Some(token), None).await,
        )
    };
    let ended = Instant::now();
    let mut s = lock(shared);
    if method == Method::Post {
        if let Reply::Status(code, body) = &reply {
            if (200..300).contains(code) {
                let id = serde_json::from_str(body).ok().and_then(|v| id_of(&v).ok());
                if let Some(id) = id {
                    s.posted.push(Posted {
                        id,
                        poster,
                        started,
                    });
                }
            }
        }
    }
    s.samples.push(Sample {
        method,
        started,
        ended,
        reply,
    });
}
