//! OAuth: apps, the authorize page (sign-in, consent, OOB, redirects, PKCE),
//! the token grants, revocation, and scope enforcement.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{Client, TestApp, User};

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

/// The hidden inputs of the consent form, as a browser would submit them.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

fn authorize_path(client: &Client, redirect: &str, extra: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=read+write{extra}",
        client.client_id,
        urlencode(redirect)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Opens the authorize page and submits it as the user would.
async fn sign_in(
    app: &TestApp,
    path: &str,
    login: &str,
    password: &str,
    decision: &str,
) -> reqwest::Response {
    let page = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/oauth/authorize\">"),
        "{html}"
    );
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), login.into()));
    form.push(("password".into(), password.into()));
    form.push(("decision".into(), decision.into()));
    app.client
        .post(app.url("/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn code_from_page(html: &str) -> String {
    html.split("<code id=\"authorization-code\">")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("code on the page")
        .to_owned()
}

async fn exchange(
    app: &TestApp,
    client: &Client,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> crate::helpers::Resp {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    app.post_form("/oauth/token", None, &form).await
}

#[tokio::test]
async fn create_app_in_every_encoding() {
    let app = TestApp::spawn().await;
    let form = app
        .post_form(
            "/api/v1/apps",
            None,
            &[
                ("client_name", "form"),
                ("redirect_uris", OOB),
                ("scopes", "read write follow push"),
            ],
        )
        .await;
    let v = form.expect(200);
    assert_eq!(v["name"], "form");
    assert_eq!(v["scopes"], json!(["read", "write", "follow", "push"]));
    assert_eq!(v["redirect_uri"], OOB);
    assert_eq!(v["redirect_uris"], json!([OOB]));
    assert_eq!(v["client_secret_expires_at"], 0);
    assert!(v["id"].is_string() && v["client_id"].is_string() && v["client_secret"].is_string());

    let j = app
        .post_json(
            "/api/v1/apps",
            None,
            &json!({"client_name": "json", "redirect_uris": ["https://a.example/cb", OOB], "scopes": "read", "website": "https://a.example"}),
        )
        .await;
    let v = j.expect(200);
    assert_eq!(v["redirect_uri"], format!("https://a.example/cb\n{OOB}"));
    assert_eq!(v["website"], "https://a.example");

    let multipart = reqwest::multipart::Form::new()
        .text("client_name", "multi")
        .text("redirect_uris", OOB);
    let m = app
        .send(
            app.request(Method::POST, "/api/v1/apps")
                .multipart(multipart),
        )
        .await;
    let v = m.expect(200);
    assert_eq!(v["name"], "multi");
    // Scopes default to read.
    assert_eq!(v["scopes"], json!(["read"]));
}

#[tokio::test]
async fn create_app_rejects_bad_input() {
    let app = TestApp::spawn().await;
    let r = app
        .post_form("/api/v1/apps", None, &[("redirect_uris", OOB)])
        .await;
    assert_eq!(
        r.expect(422)["error"],
        "Validation failed: Name can't be blank"
    );
    let r = app
        .post_form(
            "/api/v1/apps",
            None,
            &[("client_name", "x"), ("redirect_uris", "not a uri")],
        )
        .await;
    assert_eq!(
        r.expect(422)["error"],
        "Validation failed: Redirect URI must be an absolute URI."
    );
    let r = app
        .post_form(
            "/api/v1/apps",
            None,
            &[
                ("client_name", "x"),
                ("redirect_uris", OOB),
                ("scopes", "read admin:everything"),
            ],
        )
        .await;
    r.expect(422);
}

#[tokio::test]
async fn verify_app_credentials() {
    let app = TestApp::spawn().await;
    let client = app.create_app("read write", OOB).await;
    let token = app.app_token(&client, "read").await;
    let v = app
        .get("/api/v1/apps/verify_credentials", Some(&token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["name"], "Test Client");
    assert!(v.get("client_secret").is_none());
    app.get("/api/v1/apps/verify_credentials", None)
        .await
        .expect(401);
}

#[tokio::test]
async fn password_grant_with_email_or_username() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read write follow push", OOB).await;
    for login in [
        user.email.as_str(),
        user.username.as_str(),
        &user.email.to_uppercase(),
    ] {
        let r = app
            .post_form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "password"),
                    ("client_id", &client.client_id),
                    ("client_secret", &client.client_secret),
                    ("username", login),
                    ("password", &user.password),
                    ("scope", "read write follow push"),
                ],
            )
            .await;
        let v = r.expect(200).clone();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "read write follow push");
        assert!(v["created_at"].is_i64());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let me = app
            .get(
                "/api/v1/accounts/verify_credentials",
                v["access_token"].as_str(),
            )
            .await;
        assert_eq!(me.expect(200)["id"], user.id.as_str());
    }
}

#[tokio::test]
async fn token_errors_follow_rfc6749() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read", OOB).await;
    let base = |grant: &'static str| {
        vec![
            ("grant_type", grant),
            ("client_id", client.client_id.clone().leak() as &str),
        ]
    };
    // Wrong client secret.
    let mut form = base("password");
    form.extend([
        ("client_secret", "wrong"),
        ("username", user.email.as_str()),
        ("password", user.password.as_str()),
    ]);
    let r = app.post_form("/oauth/token", None, &form).await;
    assert_eq!(r.expect(401)["error"], "invalid_client");
    assert!(r.json["error_description"].is_string());
    // Wrong password.
    let mut form = base("password");
    form.extend([
        ("client_secret", client.client_secret.as_str()),
        ("username", user.email.as_str()),
        ("password", "nope nope nope"),
    ]);
    assert_eq!(
        app.post_form("/oauth/token", None, &form).await.expect(400)["error"],
        "invalid_grant"
    );
    // Scope beyond the app's.
    let mut form = base("client_credentials");
    form.extend([
        ("client_secret", client.client_secret.as_str()),
        ("scope", "write"),
    ]);
    assert_eq!(
        app.post_form("/oauth/token", None, &form).await.expect(400)["error"],
        "invalid_scope"
    );
    // Unknown grant, refresh tokens, missing grant.
    let mut form = base("refresh_token");
    form.push(("client_secret", client.client_secret.as_str()));
    assert_eq!(
        app.post_form("/oauth/token", None, &form).await.expect(400)["error"],
        "unsupported_grant_type"
    );
    let r = app.post_form("/oauth/token", None, &[]).await;
    assert_eq!(r.expect(400)["error"], "invalid_request");
    // Garbage code.
    let mut form = base("authorization_code");
    form.extend([
        ("client_secret", client.client_secret.as_str()),
        ("code", "garbage"),
        ("redirect_uri", OOB),
    ]);
    assert_eq!(
        app.post_form("/oauth/token", None, &form).await.expect(400)["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn client_credentials_in_json_and_basic_auth() {
    let app = TestApp::spawn().await;
    let client = app.create_app("read write", OOB).await;
    let r = app
        .post_json(
            "/oauth/token",
            None,
            &json!({"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.client_secret, "scope": "read write", "redirect_uri": OOB}),
        )
        .await;
    assert_eq!(r.expect(200)["scope"], "read write");
    let r = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(&client.client_id, Some(&client.client_secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(r.expect(200)["scope"], "read");
}

#[tokio::test]
async fn authorization_code_flow_out_of_band() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read write follow push", OOB).await;
    let r = sign_in(
        &app,
        &authorize_path(&client, OOB, ""),
        &user.email,
        &user.password,
        "approve",
    )
    .await;
    assert_eq!(r.status(), 200);
    let code = code_from_page(&r.text().await.unwrap());
    let v = exchange(&app, &client, &code, OOB, None)
        .await
        .expect(200)
        .clone();
    assert_eq!(v["scope"], "read write");
    let me = app
        .get(
            "/api/v1/accounts/verify_credentials",
            v["access_token"].as_str(),
        )
        .await;
    assert_eq!(me.expect(200)["username"], user.username.as_str());
    // Codes are single-use.
    assert_eq!(
        exchange(&app, &client, &code, OOB, None).await.expect(400)["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn authorization_code_flow_with_redirect_state_and_pkce() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let redirect = "https://client.example/callback?keep=1";
    let client = app.create_app("read write", redirect).await;
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let path = authorize_path(
        &client,
        redirect,
        &format!("&state=xyz%20123&code_challenge={challenge}&code_challenge_method=S256"),
    );
    let approve = || sign_in(&app, &path, &user.username, &user.password, "approve");
    let q = redirect_query(approve().await);
    assert_eq!(q["keep"], "1");
    assert_eq!(q["state"], "xyz 123");
    // The verifier is required and must match, and so must the redirect
    // URI. (A failed attempt spends the code, as Doorkeeper does.)
    let wrong_verifier = "wrong-verifier-wrong-verifier-wrong-verifier-0000";
    for (uri, v) in [
        (redirect, Some(wrong_verifier)),
        (redirect, None),
        ("https://client.example/other", Some(verifier)),
    ] {
        let code = &redirect_query(approve().await)["code"];
        let r = exchange(&app, &client, code, uri, v).await;
        assert_eq!(r.expect(400)["error"], "invalid_grant", "{uri} {v:?}");
    }
    let code = &redirect_query(approve().await)["code"];
    exchange(&app, &client, code, redirect, Some(verifier))
        .await
        .expect(200);
}

/// The query of a 302 to the client's redirect URI.
fn redirect_query(r: reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("client.example"));
    location.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read", OOB).await;
    let r = sign_in(
        &app,
        &authorize_path(&client, OOB, "").replace("scope=read+write", "scope=read"),
        &user.email,
        &user.password,
        "approve",
    )
    .await;
    let code = code_from_page(&r.text().await.unwrap());
    app.clock.advance(Duration::from_secs(601));
    let r = exchange(&app, &client, &code, OOB, None).await;
    assert_eq!(r.expect(400)["error"], "invalid_grant");
}

#[tokio::test]
async fn deny_and_wrong_password() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let redirect = "https://client.example/cb";
    let client = app.create_app("read write", redirect).await;
    let path = authorize_path(&client, redirect, "&state=s1");
    let r = sign_in(&app, &path, &user.email, "", "deny").await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(redirect)
            && location.contains("error=access_denied")
            && location.contains("state=s1"),
        "{location}"
    );
    let r = sign_in(&app, &path, &user.email, "not my password", "approve").await;
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("Invalid email or password."));
    // The form is shown again, login kept, password not.
    assert!(html.contains(&format!("value=\"{}\"", user.email)));
}

#[tokio::test]
async fn authorize_refuses_bad_requests_with_an_html_page() {
    let app = TestApp::spawn().await;
    let client = app.create_app("read", "https://client.example/cb").await;
    for path in [
        "/oauth/authorize?response_type=code&client_id=unknown&redirect_uri=x".to_owned(),
        authorize_path(&client, "https://evil.example/cb", ""),
        authorize_path(&client, "https://client.example/cb", "")
            .replace("response_type=code", "response_type=token"),
        authorize_path(&client, "https://client.example/cb", ""), // scope write not allowed
        authorize_path(
            &client,
            "https://client.example/cb",
            "&code_challenge=abc&code_challenge_method=plain",
        )
        .replace("scope=read+write", "scope=read"),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(
            r.headers().get("location").is_none(),
            "never redirects to an unchecked URI"
        );
    }
}

#[tokio::test]
async fn authorize_page_escapes_what_apps_name_themselves() {
    let app = TestApp::spawn().await;
    let r = app
        .post_form(
            "/api/v1/apps",
            None,
            &[
                ("client_name", "<script>alert(1)</script>"),
                ("redirect_uris", OOB),
            ],
        )
        .await;
    let client_id = r.expect(200)["client_id"].as_str().unwrap().to_owned();
    let html = app
        .client
        .get(app.url(&format!(
            "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={OOB}"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;"));
}

async fn fresh_token(app: &TestApp, user: &User, client: &Client) -> String {
    let r = app.password_token(user, client, "read").await;
    r.expect(200)["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn revoke_is_idempotent_and_checks_the_client() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read", OOB).await;
    let other = app.create_app("read", OOB).await;
    let token = fresh_token(&app, &user, &client).await;
    let r = app
        .post_form(
            "/oauth/revoke",
            None,
            &[
                ("client_id", &other.client_id),
                ("client_secret", &other.client_secret),
                ("token", &token),
            ],
        )
        .await;
    assert_eq!(r.expect(403)["error"], "unauthorized_client");
    app.get("/api/v1/accounts/verify_credentials", Some(&token))
        .await
        .expect(200);
    let form = [
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("token", token.as_str()),
    ];
    assert_eq!(
        app.post_form("/oauth/revoke", None, &form)
            .await
            .expect(200),
        &json!({})
    );
    assert_eq!(
        app.post_form("/oauth/revoke", None, &form)
            .await
            .expect(200),
        &json!({})
    );
    let r = app
        .get("/api/v1/accounts/verify_credentials", Some(&token))
        .await;
    assert_eq!(r.expect(401)["error"], "The access token is invalid");
    let bad = [
        ("client_id", client.client_id.as_str()),
        ("client_secret", "nope"),
        ("token", "x"),
    ];
    app.post_form("/oauth/revoke", None, &bad).await.expect(401);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let client = app.create_app("read write profile", OOB).await;
    let read_only = fresh_token(&app, &user, &client).await;
    let r = app
        .send(
            app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
                .bearer_auth(&read_only)
                .form(&[("display_name", "x")]),
        )
        .await;
    assert_eq!(
        r.expect(403)["error"],
        "This action is outside the authorized scopes"
    );
    // `read:accounts`, or `profile` alone, may read the caller's own account.
    for scope in ["read:accounts", "profile"] {
        let r = app.password_token(&user, &client, scope).await;
        let granular = r.expect(200)["access_token"].as_str().unwrap().to_owned();
        app.get("/api/v1/accounts/verify_credentials", Some(&granular))
            .await
            .expect(200);
    }
    // App tokens are not users.
    let app_token = app.app_token(&client, "read").await;
    let r = app
        .get("/api/v1/accounts/verify_credentials", Some(&app_token))
        .await;
    assert_eq!(
        r.expect(422)["error"],
        "This method requires an authenticated user"
    );
    // No token, a garbage token, a wrong scheme.
    assert_eq!(
        app.get("/api/v1/accounts/verify_credentials", None)
            .await
            .expect(401)["error"],
        "The access token is invalid"
    );
    app.get("/api/v1/accounts/verify_credentials", Some("garbage"))
        .await
        .expect(401);
    let r = app
        .send(
            app.request(Method::GET, "/api/v1/accounts/verify_credentials")
                .header("authorization", format!("Basic {read_only}")),
        )
        .await;
    r.expect(401);
}
