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
}

mod two_databases {
    use starling_store::Store;

    use super::pg_support::{fresh_store, Databases};

    async fn fresh() -> Option<(Box<dyn Store>, Databases)> {
        let (store, guard) = fresh_store("postgres_conformance (two databases)", 2, true).await?;
        Some((Box::new(store), guard))
    }

    starling_store::store_conformance_suite!(optional fresh);
}
