//! Pinning a task's reads to the primary: read-your-writes across replicas.
//!
//! An adapter with read replicas (PostgreSQL) sends reads that tolerate
//! staleness to a replica, which may lag the primary by a moment. Code that
//! must see every committed write (a consumer handling an event about a
//! status committed a millisecond ago, a request by someone who just wrote,
//! a home timeline being rebuilt) runs inside [`with_primary_reads`]: every
//! store read made while the future runs goes to the primary.
//!
//! The flag is a tokio task-local, so it follows the future through every
//! `.await` but **not** into tasks it spawns (`tokio::spawn` starts a new
//! task): whoever spawns work that must read the primary wraps that work
//! too. Adapters without replicas (SQLite) ignore it.

use std::future::Future;

tokio::task_local! {
    static PRIMARY_READS: ();
}

/// Runs `f` with every store read it makes sent to the primary.
pub async fn with_primary_reads<F: Future>(f: F) -> F::Output {
    PRIMARY_READS.scope((), f).await
}

/// Whether the running task is inside [`with_primary_reads`] (always false
/// outside a tokio task).
pub fn primary_reads_forced() -> bool {
    PRIMARY_READS.try_with(|()| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_holds_inside_the_scope_only() {
        assert!(!primary_reads_forced());
        let inside = with_primary_reads(async {
            tokio::task::yield_now().await;
            primary_reads_forced()
        })
        .await;
        assert!(inside);
        assert!(!primary_reads_forced());
    }

    #[tokio::test]
    async fn spawned_tasks_do_not_inherit_it() {
        let spawned = with_primary_reads(async {
            tokio::spawn(async { primary_reads_forced() })
                .await
                .expect("the task runs")
        })
        .await;
        assert!(!spawned);
    }
}
