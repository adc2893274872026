//! The few Mastodon client API calls the fault tests make, through the load
//! balancer like any client.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Scopes of the test app and its users' tokens.
const SCOPES: &str = "read write follow";

/// What one request came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP status (2xx or not) and the body.
    Status(u16, String),
    /// No HTTP answer: refused, reset, timed out.
    Transport(String),
}

impl Reply {
    pub fn ok(&self) -> bool {
        matches!(self, Reply::Status(s, _) if (200..300).contains(s))
    }

    /// "502", "transport", ...: how a failure is counted.
    pub fn label(&self) -> String {
        match self {
            Reply::Status(s, _) => s.to_string(),
            Reply::Transport(_) => "no answer".to_owned(),
        }
    }

    /// The body as JSON when the request succeeded.
    fn json(self, what: &str) -> anyhow::Result<Value> {
        match self {
            Reply::Status(s, body) if (200..300).contains(&s) => {
                serde_json::from_str(&body).with_context(|| format!("{what}: not JSON"))
            }
            Reply::Status(s, body) => {
                let snippet: String = body.chars().take(200).collect();
                bail!("{what}: HTTP {s}: {snippet}")
            }
            Reply::Transport(e) => bail!("{what}: {e}"),
        }
    }
}

/// An HTTP method the load uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Longer than HAProxy's server timeout (30 s): a request the
            // load balancer still works on is not cut short by the client.
            .timeout(Duration::from_secs(40))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends one request; never fails, the reply says what happened.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(text) => Reply::Status(status, text),
                    Err(e) => Reply::Transport(format!("reading the body: {}", chain(&e))),
                }
            }
            Err(e) => Reply::Transport(chain(&e)),
        }
    }

    /// Registers an app and returns an app token (client credentials).
    pub async fn app_token(&self, name: &str) -> anyhow::Result<String> {
        let app = self
            .call(
                Method::Post,
                "/api/v1/apps",
                None,
                Some(&json!({
                    "client_name": name,
                    "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
                    "scopes": SCOPES,
                })),
            )
            .await
            .json("registering the app")?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &text_of(&app, "client_id")?),
            ("client_secret", &text_of(&app, "client_secret")?),
            ("scope", SCOPES),
        ];
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(&form)
            .send()
            .await
            .context("getting an app token")?;
        let status = resp.status().as_u16();
        let body = resp.text().await.context("getting an app token")?;
        let token = Reply::Status(status, body).json("getting an app token")?;
        text_of(&token, "access_token")
    }

    /// Registers an account; returns its access token.
    pub async fn register(&self, app_token: &str, username: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                Method::Post,
                "/api/v1/accounts",
                Some(app_token),
                Some(&json!({
                    "username": username,
                    "email": format!("{username}@faults.example"),
                    "password": "fault-test-password",
                    "agreement": true,
                    "locale": "en",
                })),
            )
            .await
            .json(&format!("registering {username}"))?;
        text_of(&v, "access_token")
    }

    /// The id of the token's account.
    pub async fn own_id(&self, token: &str) -> anyhow::Result<i64> {
        let v = self
            .call(
                Method::Get,
                "/api/v1/accounts/verify_credentials",
                Some(token),
                None,
            )
            .await
            .json("verify_credentials")?;
        id_of(&v)
    }

    /// Follows `account`; with `notify`, asks for a notification per post.
    pub async fn follow(&self, token: &str, account: i64, notify: bool) -> anyhow::Result<()> {
        self.call(
            Method::Post,
            &format!("/api/v1/accounts/{account}/follow"),
            Some(token),
            Some(&json!({ "notify": notify })),
        )
        .await
        .json("follow")?;
        Ok(())
    }

    /// Posts a public status; its id.
    pub async fn post(&self, token: &str, text: &str) -> anyhow::Result<i64> {
        let v = post_status(self, token, text).await.json("posting")?;
        id_of(&v)
    }

    /// The ids of a list endpoint's items newer than `since`, every page of
    /// them (`path` without query; `field` picks the id to collect: `None`
    /// for the item's own, `Some("status")` for a notification's status).
    pub async fn ids_since(
        &self,
        token: &str,
        path: &str,
        extra_query: &str,
        since: i64,
        field: Option<&str>,
    ) -> anyhow::Result<HashSet<i64>> {
        let mut out = HashSet::new();
        let mut max_id: Option<i64> = None;
        for _ in 0..50 {
            let mut query = format!("limit=40&since_id={since}{extra_query}");
            if let Some(m) = max_id {
                query.push_str(&format!("&max_id={m}"));
            }
            let v = self
                .call(Method::Get, &format!("{path}?{query}"), Some(token), None)
                .await
                .json(path)?;
            let items = v.as_array().cloned().unwrap_or_default();
            let mut lowest: Option<i64> = None;
            for item in &items {
                let own = id_of(item)?;
                lowest = Some(lowest.map_or(own, |l: i64| l.min(own)));
                let collected = match field {
                    None => Some(own),
                    Some(f) if item[f].is_object() => Some(id_of(&item[f])?),
                    Some(_) => None,
                };
                out.extend(collected);
            }
            match lowest {
                Some(l) if items.len() == 40 => max_id = Some(l),
                _ => return Ok(out),
            }
        }
        bail!("{path}: more than 50 pages since {since}")
    }
}

/// `POST /api/v1/statuses`, as the load sends it.
pub async fn post_status(api: &Api, token: &str, text: &str) -> Reply {
    api.call(
        Method::Post,
        "/api/v1/statuses",
        Some(token),
        Some(&json!({ "status": text, "visibility": "public" })),
    )
    .await
}

/// An error with its causes: reqwest's own message omits them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn text_of(v: &Value, key: &str) -> anyhow::Result<String> {
    match &v[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => bail!("response has no {key:?}"),
    }
}

/// An entity's `id` (a decimal string on the wire).
pub fn id_of(v: &Value) -> anyhow::Result<i64> {
    text_of(v, "id")?
        .parse()
        .context("an id that is not a number")
}

/// The lowest id made at or after `ms` (ids carry their creation time:
/// `id >> 16` is the Unix time in ms), so `since_id` can cut on a time.
pub fn id_floor_at(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX >> 16) << 16
}
