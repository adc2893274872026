//! The slice of the configuration the HTTP edge needs.

use std::time::Duration;

use starling_cache::Rule;
use url::Url;

#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// Off for benchmarks and client test suites.
    pub enabled: bool,
    /// Every `/api/*` request, per token (or per IP without one). Mastodon:
    /// 300 per 5 minutes.
    pub api: Rule,
    /// `POST /api/v1/accounts` per IP. Mastodon: 5 per 30 minutes.
    pub registrations: Rule,
    /// `POST /oauth/token` and the sign-in form, per IP.
    pub sign_in: Rule,
    /// Take the client IP from the last `X-Forwarded-For` entry (set when a
    /// trusted load balancer is in front).
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            api: Rule {
                limit: 300,
                period: Duration::from_secs(300),
            },
            registrations: Rule {
                limit: 5,
                period: Duration::from_secs(1800),
            },
            sign_in: Rule {
                limit: 30,
                period: Duration::from_secs(300),
            },
            trust_forwarded_for: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Base of every absolute URL the server emits.
    pub public_url: Url,
    pub title: String,
    pub description: String,
    pub contact_email: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub rate_limits: RateLimitSettings,
    /// Serve the benchmark ceiling probe (`GET /api/v1/_bench/ceiling`).
    pub bench_probe: bool,
    /// Public base of media URLs (a CDN, or the bucket's public URL); the
    /// server's own `/media` route under `public_url` when `None`.
    pub media_base_url: Option<String>,
    /// Largest upload request (`POST /api/v{1,2}/media`, profile images).
    pub max_upload_bytes: usize,
    /// How often an idle SSE stream says `:thump` (WebSockets are pinged
    /// every other beat); each beat also checks the stream's token.
    pub stream_heartbeat: Duration,
}

impl ApiSettings {
    pub fn new(public_url: Url) -> Self {
        Self {
            public_url,
            title: "Starling".into(),
            description: "A Starling social server.".into(),
            contact_email: String::new(),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            rate_limits: RateLimitSettings::default(),
            bench_probe: false,
            media_base_url: None,
            max_upload_bytes: 100 * 1024 * 1024,
            stream_heartbeat: Duration::from_secs(15),
        }
    }

    /// The public URL of the media file stored under `key`.
    pub fn media_url(&self, key: &str) -> String {
        match &self.media_base_url {
            Some(base) => format!("{}/{key}", base.trim_end_matches('/')),
            None => self.url(&format!("/{key}")),
        }
    }

    /// `host[:port]`, what Mastodon calls the instance's domain/uri.
    pub fn domain(&self) -> String {
        let host = self.public_url.host_str().unwrap_or("localhost");
        match self.public_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The public URL without a trailing slash, for joining paths.
    pub fn base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// `path` (starting with `/`) as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The streaming base: `wss://host` for https, `ws://host:port` for http.
    pub fn streaming_url(&self) -> String {
        let scheme = if self.public_url.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.domain())
    }
}
