//! The configured store as its concrete adapter, for tools that need more
//! than the [`Store`](starling_store::Store) seam (the bench's bulk loader
//! needs [`BulkLoad`](starling_store::BulkLoad) too).
//!
//! The server opens its store through [`crate::open_store`], behind the
//! seam; this builds the same adapter from the same configuration
//! ([`pg_store_config`] is the one mapping from `[store]` settings to the
//! PostgreSQL adapter's), so a tool writes into exactly the databases the
//! server will read.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use starling_store::postgres::{PgClusterConfig, PgStore, PgStoreConfig};
use starling_store::SqliteStore;

use crate::config::{Config, StoreKind};

/// The store a configuration names, as its adapter.
pub enum ConfiguredStore {
    /// The embedded shape's file, at [`sqlite_path`].
    Sqlite(SqliteStore),
    /// The distributed shape's shards.
    Postgres(PgStore),
}

/// Where the embedded shape keeps its database.
pub fn sqlite_path(config: &Config) -> PathBuf {
    config.data_dir.join("starling.db")
}

/// The PostgreSQL adapter's settings from `[store]`: its `clusters`, then
/// `url` as one more cluster (the shorthand for a single one).
pub fn pg_store_config(config: &Config) -> PgStoreConfig {
    let s = &config.store;
    let mut clusters: Vec<PgClusterConfig> = s
        .clusters
        .iter()
        .map(|c| PgClusterConfig {
            primary: c.primary.clone(),
            replicas: c.replicas.clone(),
            shards: c.shards,
        })
        .collect();
    if let Some(url) = &s.url {
        clusters.push(PgClusterConfig::new(url.clone()));
    }
    PgStoreConfig {
        clusters,
        max_connections_per_pool: s.max_connections,
        acquire_timeout: Duration::from_millis(s.acquire_timeout_ms),
        statement_timeout: Duration::from_millis(s.statement_timeout_ms),
        max_replica_lag: Duration::from_millis(s.max_replica_lag_ms),
        replica_check_interval: Duration::from_millis(s.replica_check_interval_ms),
    }
}

/// Opens the configured store (the SQLite file's directory is created if
/// missing; PostgreSQL pools connect on first use).
pub async fn open_configured_store(config: &Config) -> anyhow::Result<ConfiguredStore> {
    match config.store.kind {
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "invalid configuration: data_dir {} cannot be created",
                    config.data_dir.display()
                )
            })?;
            let path = sqlite_path(config);
            let store = SqliteStore::open(&path, config.sqlite_readers)
                .await
                .with_context(|| format!("opening the database {}", path.display()))?;
            Ok(ConfiguredStore::Sqlite(store))
        }
        StoreKind::Postgres => {
            let store = PgStore::connect(pg_store_config(config))
                .await
                .map_err(|e| anyhow::anyhow!("invalid configuration: store: {e}"))?;
            Ok(ConfiguredStore::Postgres(store))
        }
    }
}
