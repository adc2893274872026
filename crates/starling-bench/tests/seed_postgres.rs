//! `seed --config` into the distributed shape's store: two fresh PostgreSQL
//! databases (the 1024 logical shards split between them, as
//! `scripts/cluster` does), a Starling configuration file naming them, a
//! small network seeded through the bulk loader, then the store read back
//! through the server's own code: every account there and findable by
//! username, each follow counted on its followee's side and listed on its
//! follower's, every token authenticating.
//!
//! Needs PostgreSQL (`starling-testkit`: SKIPPED without it, a failure when
//! `STARLING_TEST_REQUIRE_SERVICES=1`); makes its own databases and drops
//! them (leftovers of a crashed run are named `starling_t_<time>_...`, which
//! the store's PostgreSQL tests drop after an hour).

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};
use starling::store_open::{open_configured_store, ConfiguredStore};
use starling::{Config, FlagOverrides};
use starling_bench::cli::SeedArgs;
use starling_bench::users;
use starling_domain::{Id, Page, Secret};
use starling_store::{GraphStore, Store};
use starling_testkit::Service;

/// Drops the databases when the test ends, however it ends.
struct Databases {
    server: String,
    names: Vec<String>,
}

impl Drop for Databases {
    fn drop(&mut self) {
        let (server, names) = (self.server.clone(), std::mem::take(&mut self.names));
        // Drop cannot await: a thread with its own runtime does the work.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&server)
                    .await
                    .map_err(|e| e.to_string())?;
                for name in &names {
                    conn.execute(
                        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test databases: {done:?}");
        }
    }
}

fn seed_args(dir: &std::path::Path, config: &std::path::Path) -> SeedArgs {
    SeedArgs {
        users: 300,
        avg_follows: 12.0,
        max_follows: 100,
        zipf_exponent: 0.78,
        posts_per_user: 2.0,
        seed: 11,
        username_prefix: "pg".into(),
        data_dir: dir.to_path_buf(),
        config: Some(config.to_path_buf()),
        users_file: None,
        target: None,
        concurrency: 4,
        public_url: None,
        // From the configuration (below): low, so some accounts are large.
        large_account_threshold: None,
        batch: 500,
        keep_indexes: false,
        password: "bench-password".into(),
        json: None,
        quiet: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_the_sharded_postgres_store_a_configuration_names() {
    let Some(server) = starling_testkit::require(Service::Postgres, "seed_postgres") else {
        return;
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut dbs = Databases {
        server: server.clone(),
        names: Vec::new(),
    };
    let mut conn = PgConnection::connect(&server).await.expect("connect");
    let mut urls = Vec::new();
    for _ in 0..2 {
        let name = starling_testkit::unique_name(&format!("starling_t_{secs}_seed"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create a database");
        let mut url = url::Url::parse(&server).expect("the server URL");
        url.set_path(&format!("/{name}"));
        urls.push(url.to_string());
        dbs.names.push(name);
    }
    conn.close().await.expect("close");

    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = dir.path().join("starling.toml");
    std::fs::write(
        &config_file,
        format!(
            "public_url = \"http://127.0.0.1:18000\"\n\
             large_account_threshold = 40\n\n\
             [store]\nkind = \"postgres\"\n\n\
             [[store.clusters]]\nprimary = \"{}\"\nshards = [0, 511]\n\n\
             [[store.clusters]]\nprimary = \"{}\"\nshards = [512, 1023]\n",
            urls[0], urls[1]
        ),
    )
    .expect("write the configuration");

    let args = seed_args(dir.path(), &config_file);
    let report = starling_bench::seed(&args).await.expect("seed");
    assert_eq!(report.users, 300);
    assert_eq!(report.statuses, 600);
    assert!(report.follows > 1_000, "{} follows", report.follows);
    assert!(
        report.large_accounts >= 1,
        "the threshold came from the file"
    );
    assert!(report.via.contains("PostgreSQL"), "{}", report.via);
    assert!(report.disk_bytes.unwrap_or(0) > 0);
    let seeded = users::read(&dir.path().join("bench-users.tsv")).expect("users file");
    assert_eq!(seeded.len(), 300);

    // Seeding again refuses: the store holds accounts.
    let again = starling_bench::seed(&args).await;
    assert!(again.is_err(), "a second seed into the same store refuses");

    // Read back as the server would, through its own configuration code.
    let config =
        Config::load(Some(config_file.as_path()), &FlagOverrides::default()).expect("config");
    let ConfiguredStore::Postgres(store) = open_configured_store(&config).await.expect("open")
    else {
        panic!("the configuration names PostgreSQL");
    };
    assert_eq!(store.physical_count(), 2);
    assert_eq!(store.count_accounts().await.expect("count"), 300);
    let mut large = 0u64;
    let mut shards_on = [0usize; 2];
    for user in &seeded {
        let id: Id = user.id.parse().expect("an id");
        shards_on[store.physical_index(id.shard())] += 1;
        let account = store
            .account_by_username(&user.username)
            .await
            .expect("read")
            .expect("seeded account");
        assert_eq!(account.id, id);
        // Each side's counter, as the users file has it from the graph.
        assert_eq!(account.followers_count, i64::from(user.followers));
        assert_eq!(account.following_count, i64::from(user.following));
        let following = store
            .following(id, &Page::first(200))
            .await
            .expect("following");
        assert_eq!(following.len(), user.following as usize);
        let secret = Secret::parse(&user.token).expect("a token");
        let token = store
            .token(secret.shard(), &secret.hash())
            .await
            .expect("read")
            .expect("the token authenticates");
        assert_eq!(token.account_id, Some(id));
        if store.is_large(id).await.expect("read") {
            large += 1;
            assert!(user.followers >= 40);
        }
    }
    assert_eq!(large, report.large_accounts);
    assert!(
        shards_on.iter().all(|n| *n > 0),
        "accounts on both databases: {shards_on:?}"
    );
    store.close().await;
    drop(dbs);
}
