//! The load engine: open-loop scheduling over a fixed set of connections.
//!
//! **Open loop.** A scheduler computes the intended send time of request
//! `k` as `start + k / rate` and queues it at that time, whatever happened
//! to the earlier ones; `connections` tasks, each with its own HTTP/1.1
//! connection, take requests off the queue and send them. Latency is
//! measured from the intended time, so when the server (or the generator)
//! falls behind, the queueing delay is counted (wrk2's answer to
//! coordinated omission). The queue is unbounded: a backlog is the
//! measurement, not something to shed. After the measured period the queue
//! drains until `timeout` past the end; whatever is left counts as "not
//! sent".
//!
//! **Closed loop** (`rate = 0`): each task sends its next request as soon as
//! the last is answered. That measures capacity (the ceiling probe's, and
//! `--rate 0` runs); latency is then service time.
//!
//! The engine knows nothing about Mastodon: a [`Population`] builds each
//! request, a [`Mix`] picks its operation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{Conn, Target};
use crate::report::{ErrorKind, Recorder};
use crate::rng::Rng;
use crate::workload::{Mix, Op, Population};

/// What one phase of load does.
#[derive(Clone, Debug)]
pub struct Phase {
    pub mix: Mix,
    /// Requests per second; 0 = closed loop.
    pub rate: f64,
    pub duration: Duration,
}

/// The fixed parts of every phase of a run.
#[derive(Clone)]
pub struct Engine {
    pub target: Target,
    pub population: Arc<Population>,
    pub connections: usize,
    pub timeout: Duration,
    pub seed: u64,
}

/// What a phase measured.
pub struct Measured {
    pub recorder: Recorder,
    /// Seconds from the first intended send to the last answer (at least
    /// the phase's duration).
    pub seconds: f64,
    /// Requests the scheduler offered (open loop).
    pub offered: u64,
}

struct Job {
    op: Op,
    intended: Instant,
}

impl Engine {
    /// Runs one phase and returns its tally.
    pub async fn run(&self, phase: &Phase, salt: u64) -> Measured {
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + phase.duration;
        let drain_deadline = end + self.timeout;
        let closed = phase.rate <= 0.0;
        let (tx, rx) = flume::unbounded::<Job>();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..self.connections.max(1) {
            let me = self.clone();
            let rx = rx.clone();
            let mix = phase.mix.clone();
            let mut rng = Rng::for_item(self.seed ^ salt.rotate_left(32), c as u64);
            tasks.spawn(async move {
                let mut rec = Recorder::default();
                let mut last_done = start;
                // Connect before the first intended send, so the phase
                // does not measure connection set-up.
                let mut conn = tokio::time::timeout(me.timeout, Conn::open(&me.target))
                    .await
                    .ok()
                    .and_then(Result::ok);
                if closed {
                    tokio::time::sleep_until(start).await;
                    while Instant::now() < end {
                        let job = Job {
                            op: mix.pick(&mut rng),
                            intended: Instant::now(),
                        };
                        me.send(job, start, &mut conn, &mut rng, &mut rec).await;
                    }
                    last_done = Instant::now();
                } else {
                    while let Ok(job) = rx.recv_async().await {
                        if Instant::now() > drain_deadline {
                            rec.error(job.op, ErrorKind::NotSent);
                            continue;
                        }
                        me.send(job, start, &mut conn, &mut rng, &mut rec).await;
                        last_done = Instant::now();
                    }
                }
                (rec, last_done)
            });
        }
        drop(rx);
        let mut offered = 0u64;
        if !closed {
            let mut rng = Rng::for_item(self.seed ^ salt, u64::MAX);
            let interval = 1.0 / phase.rate;
            loop {
                let intended = start + Duration::from_secs_f64(offered as f64 * interval);
                if intended >= end {
                    break;
                }
                if intended > Instant::now() {
                    tokio::time::sleep_until(intended).await;
                }
                if tx
                    .send(Job {
                        op: phase.mix.pick(&mut rng),
                        intended,
                    })
                    .is_err()
                {
                    break;
                }
                offered += 1;
            }
        }
        drop(tx);
        let mut recorder = Recorder::default();
        let mut last_done = end;
        while let Some(done) = tasks.join_next().await {
            if let Ok((rec, last)) = done {
                recorder.merge(rec);
                last_done = last_done.max(last);
            }
        }
        Measured {
            recorder,
            // Requests still queued at the end are answered after it: the
            // achieved rate counts the time they took.
            seconds: (last_done - start).as_secs_f64(),
            offered,
        }
    }

    /// Reads every user's home timeline once, `connections` at a time, so
    /// a run measures timelines the server already holds rather than their
    /// first-read rebuilds. Returns how many reads failed.
    pub async fn prime_homes(&self, progress: &indicatif::ProgressBar) -> u64 {
        let next = Arc::new(AtomicUsize::new(0));
        let n = self.population.users().len();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..self.connections.max(1) {
            let (me, next, progress) = (self.clone(), next.clone(), progress.clone());
            tasks.spawn(async move {
                let mut rng = Rng::for_item(me.seed ^ 0x0050_5249_4d45, c as u64);
                let mut conn: Option<Conn> = None;
                let mut failed = 0u64;
                loop {
                    let user = next.fetch_add(1, Ordering::Relaxed);
                    if user >= n {
                        return failed;
                    }
                    if conn.is_none() {
                        conn = Conn::open(&me.target).await.ok();
                    }
                    let ok = match conn.as_mut() {
                        Some(c) => {
                            let req = me.population.build_as(Op::Home, user, &mut rng);
                            matches!(
                                tokio::time::timeout(me.timeout, c.send(req)).await,
                                Ok(Ok((status, _))) if status.is_success()
                            )
                        }
                        None => false,
                    };
                    if !ok {
                        failed += 1;
                        conn = None;
                    }
                    progress.inc(1);
                }
            });
        }
        let mut failed = 0;
        while let Some(done) = tasks.join_next().await {
            failed += done.unwrap_or(0);
        }
        failed
    }

    /// Sends one job on the task's connection (opening it if needed) and
    /// records the outcome.
    async fn send(
        &self,
        job: Job,
        start: Instant,
        conn: &mut Option<Conn>,
        rng: &mut Rng,
        rec: &mut Recorder,
    ) {
        if conn.is_none() {
            match tokio::time::timeout(self.timeout, Conn::open(&self.target)).await {
                Ok(Ok(c)) => *conn = Some(c),
                _ => {
                    rec.error(job.op, ErrorKind::Connect);
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return;
                }
            }
        }
        let Some(c) = conn.as_mut() else { return };
        let req = self.population.build(job.op, rng);
        match tokio::time::timeout(self.timeout, c.send(req)).await {
            Err(_) => {
                rec.error(job.op, ErrorKind::Timeout);
                *conn = None;
            }
            Ok(Err(_)) => {
                rec.error(job.op, ErrorKind::Io);
                *conn = None;
            }
            Ok(Ok((status, bytes))) => {
                if status.is_success() {
                    rec.ok(
                        job.op,
                        job.intended.saturating_duration_since(start),
                        job.intended.elapsed(),
                        bytes,
                    );
                } else {
                    rec.error(job.op, ErrorKind::Status(status.as_u16()));
                }
            }
        }
    }
}
