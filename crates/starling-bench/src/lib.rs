//! starling-bench: the tool that tells how fast Starling is, and how it
//! scales.
//!
//! Three commands, each a module:
//!
//! - [`seed`] builds a synthetic network (power-law followers, posts spread
//!   over a month) straight into a stopped server's data directory through
//!   the store's bulk-load seam, or ([`seed_api`]) through the client API of
//!   any running Mastodon-compatible server. Both write a users file
//!   ([`users`]) with every account's token.
//! - [`run`] drives a server over the Mastodon client API at a fixed rate
//!   (open loop: [`engine`]), reports per-operation latency percentiles from
//!   the intended send times ([`report`]), errors by kind, the fan-out lag
//!   ([`lag`]), and the run's throughput as a fraction of the ceiling probe
//!   (the same HTTP stack serving a pre-rendered body of a home page's
//!   size).
//! - [`sweep`] raises the rate until p99 breaks a bound and reports the
//!   highest sustainable rate, as JSON and SVG charts ([`chart`]).
//!
//! Three more measure what the request-response load does not: [`media`]
//! (uploads end to end, processing's memory, serving a preview), [`stream`]
//! (a post's way to its followers' open streams, memory per stream) and
//! [`live`] (the live-event seam on core NATS against Redis pub/sub);
//! [`procstat`] reads the server process's memory and CPU time for them.
//!
//! The load generator shares the machine with the server it measures, so
//! its hot path is lean: one hyper connection per task ([`client`]), a fast
//! PRNG ([`rng`]), a lock-free recorder per task.

pub mod api;
pub mod chart;
pub mod cli;
pub mod client;
pub mod engine;
pub mod graph;
pub mod lag;
pub mod live;
pub mod media;
pub mod procstat;
pub mod report;
pub mod rng;
pub mod run;
pub mod seed;
pub mod seed_api;
pub mod stream;
pub mod sweep;
pub mod users;
pub mod workload;

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{Command, SeedArgs};

/// Seeds through the store, or through the API with `--target`.
pub async fn seed(args: &SeedArgs) -> anyhow::Result<seed::SeedReport> {
    match &args.target {
        Some(target) => seed_api::seed_api(args, target).await,
        None => seed::seed_store(args).await,
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the report")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Runs one command as the binary does: prints its report to stderr and
/// writes JSON where asked.
pub async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Seed(args) => {
            let report = seed(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        Command::Run(args) => {
            let report = run::run(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        Command::Sweep(args) => {
            let report = sweep::sweep(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        Command::Media(args) => {
            let report = media::media(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        Command::Stream(args) => {
            let report = stream::stream(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        Command::Live(args) => {
            let report = live::live(&args).await?;
            report.print();
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
    }
    Ok(())
}
