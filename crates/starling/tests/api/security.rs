//! The security issue's edge cases, as an attacker would send them: deep
//! parameters, tokens without the scope, made-up tokens against the rate
//! limit, NUL characters, and answers given before a body was read.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use starling_api::routes::{Access, ENDPOINTS};
use starling_domain::{Scope, ScopeSet};

use crate::helpers::{enc, unique, TestApp};

fn nested_key(levels: usize) -> String {
    format!("x{}", "[a]".repeat(levels))
}

// ---- 1. parameters nested thousands of levels deep -----------------------

#[tokio::test]
async fn deeply_nested_parameters_are_a_400_not_a_crash() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let deep = nested_key(3000);

    let r = app
        .get(&format!("/api/v1/timelines/public?{deep}=1"), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let form = [(deep.as_str(), "1")];
    assert_eq!(app.post_form("/api/v1/apps", None, &form).await.status, 400);
    assert_eq!(app.post_form("/oauth/token", None, &form).await.status, 400);
    let poll = format!("poll{}", "[a]".repeat(3000));
    let r = app
        .post_form(
            "/api/v1/statuses",
            Some(&user.token),
            &[("status", "hi"), (poll.as_str(), "1")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A JSON body nested as deep.
    let mut body = json!("x");
    for _ in 0..100 {
        body = json!({ "a": body });
    }
    let r = app
        .post_json(
            "/api/v1/statuses",
            Some(&user.token),
            &json!({"status": "hi", "poll": body}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // The process is still there, and ordinary nesting still works.
    app.get("/livez", None).await.expect(200);
    let r = app
        .post_form(
            "/api/v1/statuses",
            Some(&user.token),
            &[("status", "still here"), ("visibility", "public")],
        )
        .await;
    r.expect(200);
}

// ---- 2. every route checks its scope ---------------------------------

/// Every scope that grants none of `wanted`: the strongest token that must
/// still be refused.
fn lacking(wanted: &[Scope]) -> String {
    Scope::ALL
        .iter()
        .filter(|held| !wanted.iter().any(|w| held.covers(*w)))
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn every_route_refuses_a_token_without_its_scope() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let other = app.user().await;
    let status = app.post_visible(&owner, "a private post", "private").await;
    let client = app
        .create_app(
            &Scope::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            "urn:ietf:wg:oauth:2.0:oob",
        )
        .await;
    let mut checked = 0;
    for endpoint in ENDPOINTS {
        let scopes = endpoint.access.scopes();
        if scopes.is_empty() {
            assert!(
                matches!(endpoint.access, Access::Public | Access::Token(&[])),
                "{} {} needs a token but names no scope",
                endpoint.method,
                endpoint.path
            );
            continue;
        }
        let held = lacking(scopes);
        let parsed = ScopeSet::parse(&held).unwrap();
        assert!(!parsed.grants_any(scopes), "{held} grants {scopes:?}");
        let token = app.password_token(&owner, &client, &held).await.expect(200)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let id = if endpoint.path.starts_with("/api/v1/accounts/{id}") {
            other.id.clone()
        } else {
            status.clone()
        };
        let path = endpoint
            .path
            .replace("{id}", &id)
            .replace("{tag}", "starling");
        let method = Method::from_bytes(endpoint.method.as_bytes()).unwrap();
        let r = app
            .send(app.request(method, &path).bearer_auth(&token))
            .await;
        assert_eq!(
            r.status, 403,
            "{} {} with scopes {held:?}: {}",
            endpoint.method, endpoint.path, r.text
        );
        assert_eq!(r.error(), "This action is outside the authorized scopes");
        checked += 1;
    }
    assert!(checked > 50, "only {checked} scoped routes");
}

#[tokio::test]
async fn tokens_without_read_cannot_read_their_owners_private_posts() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let friend = app.user().await;
    let private = app.post_visible(&owner, "followers only", "private").await;
    let direct = app
        .post_visible(&owner, &format!("@{} just us", friend.username), "direct")
        .await;
    let url = app.status(&private, Some(&owner)).await.expect(200)["url"]
        .as_str()
        .unwrap()
        .to_owned();
    for scopes in [
        "profile",
        "push",
        "write",
        "write:statuses",
        "read:notifications",
        "read:accounts",
    ] {
        let token = app.token_for_any(&owner, scopes).await;
        for path in [
            format!("/api/v1/statuses/{private}"),
            format!("/api/v1/statuses/{direct}"),
            format!("/api/v1/statuses/{private}/context"),
            format!("/api/v1/accounts/{}/statuses", owner.id),
            format!("/api/v2/search?resolve=true&q={}", enc(&url)),
        ] {
            let r = app.get(&path, Some(&token)).await;
            assert_eq!(r.status, 403, "{scopes}: {path}: {}", r.text);
        }
    }
    // With the scope, and without any token, the answers are as before.
    let reader = app.token_for_any(&owner, "read:statuses").await;
    app.get(&format!("/api/v1/statuses/{private}"), Some(&reader))
        .await
        .expect(200);
    app.get(&format!("/api/v1/statuses/{private}"), None)
        .await
        .expect(404);
    app.get(&format!("/api/v1/accounts/{}/statuses", owner.id), None)
        .await
        .expect(200);
}

#[tokio::test]
async fn app_tokens_cannot_call_users_endpoints() {
    let app = TestApp::spawn().await;
    let token = app.app_only_token("read write").await;
    let r = app.get("/api/v1/timelines/home", Some(&token)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error(), "This method requires an authenticated user");
    app.get("/api/v1/timelines/home", None).await.expect(401);
    app.get("/api/v1/timelines/home", Some("made-up"))
        .await
        .expect(401);
    app.get("/api/v1/apps/verify_credentials", Some(&token))
        .await
        .expect(200);
}

// ---- 5. rate limits count accounts and IPs, not tokens ---------------

#[tokio::test]
async fn made_up_tokens_share_their_ips_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.api_limit = 3;
    })
    .await;
    for i in 0..4 {
        let garbage = unique("garbage-token-");
        let r = app.get("/api/v1/timelines/public", Some(&garbage)).await;
        let query = app
            .get(
                &format!("/api/v1/timelines/public?access_token={garbage}x"),
                None,
            )
            .await;
        if i == 0 {
            r.expect(200);
            query.expect(200);
        } else if i >= 2 {
            assert_eq!(r.status, 429, "request {i}: {}", r.text);
            assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
            assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
            assert!(r.header("x-ratelimit-reset").is_some());
        }
    }
}

#[tokio::test]
async fn a_users_tokens_share_the_accounts_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.api_limit = 4;
        c.rate_limits.registrations_limit = 100;
    })
    .await;
    // Registering takes two of the IP's requests per user; the windows are
    // fixed, so moving the clock past one starts every budget afresh.
    let alice = app.user().await;
    let bob = app.user().await;
    app.clock.advance(Duration::from_secs(301));
    let second = app.token_for_any(&alice, "read").await;
    for token in [&alice.token, &second, &alice.token, &second] {
        app.get("/api/v1/timelines/home", Some(token))
            .await
            .expect(200);
    }
    let r = app.get("/api/v1/timelines/home", Some(&second)).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit"), Some("4"));
    app.get("/api/v1/timelines/home", Some(&bob.token))
        .await
        .expect(200);
}

#[tokio::test]
async fn limited_answers_carry_the_limit_they_hit() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.api_limit = 1000;
        c.rate_limits.registrations_limit = 1;
        c.rate_limits.sign_in_limit = 3;
    })
    .await;
    let client = app
        .create_app("read write", "urn:ietf:wg:oauth:2.0:oob")
        .await;
    let token = app.app_token(&client, "read write").await;
    app.register(&token, &unique("r")).await.expect(200);
    let r = app.register(&token, &unique("r")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));

    let form = [
        ("grant_type", "password"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("username", "nobody@example.com"),
        ("password", "wrong password"),
    ];
    // The app token above was the first sign-in request.
    app.post_form("/oauth/token", None, &form).await.expect(400);
    app.post_form("/oauth/token", None, &form).await.expect(400);
    let r = app.post_form("/oauth/token", None, &form).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(r.header("x-ratelimit-reset").is_some());
}

// ---- 4. NUL characters, on both stores -------------------------------

async fn nul_is_refused_everywhere(app: &TestApp) {
    let user = app.user().await;
    let client = app
        .create_app("read write", "urn:ietf:wg:oauth:2.0:oob")
        .await;
    let cases: Vec<(Method, String, Option<&str>, Vec<(&str, String)>)> = vec![
        (
            Method::POST,
            "/api/v1/statuses".into(),
            Some(&user.token),
            vec![("status", "a\0b".into())],
        ),
        (
            Method::POST,
            "/api/v1/statuses".into(),
            Some(&user.token),
            vec![("status", "ok".into()), ("spoiler_text", "\0".into())],
        ),
        (
            Method::PATCH,
            "/api/v1/accounts/update_credentials".into(),
            Some(&user.token),
            vec![("display_name", "x\0".into())],
        ),
        (
            Method::PATCH,
            "/api/v1/accounts/update_credentials".into(),
            Some(&user.token),
            vec![("note", "\0note".into())],
        ),
        (
            Method::POST,
            "/api/v1/apps".into(),
            None,
            vec![
                ("client_name", "evil\0app".into()),
                ("redirect_uris", "urn:ietf:wg:oauth:2.0:oob".into()),
            ],
        ),
        (
            Method::POST,
            "/api/v1/apps".into(),
            None,
            vec![
                ("client_name", "app".into()),
                ("redirect_uris", "https://example.com/\0cb".into()),
            ],
        ),
        (
            Method::GET,
            format!("/api/v1/accounts/search?q={}", enc("a\0b")),
            Some(&user.token),
            vec![],
        ),
        (
            Method::GET,
            format!("/api/v2/search?q={}", enc("#a\0b")),
            None,
            vec![],
        ),
        (
            Method::GET,
            format!("/api/v1/accounts/lookup?acct={}", enc("a\0b")),
            None,
            vec![],
        ),
        (
            Method::POST,
            "/oauth/token".into(),
            None,
            vec![
                ("grant_type", "password".into()),
                ("client_id", client.client_id.clone()),
                ("client_secret", client.client_secret.clone()),
                ("username", "someone\0@example.com".into()),
                ("password", "whatever it is".into()),
            ],
        ),
    ];
    for (method, path, token, form) in cases {
        let mut req = app.request(method.clone(), &path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !form.is_empty() {
            req = req.form(&form);
        }
        let r = app.send(req).await;
        assert_eq!(r.status, 400, "{method} {path} {form:?}: {}", r.text);
        assert!(r.error().contains("NUL"), "{}", r.text);
    }
    // Path segments and paging parameters are not free text: no 5xx (the
    // helper fails the test on one), and nothing found.
    for path in [
        "/api/v1/timelines/tag/a%00b".to_owned(),
        "/api/v1/accounts/1%00".to_owned(),
        "/api/v1/statuses/1%00/context".to_owned(),
        format!("/api/v1/accounts/{}/statuses?tagged=a%00b", user.id),
        "/api/v1/timelines/public?max_id=%00".to_owned(),
    ] {
        let r = app.get(&path, Some(&user.token)).await;
        assert!(
            r.status == 400 || r.status == 404 || r.json == json!([]),
            "{path}: {} {}",
            r.status,
            r.text
        );
    }
    // JSON bodies too.
    let r = app
        .post_json(
            "/api/v1/statuses",
            Some(&user.token),
            &json!({"status": "a\u{0}b"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Nothing was stored.
    let mine = app
        .list(
            &format!("/api/v1/accounts/{}/statuses", user.id),
            Some(&user),
        )
        .await;
    assert!(mine.is_empty(), "{mine:?}");
}

#[tokio::test]
async fn nul_characters_are_refused_on_sqlite() {
    let app = TestApp::spawn().await;
    nul_is_refused_everywhere(&app).await;
}

#[tokio::test]
async fn nul_characters_are_refused_on_postgres() {
    let Some(app) = TestApp::spawn_postgres("nul_characters_are_refused_on_postgres").await else {
        return;
    };
    nul_is_refused_everywhere(&app).await;
}

// ---- 6. an answer given before the body was read --------------------

/// Reads one answer's head (status line and headers, lowercased) and its
/// body, by `Content-Length`, from a raw HTTP/1.1 connection; `got` keeps
/// what was read past it (the start of the next answer).
async fn read_answer(stream: &mut tokio::net::TcpStream, got: &mut Vec<u8>) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(got)));
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(got));
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    got.drain(..head_end + 4);
    while got.len() < length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    got.drain(..length);
    head
}

fn post_with_body(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const NEXT: &[u8] = b"GET /api/v1/instance HTTP/1.1\r\nhost: localhost\r\n\r\n";

/// A 401, 404 or 405 given before the body was read leaves the connection
/// usable (the rest of the body is drained), so a proxy reusing it loses
/// nothing; a body over the limit is not read, and the 413 says
/// `Connection: close`.
#[tokio::test]
async fn answers_before_the_body_is_read_keep_the_connection_sound() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 64 * 1024).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = format!("status={}&visibility=public", "x".repeat(40_000));
    for (what, path) in [
        ("401", "/api/v1/statuses"),
        ("404", "/api/v1/nothing-here"),
        ("405", "/api/v1/instance"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut request = post_with_body(path, &body);
        request.extend_from_slice(NEXT);
        stream.write_all(&request).await.unwrap();
        let mut got = Vec::new();
        let head = read_answer(&mut stream, &mut got).await;
        assert!(head.starts_with(&format!("http/1.1 {what}")), "{head}");
        assert!(!head.contains("connection: close"), "{what}: {head}");
        let next = read_answer(&mut stream, &mut got).await;
        assert!(next.starts_with("http/1.1 200"), "after {what}: {next}");
    }
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let big = format!("client_name={}", "x".repeat(100_000));
    stream
        .write_all(&post_with_body("/api/v1/apps", &big))
        .await
        .unwrap();
    let head = read_answer(&mut stream, &mut Vec::new()).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
}
