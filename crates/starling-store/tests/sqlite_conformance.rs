//! The SQLite adapter against the store conformance suite.

use starling_store::{SqliteStore, Store};

async fn fresh() -> (Box<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_in(dir.path()).await.expect("open");
    store.migrate().await.expect("migrate");
    (Box::new(store), dir)
}

starling_store::store_conformance_suite!(fresh);
