//! `starling-bench run`: one workload at one rate, fully reported.
//!
//! A run is: prepare (read the users file, measure a home page's size for
//! the ceiling probe, collect recent statuses to favourite), warm up
//! unmeasured, measure for `--duration` with the fan-out lag probe running
//! alongside, then measure the ceiling probe's capacity closed loop over the
//! same connections. The report states the run's throughput as a fraction
//! of that capacity: what share of what this machine's HTTP stack can serve
//! at all the server delivered, at the run's offered rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::api::Api;
use crate::cli::{RunArgs, TargetArgs, Workload};
use crate::client::Target;
use crate::engine::{Engine, Phase};
use crate::lag::{self, LagReport, LagSpec};
use crate::report::{print_ops, print_seconds, Environment, OpReport, SecondReport};
use crate::users;
use crate::workload::{Mix, Population};

/// The closed-loop capacity of the ceiling probe.
#[derive(Clone, Debug, Serialize)]
pub struct CeilingReport {
    pub body_bytes: usize,
    pub capacity_rps: f64,
    pub latency: OpReport,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub environment: Environment,
    pub target: String,
    pub workload: Workload,
    /// "open" (fixed rate) or "closed" (as fast as answers come).
    pub mode: String,
    pub offered_rps: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub users: usize,
    /// Every user's home timeline was read once before measuring.
    pub primed: bool,
    pub ops: Vec<OpReport>,
    pub total: OpReport,
    /// Every operation together, second by second of the measured period.
    pub per_second: Vec<SecondReport>,
    /// Requests the scheduler offered during the measured period.
    pub offered: u64,
    pub ceiling: Option<CeilingReport>,
    /// Successful requests per second over the ceiling's capacity.
    pub fraction_of_ceiling: Option<f64>,
    pub fanout_lag: Option<LagReport>,
}

impl RunReport {
    pub fn print(&self) {
        eprintln!(
            "{} workload against {}: {} loop at {:.0} req/s offered, {:.0} s, {} connections, {} users",
            self.workload_name(),
            self.target,
            self.mode,
            self.offered_rps,
            self.duration_s,
            self.connections,
            self.users
        );
        print_ops(&self.ops, &self.total);
        print_seconds(&self.per_second);
        if let Some(c) = &self.ceiling {
            eprintln!(
                "  ceiling probe ({} B bodies): {:.0} req/s closed loop; this run: {:.1}% of it",
                c.body_bytes,
                c.capacity_rps,
                self.fraction_of_ceiling.unwrap_or(0.0) * 100.0
            );
        }
        if let Some(lag) = &self.fanout_lag {
            for (kind, a) in [("ordinary", &lag.ordinary), ("largest", &lag.largest)] {
                if let Some(a) = a {
                    eprintln!(
                        "  fan-out lag, {kind} author {} ({} followers): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} timelines, {} lost (poll every {:.0} ms){}",
                        a.author,
                        a.followers,
                        a.lag_ms.p50,
                        a.lag_ms.p99,
                        a.lag_ms.max,
                        a.polled,
                        a.lost,
                        lag.poll_interval_ms,
                        if a.failures.is_empty() {
                            String::new()
                        } else {
                            format!("; failures: {}", a.failures.join("; "))
                        }
                    );
                }
            }
        }
    }

    fn workload_name(&self) -> &'static str {
        match self.workload {
            Workload::Mix => "mix",
            Workload::Home => "home",
            Workload::Account => "account",
            Workload::Post => "post",
            Workload::Follow => "follow",
            Workload::Favourite => "favourite",
            Workload::Notifications => "notifications",
            Workload::Ceiling => "ceiling",
        }
    }
}

/// Everything a run or sweep prepared before measuring.
pub struct Prepared {
    pub engine: Engine,
    pub api: Api,
    /// Every user of the file (the lag probe's authors and followers come
    /// from all of them, not only the active ones).
    pub users: Arc<Vec<users::User>>,
    pub has_ceiling: bool,
}

/// Reads the users file, checks the target, and gathers what the workload
/// needs.
pub async fn prepare(args: &TargetArgs, workload: Workload) -> anyhow::Result<Prepared> {
    let target = Target::parse(&args.target)?;
    let everyone = users::read(&args.users_path())?;
    let mut all = everyone.clone();
    if args.active_users > 0 && args.active_users < all.len() {
        all.truncate(args.active_users);
    }
    let api = Api::new(&args.target)?;
    let mut population = Population::new(target.clone(), all.clone())?;
    let has_ceiling = api.has_ceiling_probe().await;
    if workload == Workload::Ceiling && !has_ceiling {
        bail!(
            "{} does not serve the ceiling probe (start Starling with bench_probe = true, STARLING_BENCH_PROBE=true)",
            args.target
        );
    }
    // The ceiling probe's body: a home page's size.
    population.ceiling_bytes = match args.ceiling_bytes {
        Some(b) => b,
        None => {
            let mut sizes = Vec::new();
            for u in all.iter().step_by((all.len() / 5).max(1)).take(5) {
                let (_, bytes) = api.home(&u.token, "limit=20").await.context(
                    "reading a home timeline (are the users file and the target the same server?)",
                )?;
                sizes.push(bytes);
            }
            (sizes.iter().sum::<usize>() / sizes.len().max(1)).max(64)
        }
    };
    if workload == Workload::Favourite {
        let token = &all[0].token;
        let mut max_id: Option<String> = None;
        while population.status_ids.len() < 400 {
            let page = api.public(token, max_id.as_deref()).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            population.status_ids.extend(page);
            max_id = Some(last);
        }
        if population.status_ids.is_empty() {
            bail!("the favourite workload needs public statuses; the public timeline is empty");
        }
    }
    let engine = Engine {
        target,
        population: Arc::new(population),
        connections: args.connections,
        timeout: args.timeout,
        seed: args.seed,
    };
    if args.prime {
        let progress = indicatif::ProgressBar::new(all.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "    prime [{bar:32}] {human_pos}/{human_len} {per_sec:>12} eta {eta}",
        ) {
            progress.set_style(style.progress_chars("=> "));
        }
        let failed = engine.prime_homes(&progress).await;
        progress.finish_and_clear();
        if failed > 0 {
            bail!("priming: {failed} home timeline reads failed");
        }
    }
    Ok(Prepared {
        engine,
        api,
        users: Arc::new(everyone),
        has_ceiling,
    })
}

/// The ceiling probe's capacity over the engine's connections.
pub async fn ceiling_capacity(engine: &Engine, duration: Duration, salt: u64) -> CeilingReport {
    let measured = engine
        .run(
            &Phase {
                mix: Mix::of(Workload::Ceiling),
                rate: 0.0,
                duration,
            },
            salt,
        )
        .await;
    let (_, total) = measured.recorder.summarize(measured.seconds);
    CeilingReport {
        body_bytes: engine.population.ceiling_bytes,
        capacity_rps: total.achieved_rps,
        latency: total,
    }
}

pub async fn run(args: &RunArgs) -> anyhow::Result<RunReport> {
    let prepared = prepare(&args.target, args.workload).await?;
    let engine = &prepared.engine;
    let mix = Mix::of(args.workload);
    let lag_probe = if args.lag_probes > 0 && args.workload != Workload::Ceiling {
        Some(
            lag::prepare(
                prepared.api.clone(),
                prepared.users.clone(),
                LagSpec {
                    probes: args.lag_probes,
                    sample: args.lag_sample,
                    poll: args.lag_poll,
                    timeout: args.lag_timeout,
                },
            )
            .await,
        )
    } else {
        None
    };
    if !args.warmup.is_zero() {
        engine
            .run(
                &Phase {
                    mix: mix.clone(),
                    rate: args.rate,
                    duration: args.warmup,
                },
                1,
            )
            .await;
    }
    let lag_task = lag_probe.map(|probe| tokio::spawn(probe.measure()));
    let measured = engine
        .run(
            &Phase {
                mix,
                rate: args.rate,
                duration: args.duration,
            },
            2,
        )
        .await;
    let fanout_lag = match lag_task {
        Some(task) => Some(task.await.context("the lag probe failed")?),
        None => None,
    };
    let (ops, total) = measured.recorder.summarize(measured.seconds);
    let per_second = measured.recorder.per_second();
    let ceiling = if prepared.has_ceiling && !args.ceiling_duration.is_zero() {
        Some(ceiling_capacity(engine, args.ceiling_duration, 3).await)
    } else {
        None
    };
    let fraction_of_ceiling = ceiling
        .as_ref()
        .filter(|c| c.capacity_rps > 0.0)
        .map(|c| total.achieved_rps / c.capacity_rps);
    Ok(RunReport {
        environment: Environment::here(),
        target: args.target.target.clone(),
        workload: args.workload,
        mode: if args.rate > 0.0 { "open" } else { "closed" }.into(),
        offered_rps: args.rate,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        connections: engine.connections,
        users: engine.population.users().len(),
        primed: args.target.prime,
        ops,
        total,
        per_second,
        offered: measured.offered,
        ceiling,
        fraction_of_ceiling,
        fanout_lag,
    })
}
