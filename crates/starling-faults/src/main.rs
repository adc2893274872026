//! `starling-faults`: fault tests against a running local cluster
//! (`scripts/cluster up`; `scripts/fault-tests` brings one up and runs this).
//!
//! Each scenario runs a steady load from this client through the load
//! balancer, injects a fault with `scripts/cluster` while the load runs,
//! restores, waits for convergence and prints its figures: requests sent,
//! failed (by method and status), posts and deliveries checked, events
//! lost. Exits non-zero if any scenario failed.

mod api;
mod cluster;
mod load;
mod report;
mod scenarios;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::api::{Api, Method};
use crate::cluster::Cluster;
use crate::scenarios::{Ctx, Options};
use crate::world::World;

/// Fault tests against the local cluster of `scripts/cluster`.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The cluster's first port, as given to scripts/cluster (its load
    /// balancer; the api processes and NATS' monitoring are found from it).
    #[arg(long, env = "STARLING_CLUSTER_BASE", default_value_t = 18000)]
    base: u16,
    /// The load balancer's URL [default: http://127.0.0.1:BASE].
    #[arg(long)]
    target: Option<String>,
    /// The script that injects the faults.
    #[arg(long, default_value = "scripts/cluster")]
    cluster_script: PathBuf,
    /// Scenarios to run, comma-separated [default: all, in this order:
    /// kill-api, kill-worker, stop-nats, stop-replica, pause-redis,
    /// restart-redis].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Followers of the author whose posts make the large fan-out (every
    /// one of them also reads).
    #[arg(long, default_value_t = 1000)]
    audience: usize,
    /// Accounts that post during the load, each followed by a slice of the
    /// audience.
    #[arg(long, default_value_t = 20)]
    posters: usize,
    /// Requests per second of the steady load.
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Statuses the author posts while a worker is killed.
    #[arg(long, default_value_t = 20)]
    author_posts: usize,
    /// How long NATS stays stopped.
    #[arg(long, default_value_t = 20)]
    nats_outage_secs: u64,
    /// How long Redis stays down (killed) or hung (stopped).
    #[arg(long, default_value_t = 5)]
    redis_outage_secs: u64,
    /// Longest wait for events to be delivered after a fault.
    #[arg(long, default_value_t = 60)]
    convergence_secs: u64,
    /// Outside the large fan-out (where every follower is checked), check
    /// the load's posts in the timelines of one in this many followers of
    /// each poster (1: all).
    #[arg(long, default_value_t = 5)]
    sample_every: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("starling-faults: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let started = Instant::now();
    let names: Vec<String> = if cli.only.is_empty() {
        scenarios::ALL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        cli.only.clone()
    };
    for n in &names {
        anyhow::ensure!(
            scenarios::ALL.contains(&n.as_str()),
            "no scenario {n} (known: {})",
            scenarios::ALL.join(", ")
        );
    }
    anyhow::ensure!(cli.posters >= 1, "--posters must be at least 1");
    anyhow::ensure!(
        cli.audience >= cli.posters,
        "--audience must be at least --posters"
    );
    let target = cli
        .target
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", cli.base));
    let api = Api::new(&target)?;
    let cluster = Cluster::new(cli.cluster_script.clone(), cli.base)?;
    let ready = api.call(Method::Get, "/readyz", None, None).await;
    anyhow::ensure!(
        ready.ok(),
        "the cluster at {target} is not ready ({})",
        ready.label()
    );
    cluster
        .bus()
        .await
        .context("the cluster's NATS monitoring endpoint")?;

    println!(
        "starling-faults: {} scenarios against {target}; load {} req/s; audience {} ({} posters)",
        names.len(),
        cli.rate,
        cli.audience,
        cli.posters
    );
    let world = World::create(api, cli.audience, cli.posters)
        .await
        .context("setting up the accounts")?;
    let setup_seconds = started.elapsed().as_secs_f64();
    println!("setup: {setup_seconds:.1} s\n");
    let ctx = Ctx {
        world: Arc::new(world),
        cluster,
        opts: Options {
            rate: cli.rate,
            author_posts: cli.author_posts,
            nats_outage: Duration::from_secs(cli.nats_outage_secs),
            redis_outage: Duration::from_secs(cli.redis_outage_secs),
            convergence: Duration::from_secs(cli.convergence_secs),
            sample_every: cli.sample_every,
        },
    };
    let mut all = Vec::new();
    for name in &names {
        eprintln!("-- {name}");
        let figures = scenarios::run(&ctx, name).await;
        figures.print();
        all.push(figures);
    }
    report::summary(&all, started.elapsed().as_secs_f64());
    Ok(all.iter().all(|f| f.passed()))
}
