//! The Redis connection behind each Redis adapter, and what it does when
//! Redis is slow or gone.
//!
//! Everything behind the cache seams may be lost, so a Redis that does not
//! answer must cost a caller little: the caller falls back to the store (the
//! timeline cache) or to counting in-process (the rate limiter). Hence:
//!
//! - **Lazy.** [`RedisConn::open`] parses the URL and returns at once; the
//!   connection is made on the first call. A Redis that is down when the
//!   process starts does not stop it from starting: calls fail with
//!   [`CacheError`] until Redis answers.
//! - **Every call has a deadline.** The whole call (connecting included) is
//!   bounded by the configured timeout; running out of it is a
//!   [`CacheError`], never a hang or a panic.
//! - **Reconnects by itself.** redis-rs' [`ConnectionManager`] (one
//!   multiplexed connection: concurrent calls share it and are pipelined)
//!   reconnects after an I/O error. A call that times out may have met a
//!   connection that died without a reset (a network partition), which the
//!   manager would keep using: after a timeout the manager is replaced by a
//!   fresh one.
//! - **Fails fast while Redis is down.** After a connection failure or a
//!   timeout, calls fail at once for [`RETRY_AFTER`], then the next call
//!   tries again. So an outage costs one timeout per interval, not one per
//!   call. The outage and the recovery are logged once each.
//! - **Counted.** Every failed call, fast failures included, increments
//!   `starling_redis_errors_total{op}`.
//!
//! Scripts run with `EVALSHA`; a Redis that does not know one (restarted,
//! or `SCRIPT FLUSH`ed) answers `NOSCRIPT`, and the call loads its scripts
//! and runs once more. Every script here may run twice without harm.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Pipeline, RedisError, RedisResult, Script};

use crate::timeline::{CacheError, CacheResult};

/// How long calls fail at once after Redis failed to answer.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One lazily connected, self-healing Redis connection with a deadline on
/// every call.
pub(crate) struct RedisConn {
    client: redis::Client,
    config: ConnectionManagerConfig,
    manager: RwLock<ConnectionManager>,
    timeout: Duration,
    /// What uses it, for log lines ("timeline cache", "rate limiter").
    what: &'static str,
    health: Health,
}

impl RedisConn {
    /// A connection to `url` (`redis://[user:password@]host:port[/db]`),
    /// made on first use. Fails only if the URL is not one.
    pub(crate) fn open(url: &str, timeout: Duration, what: &'static str) -> CacheResult<Self> {
        // The URL may hold a password: it is never put in an error.
        let client = redis::Client::open(url)
            .map_err(|e| CacheError(format!("invalid Redis URL: {}", e.category())))?;
        let timeout = timeout.max(Duration::from_millis(1));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // No retry loop inside a call: a refused connection fails the
            // call now (the caller has a fallback), and the next call after
            // RETRY_AFTER connects again.
            .set_number_of_retries(0);
        let manager = lazy_manager(&client, &config)?;
        Ok(Self {
            client,
            config,
            manager: RwLock::new(manager),
            timeout,
            what,
            health: Health::new(),
        })
    }

    /// Whether Redis answers a `PING` now (logged when it does not: the
    /// adapter still works, its calls fail until Redis is there).
    pub(crate) async fn probe(&self, scripts: &[&Script]) -> bool {
        let result = self
            .run("connect", |mut c| async move {
                redis::cmd("PING").query_async::<()>(&mut c).await?;
                for script in scripts {
                    script.load_async(&mut c).await?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    cache = self.what,
                    error = %e,
                    "Redis is not reachable yet; its calls fail (and callers fall back) until it answers"
                );
                false
            }
        }
    }

    /// The client, for connections of their own (pub/sub).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `call` on the connection within the timeout, mapping every
    /// failure to a [`CacheError`] counted under `op`.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, call: F) -> CacheResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if let Some(left) = self.health.resting() {
            return Err(self.failed(
                op,
                format!(
                    "Redis unavailable (next attempt in {} ms)",
                    left.as_millis()
                ),
            ));
        }
        let conn = self
            .manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match tokio::time::timeout(self.timeout, call(conn)).await {
            Ok(Ok(value)) => {
                if self.health.up() {
                    tracing::info!(cache = self.what, "Redis answers again");
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                if is_unavailable(&e) {
                    self.went_down(&e.to_string());
                }
                if e.is_timeout() {
                    self.renew();
                }
                Err(self.failed(op, format!("Redis {op} failed: {e}")))
            }
            Err(_elapsed) => {
                self.went_down("timed out");
                self.renew();
                Err(self.failed(
                    op,
                    format!("Redis {op} timed out after {} ms", self.timeout.as_millis()),
                ))
            }
        }
    }

    /// Runs a pipeline of `EVALSHA`s of `scripts` (and other commands),
    /// loading the scripts and running the whole pipeline again if Redis
    /// does not know them: with `scripts`, every command in it must be safe
    /// to run twice (the timeline scripts are). Without, nothing is re-run.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        scripts: &[&Script],
    ) -> CacheResult<T> {
        self.run(op, |mut c| async move {
            // Twice at most: a second flush may land between load and run.
            let mut reloads = 0;
            loop {
                match pipe.query_async::<T>(&mut c).await {
                    Err(e) if reloads < 2 && !scripts.is_empty() && is_noscript(&e) => {
                        reloads += 1;
                        for script in scripts {
                            script.load_async(&mut c).await?;
                        }
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    fn failed(&self, op: &'static str, message: String) -> CacheError {
        metrics::counter!("starling_redis_errors_total", "op" => op).increment(1);
        CacheError(message)
    }

    fn went_down(&self, why: &str) {
        if self.health.down() {
            tracing::warn!(
                cache = self.what,
                error = why,
                retry_after_ms = RETRY_AFTER.as_millis() as u64,
                "Redis unavailable: calls fail (and callers fall back) until it answers"
            );
        }
    }

    /// Replaces the manager by a fresh one: its connection may be dead
    /// without the socket knowing (calls in flight on the old one finish or
    /// time out on their own).
    fn renew(&self) {
        if let Ok(fresh) = lazy_manager(&self.client, &self.config) {
            *self.manager.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }
}

/// A key prefix must not hold a hash tag of its own: Redis Cluster hashes
/// the first `{...}` of a key, which must be the one the adapter puts there.
pub(crate) fn check_key_prefix(prefix: &str) -> CacheResult<()> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(CacheError(format!(
            "invalid Redis key prefix {prefix:?}: it must be non-empty, without braces"
        )));
    }
    Ok(())
}

/// A TTL Redis accepts: at least 1 ms, at most a century.
pub(crate) fn ttl_ms(d: Duration) -> i64 {
    const CENTURY_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX)
        .clamp(1, CENTURY_MS)
}

fn lazy_manager(
    client: &redis::Client,
    config: &ConnectionManagerConfig,
) -> CacheResult<ConnectionManager> {
    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
        .map_err(|e| CacheError(format!("Redis connection setup failed: {e}")))
}

fn is_noscript(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Whether an error says Redis cannot be reached (rather than that it
/// refused one command).
fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}

/// Whether Redis is taken as down, and until when calls fail at once.
struct Health {
    epoch: Instant,
    /// Calls fail at once until this many ms after `epoch`.
    rest_until_ms: AtomicU64,
    down: AtomicBool,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            rest_until_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long calls still fail at once, if they do.
    fn resting(&self) -> Option<Duration> {
        let until = self.rest_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (now < until).then(|| Duration::from_millis(until - now))
    }

    /// Marks Redis down for [`RETRY_AFTER`]; true if it was up.
    fn down(&self) -> bool {
        let retry = u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
        self.rest_until_ms
            .store(self.now_ms().saturating_add(retry), Ordering::Relaxed);
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Marks Redis up; true if it was down.
    fn up(&self) -> bool {
        self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed)
    }
}
