//! The cross-cutting rules of mastodon-api.md §1: trailing slashes, CORS,
//! JSON everywhere, errors, body limits, rate limits and their headers.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{unique, TestApp};

#[tokio::test]
async fn trailing_slashes_route_the_same() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/instance/", None).await.expect(200);
    app.get("/api/v2/instance/", None).await.expect(200);
    let client = app.create_app("read", "urn:ietf:wg:oauth:2.0:oob").await;
    let r = app
        .client
        .get(app.url(&format!(
            "/oauth/authorize/?response_type=code&client_id={}&redirect_uri=urn:ietf:wg:oauth:2.0:oob&scope=read",
            client.client_id
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn cors_preflight_allows_what_browsers_send() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/statuses"))
        .header("Origin", "https://phanpy.social")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(needed) || allowed == "*", "{allowed}");
    }
    let get = app
        .send(
            app.request(Method::GET, "/api/v1/instance")
                .header("Origin", "https://elk.zone"),
        )
        .await;
    let exposed = get
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["link", "x-ratelimit-remaining", "x-request-id"] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/v1/nothing/here", None).await;
    assert_eq!(r.expect(404)["error"], "Record not found");
    let r = app
        .send(app.request(Method::DELETE, "/api/v1/instance"))
        .await;
    r.expect(405);
    assert!(!r.error().is_empty());
}

#[tokio::test]
async fn every_response_has_a_request_id_and_date() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/v1/instance", None).await;
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    assert!(r.header("date").is_some());
    let r = app
        .send(
            app.request(Method::GET, "/api/v1/instance")
                .header("x-request-id", "given-id-1"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("given-id-1"));
}

#[tokio::test]
async fn malformed_bodies_are_400_not_500() {
    let app = TestApp::spawn().await;
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/apps")
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert!(r.expect(400)["error"].as_str().unwrap().contains("JSON"));
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/apps")
                .header("content-type", "application/json")
                .body("[1,2]"),
        )
        .await;
    r.expect(400);
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/apps")
                .header("content-type", "multipart/form-data; boundary=x")
                .body("garbage"),
        )
        .await;
    r.expect(400);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let big = "x".repeat(10_000);
    let r = app
        .post_form("/api/v1/apps", None, &[("client_name", &big)])
        .await;
    r.expect(413);
    let r = app
        .post_json("/api/v1/apps", None, &json!({ "client_name": big }))
        .await;
    r.expect(413);
}

#[tokio::test]
async fn api_rate_limit_headers_and_429() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.api_limit = 3;
    })
    .await;
    let first = app.get("/api/v1/instance", None).await;
    first.expect(200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("2"));
    let reset = first.header("x-ratelimit-reset").unwrap();
    assert!(
        reset.ends_with('Z') && reset.len() == "2025-01-05T12:35:00.000000Z".len(),
        "{reset}"
    );
    app.get("/api/v1/instance", None).await.expect(200);
    app.get("/api/v1/instance", None).await.expect(200);
    let limited = app.get("/api/v1/instance", None).await;
    assert_eq!(limited.expect(429)["error"], "Too many requests");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // A new window opens after the period.
    app.clock.advance(std::time::Duration::from_secs(301));
    app.get("/api/v1/instance", None).await.expect(200);
}

/// Application tokens are not accounts: they count against the IP's
/// budget, as anonymous calls do (Mastodon counts signed-in users per
/// account, everything else per IP), so minting tokens buys nothing.
#[tokio::test]
async fn app_tokens_share_their_ips_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.api_limit = 2;
        c.rate_limits.registrations_limit = 100;
    })
    .await;
    let client = app.create_app("read", "urn:ietf:wg:oauth:2.0:oob").await;
    let a = app.app_token(&client, "read").await;
    let b = app.app_token(&client, "read").await;
    app.get("/api/v1/apps/verify_credentials", Some(&a))
        .await
        .expect(200);
    app.get("/api/v1/apps/verify_credentials", Some(&a))
        .await
        .expect(429);
    app.get("/api/v1/apps/verify_credentials", Some(&b))
        .await
        .expect(429);
}

#[tokio::test]
async fn registrations_are_limited_per_ip() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.registrations_limit = 5;
        c.rate_limits.api_limit = 1000;
        c.rate_limits.sign_in_limit = 1000;
    })
    .await;
    let client = app
        .create_app("read write", "urn:ietf:wg:oauth:2.0:oob")
        .await;
    let token = app.app_token(&client, "read write").await;
    for i in 0..6 {
        let r = app.register(&token, &unique("r")).await;
        if i < 5 {
            r.expect(200);
        } else {
            assert_eq!(r.expect(429)["error"], "Too many requests");
        }
    }
    app.clock.advance(std::time::Duration::from_secs(1801));
    app.register(&token, &unique("r")).await.expect(200);
}

#[tokio::test]
async fn token_endpoint_is_limited_per_ip() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.sign_in_limit = 2;
    })
    .await;
    let client = app.create_app("read", "urn:ietf:wg:oauth:2.0:oob").await;
    let form = [
        ("grant_type", "password"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("username", "nobody@example.com"),
        ("password", "wrong password"),
    ];
    app.post_form("/oauth/token", None, &form).await.expect(400);
    app.post_form("/oauth/token", None, &form).await.expect(400);
    app.post_form("/oauth/token", None, &form).await.expect(429);
}
