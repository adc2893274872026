//! The PostgreSQL adapter through PgBouncer in transaction pooling mode: the
//! store conformance suite (on one database and on two), a statement stuck
//! on a lock ending at the statement timeout, and two stores ("processes")
//! writing across shards at once, all with the store's primaries reached
//! through PgBouncer.
//!
//! The PgBouncer comes from the test kit (`STARLING_TEST_PGBOUNCER_URL`, or
//! `postgres://postgres@127.0.0.1:6432/postgres`; `scripts/pgbouncer.sh
//! start-test` starts one, as CI does): in front of the tests' PostgreSQL
//! (`STARLING_TEST_POSTGRES_URL`) for any database name (`* = host=...`), in
//! transaction pooling mode with the settings `scripts/pgbouncer.sh
//! settings` prints, its admin console open to the URL's user (the tests
//! check the pooling mode there, so that they prove something). Without
//! it every case prints SKIPPED (fails with
//! `STARLING_TEST_REQUIRE_SERVICES=1`).
//!
//! As in production (docs/OPERATIONS.md, "PgBouncer"), the databases are
//! created and migrated directly on PostgreSQL, and what a session cannot
//! bring through PgBouncer is set on each database: the statement timeout
//! (and, for speed, `synchronous_commit = off`). The suite's
//! `ping_and_migrate_twice` does run `migrate` through PgBouncer; with no
//! migration pending and no other migrator it passes, but deployments must
//! migrate directly (sqlx's migrator holds a session-level advisory lock).
//!
//! With PgBouncer's pools smaller than the store's (3 server connections a
//! database against 4 client connections), clients share server
//! connections and a client's statements run on several: sqlx's named
//! prepared statements work only because PgBouncer (>= 1.21, with
//! `max_prepared_statements` > 0) prepares them on whichever server
//! connection a client gets. With `max_prepared_statements = 0` (as
//! PgBouncer before 1.21) these tests fail.
#![cfg(feature = "postgres")]

mod pg_support;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pg_support::Databases;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use starling_domain::IdGenerator;
use starling_store::{GraphStore, PgStore, PgStoreConfig, Store};
use starling_testkit::Service;
use tokio::sync::OnceCell;

/// The statement timeout of the test databases (and of the stores'
/// configuration, which PgBouncer does not pass on).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PgBouncer's URL, once checked to pool transactions with prepared
/// statements, or `None` (SKIPPED) when there is none.
async fn pgbouncer(test: &str) -> Option<String> {
    static CHECKED: OnceCell<String> = OnceCell::const_new();
    let url = starling_testkit::require(Service::PgBouncer, test)?;
    Some(
        CHECKED
            .get_or_init(|| async move {
                check_pooling(&url).await;
                url
            })
            .await
            .clone(),
    )
}

/// Panics unless the PgBouncer at `url` pools transactions and keeps
/// prepared statements (read from its admin console, `SHOW CONFIG`).
async fn check_pooling(url: &str) {
    let options = PgConnectOptions::from_str(url)
        .expect("the PgBouncer URL parses")
        .database("pgbouncer")
        .extra_float_digits(None);
    let mut admin = options.connect().await.unwrap_or_else(|e| {
        panic!(
            "cannot open the admin console of the PgBouncer at {url} ({e}): \
             its admin_users must include the URL's user"
        )
    });
    let rows = admin.fetch_all("SHOW CONFIG").await.expect("SHOW CONFIG");
    let setting = |key: &str| {
        rows.iter()
            .find(|row| row.get::<String, _>("key") == key)
            .map(|row| row.get::<String, _>("value"))
            .unwrap_or_default()
    };
    assert_eq!(
        setting("pool_mode"),
        "transaction",
        "the PgBouncer at {url} must pool transactions for these tests to prove anything \
         (scripts/pgbouncer.sh start-test starts one that does)"
    );
    let prepared: u32 = setting("max_prepared_statements").parse().unwrap_or(0);
    eprintln!("pgbouncer_conformance: PgBouncer at {url}: transaction pooling, max_prepared_statements = {prepared}");
    admin.close().await.expect("close");
}

/// The URLs of `databases` through the PgBouncer at `pgbouncer`.
fn through(pgbouncer: &str, databases: &Databases) -> Vec<String> {
    databases
        .names()
        .iter()
        .map(|name| {
            let mut url = url::Url::parse(pgbouncer).expect("the PgBouncer URL parses");
            url.set_path(&format!("/{name}"));
            url.set_query(None);
            url.to_string()
        })
        .collect()
}

/// `n` fresh databases made and migrated on PostgreSQL, with their session
/// defaults set, and their URLs through PgBouncer; `None` (SKIPPED) without
/// PgBouncer or PostgreSQL.
async fn fresh_databases(
    test: &str,
    n: usize,
    statement_timeout: Duration,
) -> Option<(Vec<String>, Vec<String>, Databases)> {
    let pgbouncer = pgbouncer(test).await?;
    let (direct, databases) = pg_support::fresh_databases(test, n).await?;
    let timeout = format!("{}ms", statement_timeout.as_millis());
    databases
        .set_defaults(&[
            ("statement_timeout", timeout.as_str()),
            ("synchronous_commit", "off"),
        ])
        .await;
    let pooled = through(&pgbouncer, &databases);
    Some((direct, pooled, databases))
}

/// A store whose primaries are `urls`.
async fn store_over(urls: &[String], explicit_ranges: bool) -> PgStore {
    PgStore::connect(PgStoreConfig {
        statement_timeout: STATEMENT_TIMEOUT,
        ..pg_support::config(urls, explicit_ranges)
    })
    .await
    .expect("connect")
}

/// A store over `n` fresh databases, through PgBouncer.
async fn fresh_store(test: &str, n: usize, explicit_ranges: bool) -> Option<(PgStore, Databases)> {
    let (_, pooled, databases) = fresh_databases(test, n, STATEMENT_TIMEOUT).await?;
    Some((store_over(&pooled, explicit_ranges).await, databases))
}

mod one_database {
    use starling_store::Store;

    use super::{fresh_store, Databases};

    async fn fresh() -> Option<(Box<dyn Store>, Databases)> {
        let (store, guard) = fresh_store("pgbouncer_conformance (one database)", 1, false).await?;
        Some((Box::new(store), guard))
    }

    starling_store::store_conformance_suite!(optional fresh);
}

mod two_databases {
    use starling_store::Store;

    use super::{fresh_store, Databases};

    async fn fresh() -> Option<(Box<dyn Store>, Databases)> {
        let (store, guard) = fresh_store("pgbouncer_conformance (two databases)", 2, true).await?;
        Some((Box::new(store), guard))
    }

    starling_store::store_conformance_suite!(optional fresh);
}

use pg_support::{stamp, user_on as user, PLAIN};

#[tokio::test]
async fn a_statement_stuck_on_a_lock_ends_at_the_statement_timeout() {
    let timeout = Duration::from_millis(300);
    let Some((direct, pooled, _dbs)) = fresh_databases("pgbouncer_conformance", 1, timeout).await
    else {
        return;
    };
    let store = PgStore::connect(PgStoreConfig {
        statement_timeout: timeout,
        ..pg_support::config(&pooled, false)
    })
    .await
    .expect("connect");
    // The lock is taken straight on PostgreSQL; the store goes through PgBouncer,
    // where only the database's own statement_timeout can apply.
    pg_support::assert_statement_timeout_ends_lock_waits(&store, &direct[0], "through PgBouncer")
        .await;
    store.close().await;
}

#[tokio::test]
async fn two_processes_write_across_shards_at_once() {
    let Some((_, pooled, _dbs)) =
        fresh_databases("pgbouncer_conformance", 2, STATEMENT_TIMEOUT).await
    else {
        return;
    };
    // Two "processes", 8 client connections a database between them, on
    // PgBouncer's 3 server connections a database.
    let stores = [
        Arc::new(store_over(&pooled, false).await),
        Arc::new(store_over(&pooled, false).await),
    ];
    let ids = Arc::new(IdGenerator::new());
    let target = user(&stores[0], &ids, 1, "target").await;
    let mut followers = Vec::new();
    for i in 0..24 {
        followers.push(user(&stores[i % 2], &ids, i % 2, &format!("f{i}x")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, follower) in followers.iter().copied().enumerate() {
        let store = stores[i % 2].clone();
        let ids = ids.clone();
        tasks.spawn(async move {
            // Each follows the target, which follows back: cross-shard
            // writes in both directions, their mirror ops applied at once.
            store
                .follow(
                    follower,
                    target,
                    PLAIN,
                    false,
                    stamp(&ids, follower.shard()),
                )
                .await
                .expect("follow");
            store
                .follow(target, follower, PLAIN, false, stamp(&ids, target.shard()))
                .await
                .expect("follow back");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a follower's task");
    }
    for store in &stores {
        assert_eq!(
            store.repair_mirrors(Duration::ZERO).await.expect("repair"),
            0,
            "every mirror op was applied by its write"
        );
    }
    let target_row = stores[1]
        .account(target)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(target_row.followers_count, followers.len() as i64);
    assert_eq!(target_row.following_count, followers.len() as i64);
    for follower in &followers {
        let row = stores[0]
            .account(*follower)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            (row.followers_count, row.following_count),
            (1, 1),
            "{follower:?}"
        );
    }
    for store in stores {
        store.close().await;
    }
}
