//! The command line: `seed`, `run`, `sweep`, and every option they take.
//!
//! The argument structs are plain data shared by the binary and the tests
//! (which build them by hand), so an option means the same thing whichever
//! way a run starts. Durations are written `500ms`, `10s`, `2m` or a bare
//! number of seconds.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// starling-bench: seeds a synthetic social network and measures a
/// Mastodon-compatible server under load (open loop, no coordinated
/// omission), against a ceiling probe of the same HTTP stack.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a synthetic network: through the store into a data directory
    /// (fast, server stopped), or through the client API of a running
    /// server with --target (slow, any Mastodon-compatible server).
    Seed(SeedArgs),
    /// Drive a server at a fixed request rate and report latency
    /// percentiles per operation, errors, achieved rate, fan-out lag and the
    /// fraction of the ceiling probe's capacity.
    Run(RunArgs),
    /// Step the rate up until p99 breaks a bound; report the highest
    /// sustainable rate (and the ceiling probe's), as JSON and SVG charts.
    Sweep(SweepArgs),
    /// Upload a generated ~2 MB JPEG (or any size) again and again over
    /// POST /api/v2/media until each upload's URL is ready; report uploads
    /// per second, the time to a ready URL, the server's CPU and memory per
    /// upload, and how fast the origin serves the preview against the
    /// ceiling probe.
    Media(crate::media::MediaArgs),
    /// Open N user streams (SSE) of one author's followers, post, and
    /// report the time from the POST to each stream's update event, and the
    /// server's memory per open stream.
    Stream(crate::stream::StreamArgs),
    /// The live-event seam on core NATS against Redis pub/sub: publish to
    /// receive latency and throughput, for one subject and for a subject
    /// per user.
    Live(crate::live::LiveArgs),
}

/// Parses `250ms`, `10s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Args, Clone, Debug)]
pub struct SeedArgs {
    /// Number of accounts to create.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Mean number of accounts each account follows (following counts are
    /// exponentially distributed around it).
    #[arg(long, default_value_t = 50.0)]
    pub avg_follows: f64,
    /// Most accounts any one account follows.
    #[arg(long, default_value_t = 5_000)]
    pub max_follows: u32,
    /// Zipf exponent of followee popularity: follower counts follow a power
    /// law of exponent 1 + 1/s (0.78 gives Twitter's measured 2.28).
    #[arg(long, default_value_t = 0.78)]
    pub zipf_exponent: f64,
    /// Mean number of posts per account, spread over the last 30 days.
    #[arg(long, default_value_t = 10.0)]
    pub posts_per_user: f64,
    /// Random seed: the same seed and sizes give the same network.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Usernames are this prefix followed by a number (use a fresh prefix
    /// to seed a server that already has users).
    #[arg(long, default_value = "u")]
    pub username_prefix: String,
    /// The server's data directory to seed into (its `starling.db` must be
    /// empty or absent, and the server stopped). With --config or
    /// --target, only where the users file goes.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Seed the store this Starling configuration file names instead of
    /// <data-dir>/starling.db: the file `starling --config` reads (STARLING_*
    /// environment variables apply too), e.g. the distributed shape's
    /// sharded PostgreSQL (`store.kind = "postgres"`; migrated here if
    /// needed, so name the primaries directly, not through PgBouncer, as
    /// for `starling migrate`: scripts/cluster's migrate.toml). Its
    /// databases must hold no accounts and no starling process may run
    /// against them. Its large_account_threshold and public_url apply
    /// unless given below.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub config: Option<PathBuf>,
    /// Where to write the users file (ids, usernames, tokens, follower
    /// counts) that `run` reads [default: <data-dir>/bench-users.tsv].
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// Seed through the client API of the server at this base URL instead
    /// of the store (registration, follows and posts over HTTP: slow, for
    /// small networks; the server must accept registrations without rate
    /// limits or email confirmation).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Requests in flight at once when seeding with --target.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Base URL the server will run under: rendered into the links of
    /// seeded posts (hashtags), as the server would have [default: the
    /// configuration's public_url with --config, else
    /// http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The server's large_account_threshold: accounts with this many
    /// followers are marked large (merged into home timelines at read
    /// time) [default: the configuration's with --config, else 10000].
    #[arg(long, value_name = "N")]
    pub large_account_threshold: Option<i64>,
    /// Rows per bulk-load call (one transaction each, per database).
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    /// Keep every index in place while loading instead of building the big
    /// secondary indexes once at the end (for comparison).
    #[arg(long)]
    pub keep_indexes: bool,
    /// Password of every seeded account (they share one hash).
    #[arg(long, default_value = "bench-password")]
    pub password: String,
    /// Also write the seeding report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// What the requests of a run do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// DeathStarBench's social-network mix: 60% home timeline reads, 30%
    /// account timeline reads, 10% new posts with mentions and hashtags.
    Mix,
    /// `GET /api/v1/timelines/home` (20 statuses).
    Home,
    /// `GET /api/v1/accounts/:id/statuses` of a random account.
    Account,
    /// `POST /api/v1/statuses` with mentions, hashtags and a link.
    Post,
    /// `POST /api/v1/accounts/:id/follow` of a random account.
    Follow,
    /// `POST /api/v1/statuses/:id/favourite` of a recent public status.
    Favourite,
    /// `GET /api/v1/notifications`.
    Notifications,
    /// The ceiling probe: a pre-rendered body of a home page's size through
    /// the same HTTP stack (`GET /api/v1/_bench/ceiling`; the server needs
    /// `bench_probe = true`).
    Ceiling,
}

#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// Base URL of the server under test (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub target: String,
    /// The users file written by `seed` [default: <data-dir>/bench-users.tsv].
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// Data directory the users file was seeded into (only used to find the
    /// users file).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Use only the first N users of the file (the active population;
    /// 0 = all).
    #[arg(long, default_value_t = 0)]
    pub active_users: usize,
    /// Before measuring, read every active user's home timeline once, so
    /// the run measures timelines the server holds, not their first-read
    /// rebuilds (a server that caches only recently read timelines rebuilds
    /// each on first read; without this the run measures that too).
    #[arg(long)]
    pub prime: bool,
    /// HTTP/1.1 connections kept open to the server; also the most requests
    /// in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// A request without a full response after this long counts as a
    /// timeout (and its connection is replaced).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Body size of the ceiling probe in bytes [default: the mean size of a
    /// few home pages, measured before the run].
    #[arg(long)]
    pub ceiling_bytes: Option<usize>,
    /// Random seed of the request stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl TargetArgs {
    pub fn users_path(&self) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("bench-users.tsv"))
    }
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Mix)]
    pub workload: Workload,
    /// Requests per second, scheduled at fixed intervals whatever the
    /// server does (open loop; latency counts from the intended send time).
    /// 0 runs closed loop instead: every connection sends its next request
    /// as soon as the last one is answered (a throughput ceiling; latency is
    /// then service time).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Run the workload this long first without measuring (fills caches and
    /// home timelines).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Fan-out lag probes per author kind (an ordinary author and the most
    /// followed one) during the run; 0 turns the probe off.
    #[arg(long, default_value_t = 3)]
    pub lag_probes: usize,
    /// Followers whose home timelines each lag probe polls.
    #[arg(long, default_value_t = 10)]
    pub lag_sample: usize,
    /// How often a lag probe polls each follower's home timeline.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub lag_poll: Duration,
    /// A probe post not seen by a follower after this long counts as lost.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lag_timeout: Duration,
    /// After the run, measure the ceiling probe's capacity (closed loop)
    /// for this long, so the report can state the run's throughput as a
    /// fraction of it; 0 skips it.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub ceiling_duration: Duration,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Home)]
    pub workload: Workload,
    /// The p99 latency bound (any operation) a rate must keep to pass.
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// First rate tried, in requests per second.
    #[arg(long, default_value_t = 500.0)]
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Never offer more than this rate.
    #[arg(long, default_value_t = 200_000.0)]
    pub max_rate: f64,
    /// After the first failing step, bisect between the last passing and
    /// the failing rate this many times.
    #[arg(long, default_value_t = 2)]
    pub refine: usize,
    /// Measuring time per step.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub step_duration: Duration,
    /// Runs a failing step again up to this many times; it passes if one
    /// of its runs passes (the report counts the runs and keeps why the
    /// earlier ones failed). On a shared machine one slow second can fail
    /// a step that the rate does not.
    #[arg(long, default_value_t = 0)]
    pub retries: usize,
    /// Unmeasured warm-up before each step.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A step fails if more than this fraction of its requests fail.
    #[arg(long, default_value_t = 0.001)]
    pub max_error_rate: f64,
    /// A step fails if it completes less than this fraction of the offered
    /// rate.
    #[arg(long, default_value_t = 0.95)]
    pub min_achieved: f64,
    /// Also sweep the ceiling probe, and state the result as a fraction of
    /// its highest sustainable rate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ceiling: bool,
    /// Write the sweep as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write SVG charts (latency percentiles against offered rate, one per
    /// operation) into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn every_option_is_explained() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{id} has no help",
                    sub.get_name()
                );
            }
        }
    }
}
