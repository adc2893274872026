//! Configuration: typed, loaded once at start-up.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file
//! (`--config`), `STARLING_*` environment variables (nested keys with `__`:
//! `STARLING_RATE_LIMITS__ENABLED=false`), then command-line flags. A bad
//! value stops start-up with a message naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use starling_api::{ApiSettings, RateLimitSettings};
use starling_cache::Rule;
use url::Url;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Turn every rate limit off (benchmarks, client test suites).
    pub enabled: bool,
    pub api_limit: u32,
    pub api_period_secs: u64,
    pub registrations_limit: u32,
    pub registrations_period_secs: u64,
    pub sign_in_limit: u32,
    pub sign_in_period_secs: u64,
    /// Behind a load balancer: read the client IP from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let d = RateLimitSettings::default();
        Self {
            enabled: d.enabled,
            api_limit: d.api.limit,
            api_period_secs: d.api.period.as_secs(),
            registrations_limit: d.registrations.limit,
            registrations_period_secs: d.registrations.period.as_secs(),
            sign_in_limit: d.sign_in.limit,
            sign_in_period_secs: d.sign_in.period.as_secs(),
            trust_forwarded_for: d.trust_forwarded_for,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Where the embedded shape keeps its database; created if missing.
    pub data_dir: PathBuf,
    /// Base of every absolute URL the server emits; derived from `listen`
    /// when unset.
    pub public_url: Option<String>,
    pub title: String,
    pub description: String,
    pub contact_email: String,
    pub registrations_open: bool,
    pub log_format: LogFormat,
    /// A `tracing` filter; `RUST_LOG` wins when set.
    pub log_level: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    /// How often idle streams get a heartbeat (SSE `:thump`; WebSocket
    /// pings every other beat), which also ends streams of revoked tokens.
    pub stream_heartbeat_ms: u64,
    /// Read connections to the SQLite file.
    pub sqlite_readers: u32,
    /// Password hashes computed at once (each takes ~19 MiB and a core).
    pub password_hash_concurrency: usize,
    pub rate_limits: RateLimitConfig,
    /// Authors with at least this many followers are not fanned out on
    /// write; their posts are merged into home timelines at read time.
    pub large_account_threshold: i64,
    pub timelines: TimelineConfig,
    /// Serve the benchmark ceiling probe (`GET /api/v1/_bench/ceiling`).
    pub bench_probe: bool,
    /// This process's id generator slot (`0..id_slots`): processes that run
    /// at the same time against one store must each have their own.
    pub id_slot: u32,
    /// How many generator slots the id space is split into (a power of two
    /// up to 64; 1 for the embedded shape).
    pub id_slots: u32,
    pub store: StoreConfig,
    pub cache: CacheConfig,
    pub bus: BusConfig,
    pub media: MediaConfig,
}

/// Which store, and how to reach it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file in `data_dir` (the embedded shape).
    Sqlite,
    /// Sharded PostgreSQL (the distributed shape).
    Postgres,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// PostgreSQL: a single cluster's primary URL (shorthand for one
    /// `clusters` entry holding every shard).
    pub url: Option<String>,
    /// PostgreSQL: the physical clusters and the logical shards each holds.
    pub clusters: Vec<ClusterConfig>,
    /// PostgreSQL: connections per pool (one pool per primary and replica).
    pub max_connections: u32,
    /// PostgreSQL: longest wait for a connection, and longest statement.
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// PostgreSQL replicas: one further behind its primary than this is
    /// taken out of rotation (its reads go to the primary) until it catches
    /// up.
    pub max_replica_lag_ms: u64,
    /// PostgreSQL replicas: how often each one's lag and health are checked.
    pub replica_check_interval_ms: u64,
    /// PostgreSQL replicas: how long after a write a token's reads keep
    /// going to the primary (read-your-writes); at least
    /// `max_replica_lag_ms` to be sure a writer sees its writes.
    pub read_your_writes_window_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            url: None,
            clusters: Vec::new(),
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 5_000,
            max_replica_lag_ms: 5_000,
            replica_check_interval_ms: 1_000,
            read_your_writes_window_ms: 5_000,
        }
    }
}

impl StoreConfig {
    /// Whether reads may go to replicas: PostgreSQL with at least one.
    pub fn has_replicas(&self) -> bool {
        self.kind == StoreKind::Postgres && self.clusters.iter().any(|c| !c.replicas.is_empty())
    }
}

/// One physical PostgreSQL cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ClusterConfig {
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Inclusive range of logical shards, e.g. `[0, 511]`; omitted on every
    /// cluster, the shards are split evenly in order.
    #[serde(default)]
    pub shards: Option<(u16, u16)>,
}

/// Where the timeline cache, rate-limit buckets and shared object cache
/// live.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Redis (the distributed shape); in process memory when unset.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share a Redis.
    pub key_prefix: String,
    /// Longest wait for Redis before a call falls back to the store.
    pub timeout_ms: u64,
    /// With Redis: how long an account or status read by one process
    /// serves every process from Redis (writes invalidate it before they
    /// answer; this bounds what a lost invalidation costs). 0 keeps object
    /// caches per process.
    pub object_ttl_secs: u64,
    /// Accounts and statuses each process keeps in memory, of each kind
    /// (the object cache's first level). Home reads look up some sixty
    /// objects a page; when the active readers' pages hold more objects
    /// than this, reads go to the store.
    pub object_capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "starling".into(),
            timeout_ms: 2_000,
            object_ttl_secs: 60,
            object_capacity: 100_000,
        }
    }
}

/// Where events go from the outbox.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct BusConfig {
    /// NATS with JetStream (the distributed shape); in process when unset.
    pub nats_url: Option<String>,
    pub stream: String,
    pub subject_prefix: String,
    /// How long before the events of a worker that died go to another.
    pub ack_wait_secs: u64,
    /// Live events (streaming) go on core NATS subjects under this prefix
    /// (outside the stream's subjects: they are never stored).
    pub live_subject_prefix: String,
    /// Live events one streaming connection may have waiting before it is
    /// closed as too slow (the client reconnects).
    pub stream_queue: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            stream: "STARLING_EVENTS".into(),
            subject_prefix: "starling.events".into(),
            ack_wait_secs: 30,
            live_subject_prefix: "starling-live".into(),
            stream_queue: 1000,
        }
    }
}

/// Where uploaded media is kept and where its URLs point.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaStorageKind {
    /// A directory (`media.dir`, default `data_dir/media`): the embedded
    /// shape, or several processes sharing one volume.
    Filesystem,
    /// An S3-compatible object store (the distributed shape): every api and
    /// worker process reads and writes the same bucket.
    S3,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaConfig {
    pub storage: MediaStorageKind,
    /// Filesystem storage: the directory (default `data_dir/media`).
    pub dir: Option<PathBuf>,
    /// S3: endpoint URL (`http://127.0.0.1:9000`), bucket, region and keys.
    pub s3_endpoint: Option<String>,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    /// Public base of media URLs, e.g. a CDN in front of `/media` (or the
    /// bucket's public URL); `public_url` when unset. Files are immutable
    /// under their keys, so a CDN may cache them for ever.
    pub base_url: Option<String>,
    /// Largest upload request accepted (a 99 MiB video plus the form).
    pub max_upload_bytes: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            storage: MediaStorageKind::Filesystem,
            dir: None,
            s3_endpoint: None,
            s3_bucket: "starling-media".into(),
            s3_region: "us-east-1".into(),
            s3_access_key: String::new(),
            s3_secret_key: String::new(),
            base_url: None,
            max_upload_bytes: 100 * 1024 * 1024,
        }
    }
}

/// The home-timeline cache.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct TimelineConfig {
    /// Entries kept per home timeline.
    pub cap: usize,
    /// A timeline nobody read for this long is dropped (no more fan-out to
    /// it) and rebuilt from the store on its owner's next read.
    pub idle_secs: u64,
    /// Most home timelines held in memory; the least recently read go first.
    pub max_timelines: u64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            cap: 800,
            idle_secs: 7 * 24 * 3600,
            max_timelines: 200_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            title: "Starling".into(),
            description: "A Starling social server.".into(),
            contact_email: String::new(),
            registrations_open: true,
            log_format: LogFormat::Text,
            log_level: "info,sqlx=warn".into(),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            stream_heartbeat_ms: 15_000,
            sqlite_readers: 8,
            password_hash_concurrency: 2,
            rate_limits: RateLimitConfig::default(),
            large_account_threshold: 10_000,
            timelines: TimelineConfig::default(),
            bench_probe: false,
            id_slot: 0,
            id_slots: 1,
            store: StoreConfig::default(),
            cache: CacheConfig::default(),
            bus: BusConfig::default(),
            media: MediaConfig::default(),
        }
    }
}

/// Settings given as flags; only those present override the rest.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl Config {
    /// Loads defaults, then `file`, then the environment, then `flags`.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!("configuration file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(Env::prefixed("STARLING_").split("__"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            parse_public_url(url)?;
        }
        if self.max_body_bytes < 1024 {
            bail!("invalid configuration: max_body_bytes must be at least 1024");
        }
        if starling_domain::IdGenerator::with_slot(self.id_slot, self.id_slots).is_err() {
            bail!(
                "invalid configuration: id_slots must be a power of two from 1 to 64 and id_slot below it (got id_slot {} of {})",
                self.id_slot,
                self.id_slots
            );
        }
        if self.store.kind == StoreKind::Postgres
            && self.store.url.is_none()
            && self.store.clusters.is_empty()
        {
            bail!("invalid configuration: store.kind = \"postgres\" needs store.url or store.clusters");
        }
        for (name, ms) in [
            ("store.max_replica_lag_ms", self.store.max_replica_lag_ms),
            (
                "store.replica_check_interval_ms",
                self.store.replica_check_interval_ms,
            ),
            (
                "store.read_your_writes_window_ms",
                self.store.read_your_writes_window_ms,
            ),
        ] {
            if ms == 0 {
                bail!("invalid configuration: {name} must be positive");
            }
        }
        if self.large_account_threshold < 1 {
            bail!("invalid configuration: large_account_threshold must be at least 1");
        }
        if self.timelines.cap < 40 {
            bail!("invalid configuration: timelines.cap must be at least 40 (two pages)");
        }
        if self.timelines.idle_secs == 0 || self.timelines.max_timelines == 0 {
            bail!("invalid configuration: timelines.idle_secs and timelines.max_timelines must be positive");
        }
        let r = &self.rate_limits;
        for (name, period) in [
            ("rate_limits.api_period_secs", r.api_period_secs),
            (
                "rate_limits.registrations_period_secs",
                r.registrations_period_secs,
            ),
            ("rate_limits.sign_in_period_secs", r.sign_in_period_secs),
        ] {
            if period == 0 {
                bail!("invalid configuration: {name} must be positive");
            }
        }
        Ok(())
    }

    /// The public URL, or one derived from the address actually bound.
    pub fn public_url_for(&self, bound: SocketAddr) -> anyhow::Result<Url> {
        match &self.public_url {
            Some(url) => parse_public_url(url),
            None => {
                let host = if bound.ip().is_unspecified() {
                    "localhost".to_owned()
                } else if bound.is_ipv6() {
                    format!("[{}]", bound.ip())
                } else {
                    bound.ip().to_string()
                };
                Url::parse(&format!("http://{host}:{}", bound.port()))
                    .context("deriving public_url")
            }
        }
    }

    pub fn api_settings(&self, public_url: Url) -> ApiSettings {
        let r = &self.rate_limits;
        let rule = |limit, secs| Rule {
            limit,
            period: Duration::from_secs(secs),
        };
        ApiSettings {
            public_url,
            title: self.title.clone(),
            description: self.description.clone(),
            contact_email: self.contact_email.clone(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            rate_limits: RateLimitSettings {
                enabled: r.enabled,
                api: rule(r.api_limit, r.api_period_secs),
                registrations: rule(r.registrations_limit, r.registrations_period_secs),
                sign_in: rule(r.sign_in_limit, r.sign_in_period_secs),
                trust_forwarded_for: r.trust_forwarded_for,
            },
            bench_probe: self.bench_probe,
            media_base_url: self.media.base_url.clone(),
            max_upload_bytes: self.media.max_upload_bytes,
            stream_heartbeat: Duration::from_millis(self.stream_heartbeat_ms.max(10)),
        }
    }

    /// The longest rate-limit window, which bounds how long buckets live.
    pub fn longest_rate_period(&self) -> Duration {
        let r = &self.rate_limits;
        Duration::from_secs(
            r.api_period_secs
                .max(r.registrations_period_secs)
                .max(r.sign_in_period_secs),
        )
    }
}

fn parse_public_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw)
        .with_context(|| format!("invalid configuration: public_url {raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
    {
        bail!(
            "invalid configuration: public_url {raw:?} must be http(s)://host[:port] with no path"
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_public_url() {
        let c = Config::default();
        assert_eq!(
            c.public_url_for("127.0.0.1:8080".parse().unwrap())
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            c.public_url_for("0.0.0.0:80".parse().unwrap())
                .unwrap()
                .as_str(),
            "http://localhost/"
        );
    }

    #[test]
    fn rejects_bad_public_urls() {
        for bad in [
            "example.com",
            "ftp://x.example",
            "https://x.example/path",
            "https://x.example/?q=1",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
        assert!(parse_public_url("https://social.example").is_ok());
    }
}
