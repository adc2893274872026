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
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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
        let app = App::build(&config, clock.clone(), true)
            .await
            .expect("build app");
        let base = app.public_url();
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
            _dir: dir,
            stop: Some(stop),
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
        let client = self
            .create_app("read write follow push", "urn:ietf:wg:oauth:2.0:oob")
            .await;
        let app_token = self.app_token(&client, "read write follow push").await;
        let username = unique("u");
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
