//! Wiring: configuration in, a running Starling out.
//!
//! `main` parses the command line and calls into here; tests call the same
//! [`App::build`] with port 0 and a temporary data directory, so what the
//! tests run is what ships.

pub mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use starling_api::AppState;
use starling_bus::{EventBus, InProcessBus, RetryPolicy};
use starling_cache::{MemoryRateLimiter, MemoryTimelineCache};
use starling_core::workers::{subscribe_consumers, Relay, StoreDeadLetters};
use starling_core::{Core, CoreSettings, Passwords, Seams};
use starling_domain::{Clock, IdGenerator};
use starling_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Config, FlagOverrides, LogFormat, TimelineConfig};

/// How long shutdown waits for the relay to finish the batch in hand.
const WORKER_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the embedded store in the data directory (created if missing).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "invalid configuration: data_dir {} cannot be created",
            config.data_dir.display()
        )
    })?;
    let path = config.data_dir.join("starling.db");
    let store = SqliteStore::open(&path, config.sqlite_readers)
        .await
        .with_context(|| format!("opening the database {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Applies schema migrations to every physical database.
pub async fn migrate(store: &dyn Store) -> anyhow::Result<()> {
    store.migrate().await.context("applying migrations")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// The use cases over a store, with the embedded shape's caches.
pub async fn build_core(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    base_url: &str,
) -> anyhow::Result<Core> {
    let ids = IdGenerator::new();
    for id in store.max_ids().await.context("reading the highest ids")? {
        ids.observe(id);
    }
    let passwords = Passwords::new(config.password_hash_concurrency)
        .map_err(|e| anyhow::anyhow!("initialising password hashing: {e}"))?;
    let t = &config.timelines;
    let timelines = Arc::new(MemoryTimelineCache::new(
        t.cap,
        Duration::from_secs(t.idle_secs),
        t.max_timelines,
        clock.clone(),
    ));
    Ok(Core::new(
        Seams { store, timelines },
        Arc::new(ids),
        clock,
        passwords,
        CoreSettings {
            registrations_open: config.registrations_open,
            base_url: base_url.trim_end_matches('/').to_owned(),
            large_account_threshold: config.large_account_threshold,
            ..CoreSettings::default()
        },
    ))
}

/// The background role: the outbox relay and the event consumers (home
/// fan-out, notifications) it delivers to through the event bus.
pub struct Workers {
    relay: Relay,
}

impl Workers {
    /// Subscribes the consumers to an in-process bus fed by `core`'s store.
    pub async fn start(core: &Core) -> anyhow::Result<Self> {
        let bus = Arc::new(InProcessBus::new(
            RetryPolicy::default(),
            Arc::new(StoreDeadLetters(core.store().clone())),
        ));
        subscribe_consumers(core, &*bus)
            .await
            .context("subscribing the event consumers")?;
        let bus: Arc<dyn EventBus> = bus;
        Ok(Self {
            relay: Relay::new(core, bus),
        })
    }

    /// Relays and delivers events until `shutdown` resolves; the batch in
    /// hand is finished first (for at most [`WORKER_SHUTDOWN_GRACE`]; an
    /// unfinished batch stays in the outbox and is delivered after restart).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop, stopped) = watch::channel(false);
        let relay = tokio::spawn(self.relay.run(wait_true(stopped)));
        shutdown.await;
        let _ = stop.send(true);
        if tokio::time::timeout(WORKER_SHUTDOWN_GRACE, relay)
            .await
            .is_err()
        {
            tracing::warn!("the relay did not stop in time; its batch will be redelivered");
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
            Role::Serve => Some(Workers::start(&core).await?),
            Role::Api => None,
        };
        let limiter = Arc::new(MemoryRateLimiter::new(
            clock,
            config.longest_rate_period(),
            1_000_000,
        ));
        // Install the metrics recorder before the first request.
        starling_api::telemetry::prometheus();
        let state = AppState::new(core, limiter, config.api_settings(public_url));
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
