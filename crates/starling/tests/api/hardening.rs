//! The smaller items of the hardening issue, through real HTTP: post length
//! counted as Mastodon counts it, script and local schemes refused as
//! redirect URIs, profile field names as plain text.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, User};

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
const MAX: usize = 500;
/// An emoji ZWJ sequence (a family): seven code points, one character.
const FAMILY: &str = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
const TOO_LONG: &str = "Validation failed: Text is too long (maximum is 500 characters)";

async fn post(app: &TestApp, user: &User, body: Value) -> crate::helpers::Resp {
    app.create_status(Some(&user.token), &body).await
}

/// `n` characters as Mastodon counts them, each `unit`.
fn chars(unit: &str, n: usize) -> String {
    unit.repeat(n)
}

async fn post_length_is_counted_as_mastodon_does(app: &TestApp) {
    let user = app.user().await;
    let url = format!("https://example.com/{}", "x".repeat(300));

    // 500 graphemes with a long URL (counted as 23) pass; 501 fail.
    let text = format!("{} {url}", chars("a", MAX - 23 - 1));
    let v = post(app, &user, json!({ "status": text })).await;
    let v = v.expect(200);
    assert!(
        v["content"]
            .as_str()
            .unwrap()
            .contains("href=\"https://example.com/"),
        "{v}"
    );
    let text = format!("{} {url}", chars("a", MAX - 23));
    let r = post(app, &user, json!({ "status": text })).await;
    assert_eq!(r.expect(422)["error"], TOO_LONG);
    assert_eq!(r.json["details"]["text"][0]["error"], "ERR_TOO_LONG");

    // The same over a form body, with several URLs.
    let text = format!("{} {url} {url}", chars("é", MAX - 2 * 23 - 2));
    let r = app
        .post_form("/api/v1/statuses", Some(&user.token), &[("status", &text)])
        .await;
    r.expect(200);
    let text = format!("{} {url} {url}", chars("é", MAX - 2 * 23 - 1));
    let r = app
        .post_form("/api/v1/statuses", Some(&user.token), &[("status", &text)])
        .await;
    r.expect(422);

    // Emoji ZWJ sequences, flags and combining marks are one character each.
    for unit in [
        FAMILY,
        "\u{1F1EB}\u{1F1F7}",
        "e\u{301}",
        "\u{1F44D}\u{1F3FD}",
    ] {
        post(app, &user, json!({ "status": chars(unit, MAX) }))
            .await
            .expect(200);
        let r = post(app, &user, json!({ "status": chars(unit, MAX + 1) })).await;
        assert_eq!(r.expect(422)["error"], TOO_LONG, "{unit:?}");
    }

    // A remote mention counts as its local part (`@bob`, 4).
    let mention = format!("@bob@{}.example", "d".repeat(60));
    let text = format!("{mention} {}", chars("a", MAX - 5));
    post(app, &user, json!({ "status": text }))
        .await
        .expect(200);
    let text = format!("{mention} {}", chars("a", MAX - 4));
    post(app, &user, json!({ "status": text }))
        .await
        .expect(422);

    // The content warning counts toward the limit.
    let text = chars("a", MAX - 3);
    post(app, &user, json!({ "status": text, "spoiler_text": "abc" }))
        .await
        .expect(200);
    let r = post(
        app,
        &user,
        json!({ "status": text, "spoiler_text": "abcd" }),
    )
    .await;
    assert_eq!(r.expect(422)["error"], TOO_LONG);
    post(
        app,
        &user,
        json!({ "status": "x", "spoiler_text": chars(FAMILY, MAX - 1) }),
    )
    .await
    .expect(200);

    // What passed was stored whole.
    let v = post(app, &user, json!({ "status": chars(FAMILY, MAX) })).await;
    let id = v.expect(200)["id"].as_str().unwrap().to_owned();
    let r = app
        .delete(&format!("/api/v1/statuses/{id}"), Some(&user.token))
        .await;
    assert_eq!(r.expect(200)["text"], chars(FAMILY, MAX));
}

#[tokio::test]
async fn post_length_is_counted_as_mastodon_does_on_sqlite() {
    let app = TestApp::spawn().await;
    post_length_is_counted_as_mastodon_does(&app).await;
}

#[tokio::test]
async fn post_length_is_counted_as_mastodon_does_on_postgres() {
    let Some(app) =
        TestApp::spawn_postgres("post_length_is_counted_as_mastodon_does_on_postgres").await
    else {
        return;
    };
    post_length_is_counted_as_mastodon_does(&app).await;
}

#[tokio::test]
async fn script_and_local_redirect_uris_are_refused() {
    let app = TestApp::spawn().await;
    let bad = [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "  javascript:alert(1)  ",
        "JAVASCRIPT://example.com/%0Aalert(1)",
        "vbscript:msgbox(1)",
        "VBScript:MsgBox(1)",
        "data:text/html,<script>alert(1)</script>",
        "Data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
        "FILE://server/share",
        "https://ok.example/cb\njavascript:alert(1)",
        "https://a.example/c\u{1}b",
        "https://a.example/c\u{1b}b",
        "https://a.example/c\u{7f}b",
        "java\u{8}script:alert(1)",
        "com.example.app://c\u{7}b",
    ];
    for uri in bad {
        for json_body in [false, true] {
            let r = if json_body {
                app.post_json(
                    "/api/v1/apps",
                    None,
                    &json!({ "client_name": "x", "redirect_uris": uri }),
                )
                .await
            } else {
                app.post_form(
                    "/api/v1/apps",
                    None,
                    &[("client_name", "x"), ("redirect_uris", uri)],
                )
                .await
            };
            assert_eq!(
                r.expect(422)["error"],
                "Validation failed: Redirect URI must be an absolute URI.",
                "{uri:?}"
            );
            assert_eq!(
                r.json["details"]["redirect_uri"][0]["error"], "ERR_INVALID",
                "{uri:?}"
            );
        }
    }
    // The out-of-band URN, native apps' custom schemes and web URIs work.
    for good in [
        OOB,
        "com.example.app://cb",
        "com.example.app:/oauth2redirect",
        "https://client.example/callback",
        "http://localhost:4000/cb",
    ] {
        let r = app
            .post_form(
                "/api/v1/apps",
                None,
                &[("client_name", "x"), ("redirect_uris", good)],
            )
            .await;
        assert_eq!(r.expect(200)["redirect_uri"], good, "{good}");
    }
    // NUL is still the edge's 400, before anything else looks.
    let r = app
        .post_form(
            "/api/v1/apps",
            None,
            &[("client_name", "x"), ("redirect_uris", "javascript:\0")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn profile_field_names_are_plain_text() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let r = app
        .send(
            app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
                .bearer_auth(&user.token)
                .form(&[
                    ("fields_attributes[0][name]", "Q&A <b>\"me\"</b>"),
                    ("fields_attributes[0][value]", "<i>x</i> & 'y'"),
                ]),
        )
        .await;
    let v = r.expect(200).clone();
    let check = |account: &Value| {
        let field = &account["fields"][0];
        assert_eq!(field["name"], "Q&A <b>\"me\"</b>", "{account}");
        assert!(
            !field["value"].as_str().unwrap().contains('<'),
            "the value stays HTML-escaped: {account}"
        );
        assert!(
            field["value"]
                .as_str()
                .unwrap()
                .contains("&lt;i&gt;x&lt;/i&gt; &amp;"),
            "{account}"
        );
    };
    check(&v);
    assert_eq!(v["source"]["fields"][0]["name"], "Q&A <b>\"me\"</b>");
    assert_eq!(v["source"]["fields"][0]["value"], "<i>x</i> & 'y'");
    // As others see the account, and on its statuses.
    let other = app.user().await;
    let r = app
        .get(&format!("/api/v1/accounts/{}", user.id), Some(&other.token))
        .await;
    check(r.expect(200));
    let status = app.post_status(&user, "hello").await;
    check(&status["account"]);
}
