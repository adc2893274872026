//! The PostgreSQL adapter when things go wrong: a statement stuck on a lock
//! ends at the statement timeout, a database that is down fails only its
//! own shards' calls while cross-shard writes to it wait in the mirror log,
//! ops applied twice change nothing, and a bad shard map is refused.
#![cfg(feature = "postgres")]

mod pg_support;

use std::time::Duration;

use starling_domain::{Id, IdGenerator, Page, ShardId};
use starling_store::{
    CrashPoint, GraphStore, PgClusterConfig, PgStore, PgStoreConfig, Store, StoreError,
};

use pg_support::{stamp, user_on as user, PLAIN};

async fn followers_count(store: &PgStore, id: Id) -> i64 {
    store
        .account(id)
        .await
        .expect("read")
        .expect("exists")
        .followers_count
}

#[tokio::test]
async fn a_statement_stuck_on_a_lock_ends_at_the_statement_timeout() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_failures", 1).await else {
        return;
    };
    let store = PgStore::connect(PgStoreConfig {
        statement_timeout: Duration::from_millis(200),
        ..pg_support::config(&urls, false)
    })
    .await
    .expect("connect");
    pg_support::assert_statement_timeout_ends_lock_waits(&store, &urls[0], "direct").await;
    store.close().await;
}

#[tokio::test]
async fn a_database_that_is_down_fails_only_its_shards_and_its_mirrors_wait() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_failures", 2).await else {
        return;
    };
    let up = pg_support::store_over(&urls).await;
    let ids = IdGenerator::new();
    let alice = user(&up, &ids, 0, "alice").await;
    let bob = user(&up, &ids, 1, "bob").await;
    assert!(up.set_large(bob, true).await.expect("set_large"));
    // The same shard map, with the second database unreachable.
    let down = PgStore::connect(PgStoreConfig {
        acquire_timeout: Duration::from_millis(300),
        ..pg_support::config(
            &[
                urls[0].clone(),
                "postgres://postgres@127.0.0.1:1/nowhere".to_owned(),
            ],
            false,
        )
    })
    .await
    .expect("connect (pools connect lazily)");

    let err = down.ping().await.expect_err("one database is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = down.account(bob).await.expect_err("bob's shard is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        down.account(alice)
            .await
            .expect("alice's shard serves")
            .is_some(),
        "other shards serve"
    );
    // The first side commits (with its event); the mirror waits.
    down.follow(alice, bob, PLAIN, false, stamp(&ids, alice.shard()))
        .await
        .expect("a write whose first side committed succeeds");
    assert_eq!(
        down.following(alice, &Page::first(10))
            .await
            .expect("following")
            .len(),
        1
    );
    assert_eq!(followers_count(&up, bob).await, 0);

    assert!(
        down.large_followees(alice).await.expect("large").is_empty(),
        "the follow could not read Bob's large flag"
    );

    // The database is back (a process that reaches it repairs): the follow
    // lands on Bob's side, which sends back his current large flag.
    assert_eq!(up.repair_mirrors(Duration::ZERO).await.expect("repair"), 2);
    assert_eq!(followers_count(&up, bob).await, 1);
    assert_eq!(
        up.large_followees(alice).await.expect("large"),
        vec![(bob, PLAIN)]
    );
    assert_eq!(
        up.followers(bob, &Page::first(10))
            .await
            .expect("followers")
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>(),
        vec![alice]
    );
    down.close().await;
    up.close().await;
}

#[tokio::test]
async fn ops_applied_twice_change_nothing() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_failures", 2, false).await else {
        return;
    };
    let ids = IdGenerator::new();
    let alice = user(&store, &ids, 0, "alice").await;
    let bob = user(&store, &ids, 1, "bob").await;

    // Applied on the other side, but not removed from the log: as if the
    // process died right after the other side committed.
    store.crash_for_tests(Some(CrashPoint::AfterOtherSide));
    store
        .follow(bob, alice, PLAIN, false, stamp(&ids, bob.shard()))
        .await
        .expect("follow");
    store.crash_for_tests(None);
    assert_eq!(followers_count(&store, alice).await, 1);

    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        1,
        "the op is settled again"
    );
    assert_eq!(
        followers_count(&store, alice).await,
        1,
        "applying an op twice changes nothing"
    );
    assert_eq!(
        store
            .followers(alice, &Page::first(10))
            .await
            .expect("followers")
            .len(),
        1
    );
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0
    );
}

#[tokio::test]
async fn bad_shard_maps_are_refused() {
    let cluster = |shards| PgClusterConfig {
        shards,
        ..PgClusterConfig::new("postgres://postgres@127.0.0.1:5432/unused")
    };
    for clusters in [
        vec![],
        vec![cluster(Some((0, 600))), cluster(Some((500, 1023)))],
        vec![cluster(Some((0, 500))), cluster(Some((502, 1023)))],
        vec![cluster(Some((0, 511))), cluster(None)],
    ] {
        let err = PgStore::connect(PgStoreConfig::new(clusters.clone()))
            .await
            .err();
        assert!(
            matches!(err, Some(StoreError::Internal(_))),
            "{clusters:?}: {err:?}"
        );
    }
    let store = PgStore::connect(PgStoreConfig::new(vec![
        cluster(Some((100, 1023))),
        cluster(Some((0, 99))),
    ]))
    .await
    .expect("ranges in any order");
    assert_eq!(store.physical_index(ShardId::new(99).expect("shard")), 1);
    assert_eq!(store.physical_index(ShardId::new(100).expect("shard")), 0);
}
