//! Fresh PostgreSQL databases for the adapter's tests.
//!
//! The server comes from the test kit (`STARLING_TEST_POSTGRES_URL`, or the
//! local default); without one a test prints SKIPPED and passes (fails when
//! `STARLING_TEST_REQUIRE_SERVICES=1`). Each test gets its own databases,
//! copied from a template database migrated once per test binary
//! (`CREATE DATABASE .. TEMPLATE ..` is much faster than migrating), and
//! dropped when its [`Databases`] guard goes. Templates are kept and
//! reused by later runs for half an hour (named after a hash of the
//! migrations, so a changed schema gets a new one). Every name starts with
//! `starling_t_<unix seconds>_`, and each run drops what is older than an
//! hour: old templates, and what crashed runs left behind.

#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection, Row};
use starling_domain::account::ProfileUpdate;
use starling_domain::{Account, FollowOptions, Id, IdGenerator, ShardId};
use starling_store::{
    NewAccount, PgClusterConfig, PgStore, PgStoreConfig, Stamp, Store, StoreError,
};
use starling_testkit::Service;
use tokio::sync::OnceCell;

const PREFIX: &str = "starling_t_";
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Drops its databases when dropped (`WITH (FORCE)`: connections still open
/// are cut).
pub struct Databases {
    server: String,
    names: Vec<String>,
}

impl Databases {
    /// The databases' names, in the order of their URLs.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Sets `name = value` as each database's default for new sessions
    /// (`ALTER DATABASE .. SET`): what a session that cannot bring settings
    /// of its own (through PgBouncer) starts with.
    pub async fn set_defaults(&self, settings: &[(&str, &str)]) {
        let mut conn = maintenance(&self.server)
            .await
            .expect("maintenance connection");
        for name in &self.names {
            for (key, value) in settings {
                conn.execute(format!("ALTER DATABASE \"{name}\" SET {key} = '{value}'").as_str())
                    .await
                    .expect("set a database default");
            }
        }
        conn.close().await.expect("close");
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let server = self.server.clone();
        let names = std::mem::take(&mut self.names);
        // Drop cannot await, and the test's runtime may be single-threaded:
        // a thread with its own small runtime does the work.
        let done = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = maintenance(&server).await?;
                for name in &names {
                    drop_database(&mut conn, name).await?;
                }
                conn.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test databases: {e}"),
            Err(_) => eprintln!("could not drop test databases: the dropping thread panicked"),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new database name: the prefix, the time, and what makes it unique.
fn database_name(kind: &str) -> String {
    starling_testkit::unique_name(&format!("{PREFIX}{}_{kind}", now_secs()))
}

/// `server` with its database replaced by `name`. Test sessions commit
/// without waiting for the disk (`synchronous_commit=off`): a crash of the
/// server loses nothing a test needs, and tests run several times faster.
fn url_of(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("the PostgreSQL URL parses");
    url.set_path(&format!("/{name}"));
    url.query_pairs_mut()
        .append_pair("options", "-c synchronous_commit=off");
    url.to_string()
}

/// A connection to the server's maintenance database, committing without
/// waiting for the disk (database creation takes a third less).
async fn maintenance(server: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::connect(server)
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    conn.execute("SET synchronous_commit = off")
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), String> {
    // `WITH (FORCE)` alone cuts the connections still open (the store's
    // pools) but then polls every 100 ms until they are gone; cutting them
    // first and polling faster makes dropping several times quicker.
    disconnect(conn, name).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .map(|_| ())
        .map_err(|e| format!("dropping {name}: {e}"))
}

/// When a database of this kit was made (from its name).
fn born(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.split('_').next()?.parse().ok()
}

/// Drops databases of this kit older than an hour (crashed runs).
async fn drop_stale(conn: &mut PgConnection) -> Result<(), String> {
    let rows = conn
        .fetch_all("SELECT datname FROM pg_database WHERE datname LIKE 'starling\\_t\\_%'")
        .await
        .map_err(|e| e.to_string())?;
    let now = now_secs();
    for row in rows {
        let name: String = row.get("datname");
        if born(&name).is_some_and(|b| now.saturating_sub(b) > STALE_AFTER.as_secs()) {
            drop_database(conn, &name).await?;
        }
    }
    Ok(())
}

pub fn config(urls: &[String], explicit_ranges: bool) -> PgStoreConfig {
    let n = urls.len() as u16;
    let clusters = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let i = i as u16;
            PgClusterConfig {
                // Explicit ranges: the same split as the default, spelled out.
                shards: explicit_ranges.then(|| (i * 1024 / n, (i + 1) * 1024 / n - 1)),
                ..PgClusterConfig::new(url.clone())
            }
        })
        .collect();
    PgStoreConfig {
        max_connections_per_pool: 4,
        ..PgStoreConfig::new(clusters)
    }
}

/// A short hash of the PostgreSQL migrations, naming the templates made
/// from them (a changed migration makes a new template).
fn migrations_hash() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the migrations directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    // FNV-1a, 64 bits: stable across runs and Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let text = std::fs::read(&path).expect("a migration file");
        for byte in name.unwrap_or_default().bytes().chain(text) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Cuts every session connected to `name` and waits (briefly) until they
/// are gone.
async fn disconnect(conn: &mut PgConnection, name: &str) -> Result<(), String> {
    let sessions = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(name.to_owned());
    sessions(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| format!("disconnecting {name}: {e}"))?;
    for _ in 0..200 {
        let left = sessions("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The migrated template the test databases are copied from: one made from
/// the current migrations less than half an hour ago (by any run), or a new
/// one. Made under a temporary name and renamed when migrated, so a
/// half-made template is never used. Stale databases are dropped first.
async fn template(server: &str) -> String {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let mut conn = maintenance(server).await.expect("maintenance connection");
            drop_stale(&mut conn)
                .await
                .expect("dropping stale databases");
            let hash = migrations_hash();
            let now = now_secs();
            let existing: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname DESC",
            )
            .bind(format!("starling\\_t\\_%\\_tpl\\_{hash}\\_%"))
            .fetch_all(&mut conn)
            .await
            .expect("list templates");
            let fresh_enough = existing.into_iter().find(|name| {
                born(name).is_some_and(|b| now.saturating_sub(b) < STALE_AFTER.as_secs() / 2)
            });
            if let Some(name) = fresh_enough {
                conn.close().await.expect("close");
                return name;
            }
            let making = database_name("mk");
            conn.execute(format!("CREATE DATABASE \"{making}\"").as_str())
                .await
                .expect("create the template database");
            let store = PgStore::connect(config(&[url_of(server, &making)], false))
                .await
                .expect("connect to the template");
            store.migrate().await.expect("migrate the template");
            store.close().await;
            disconnect(&mut conn, &making).await.expect("disconnect");
            let name = format!("{PREFIX}{now}_tpl_{hash}_{}", std::process::id());
            conn.execute(format!("ALTER DATABASE \"{making}\" RENAME TO \"{name}\"").as_str())
                .await
                .expect("rename the template");
            conn.close().await.expect("close");
            name
        })
        .await
        .clone()
}

/// `n` fresh, migrated databases, or `None` (SKIPPED) without a server.
pub async fn fresh_databases(test: &str, n: usize) -> Option<(Vec<String>, Databases)> {
    let server = starling_testkit::require(Service::Postgres, test)?;
    let template = template(&server).await;
    let mut conn = maintenance(&server).await.expect("maintenance connection");
    let mut guard = Databases {
        server: server.clone(),
        names: Vec::new(),
    };
    for _ in 0..n {
        let name = database_name("db");
        conn.execute(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"").as_str())
            .await
            .expect("create a test database from the template");
        guard.names.push(name);
    }
    conn.close().await.expect("close");
    let urls = guard
        .names
        .iter()
        .map(|name| url_of(&server, name))
        .collect();
    Some((urls, guard))
}

/// A store over `n` fresh databases (the 1024 shards split evenly; with
/// `explicit_ranges` the split is given as ranges in the configuration).
pub async fn fresh_store(
    test: &str,
    n: usize,
    explicit_ranges: bool,
) -> Option<(PgStore, Databases)> {
    let (urls, guard) = fresh_databases(test, n).await?;
    let store = PgStore::connect(config(&urls, explicit_ranges))
        .await
        .expect("connect");
    Some((store, guard))
}

/// Another store (another "process") over the same databases.
pub async fn store_over(urls: &[String]) -> PgStore {
    PgStore::connect(config(urls, false))
        .await
        .expect("connect")
}

/// Creates an account whose username lands on physical database `db`
/// (`base` plus the first number that does); returns its id.
pub async fn user_on(store: &PgStore, ids: &IdGenerator, db: usize, base: &str) -> Id {
    let name = (0..)
        .map(|n| format!("{base}{n}"))
        .find(|name| store.physical_index(ShardId::for_key(name)) == db)
        .unwrap_or_default();
    let new = NewAccount {
        account: Account::new(ids.next(ShardId::for_key(&name)), &name, None, 0),
        email: format!("{name}@example.com"),
        email_key: format!("{name}@example.com"),
        password_hash: "$argon2id$fake".to_owned(),
        locale: None,
    };
    store.create_account(&new).await.expect("create account");
    new.account.id
}

/// Another session, connected to `direct` (PostgreSQL itself), holds a row
/// lock: a write through `store` behind it must end with `Unavailable`
/// within a few seconds (its statement timeout), and succeed once the lock
/// is gone. `via` names the path in the failure message.
pub async fn assert_statement_timeout_ends_lock_waits(store: &PgStore, direct: &str, via: &str) {
    let ids = IdGenerator::new();
    let alice = user_on(store, &ids, 0, "alice").await;
    let mut other = PgConnection::connect(direct).await.expect("connect");
    other.execute("BEGIN").await.expect("begin");
    other
        .execute(
            format!(
                "SELECT id FROM accounts WHERE id = {} FOR UPDATE",
                alice.as_i64()
            )
            .as_str(),
        )
        .await
        .expect("lock");
    let update = ProfileUpdate {
        display_name: Some("Alice".into()),
        ..ProfileUpdate::default()
    };
    let started = Instant::now();
    let err = store
        .update_profile(alice, &update)
        .await
        .expect_err("stuck behind the lock");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up after {:?}: the statement timeout did not apply ({via})",
        started.elapsed()
    );
    other.execute("ROLLBACK").await.expect("rollback");
    other.close().await.expect("close");
    assert!(store
        .update_profile(alice, &update)
        .await
        .expect("update")
        .is_some());
}

/// A follow with boosts shown and no notifications.
pub const PLAIN: FollowOptions = FollowOptions {
    reblogs: true,
    notify: false,
};

/// A fresh stamp (id and time) on `shard`.
pub fn stamp(ids: &IdGenerator, shard: ShardId) -> Stamp {
    let id = ids.next(shard);
    Stamp {
        id,
        at_ms: id.unix_ms() as i64,
    }
}
