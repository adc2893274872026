//! The read path of the SQLite adapter: queries run on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query
//! is a hand-off to that thread and back (and a pooled query adds a ping
//! before and after it: two more). A home read makes several queries, and
//! those hand-offs were a quarter of the server's CPU. Reads here instead
//! take an idle connection from a small stack, run the statement where they
//! are (an indexed read of a page of rows takes microseconds: the file is
//! memory-mapped) and put the connection back. Writes stay on sqlx's one
//! writer connection; in WAL mode a read sees every commit that finished
//! before it started, whichever connection made it.
//!
//! Statements are prepared once per connection and cached by their text;
//! `IN (...)` lists are padded to a few fixed lengths ([`in_list`]) so
//! their text repeats.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use starling_domain::Id;

use crate::{StoreError, StoreResult};

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 256;
/// Bytes of the file mapped into memory (SQLite caps it at its compiled
/// maximum, 2 GiB by default; the rest is read with `pread`).
const MMAP_BYTES: i64 = 1 << 34;
/// Page cache per connection, KiB (on top of the mapping).
const CACHE_KIB: i64 = 16 * 1024;

/// Idle read connections to one database file, opened as needed.
pub(crate) struct FastReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Most idle connections kept (more are opened when this many are busy
    /// at once, and closed when they come back).
    keep: usize,
    busy_timeout: Duration,
}

/// A connection of the calling-thread paths to `path` (`flags` plus
/// no-mutex and URI): the busy timeout, `statements` kept prepared, the
/// file mapped, a larger page cache, temporary b-trees in memory.
pub(crate) fn open_tuned(
    path: &Path,
    flags: OpenFlags,
    busy_timeout: Duration,
    statements: usize,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(statements);
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    Ok(conn)
}

impl FastReader {
    pub(crate) fn new(path: &Path, keep: usize, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
            busy_timeout,
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        open_tuned(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
            self.busy_timeout,
            STATEMENT_CACHE,
        )
    }

    /// Runs `f` on an idle connection (opening one if none is idle).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open().map_err(map_err)?,
        };
        let out = f(&conn);
        if !conn.is_autocommit() {
            // A statement left a transaction open (never expected of a read):
            // do not hand that snapshot to the next caller.
            return out.map_err(map_err);
        }
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        drop(idle);
        out.map_err(map_err)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding the lock cannot leave the stack inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Lengths `IN (...)` lists are padded to, so a handful of statement texts
/// serve every list up to the longest.
const BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
/// Most ids bound into one list (longer lists are split).
pub(crate) const CHUNK: usize = 500;

/// `(?, ?, ...)` for `n` ids padded to its bucket, and that length.
pub(crate) fn in_list(n: usize) -> (String, usize) {
    let len = BUCKETS
        .iter()
        .copied()
        .find(|b| *b >= n)
        .unwrap_or_else(|| n.div_ceil(100) * 100);
    let mut s = String::with_capacity(len * 3 + 2);
    s.push('(');
    for i in 0..len {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s.push(')');
    (s, len)
}

/// The ids of one list, padded to `len` by repeating the first (a repeated
/// member of an `IN` list changes nothing).
pub(crate) fn padded(ids: &[Id], len: usize) -> Vec<i64> {
    let mut out: Vec<i64> = ids.iter().map(|i| i.as_i64()).collect();
    let first = out.first().copied().unwrap_or(0);
    out.resize(len.max(out.len()), first);
    out
}

/// Sorted, without repeats.
pub(crate) fn unique(ids: &[Id]) -> Vec<Id> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(in_list(1), ("(?)".to_owned(), 1));
        assert_eq!(in_list(3).1, 4);
        assert_eq!(in_list(20).1, 32);
        assert_eq!(in_list(128).1, 128);
        assert_eq!(in_list(129).1, 200);
        assert_eq!(in_list(500).1, 500);
        let ids = [Id::from_i64(5), Id::from_i64(7)];
        assert_eq!(padded(&ids, 4), vec![5, 7, 5, 5]);
    }
}
