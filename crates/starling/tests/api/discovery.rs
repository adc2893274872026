//! Instance documents, NodeInfo, OAuth metadata, health and metrics.

use crate::helpers::TestApp;

#[tokio::test]
async fn instance_v1_has_what_clients_parse() {
    let app = TestApp::spawn().await;
    let v = app.get("/api/v1/instance", None).await.expect(200).clone();
    let version = v["version"].as_str().unwrap();
    assert!(
        version.starts_with("4.2.0 (compatible; Starling "),
        "{version}"
    );
    let host = app.base.trim_start_matches("http://");
    assert_eq!(v["uri"], host);
    assert_eq!(v["urls"]["streaming_api"], format!("ws://{host}"));
    assert_eq!(v["configuration"]["statuses"]["max_characters"], 500);
    assert!(v["contact_account"].is_null());
    assert_eq!(v["stats"]["user_count"], 0);
    assert!(v["rules"].is_array());
}

#[tokio::test]
async fn instance_v2_has_configuration_and_api_versions() {
    let app = TestApp::spawn().await;
    let v = app.get("/api/v2/instance", None).await.expect(200).clone();
    assert_eq!(v["api_versions"]["mastodon"], 1);
    assert!(v["configuration"]["urls"]["streaming"]
        .as_str()
        .unwrap()
        .starts_with("ws://"));
    assert_eq!(
        v["configuration"]["media_attachments"]["description_limit"],
        1500
    );
    assert_eq!(v["registrations"]["enabled"], true);
    assert!(v["domain"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn nodeinfo_satisfies_megalodon_detection() {
    let app = TestApp::spawn().await;
    let links = app
        .get("/.well-known/nodeinfo", None)
        .await
        .expect(200)
        .clone();
    assert_eq!(
        links["links"][0]["rel"],
        "http://nodeinfo.diaspora.software/ns/schema/2.0"
    );
    let href = links["links"][0]["href"].as_str().unwrap();
    assert_eq!(href, app.url("/nodeinfo/2.0"));
    let info = app.get("/nodeinfo/2.0", None).await.expect(200).clone();
    assert_eq!(info["software"]["name"], "starling");
    assert_eq!(info["metadata"]["upstream"]["name"], "mastodon");
}

#[tokio::test]
async fn oauth_metadata_advertises_pkce_and_password() {
    let app = TestApp::spawn().await;
    let v = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .expect(200)
        .clone();
    assert_eq!(v["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(v["authorization_endpoint"], app.url("/oauth/authorize"));
    assert_eq!(v["code_challenge_methods_supported"][0], "S256");
    let grants: Vec<&str> = v["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(grants.contains(&"password") && grants.contains(&"authorization_code"));
    assert!(v["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "write:accounts"));
}

#[tokio::test]
async fn user_count_reflects_registrations_after_cache_expiry() {
    let app = TestApp::spawn().await;
    app.user().await;
    // The first read after start is uncached.
    let v = app.get("/api/v1/instance", None).await.expect(200).clone();
    assert_eq!(v["stats"]["user_count"], 1);
}

#[tokio::test]
async fn health_endpoints() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/livez", None).await.expect(200)["status"], "ok");
    assert_eq!(app.get("/readyz", None).await.expect(200)["status"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_per_route() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/accounts/12345", None).await.expect(404);
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/accounts/{id}\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn default_images_load() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/avatars/original/missing.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
}
