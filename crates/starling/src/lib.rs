//! Wiring: configuration in, a running Starling out.
//!
//! `main` parses the command line and calls into here; tests call the same
//! [`App::build`] with port 0 and a temporary data directory, so what the
//! tests run is what ships.

pub mod config;
pub mod store_open;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use starling_api::AppState;
use starling_bus::{
    EventBus, InProcessBus, InProcessLive, LiveBus, NatsBus, NatsBusConfig, NatsLive, RetryPolicy,
};
use starling_cache::{
    Freshness, Invalidations, LocalInvalidations, MemoryFreshness, MemoryRateLimiter,
    MemoryTimelineCache, RateLimiter, RedisFreshness, RedisInvalidations, RedisRateLimiter,
    RedisSharedObjects, RedisTimelineCache, SharedObjects, TimelineCache,
};
use starling_core::workers::{subscribe_consumers, ConsumerKind, Relay, StoreDeadLetters};
use starling_core::{tombstone_for, Core, CoreSettings, Passwords, Seams};
use starling_domain::{Clock, IdGenerator};
use starling_media::{FsStorage, MediaStorage, S3Config, S3Storage};
use starling_store::{with_primary_reads, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{
    Config, FlagOverrides, LogFormat, MediaConfig, MediaStorageKind, StoreKind, TimelineConfig,
};

/// How long shutdown waits for the workers to finish the batch in hand.
const WORKER_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a worker applies the other side of cross-shard writes that a
/// crash left half done, and how old such a leftover must be.
const REPAIR_EVERY: Duration = Duration::from_secs(10);
const REPAIR_OLDER_THAN: Duration = Duration::from_secs(30);
/// How often unattached uploads past their grace period are looked for,
/// and how many are removed per look.
const MEDIA_SWEEP_EVERY: Duration = Duration::from_secs(600);
const MEDIA_SWEEP_BATCH: usize = 200;

/// Opens the configured store: the SQLite file in the data directory
/// (created if missing), or the PostgreSQL shards.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match store_open::open_configured_store(config).await? {
        store_open::ConfiguredStore::Sqlite(store) => Arc::new(store),
        store_open::ConfiguredStore::Postgres(store) => Arc::new(store),
    })
}

/// Applies schema migrations to every physical database.
pub async fn migrate(store: &dyn Store) -> anyhow::Result<()> {
    store.migrate().await.context("applying migrations")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// The home-timeline cache: Redis when configured, else process memory.
async fn open_timelines(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn TimelineCache>> {
    let t = &config.timelines;
    let idle = Duration::from_secs(t.idle_secs);
    Ok(match &config.cache.redis_url {
        Some(url) => Arc::new(
            RedisTimelineCache::connect(
                url,
                &config.cache.key_prefix,
                t.cap,
                idle,
                Duration::from_millis(config.cache.timeout_ms),
            )
            .await
            .map_err(|e| anyhow::anyhow!("invalid configuration: cache.redis_url: {e}"))?,
        ),
        None => Arc::new(MemoryTimelineCache::new(
            t.cap,
            idle,
            t.max_timelines,
            clock,
        )),
    })
}

/// Rate-limit buckets: Redis when configured (shared by every process),
/// else process memory.
async fn open_rate_limiter(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn RateLimiter>> {
    Ok(match &config.cache.redis_url {
        Some(url) => Arc::new(
            RedisRateLimiter::connect(
                url,
                &config.cache.key_prefix,
                clock,
                Duration::from_millis(config.cache.timeout_ms),
            )
            .await
            .map_err(|e| anyhow::anyhow!("invalid configuration: cache.redis_url: {e}"))?,
        ),
        None => Arc::new(MemoryRateLimiter::new(
            clock,
            config.longest_rate_period(),
            1_000_000,
        )),
    })
}

/// Read-your-writes marks, when the store has read replicas: in Redis when
/// configured (every api process must see a write another one served),
/// else in process memory.
async fn open_freshness(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<dyn Freshness>>> {
    if !config.store.has_replicas() {
        return Ok(None);
    }
    let window = Duration::from_millis(config.store.read_your_writes_window_ms);
    Ok(Some(match &config.cache.redis_url {
        Some(url) => Arc::new(
            RedisFreshness::connect(
                url,
                &config.cache.key_prefix,
                window,
                Duration::from_millis(config.cache.timeout_ms),
            )
            .await
            .map_err(|e| anyhow::anyhow!("invalid configuration: cache.redis_url: {e}"))?,
        ),
        None => Arc::new(MemoryFreshness::new(window, clock, 1_000_000)),
    }))
}

/// The object cache's level shared by every process: Redis when
/// configured (and `cache.object_ttl_secs` is not 0). Alone there is none:
/// one process has nothing to share, and a second in-memory level would
/// hold the first level's objects again (ARCHITECTURE.md, "The object
/// cache").
async fn open_shared_objects(config: &Config) -> anyhow::Result<Option<Arc<dyn SharedObjects>>> {
    let c = &config.cache;
    let Some(url) = c.redis_url.as_ref().filter(|_| c.object_ttl_secs > 0) else {
        return Ok(None);
    };
    let objects =
        RedisSharedObjects::connect(url, &c.key_prefix, Duration::from_millis(c.timeout_ms))
            .await
            .map_err(|e| anyhow::anyhow!("invalid configuration: cache.redis_url: {e}"))?;
    Ok(Some(Arc::new(objects)))
}

/// How far behind the primary a store read may be: with read replicas, the
/// lag at which one leaves the rotation plus the time until it is checked.
fn store_read_staleness(config: &Config) -> Duration {
    if config.store.has_replicas() {
        Duration::from_millis(
            config
                .store
                .max_replica_lag_ms
                .saturating_add(config.store.replica_check_interval_ms),
        )
    } else {
        Duration::ZERO
    }
}

/// The configured media storage: a directory, or an S3-compatible bucket.
fn open_media(config: &Config) -> anyhow::Result<Arc<dyn MediaStorage>> {
    let m = &config.media;
    Ok(match m.storage {
        MediaStorageKind::Filesystem => Arc::new(FsStorage::new(
            m.dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("media")),
        )),
        MediaStorageKind::S3 => {
            let endpoint = m.s3_endpoint.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid configuration: media.s3_endpoint is required for S3 storage"
                )
            })?;
            Arc::new(
                S3Storage::new(&S3Config {
                    allow_http: endpoint.starts_with("http://"),
                    endpoint,
                    bucket: m.s3_bucket.clone(),
                    region: m.s3_region.clone(),
                    access_key: m.s3_access_key.clone(),
                    secret_key: m.s3_secret_key.clone(),
                })
                .map_err(|e| anyhow::anyhow!("invalid configuration: media: {e}"))?,
            )
        }
    })
}

/// Where live events go: core NATS subjects when a NATS server is
/// configured (every process hears the others'), else this process.
async fn open_live(config: &Config) -> anyhow::Result<Arc<dyn LiveBus>> {
    Ok(match &config.bus.nats_url {
        Some(url) => Arc::new(
            NatsLive::connect(url, &config.bus.live_subject_prefix)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("connecting to NATS for live events (bus.nats_url): {e}")
                })?,
        ),
        None => Arc::new(InProcessLive::new()),
    })
}

/// The use cases over a store, with the configured caches.
pub async fn build_core(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    base_url: &str,
) -> anyhow::Result<Core> {
    let ids = IdGenerator::with_slot(config.id_slot, config.id_slots)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    for id in store.max_ids().await.context("reading the highest ids")? {
        ids.observe(id);
    }
    let passwords = Passwords::new(config.password_hash_concurrency)
        .map_err(|e| anyhow::anyhow!("initialising password hashing: {e}"))?;
    let timelines = open_timelines(config, clock.clone()).await?;
    // Alone, this process's object cache sees every write; with others
    // (Redis configured), they tell each other, and copies live shorter.
    let (invalidations, object_cache_ttl): (Arc<dyn Invalidations>, _) =
        match &config.cache.redis_url {
            Some(url) => (
                Arc::new(
                    RedisInvalidations::connect(
                        url,
                        &config.cache.key_prefix,
                        Duration::from_millis(config.cache.timeout_ms),
                    )
                    .map_err(|e| anyhow::anyhow!("invalid configuration: cache.redis_url: {e}"))?,
                ),
                Duration::from_secs(5),
            ),
            None => (Arc::new(LocalInvalidations), Duration::from_secs(30)),
        };
    let shared_objects = open_shared_objects(config).await?;
    let media = open_media(config)?;
    let live = open_live(config).await?;
    let core = Core::new(
        Seams {
            store,
            timelines,
            invalidations,
            shared_objects,
            media,
            live,
        },
        Arc::new(ids),
        clock,
        passwords,
        CoreSettings {
            registrations_open: config.registrations_open,
            base_url: base_url.trim_end_matches('/').to_owned(),
            large_account_threshold: config.large_account_threshold,
            stream_queue: config.bus.stream_queue,
            object_cache_capacity: config.cache.object_capacity.max(1),
            object_cache_ttl,
            shared_object_ttl: Duration::from_secs(config.cache.object_ttl_secs),
            shared_object_tombstone: tombstone_for(
                store_read_staleness(config),
                Duration::from_millis(config.cache.timeout_ms),
            ),
            ..CoreSettings::default()
        },
    );
    core.listen_for_invalidations()
        .await
        .map_err(|e| anyhow::anyhow!("listening for cache invalidations: {e}"))?;
    Ok(core)
}

/// The background role: the outbox relay, the event consumers (home
/// fan-out, notifications) it delivers to through the event bus, and the
/// repair of cross-shard writes a crash left half done.
pub struct Workers {
    relay: Relay,
    store: Arc<dyn Store>,
    /// Set when this process runs the media consumer: it also sweeps
    /// unattached uploads past their grace period.
    media_sweeper: Option<Core>,
    /// Kept to stop its consumer tasks gracefully (NATS only).
    nats: Option<Arc<NatsBus>>,
}

impl Workers {
    /// Subscribes the chosen consumers (all of them when `kinds` is empty)
    /// to the configured bus: NATS JetStream, or in process.
    pub async fn start(
        core: &Core,
        config: &Config,
        kinds: &[ConsumerKind],
    ) -> anyhow::Result<Self> {
        let dead_letters = Arc::new(StoreDeadLetters(core.store().clone()));
        let (bus, nats): (Arc<dyn EventBus>, _) = match &config.bus.nats_url {
            Some(url) => {
                let b = &config.bus;
                let nats_config = NatsBusConfig {
                    stream: b.stream.clone(),
                    subject_prefix: b.subject_prefix.clone(),
                    ack_wait: Duration::from_secs(b.ack_wait_secs.max(1)),
                    ..NatsBusConfig::new(url.clone())
                };
                let bus = Arc::new(
                    NatsBus::connect(nats_config, dead_letters)
                        .await
                        .map_err(|e| anyhow::anyhow!("connecting to NATS (bus.nats_url): {e}"))?,
                );
                (bus.clone(), Some(bus))
            }
            None => (
                Arc::new(InProcessBus::new(RetryPolicy::default(), dead_letters)),
                None,
            ),
        };
        subscribe_consumers(core, &*bus, kinds)
            .await
            .context("subscribing the event consumers")?;
        Ok(Self {
            relay: Relay::new(core, bus),
            store: core.store().clone(),
            media_sweeper: (kinds.is_empty() || kinds.contains(&ConsumerKind::Media))
                .then(|| core.clone()),
            nats,
        })
    }

    /// Relays and delivers events until `shutdown` resolves; the batch in
    /// hand is finished first (for at most [`WORKER_SHUTDOWN_GRACE`]; an
    /// unfinished batch stays in the outbox, or with the broker, and is
    /// delivered again).
    ///
    /// Every store read of the workers goes to the primary (a replica may
    /// not have what an event is about yet): the relay and repair tasks
    /// here, the consumers in their own `handle` (the buses run those on
    /// tasks of their own, which a task-local does not reach).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop, stopped) = watch::channel(false);
        let relay = tokio::spawn(with_primary_reads(
            self.relay.run(wait_true(stopped.clone())),
        ));
        let repair = tokio::spawn(with_primary_reads(repair_loop(
            self.store,
            wait_true(stopped.clone()),
        )));
        let sweep = self.media_sweeper.map(|core| {
            tokio::spawn(with_primary_reads(media_sweep_loop(
                core,
                wait_true(stopped),
            )))
        });
        shutdown.await;
        let _ = stop.send(true);
        let finished = async {
            let _ = relay.await;
            let _ = repair.await;
            if let Some(sweep) = sweep {
                let _ = sweep.await;
            }
            if let Some(nats) = &self.nats {
                nats.shutdown(WORKER_SHUTDOWN_GRACE).await;
            }
        };
        if tokio::time::timeout(WORKER_SHUTDOWN_GRACE, finished)
            .await
            .is_err()
        {
            tracing::warn!("the workers did not stop in time; their batch will be redelivered");
        }
    }
}

/// Removes, every [`MEDIA_SWEEP_EVERY`], uploads nobody attached within
/// their grace period (files first, then the row).
async fn media_sweep_loop(core: Core, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        loop {
            match core.sweep_media(MEDIA_SWEEP_BATCH).await {
                Ok(n) if n == MEDIA_SWEEP_BATCH => continue,
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept unattached uploads"),
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping unattached uploads failed; retrying")
                }
            }
            break;
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(MEDIA_SWEEP_EVERY) => {}
        }
    }
}

/// Finishes, every [`REPAIR_EVERY`], the cross-shard writes a crash left
/// half done (a no-op for a store that writes both sides at once).
async fn repair_loop(store: Arc<dyn Store>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match store.repair(REPAIR_OLDER_THAN).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(repaired = n, "finished cross-shard writes left half done"),
            Err(e) => tracing::warn!(error = %e, "repairing cross-shard writes failed; retrying"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(REPAIR_EVERY) => {}
        }
    }
}

/// Resolves once the watched value is `true` (or its sender is gone).
async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Which roles an [`App`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process: migrates first, serves HTTP and runs the
    /// workers (the embedded shape).
    Serve,
    /// HTTP only (the distributed shape's stateless API role).
    Api,
}

/// Tells how many events are still waiting to be delivered (tests wait on
/// it; an operator sees it as a metric).
#[derive(Clone)]
pub struct OutboxProbe(Arc<dyn Store>);

impl OutboxProbe {
    /// Events not yet handled by every consumer.
    pub async fn pending(&self) -> u64 {
        self.0.outbox_len().await.unwrap_or(u64::MAX)
    }
}

/// A bound, ready-to-run server.
pub struct App {
    listener: TcpListener,
    state: AppState,
    workers: Option<Workers>,
    store: Arc<dyn Store>,
}

impl App {
    /// Opens the store, binds the listener and builds the state; with
    /// [`Role::Serve`], migrates first and starts the workers too.
    pub async fn build(config: &Config, clock: Arc<dyn Clock>, role: Role) -> anyhow::Result<Self> {
        // Install the metrics recorder first: the store's replica checks
        // record from the start.
        starling_api::telemetry::prometheus();
        let store = open_store(config).await?;
        if role == Role::Serve {
            migrate(&*store).await?;
        }
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!("invalid configuration: cannot listen on {}", config.listen)
        })?;
        let bound = listener.local_addr()?;
        let public_url = config.public_url_for(bound)?;
        let core = build_core(config, store.clone(), clock.clone(), public_url.as_str()).await?;
        let workers = match role {
            Role::Serve => Some(Workers::start(&core, config, &[]).await?),
            Role::Api => None,
        };
        let limiter = open_rate_limiter(config, clock.clone()).await?;
        let fresh = open_freshness(config, clock).await?;
        let mut state = AppState::new(core, limiter, config.api_settings(public_url));
        if let Some(fresh) = fresh {
            state = state.with_read_your_writes(fresh);
        }
        Ok(Self {
            listener,
            state,
            workers,
            store,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn public_url(&self) -> String {
        self.state.settings.base()
    }

    pub fn outbox_probe(&self) -> OutboxProbe {
        OutboxProbe(self.store.clone())
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and
    /// lets the workers finish the batch in hand.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            listen = %self.listener.local_addr()?,
            public_url = %self.state.settings.base(),
            workers = self.workers.is_some(),
            "serving"
        );
        let (stop, stopped) = watch::channel(false);
        let workers = self
            .workers
            .map(|w| tokio::spawn(w.run(wait_true(stopped.clone()))));
        let served = starling_api::serve(self.listener, self.state, async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
        .context("serving HTTP");
        if let Some(workers) = workers {
            let _ = workers.await;
        }
        served
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
