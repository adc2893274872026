//! The write path's hot transactions, run on the calling thread.
//!
//! sqlx runs the writer connection on a thread of its own, and each
//! statement of a transaction is a round trip to it: posting a status was
//! nine (begin, the status, the counters, tags, the idempotency key, the
//! outbox, commit), and on one client's back-to-back posts the writer
//! thread spent more of its time being woken and put to sleep than in
//! SQLite. [`SqliteDb::write`] runs a whole transaction here instead, on a
//! rusqlite connection of its own to the same file, its statements
//! prepared once and kept.
//!
//! There is still one writer at a time: `write` first takes sqlx's writer
//! connection out of its pool (an async wait, no thread hop) and holds it
//! until the transaction ends, so the two connections never contend for
//! SQLite's write lock. The connection is opened with the writer's
//! settings (busy timeout, `synchronous = NORMAL`, foreign keys, the
//! mapping and cache sizes). A transaction that fails is rolled back.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::fast::{map_err, open_tuned};
use super::SqliteDb;
use crate::StoreResult;

/// Statements kept prepared on the connection.
const STATEMENT_CACHE: usize = 64;

/// The write connection of the calling-thread path, opened on first use.
pub(crate) struct FastWriter {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for FastWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl FastWriter {
    pub(crate) fn new(path: &Path, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout,
            conn: Mutex::new(None),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = open_tuned(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE,
            self.busy_timeout,
            STATEMENT_CACHE,
        )?;
        // As sqlx's writer (sqlite.rs): WAL is the file's; these are per
        // connection.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    }
}

impl SqliteDb {
    /// Runs `f` in one immediate transaction, on this thread, while no
    /// other write runs on this file; commits if `f` returns `Ok`, rolls
    /// back otherwise.
    pub(crate) async fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        // The one writer's turn (sqlx's writer pool holds one connection).
        let turn = self
            .writer
            .acquire()
            .await
            .map_err(crate::sqlite::map_err)?;
        let w = &self.fast_writer;
        let mut slot = w.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(w.open().map_err(map_err)?),
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let out = f(&tx).map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        drop(slot);
        drop(turn);
        Ok(out)
    }
}
