//! The SQLite adapter against the store conformance suite.

use starling_store::{SqliteStore, Store};

async fn fresh() -> (Box<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_in(dir.path()).await.expect("open");
    store.migrate().await.expect("migrate");
    (Box::new(store), dir)
}

starling_store::store_conformance_suite!(fresh);

/// SQLite's follow ids carry their time: later follows are left out.
#[tokio::test]
async fn notified_followers_before_leaves_out_later_follows() {
    let (store, _dir) = fresh().await;
    starling_store::conformance::notified_followers_before_leaves_out_later_follows(&*store).await;
}

/// A bulk-loaded store answers like one written through the normal path.
#[tokio::test]
async fn bulk_load_answers_like_the_normal_path() {
    let bulk_dir = tempfile::tempdir().expect("temp dir");
    let bulk = SqliteStore::open_in(bulk_dir.path()).await.expect("open");
    bulk.migrate().await.expect("migrate");
    let (normal, _dir) = fresh().await;
    starling_store::conformance::bulk_load_answers_like_the_normal_path(&bulk, &*normal).await;
}
