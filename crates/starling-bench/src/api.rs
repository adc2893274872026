//! The Mastodon client API calls the bench makes outside the measured load:
//! seeding over HTTP, preparing a run (status ids to favourite, the size of
//! a home page), and the fan-out lag probe.
//!
//! These are few and not timed for the report (the lag probe times them
//! itself), so they use reqwest for convenience; the measured load goes
//! through the leaner client in [`crate::client`]. Only endpoints every
//! Mastodon-compatible server has are used, so `seed --target` and `run`
//! work against any of them.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("{what}: no response from {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("{what}: body"))?;
        if !status.is_success() {
            let snippet: String = text.chars().take(300).collect();
            bail!("{what}: HTTP {status}: {snippet}");
        }
        Ok(text)
    }

    async fn json(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let text = self.send(req, what).await?;
        serde_json::from_str(&text).with_context(|| format!("{what}: response is not JSON"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers an app; returns `(client_id, client_secret)`.
    pub async fn create_app(&self, name: &str, scopes: &str) -> anyhow::Result<(String, String)> {
        let v = self
            .json(
                self.http.post(self.url("/api/v1/apps")).json(&json!({
                    "client_name": name,
                    "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
                    "scopes": scopes,
                })),
                "registering the bench app",
            )
            .await?;
        Ok((text_of(&v, "client_id")?, text_of(&v, "client_secret")?))
    }

    /// An app token (client credentials grant).
    pub async fn app_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scopes: &str,
    ) -> anyhow::Result<String> {
        let v = self
            .json(
                self.http.post(self.url("/oauth/token")).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("scope", scopes),
                ]),
                "getting an app token",
            )
            .await?;
        text_of(&v, "access_token")
    }

    /// Registers an account with an app token; returns its user token.
    pub async fn register(
        &self,
        app_token: &str,
        username: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        let v = self
            .json(
                self.http
                    .post(self.url("/api/v1/accounts"))
                    .bearer_auth(app_token)
                    .json(&json!({
                        "username": username,
                        "email": email,
                        "password": password,
                        "agreement": true,
                        "locale": "en",
                    })),
                &format!("registering {username}"),
            )
            .await?;
        text_of(&v, "access_token")
    }

    /// The id of the token's account.
    pub async fn own_id(&self, token: &str) -> anyhow::Result<String> {
        let v = self
            .json(
                self.http
                    .get(self.url("/api/v1/accounts/verify_credentials"))
                    .bearer_auth(token),
                "verify_credentials",
            )
            .await?;
        text_of(&v, "id")
    }

    /// An account as the server shows it.
    pub async fn account(&self, token: &str, account_id: &str) -> anyhow::Result<Value> {
        self.json(
            self.http
                .get(self.url(&format!("/api/v1/accounts/{account_id}")))
                .bearer_auth(token),
            "account",
        )
        .await
    }

    pub async fn follow(&self, token: &str, account_id: &str) -> anyhow::Result<()> {
        self.send(
            self.http
                .post(self.url(&format!("/api/v1/accounts/{account_id}/follow")))
                .bearer_auth(token),
            "follow",
        )
        .await?;
        Ok(())
    }

    /// Posts a public status; returns its id.
    pub async fn post(&self, token: &str, text: &str) -> anyhow::Result<String> {
        let v = self
            .json(
                self.http
                    .post(self.url("/api/v1/statuses"))
                    .bearer_auth(token)
                    .json(&json!({ "status": text, "visibility": "public" })),
                "posting a status",
            )
            .await?;
        text_of(&v, "id")
    }

    /// A home timeline page: the status ids, and the body's size in bytes.
    pub async fn home(&self, token: &str, query: &str) -> anyhow::Result<(Vec<String>, usize)> {
        let text = self
            .send(
                self.http
                    .get(self.url(&format!("/api/v1/timelines/home?{query}")))
                    .bearer_auth(token),
                "home timeline",
            )
            .await?;
        let v: Value = serde_json::from_str(&text).context("home timeline: not JSON")?;
        Ok((ids_of(&v), text.len()))
    }

    /// Ids of the first page of an account's followers.
    pub async fn followers(
        &self,
        token: &str,
        account_id: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<String>> {
        let v = self
            .json(
                self.http
                    .get(self.url(&format!(
                        "/api/v1/accounts/{account_id}/followers?limit={limit}"
                    )))
                    .bearer_auth(token),
                "followers",
            )
            .await?;
        Ok(ids_of(&v))
    }

    /// Ids of a page of the public timeline (older than `max_id`).
    pub async fn public(&self, token: &str, max_id: Option<&str>) -> anyhow::Result<Vec<String>> {
        let query = match max_id {
            Some(max) => format!("limit=40&max_id={max}"),
            None => "limit=40".to_owned(),
        };
        let v = self
            .json(
                self.http
                    .get(self.url(&format!("/api/v1/timelines/public?{query}")))
                    .bearer_auth(token),
                "public timeline",
            )
            .await?;
        Ok(ids_of(&v))
    }

    /// Whether the server answers the ceiling probe.
    pub async fn has_ceiling_probe(&self) -> bool {
        match self
            .http
            .get(self.url("/api/v1/_bench/ceiling?bytes=64"))
            .send()
            .await
        {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    }
}

fn text_of(v: &Value, key: &str) -> anyhow::Result<String> {
    match &v[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => bail!("response has no {key:?}"),
    }
}

fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
