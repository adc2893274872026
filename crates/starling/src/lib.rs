//! Wiring: configuration in, a running Starling out.
//!
//! `main` parses the command line and calls into here; tests call the same
//! [`App::build`] with port 0 and a temporary data directory, so what the
//! tests run is what ships.

pub mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use starling_api::AppState;
use starling_cache::MemoryRateLimiter;
use starling_core::{Core, CoreSettings, Passwords};
use starling_domain::{Clock, IdGenerator};
use starling_store::{SqliteStore, Store};
use tokio::net::TcpListener;

pub use config::{Config, FlagOverrides, LogFormat};

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

/// The use cases over a store.
pub async fn build_core(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Core> {
    let ids = IdGenerator::new();
    for id in store.max_ids().await.context("reading the highest ids")? {
        ids.observe(id);
    }
    let passwords = Passwords::new(config.password_hash_concurrency)
        .map_err(|e| anyhow::anyhow!("initialising password hashing: {e}"))?;
    Ok(Core::new(
        store,
        Arc::new(ids),
        clock,
        passwords,
        CoreSettings {
            registrations_open: config.registrations_open,
        },
    ))
}

/// A bound, ready-to-run HTTP server.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Opens the store (migrating it when `migrate_first`), binds the
    /// listener and builds the state.
    pub async fn build(
        config: &Config,
        clock: Arc<dyn Clock>,
        migrate_first: bool,
    ) -> anyhow::Result<Self> {
        let store = open_store(config).await?;
        if migrate_first {
            migrate(&*store).await?;
        }
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!("invalid configuration: cannot listen on {}", config.listen)
        })?;
        let bound = listener.local_addr()?;
        let public_url = config.public_url_for(bound)?;
        let core = build_core(config, store, clock.clone()).await?;
        let limiter = Arc::new(MemoryRateLimiter::new(
            clock,
            config.longest_rate_period(),
            1_000_000,
        ));
        // Install the metrics recorder before the first request.
        starling_api::telemetry::prometheus();
        let state = AppState::new(core, limiter, config.api_settings(public_url));
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn public_url(&self) -> String {
        self.state.settings.base()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            listen = %self.listener.local_addr()?,
            public_url = %self.state.settings.base(),
            "serving"
        );
        starling_api::serve(self.listener, self.state, shutdown)
            .await
            .context("serving HTTP")
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
