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
