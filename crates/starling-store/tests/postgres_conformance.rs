//! The PostgreSQL adapter against the store conformance suite, twice: on one
//! physical database, and on two (the 1024 logical shards split between
//! them, given as explicit ranges), so that every cross-shard path of the
//! mirror log runs. Needs a PostgreSQL server (see `pg_support`); without
//! one every case prints SKIPPED.
#![cfg(feature = "postgres")]

mod pg_support;

mod one_database {
    use starling_store::Store;

    use super::pg_support::{fresh_store, Databases};

    async fn fresh() -> Option<(Box<dyn Store>, Databases)> {
        let (store, guard) = fresh_store("postgres_conformance (one database)", 1, false).await?;
        Some((Box::new(store), guard))
    }

    starling_store::store_conformance_suite!(optional fresh);

    /// Follow ids carry their time: later follows are left out.
    #[tokio::test]
    async fn notified_followers_before_leaves_out_later_follows() {
        let Some((store, _guard)) = fresh().await else {
            return;
        };
        starling_store::conformance::notified_followers_before_leaves_out_later_follows(&*store)
            .await;
    }

    /// A bulk-loaded store answers like one written through the normal path.
    #[tokio::test]
    async fn bulk_load_answers_like_the_normal_path() {
        let test = "postgres_conformance (one database): bulk load";
        let Some((bulk, _bulk_guard)) = fresh_store(test, 1, false).await else {
            return;
        };
        let Some((normal, _guard)) = fresh_store(test, 1, false).await else {
            return;
        };
        starling_store::conformance::bulk_load_answers_like_the_normal_path(&bulk, &normal).await;
    }
}

mod two_databases {
    use starling_store::Store;

    use super::pg_support::{fresh_store, Databases};

    async fn fresh() -> Option<(Box<dyn Store>, Databases)> {
        let (store, guard) = fresh_store("postgres_conformance (two databases)", 2, true).await?;
        Some((Box::new(store), guard))
    }

    starling_store::store_conformance_suite!(optional fresh);

    /// Follow ids carry their time: later follows are left out.
    #[tokio::test]
    async fn notified_followers_before_leaves_out_later_follows() {
        let Some((store, _guard)) = fresh().await else {
            return;
        };
        starling_store::conformance::notified_followers_before_leaves_out_later_follows(&*store)
            .await;
    }

    /// A bulk-loaded store answers like one written through the normal
    /// path, with the sides of follows, replies, boosts, hashtags and email
    /// rows on different databases.
    #[tokio::test]
    async fn bulk_load_answers_like_the_normal_path() {
        let test = "postgres_conformance (two databases): bulk load";
        let Some((bulk, _bulk_guard)) = fresh_store(test, 2, true).await else {
            return;
        };
        let Some((normal, _guard)) = fresh_store(test, 2, true).await else {
            return;
        };
        starling_store::conformance::bulk_load_answers_like_the_normal_path(&bulk, &normal).await;
    }

    /// The indexes a bulk load drops are saved in the same transaction and
    /// come back at the end, on every database, also after an interrupted
    /// load.
    #[tokio::test]
    async fn bulk_load_restores_the_indexes_it_dropped() {
        use sqlx::{Connection, PgConnection};
        use starling_store::{BulkLoad, BulkOptions, FinishOptions, PgStore};

        let test = "postgres_conformance (two databases): bulk indexes";
        let Some((urls, _guard)) = super::pg_support::fresh_databases(test, 2).await else {
            return;
        };
        let store = PgStore::connect(super::pg_support::config(&urls, true))
            .await
            .expect("connect");
        async fn indexes(url: &str) -> Vec<(String, String)> {
            let mut conn = PgConnection::connect(url).await.expect("connect");
            let found = sqlx::query_as(
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema() ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("list indexes");
            conn.close().await.expect("close");
            found
        }
        let before = [indexes(&urls[0]).await, indexes(&urls[1]).await];
        assert!(before[0].iter().any(|(name, _)| name == "follows_in_by_id"));
        let finish = FinishOptions {
            large_account_threshold: 10,
        };

        store
            .begin_bulk(&BulkOptions::default())
            .await
            .expect("begin");
        for (url, all) in urls.iter().zip(&before) {
            let during = indexes(url).await;
            assert!(during.len() < all.len(), "secondary indexes are dropped");
            for name in ["follows_out_pkey", "statuses_pkey", "accounts_pkey"] {
                assert!(
                    during.iter().any(|(n, _)| n == name),
                    "{name}: constraints stay"
                );
            }
            assert!(
                !during.iter().any(|(n, _)| n == "follows_in_pkey"),
                "the followee side's primary key is deferred"
            );
        }
        // Interrupted, then begun again: what was saved is kept.
        store
            .begin_bulk(&BulkOptions::default())
            .await
            .expect("begin again");
        store.finish_bulk(&finish).await.expect("finish");
        for (url, all) in urls.iter().zip(&before) {
            assert_eq!(&indexes(url).await, all, "every index is back, as it was");
        }
        // Finishing again, and a load that keeps its indexes, change nothing.
        store.finish_bulk(&finish).await.expect("finish again");
        store
            .begin_bulk(&BulkOptions { keep_indexes: true })
            .await
            .expect("begin keeping indexes");
        for (url, all) in urls.iter().zip(&before) {
            let during = indexes(url).await;
            assert!(
                all.iter().all(|index| during.contains(index)),
                "nothing is dropped with keep_indexes"
            );
        }
        store.finish_bulk(&finish).await.expect("finish");
        for (url, all) in urls.iter().zip(&before) {
            assert_eq!(&indexes(url).await, all);
        }
        store.close().await;
    }
}
