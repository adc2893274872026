//! `TestApp`: a running Starling plus per-endpoint helpers.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use starling::{App, Config};
use starling_domain::ManualClock;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    /// Counts events the background consumers have not finished with.
    probe: starling::OutboxProbe,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    /// The PostgreSQL database of a [`TestApp::spawn_postgres`] app:
    /// (server URL, database name), dropped with the app.
    database: Option<(String, String)>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some((server, name)) = self.database.take() {
            // Drop runs inside the test's runtime: drop the database from a
            // thread of its own, forcing the app's connections closed.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&server).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .map(|_| ())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop a test database: {dropped:?}");
            }
        }
    }
}

/// An app's credentials as `POST /api/v1/apps` returned them.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub id: String,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        &self.json
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid_hex()[..10])
}

fn uuid_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:04x}", nanos, N.fetch_add(1, Ordering::Relaxed))
        .chars()
        .rev()
        .collect()
}

impl TestApp {
    /// A server with rate limits off (tests of limits turn them on).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server on a fresh PostgreSQL database of its own (every shard on
    /// it), for tests where the store matters; `None` (the test is skipped,
    /// saying so) where no PostgreSQL answers, unless services are required.
    pub async fn spawn_postgres(test: &str) -> Option<Self> {
        Self::spawn_postgres_with(test, |_| {}).await
    }

    pub async fn spawn_postgres_with(test: &str, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        use sqlx::Connection;
        let server = starling_testkit::require(starling_testkit::Service::Postgres, test)?;
        let name = starling_testkit::unique_name("starling_api");
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create database");
        let mut url = url::Url::parse(&server).expect("PostgreSQL URL");
        url.set_path(&name);
        let url = url.to_string();
        let mut app = Self::spawn_with(|c| {
            c.store.kind = starling::StoreKind::Postgres;
            c.store.url = Some(url);
            adjust(c);
        })
        .await;
        app.database = Some((server, name));
        Some(app)
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.rate_limits.enabled = false;
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new());
        let app = App::build(&config, clock.clone(), starling::Role::Serve)
            .await
            .expect("build app");
        let base = app.public_url();
        let probe = app.outbox_probe();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base,
            client,
            clock,
            probe,
            _dir: dir,
            stop: Some(stop),
            database: None,
        }
    }

    /// Starts the server's shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until every event written so far has been handled by every
    /// consumer (fan-out, notifications): call before asserting on other
    /// users' notifications or home timelines.
    pub async fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let pending = self.probe.pending().await;
            if pending == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{pending} events still unhandled after 10 s: a consumer is stuck or failing"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends and checks the universal rules: no 5xx; API and OAuth
    /// responses are JSON.
    pub async fn send(&self, req: RequestBuilder) -> Resp {
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let path = response.url().path().to_owned();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        assert!(status < 500, "{status} from {path}: {text}");
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let json = if content_type.starts_with("application/json") {
            assert_eq!(content_type, "application/json; charset=utf-8", "{path}");
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("bad JSON from {path}: {e}: {text}"))
        } else {
            assert!(
                !(path.starts_with("/api/") || path == "/oauth/token" || path == "/oauth/revoke"),
                "{path} answered {status} with content type {content_type:?}: {text}"
            );
            Value::Null
        };
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.request(Method::GET, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn post_form(&self, path: &str, token: Option<&str>, form: &[(&str, &str)]) -> Resp {
        let mut req = self.request(Method::POST, path).form(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let mut req = self.request(Method::POST, path).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn create_app(&self, scopes: &str, redirect_uris: &str) -> Client {
        let r = self
            .post_form(
                "/api/v1/apps",
                None,
                &[
                    ("client_name", "Test Client"),
                    ("redirect_uris", redirect_uris),
                    ("scopes", scopes),
                ],
            )
            .await;
        let v = r.expect(200);
        Client {
            client_id: v["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: v["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        }
    }

    pub async fn app_token(&self, client: &Client, scopes: &str) -> String {
        let r = self
            .post_form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.client_id),
                    ("client_secret", &client.client_secret),
                    ("scope", scopes),
                ],
            )
            .await;
        r.expect(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// `POST /api/v1/accounts` with a fresh username (and matching email).
    pub async fn register(&self, app_token: &str, username: &str) -> Resp {
        self.post_form(
            "/api/v1/accounts",
            Some(app_token),
            &[
                ("username", username),
                ("email", &format!("{username}@example.com")),
                ("password", "correct horse battery"),
                ("agreement", "1"),
                ("locale", "en"),
            ],
        )
        .await
    }

    /// The password grant for `user` through `client`.
    pub async fn password_token(&self, user: &User, client: &Client, scope: &str) -> Resp {
        self.post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "password"),
                ("client_id", &client.client_id),
                ("client_secret", &client.client_secret),
                ("username", &user.email),
                ("password", &user.password),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Registers a fresh user through a fresh app; returns it with a user
    /// token of scopes `read write follow push`.
    pub async fn user(&self) -> User {
        self.user_named(&unique("u")).await
    }

    /// Like [`TestApp::user`], with a chosen username.
    pub async fn user_named(&self, username: &str) -> User {
        let client = self
            .create_app("read write follow push", "urn:ietf:wg:oauth:2.0:oob")
            .await;
        let app_token = self.app_token(&client, "read write follow push").await;
        let username = username.to_owned();
        let r = self.register(&app_token, &username).await;
        let token = r.expect(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let me = self
            .get("/api/v1/accounts/verify_credentials", Some(&token))
            .await;
        let id = me.expect(200)["id"].as_str().expect("id").to_owned();
        User {
            email: format!("{username}@example.com"),
            username,
            password: "correct horse battery".to_owned(),
            token,
            id,
        }
    }
}

// ---- the social core ---------------------------------------------------

/// The `Link` header of a page, split into its two targets.
#[derive(Debug, Default)]
pub struct Links {
    pub next: Option<String>,
    pub prev: Option<String>,
}

impl Resp {
    /// The body as a list (panics, naming the body, if it is not one).
    #[track_caller]
    pub fn list(&self) -> Vec<Value> {
        self.json
            .as_array()
            .unwrap_or_else(|| panic!("expected a JSON array, got {}: {}", self.status, self.text))
            .clone()
    }

    /// Parses `Link: <a>; rel="next", <b>; rel="prev"` strictly: every part
    /// must be `<url>; rel="x"` with exactly one `;` (megalodon's parser).
    #[track_caller]
    pub fn links(&self) -> Links {
        let mut links = Links::default();
        let Some(header) = self.header("link") else {
            return links;
        };
        for part in header.split(", ") {
            let (url, rel) = part
                .split_once("; ")
                .unwrap_or_else(|| panic!("Link part without '; ': {header}"));
            assert_eq!(part.matches(';').count(), 1, "one ';' per link: {header}");
            let url = url
                .strip_prefix('<')
                .and_then(|u| u.strip_suffix('>'))
                .unwrap_or_else(|| panic!("Link URL not in <>: {header}"))
                .to_owned();
            match rel {
                "rel=\"next\"" => links.next = Some(url),
                "rel=\"prev\"" => links.prev = Some(url),
                other => panic!("unexpected link relation {other}: {header}"),
            }
        }
        links
    }
}

/// The ids of a list of entities, in order.
pub fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|v| v["id"].as_str().expect("id is a string").to_owned())
        .collect()
}

/// What a timeline entry shows: the status itself, or for a boost the
/// boosted status's id (so a boost of X reads as `X`).
pub fn shown(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|v| {
            let s = if v["reblog"].is_object() {
                &v["reblog"]
            } else {
                v
            };
            s["id"].as_str().expect("id is a string").to_owned()
        })
        .collect()
}

/// Ids sorted newest first (numerically, as the server orders them).
pub fn newest_first(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.parse::<i64>().expect("numeric id")));
    v
}

/// The query-string value of `key` in `url`.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    let parsed = url::Url::parse(url).expect("absolute URL");
    parsed
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `s` percent-encoded for a query string.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl TestApp {
    /// The path and query of an absolute URL this server emitted (which must
    /// start with its public base URL).
    #[track_caller]
    pub fn local_path(&self, url: &str) -> String {
        url.strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{url} is not an absolute URL on {}", self.base))
            .to_owned()
    }

    /// `host:port` of this server, as `user@host` mentions name it.
    pub fn domain(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned()
    }

    /// A token for `user` with exactly `scopes`, through a fresh app.
    pub async fn token_for(&self, user: &User, scopes: &str) -> String {
        let client = self
            .create_app("read write follow push", "urn:ietf:wg:oauth:2.0:oob")
            .await;
        self.password_token(user, &client, scopes).await.expect(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// A token for `user` with exactly `scopes`, which may be any scopes
    /// (the app asks for every one).
    pub async fn token_for_any(&self, user: &User, scopes: &str) -> String {
        let all: Vec<&str> = starling_domain::Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        let client = self
            .create_app(&all.join(" "), "urn:ietf:wg:oauth:2.0:oob")
            .await;
        self.password_token(user, &client, scopes).await.expect(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// An application token (no user) with `scopes`.
    pub async fn app_only_token(&self, scopes: &str) -> String {
        let client = self
            .create_app("read write follow push", "urn:ietf:wg:oauth:2.0:oob")
            .await;
        self.app_token(&client, scopes).await
    }

    /// POST with no body and no content type (what toot sends to action
    /// endpoints).
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.request(Method::POST, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.request(Method::DELETE, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let mut req = self.request(Method::PATCH, path).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// `POST /api/v1/statuses` with a JSON body, as sent.
    pub async fn create_status(&self, token: Option<&str>, body: &Value) -> Resp {
        self.post_json("/api/v1/statuses", token, body).await
    }

    /// Posts `text` as `user` (public unless the account's default differs).
    pub async fn post_status(&self, user: &User, text: &str) -> Value {
        self.post_status_with(user, serde_json::json!({ "status": text }))
            .await
    }

    /// Posts a status with a JSON body; must succeed.
    pub async fn post_status_with(&self, user: &User, body: Value) -> Value {
        let r = self.create_status(Some(&user.token), &body).await;
        assert_eq!(r.status, 200, "posting {body} failed: {}", r.text);
        r.json
    }

    /// Posts `text` with `visibility`; returns the new status id.
    pub async fn post_visible(&self, user: &User, text: &str, visibility: &str) -> String {
        let v = self
            .post_status_with(
                user,
                serde_json::json!({ "status": text, "visibility": visibility }),
            )
            .await;
        v["id"].as_str().expect("id").to_owned()
    }

    /// Replies to `parent` with `text`; returns the reply.
    pub async fn reply(&self, user: &User, parent: &str, text: &str) -> Value {
        self.post_status_with(
            user,
            serde_json::json!({ "status": text, "in_reply_to_id": parent }),
        )
        .await
    }

    /// `GET /api/v1/statuses/:id` as `viewer`.
    pub async fn status(&self, id: &str, viewer: Option<&User>) -> Resp {
        self.get(
            &format!("/api/v1/statuses/{id}"),
            viewer.map(|u| u.token.as_str()),
        )
        .await
    }

    /// `POST /api/v1/statuses/:id/<action>` (reblog, favourite...) as `user`.
    pub async fn act(&self, user: &User, id: &str, action: &str) -> Resp {
        self.post_empty(
            &format!("/api/v1/statuses/{id}/{action}"),
            Some(&user.token),
        )
        .await
    }

    /// `POST /api/v1/accounts/:id/<action>` (follow, block...) as `user`.
    pub async fn account_action(&self, user: &User, target: &User, action: &str) -> Resp {
        self.post_empty(
            &format!("/api/v1/accounts/{}/{action}", target.id),
            Some(&user.token),
        )
        .await
    }

    /// `follower` follows `followee`; returns the relationship.
    pub async fn follow(&self, follower: &User, followee: &User) -> Value {
        let r = self.account_action(follower, followee, "follow").await;
        assert_eq!(r.status, 200, "follow failed: {}", r.text);
        r.json
    }

    /// Follows with options (`reblogs`, `notify`) in a JSON body.
    pub async fn follow_with(&self, follower: &User, followee: &User, options: Value) -> Value {
        let r = self
            .post_json(
                &format!("/api/v1/accounts/{}/follow", followee.id),
                Some(&follower.token),
                &options,
            )
            .await;
        assert_eq!(r.status, 200, "follow {options} failed: {}", r.text);
        r.json
    }

    pub async fn unfollow(&self, follower: &User, followee: &User) -> Value {
        self.account_action(follower, followee, "unfollow")
            .await
            .expect(200)
            .clone()
    }

    pub async fn block(&self, user: &User, target: &User) -> Value {
        self.account_action(user, target, "block")
            .await
            .expect(200)
            .clone()
    }

    pub async fn mute(&self, user: &User, target: &User) -> Value {
        self.account_action(user, target, "mute")
            .await
            .expect(200)
            .clone()
    }

    /// A GET that must answer 200 with a JSON array.
    pub async fn list(&self, path: &str, user: Option<&User>) -> Vec<Value> {
        let r = self.get(path, user.map(|u| u.token.as_str())).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.list()
    }

    /// `user`'s home timeline (first page, 40 entries).
    pub async fn home(&self, user: &User) -> Vec<Value> {
        self.list("/api/v1/timelines/home?limit=40", Some(user))
            .await
    }

    /// `user`'s notifications (first page, 80).
    pub async fn notifications(&self, user: &User) -> Vec<Value> {
        self.list("/api/v1/notifications?limit=80", Some(user))
            .await
    }

    /// Sets profile fields of `user` through update_credentials (JSON).
    pub async fn update_profile(&self, user: &User, body: Value) -> Value {
        self.patch_json(
            "/api/v1/accounts/update_credentials",
            Some(&user.token),
            &body,
        )
        .await
        .expect(200)
        .clone()
    }

    /// `GET /api/v1/accounts/:id` (anonymous).
    pub async fn account(&self, user: &User) -> Value {
        self.get(&format!("/api/v1/accounts/{}", user.id), None)
            .await
            .expect(200)
            .clone()
    }
}

/// Checks the Status entity shape of mastodon-api.md §5.2: every required
/// field present with its JSON type, ids as strings, datetimes with
/// milliseconds and `Z`. `authenticated`: whether the viewer had a user
/// token (then the viewer flags must be present).
#[track_caller]
pub fn assert_status_shape(v: &Value, authenticated: bool) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("a status is an object: {v}"));
    for key in [
        "id",
        "uri",
        "created_at",
        "content",
        "visibility",
        "spoiler_text",
    ] {
        assert!(obj[key].is_string(), "status.{key} must be a string: {v}");
    }
    for key in [
        "url",
        "edited_at",
        "in_reply_to_id",
        "in_reply_to_account_id",
        "language",
    ] {
        assert!(
            obj.get(key).is_some_and(|x| x.is_string() || x.is_null()),
            "status.{key} must be present (string or null): {v}"
        );
    }
    for key in ["reblog", "poll", "card", "quote"] {
        assert!(
            obj.contains_key(key),
            "status.{key} must be present, null if none: {v}"
        );
    }
    for key in [
        "media_attachments",
        "mentions",
        "tags",
        "emojis",
        "filtered",
    ] {
        assert!(obj[key].is_array(), "status.{key} must be an array: {v}");
    }
    for key in [
        "reblogs_count",
        "favourites_count",
        "replies_count",
        "quotes_count",
    ] {
        assert!(obj[key].is_i64(), "status.{key} must be an integer: {v}");
    }
    assert!(obj["sensitive"].is_boolean(), "status.sensitive: {v}");
    assert!(obj["account"].is_object(), "status.account: {v}");
    assert!(
        obj["quote_approval"].is_object(),
        "status.quote_approval: {v}"
    );
    let created = obj["created_at"].as_str().unwrap_or("");
    assert!(
        created.len() == 24 && created.ends_with('Z') && &created[19..20] == ".",
        "created_at must look like 2025-01-05T12:34:56.789Z: {created}"
    );
    assert!(
        obj["id"].as_str().is_some_and(|s| s.parse::<i64>().is_ok()),
        "status.id is a decimal string: {v}"
    );
    for key in ["in_reply_to_id", "in_reply_to_account_id"] {
        assert!(!obj[key].is_number(), "status.{key} must not be a number");
    }
    for m in obj["mentions"].as_array().into_iter().flatten() {
        for key in ["id", "username", "url", "acct"] {
            assert!(m[key].is_string(), "mention.{key} must be a string: {m}");
        }
    }
    for t in obj["tags"].as_array().into_iter().flatten() {
        assert!(t["name"].is_string() && t["url"].is_string(), "tag: {t}");
    }
    for key in ["favourited", "reblogged", "muted", "bookmarked"] {
        if authenticated {
            assert!(
                obj.get(key).is_some_and(Value::is_boolean),
                "status.{key} must be a boolean for a signed-in viewer: {v}"
            );
        }
    }
    if let Some(inner) = obj.get("reblog").filter(|r| r.is_object()) {
        assert_status_shape(inner, authenticated);
    }
}
