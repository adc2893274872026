//! Registration, the caller's account, profile updates, lookups.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{unique, TestApp};

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

async fn app_token(app: &TestApp) -> String {
    let client = app.create_app("read write follow push", OOB).await;
    app.app_token(&client, "read write follow push").await
}

fn details_code(v: &Value, field: &str) -> String {
    v["details"][field][0]["error"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn register_returns_a_usable_token_in_every_encoding() {
    let app = TestApp::spawn().await;
    let token = app_token(&app).await;
    // JSON (toot, megalodon).
    let name = unique("j");
    let r = app
        .post_json(
            "/api/v1/accounts",
            Some(&token),
            &json!({"username": name, "email": format!("{name}@example.com"), "password": "hunter2hunter2", "agreement": true, "locale": "en"}),
        )
        .await;
    let v = r.expect(200).clone();
    assert_eq!(v["scope"], "read write follow push");
    let me = app
        .get(
            "/api/v1/accounts/verify_credentials",
            v["access_token"].as_str(),
        )
        .await;
    assert_eq!(me.expect(200)["username"], name.as_str());
    // Multipart (masto.js).
    let name = unique("m");
    let form = reqwest::multipart::Form::new()
        .text("username", name.clone())
        .text("email", format!("{name}@example.com"))
        .text("password", "hunter2hunter2")
        .text("agreement", "true")
        .text("locale", "en");
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/accounts")
                .bearer_auth(&token)
                .multipart(form),
        )
        .await;
    r.expect(200);
}

#[tokio::test]
async fn registration_errors_carry_mastodon_details() {
    let app = TestApp::spawn().await;
    let token = app_token(&app).await;
    let taken = app.user().await;
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (
            json!({"username": taken.username.to_uppercase(), "email": "new@example.com"}),
            "username",
            "ERR_TAKEN",
            "Username has already been taken",
        ),
        (
            json!({"username": unique("n"), "email": taken.email}),
            "email",
            "ERR_TAKEN",
            "Email has already been taken",
        ),
        (
            json!({"username": unique("n"), "email": "not-an-email"}),
            "email",
            "ERR_INVALID",
            "Email is invalid",
        ),
        (
            json!({"username": unique("n"), "password": "short"}),
            "password",
            "ERR_TOO_SHORT",
            "Password is too short (minimum is 8 characters)",
        ),
        (
            json!({"username": unique("n"), "password": "x".repeat(73)}),
            "password",
            "ERR_TOO_LONG",
            "Password is too long",
        ),
        (
            json!({"username": unique("n"), "agreement": false}),
            "agreement",
            "ERR_ACCEPTED",
            "Agreement must be accepted",
        ),
        (
            json!({"username": unique("n"), "agreement": "0"}),
            "agreement",
            "ERR_ACCEPTED",
            "Agreement must be accepted",
        ),
        (
            json!({"username": "bad name!"}),
            "username",
            "ERR_INVALID",
            "Username must contain only letters",
        ),
        (
            json!({"username": "a".repeat(31)}),
            "username",
            "ERR_TOO_LONG",
            "Username is too long",
        ),
        (
            json!({"username": ""}),
            "username",
            "ERR_BLANK",
            "Username can't be blank",
        ),
        (
            json!({"username": "admin"}),
            "username",
            "ERR_RESERVED",
            "Username is reserved",
        ),
        (
            json!({"username": unique("n"), "locale": "not a locale"}),
            "locale",
            "ERR_INCLUSION",
            "Locale is not included in the list",
        ),
    ];
    for (overrides, field, code, message) in cases {
        let name = unique("ok");
        let mut body = json!({"username": name, "email": format!("{name}@example.com"), "password": "long enough pw", "agreement": true, "locale": "en"});
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post_json("/api/v1/accounts", Some(&token), &body).await;
        let v = r.expect(422);
        assert_eq!(details_code(v, field), code, "{body}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Validation failed: {message}")),
            "{v}"
        );
    }
    // A missing agreement entirely.
    let name = unique("na");
    let r = app
        .post_form(
            "/api/v1/accounts",
            Some(&token),
            &[
                ("username", &name),
                ("email", &format!("{name}@example.com")),
                ("password", "long enough pw"),
            ],
        )
        .await;
    assert_eq!(details_code(r.expect(422), "agreement"), "ERR_ACCEPTED");
    // Several problems are reported together.
    let r = app.post_form("/api/v1/accounts", Some(&token), &[]).await;
    let v = r.expect(422);
    for field in ["username", "email", "password", "agreement"] {
        assert!(v["details"][field].is_array(), "{field}: {v}");
    }
}

#[tokio::test]
async fn registration_needs_an_app_token_with_write_accounts() {
    let app = TestApp::spawn().await;
    let body = json!({"username": unique("x"), "email": "x@example.com", "password": "long enough", "agreement": true});
    app.post_json("/api/v1/accounts", None, &body)
        .await
        .expect(401);
    let client = app.create_app("read write", OOB).await;
    let read_only = app.app_token(&client, "read").await;
    app.post_json("/api/v1/accounts", Some(&read_only), &body)
        .await
        .expect(403);
    let user = app.user().await;
    app.post_json("/api/v1/accounts", Some(&user.token), &body)
        .await
        .expect(403);
}

#[tokio::test]
async fn registrations_can_be_closed() {
    let app = TestApp::spawn_with(|c| c.registrations_open = false).await;
    let token = app_token(&app).await;
    let body = json!({"username": unique("x"), "email": "x@example.com", "password": "long enough", "agreement": true});
    assert_eq!(
        app.post_json("/api/v1/accounts", Some(&token), &body)
            .await
            .expect(403)["error"],
        "Registrations are closed on this server"
    );
    assert_eq!(
        app.get("/api/v1/instance", None).await.expect(200)["registrations"],
        false
    );
}

#[tokio::test]
async fn verify_credentials_shape() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let v = app
        .get("/api/v1/accounts/verify_credentials", Some(&user.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["id"], user.id.as_str());
    assert_eq!(v["username"], user.username.as_str());
    assert_eq!(v["acct"], user.username.as_str());
    assert_eq!(v["display_name"], "");
    assert_eq!(v["note"], "");
    assert_eq!(v["url"], app.url(&format!("/@{}", user.username)));
    assert_eq!(v["uri"], app.url(&format!("/users/{}", user.username)));
    assert!(v["avatar"].as_str().unwrap().starts_with("http://"));
    assert!(v["header_static"].as_str().unwrap().starts_with("http://"));
    assert!(v["created_at"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00.000Z"));
    assert!(v["last_status_at"].is_null());
    assert_eq!(v["statuses_count"], 0);
    assert_eq!(v["fields"], json!([]));
    assert_eq!(v["emojis"], json!([]));
    assert_eq!(v["source"]["privacy"], "public");
    assert_eq!(v["source"]["note"], "");
    assert_eq!(v["source"]["language"], "en");
    assert_eq!(v["role"]["id"], "-99");
    // The id is a decimal string whose high bits are the creation time.
    let id: i64 = user.id.parse().unwrap();
    let ms = id >> 16;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - ms).abs() < 60_000, "{ms} vs {now}");
}

#[tokio::test]
async fn update_credentials_in_every_encoding() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // Form, with Mastodon.py's '1'/'0' booleans and Rails nesting.
    let r = app
        .send(
            app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
                .bearer_auth(&user.token)
                .form(&[
                    ("display_name", "Alice ✨"),
                    ("note", "Hello <world>\nsecond line\n\nnew paragraph"),
                    ("locked", "1"),
                    ("bot", "0"),
                    ("discoverable", "0"),
                    ("source[privacy]", "unlisted"),
                    ("source[sensitive]", "true"),
                    ("source[language]", "de"),
                    ("fields_attributes[0][name]", "Site"),
                    ("fields_attributes[0][value]", "https://alice.example"),
                    ("fields_attributes[1][name]", "Pronouns"),
                    ("fields_attributes[1][value]", "she/her"),
                ]),
        )
        .await;
    let v = r.expect(200).clone();
    assert_eq!(v["display_name"], "Alice ✨");
    assert_eq!(
        v["note"],
        "<p>Hello &lt;world&gt;<br />second line</p><p>new paragraph</p>"
    );
    assert_eq!(
        v["source"]["note"],
        "Hello <world>\nsecond line\n\nnew paragraph"
    );
    assert_eq!(v["locked"], true);
    assert_eq!(v["bot"], false);
    assert_eq!(v["discoverable"], false);
    assert_eq!(v["source"]["privacy"], "unlisted");
    assert_eq!(v["source"]["sensitive"], true);
    assert_eq!(v["source"]["language"], "de");
    assert_eq!(v["fields"][1]["name"], "Pronouns");
    assert_eq!(v["source"]["fields"][0]["value"], "https://alice.example");
    // Re-read sees the same.
    let again = app
        .get("/api/v1/accounts/verify_credentials", Some(&user.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(again["display_name"], "Alice ✨");
    // JSON (megalodon), with fields as an index-keyed object.
    let r = app
        .send(
            app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
                .bearer_auth(&user.token)
                .json(&json!({
                    "display_name": "Json", "locked": false, "bot": "true",
                    "source": {"privacy": "private"},
                    "fields_attributes": {"0": {"name": "Only", "value": "one"}}
                })),
        )
        .await;
    let v = r.expect(200).clone();
    assert_eq!(v["display_name"], "Json");
    assert_eq!(v["locked"], false);
    assert_eq!(v["bot"], true);
    assert_eq!(
        v["note"], "<p>Hello &lt;world&gt;<br />second line</p><p>new paragraph</p>",
        "untouched fields stay"
    );
    assert_eq!(v["fields"].as_array().unwrap().len(), 1);
    // Multipart (masto.js).
    let form = reqwest::multipart::Form::new()
        .text("display_name", "Multi")
        .text("source[privacy]", "public");
    let r = app
        .send(
            app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
                .bearer_auth(&user.token)
                .multipart(form),
        )
        .await;
    let v = r.expect(200);
    assert_eq!(v["display_name"], "Multi");
    assert_eq!(v["source"]["privacy"], "public");
}

#[tokio::test]
async fn update_credentials_validates() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let patch = |body: Value| {
        app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
            .bearer_auth(&user.token)
            .json(&body)
    };
    let r = app
        .send(patch(json!({"display_name": "x".repeat(31)})))
        .await;
    assert!(r.expect(422)["error"]
        .as_str()
        .unwrap()
        .contains("Display name is too long"));
    let r = app.send(patch(json!({"note": "x".repeat(501)}))).await;
    r.expect(422);
    let r = app
        .send(patch(json!({"source": {"privacy": "everyone"}})))
        .await;
    r.expect(422);
    let fields: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("n{i}"), "value": "v"}))
        .collect();
    let r = app.send(patch(json!({"fields_attributes": fields}))).await;
    r.expect(422);
    let r = app
        .send(patch(json!({"fields_attributes": "nonsense"})))
        .await;
    r.expect(422);
    // Nothing changed.
    let v = app
        .get("/api/v1/accounts/verify_credentials", Some(&user.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["display_name"], "");
}

#[tokio::test]
async fn show_and_lookup() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let v = app
        .get(&format!("/api/v1/accounts/{}", user.id), None)
        .await
        .expect(200)
        .clone();
    assert_eq!(v["username"], user.username.as_str());
    assert!(v.get("source").is_none(), "public view has no source");
    for acct in [
        user.username.clone(),
        format!("@{}", user.username),
        user.username.to_uppercase(),
        format!(
            "{}@{}",
            user.username,
            app.base.trim_start_matches("http://")
        ),
    ] {
        let r = app
            .get(
                &format!("/api/v1/accounts/lookup?acct={}", urlencode(&acct)),
                None,
            )
            .await;
        assert_eq!(r.expect(200)["id"], user.id.as_str(), "{acct}");
    }
    app.get("/api/v1/accounts/lookup?acct=nobody_here", None)
        .await
        .expect(404);
    app.get(
        &format!(
            "/api/v1/accounts/lookup?acct={}@elsewhere.example",
            user.username
        ),
        None,
    )
    .await
    .expect(404);
    app.get("/api/v1/accounts/lookup", None).await.expect(400);
    app.get("/api/v1/accounts/lookup?acct=bad%20name", None)
        .await
        .expect(404);
    app.get("/api/v1/accounts/123", None).await.expect(404);
    app.get("/api/v1/accounts/not-a-number", None)
        .await
        .expect(404);
    app.get("/api/v1/accounts/-5", None).await.expect(404);
    app.get("/api/v1/accounts/99999999999999999999999", None)
        .await
        .expect(404);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
