//! Test support for the distributed adapters: where the real services are.
//!
//! Tests of the PostgreSQL, Redis, NATS and S3 adapters run against real
//! servers, found by configuration (environment variables with local
//! defaults); the PostgreSQL adapter's tests through PgBouncer also need
//! one in transaction pooling mode (`scripts/pgbouncer.sh start-test`). On
//! a machine without one, such a test prints `SKIPPED <test>: <why>` where
//! the run's output shows it (not in the captured output nobody sees) and
//! passes; with `STARLING_TEST_REQUIRE_SERVICES=1` (CI sets it) a missing
//! service fails the test instead, so CI always runs them.
//!
//! Each test creates its own database, stream or key prefix (see
//! [`unique_name`]) and removes it when done, so tests never share state.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the reachability probe waits for a TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A service the distributed adapters need.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    Postgres,
    Redis,
    Nats,
    /// PgBouncer in transaction pooling mode in front of [`Self::Postgres`]
    /// (any database name reaching the same server), its admin console
    /// open to the URL's user.
    PgBouncer,
    /// An S3-compatible object store (`s3s-fs` from `scripts/services.sh`)
    /// with the bucket [`S3_TEST_BUCKET`] and the [`S3_TEST_ACCESS_KEY`]
    /// credentials, unless the environment names others.
    S3,
}

/// The S3 tests' bucket (`STARLING_TEST_S3_BUCKET` overrides); each test
/// works under its own key prefix in it.
pub const S3_TEST_BUCKET: &str = "starling-test";
/// The S3 tests' access key (`STARLING_TEST_S3_ACCESS_KEY` overrides).
pub const S3_TEST_ACCESS_KEY: &str = "starling";
/// The S3 tests' secret key (`STARLING_TEST_S3_SECRET_KEY` overrides).
pub const S3_TEST_SECRET_KEY: &str = "starling-test-secret";

/// A setting of the S3 test server: the variable's value or the default.
pub fn s3_setting(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

impl Service {
    /// The environment variable naming the service's URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Postgres => "STARLING_TEST_POSTGRES_URL",
            Self::Redis => "STARLING_TEST_REDIS_URL",
            Self::Nats => "STARLING_TEST_NATS_URL",
            Self::PgBouncer => "STARLING_TEST_PGBOUNCER_URL",
            Self::S3 => "STARLING_TEST_S3_URL",
        }
    }

    /// The URL used when the variable is unset.
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            Self::Redis => "redis://127.0.0.1:6379",
            Self::Nats => "nats://127.0.0.1:4222",
            Self::PgBouncer => "postgres://postgres@127.0.0.1:6432/postgres",
            Self::S3 => "http://127.0.0.1:9000",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Redis => 6379,
            Self::Nats => 4222,
            Self::PgBouncer => 6432,
            Self::S3 => 9000,
        }
    }

    /// The configured URL.
    pub fn url(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| self.default_url().to_owned())
    }
}

/// Whether a missing service must fail the test (CI) rather than skip it.
pub fn services_required() -> bool {
    matches!(
        std::env::var("STARLING_TEST_REQUIRE_SERVICES").as_deref(),
        Ok("1" | "true" | "yes")
    )
}

/// The service's URL if it answers. When it does not: `None` after printing
/// a line saying the test is skipped, or a panic when services are
/// required.
///
/// ```ignore
/// let Some(url) = starling_testkit::require(Service::Redis, "redis_conformance") else { return };
/// ```
pub fn require(service: Service, test: &str) -> Option<String> {
    let url = service.url();
    if reachable(&url, service.default_port()) {
        return Some(url);
    }
    let why = format!(
        "{service:?} is not reachable at {url} (set {} to point at one)",
        service.env_var()
    );
    assert!(
        !services_required(),
        "{test}: {why}; STARLING_TEST_REQUIRE_SERVICES is set, so this is a failure"
    );
    // Straight to the process's standard error, past the test harness's
    // capture (which keeps `eprintln!` of a passing test out of sight), so
    // a skip shows in the run's output next to the harness's summary.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
    None
}

fn reachable(url: &str, default_port: u16) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let port = parsed.port().unwrap_or(default_port);
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => return false,
    };
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, PROBE_TIMEOUT).is_ok())
}

/// A name no other test run uses (databases, streams, key prefixes):
/// `prefix` plus the process id and a counter, lowercase ASCII.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("starling_t")
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }

    #[test]
    fn nothing_listens_on_port_1() {
        assert!(!reachable("redis://127.0.0.1:1", 6379));
    }
}
