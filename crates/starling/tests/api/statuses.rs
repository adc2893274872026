//! Statuses (mastodon-api.md §4.2, §5.2): posting in every encoding, the
//! content HTML, validation, replies, idempotency, reading and deleting,
//! threads, boosts, favourites, and who boosted or favourited.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_status_shape, ids, newest_first, query_param, TestApp, User};

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn post_in_every_encoding() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    // Form, with Mastodon.py's '1' booleans.
    let r = app
        .post_form(
            "/api/v1/statuses",
            Some(&alice.token),
            &[
                ("status", "hello form"),
                ("visibility", "unlisted"),
                ("sensitive", "1"),
                ("spoiler_text", "cw"),
                ("language", "de"),
            ],
        )
        .await;
    let form = r.expect(200).clone();
    assert_status_shape(&form, true);
    assert_eq!(form["content"], "<p>hello form</p>");
    assert_eq!(form["visibility"], "unlisted");
    assert_eq!(form["sensitive"], true);
    assert_eq!(form["spoiler_text"], "cw");
    assert_eq!(form["language"], "de");
    // JSON (toot, megalodon, masto.js).
    let json_status = app
        .post_status_with(
            &alice,
            json!({"status": "hello json", "visibility": "private", "sensitive": false, "spoiler_text": ""}),
        )
        .await;
    assert_status_shape(&json_status, true);
    assert_eq!(json_status["content"], "<p>hello json</p>");
    assert_eq!(json_status["visibility"], "private");
    assert_eq!(json_status["sensitive"], false);
    assert_eq!(
        json_status["language"], "en",
        "the language defaults to the account's (registered with locale en)"
    );
    // Multipart (masto.js), with string booleans.
    let form_data = reqwest::multipart::Form::new()
        .text("status", "hello multipart")
        .text("visibility", "direct")
        .text("sensitive", "true");
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/statuses")
                .bearer_auth(&alice.token)
                .multipart(form_data),
        )
        .await;
    let multi = r.expect(200).clone();
    assert_eq!(multi["content"], "<p>hello multipart</p>");
    assert_eq!(multi["visibility"], "direct");
    assert_eq!(multi["sensitive"], true);
    // The ids are distinct, increasing decimal strings.
    let all = [id_of(&form), id_of(&json_status), id_of(&multi)];
    let nums: Vec<i64> = all.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        nums.windows(2).all(|w| w[0] < w[1]),
        "one author's ids increase: {all:?}"
    );
    // The author's view of the status.
    let v = &json_status;
    assert_eq!(v["account"]["id"], alice.id.as_str());
    assert_eq!(v["account"]["acct"], alice.username.as_str());
    assert_eq!(v["reblogs_count"], 0);
    assert_eq!(v["favourites_count"], 0);
    assert_eq!(v["replies_count"], 0);
    assert_eq!(v["favourited"], false);
    assert_eq!(v["reblogged"], false);
    assert!(v["reblog"].is_null());
    assert!(v["in_reply_to_id"].is_null());
    assert!(v["edited_at"].is_null());
    assert_eq!(v["mentions"], json!([]));
    assert_eq!(v["tags"], json!([]));
    assert_eq!(v["media_attachments"], json!([]));
    assert!(v.get("text").is_none(), "text is only returned by DELETE");
    let id = id_of(v);
    assert_eq!(
        v["url"],
        app.url(&format!("/@{}/{id}", alice.username)),
        "url is the HTML permalink"
    );
    assert_eq!(
        v["uri"],
        app.url(&format!("/users/{}/statuses/{id}", alice.username)),
        "uri is the ActivityPub id"
    );
    // The account's counters and last status date follow (the direct
    // post is not counted, as Mastodon counts).
    let account = app.account(&alice).await;
    assert_eq!(account["statuses_count"], 2);
    assert_eq!(account["last_status_at"].as_str().unwrap().len(), 10);
}

#[tokio::test]
async fn visibility_values_and_the_accounts_default() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    for vis in ["public", "unlisted", "private", "direct"] {
        let v = app
            .post_status_with(&alice, json!({"status": "x", "visibility": vis}))
            .await;
        assert_eq!(v["visibility"], vis, "visibility {vis} is kept");
    }
    let v = app.post_status(&alice, "no visibility given").await;
    assert_eq!(v["visibility"], "public", "default is source.privacy");
    app.update_profile(&alice, json!({"source": {"privacy": "unlisted"}}))
        .await;
    let v = app.post_status(&alice, "default changed").await;
    assert_eq!(
        v["visibility"], "unlisted",
        "an omitted visibility follows source.privacy"
    );
    let v = app
        .post_status_with(
            &alice,
            json!({"status": "explicit", "visibility": "public"}),
        )
        .await;
    assert_eq!(v["visibility"], "public", "an explicit visibility wins");
    for bad in ["everyone", "limited", "1"] {
        let r = app
            .create_status(
                Some(&alice.token),
                &json!({"status": "x", "visibility": bad}),
            )
            .await;
        assert_eq!(
            r.status, 422,
            "visibility {bad:?} must be refused: {}",
            r.text
        );
        assert!(r.error().starts_with("Validation failed"), "{}", r.text);
    }
}

#[tokio::test]
async fn content_html_for_mentions_hashtags_and_links() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let text = format!(
        "hi @{bob} and @{upper} again, not @nobody_here nor me@example.com\n#Rust and #rust #Ünïcode_1 \
         https://example.com/a/very/long/path/that/goes/on?x=1&y=2 <b>&",
        bob = bob.username,
        upper = bob.username.to_uppercase()
    );
    let v = app.post_status(&alice, &text).await;
    assert_status_shape(&v, true);
    let content = v["content"].as_str().unwrap();
    let mention = format!(
        "<span class=\"h-card\" translate=\"no\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>",
        app.url(&format!("/@{}", bob.username)),
        bob.username
    );
    assert_eq!(
        content.matches(&mention).count(),
        2,
        "both spellings of the mention render as an h-card link: {content}"
    );
    assert!(
        content.contains("@nobody_here"),
        "an unknown mention stays text: {content}"
    );
    assert!(
        !content.contains("href=\"mailto") && content.contains("me@example.com"),
        "an email address is not a mention: {content}"
    );
    let tag = format!(
        "<a href=\"{}\" class=\"mention hashtag\" rel=\"tag\">#<span>Rust</span></a>",
        app.url("/tags/rust")
    );
    assert!(content.contains(&tag), "hashtag HTML: {content}");
    assert!(
        content.contains("class=\"mention hashtag\" rel=\"tag\">#<span>Ünïcode_1</span></a>"),
        "non-ASCII hashtags link too: {content}"
    );
    assert!(
        content.contains(
            "<a href=\"https://example.com/a/very/long/path/that/goes/on?x=1&amp;y=2\" target=\"_blank\" rel=\"nofollow noopener noreferrer\""
        ),
        "links open in a new tab with rel=nofollow noopener noreferrer, & escaped: {content}"
    );
    assert!(
        content.contains("&lt;b&gt;&amp;"),
        "raw HTML in the text is escaped: {content}"
    );
    assert!(
        content.starts_with("<p>") && content.contains("<br />") && content.ends_with("</p>"),
        "a single newline is a <br />: {content}"
    );
    assert!(!content.contains("<script"), "{content}");
    // mentions[]: once per account, with string ids.
    assert_eq!(
        v["mentions"],
        json!([{
            "id": bob.id,
            "username": bob.username,
            "url": app.url(&format!("/@{}", bob.username)),
            "acct": bob.username,
        }]),
        "mentions[] holds each mentioned local account once"
    );
    // tags[]: lowercase, de-duplicated, in order.
    let names: Vec<&str> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rust", "ünïcode_1"], "tags[] names are lowercase");
    assert_eq!(v["tags"][0]["url"], app.url("/tags/rust"));
    // Nothing inside a URL is a hashtag or a mention.
    let v = app
        .post_status(
            &alice,
            &format!(
                "see https://example.com/page#section and https://example.com/@{}",
                bob.username
            ),
        )
        .await;
    assert_eq!(v["tags"], json!([]), "a URL fragment is not a hashtag");
    assert_eq!(v["mentions"], json!([]), "a profile URL is not a mention");
    assert!(!v["content"].as_str().unwrap().contains("u-url mention"));
    // A status that is only a mention is fine.
    let v = app.post_status(&alice, &format!("@{}", bob.username)).await;
    assert_eq!(v["mentions"][0]["id"], bob.id.as_str());
    // Paragraphs.
    let v = app.post_status(&alice, "one\ntwo\n\nthree").await;
    assert_eq!(v["content"], "<p>one<br />two</p><p>three</p>");
}

#[tokio::test]
async fn text_is_required_and_limited_to_500_characters() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let url = format!("https://example.com/{}", "p".repeat(200));
    // (body, expected status, rule)
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"status": ""}), 422, "empty text"),
        (json!({"status": "   \n "}), 422, "blank text"),
        (json!({}), 422, "no status parameter at all"),
        (
            json!({"spoiler_text": "only a warning"}),
            422,
            "a spoiler alone",
        ),
        (
            json!({"status": "x".repeat(500)}),
            200,
            "exactly 500 characters",
        ),
        (json!({"status": "x".repeat(501)}), 422, "501 characters"),
        (
            json!({"status": format!("@someone@example.org {}", "x".repeat(491))}),
            200,
            "a remote mention counts as @user only: 8 + 1 + 491 = 500",
        ),
        (
            json!({"status": format!("@someone@example.org {}", "x".repeat(492))}),
            422,
            "a remote mention counts as @user only: 8 + 1 + 492 = 501",
        ),
        (
            json!({"status": "é".repeat(500)}),
            200,
            "500 non-ASCII characters, not bytes",
        ),
        (
            json!({"status": format!("{url} {}", "x".repeat(476))}),
            200,
            "a URL counts 23: 23 + 1 + 476 = 500",
        ),
        (
            json!({"status": format!("{url} {}", "x".repeat(477))}),
            422,
            "a URL counts 23: 23 + 1 + 477 = 501",
        ),
        (
            json!({"status": "x".repeat(490), "spoiler_text": "y".repeat(10)}),
            200,
            "text + spoiler = 500",
        ),
        (
            json!({"status": "x".repeat(490), "spoiler_text": "y".repeat(11)}),
            422,
            "text + spoiler = 501",
        ),
    ];
    for (body, status, rule) in cases {
        let r = app.create_status(Some(&alice.token), &body).await;
        assert_eq!(r.status, status, "{rule}: {}", r.text);
        if status == 422 {
            assert!(
                r.error().starts_with("Validation failed: Text"),
                "{rule}: the error names the text: {}",
                r.text
            );
        }
    }
    let r = app
        .create_status(Some(&alice.token), &json!({"status": ""}))
        .await;
    assert_eq!(
        r.expect(422)["error"],
        "Validation failed: Text can't be blank"
    );
    // Nothing refused was created.
    let account = app.account(&alice).await;
    assert_eq!(
        account["statuses_count"], 5,
        "only the accepted posts count"
    );
}

#[tokio::test]
async fn other_bad_input_is_a_clear_4xx() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    // (body, expected status, rule)
    // An unknown language is not an error: the account's is used (Mastodon).
    let r = app
        .create_status(
            Some(&alice.token),
            &json!({"status": "x", "language": "not a language"}),
        )
        .await;
    assert_eq!(
        r.expect(200)["language"],
        "en",
        "an unknown language falls back to the account's"
    );
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"status": "x", "media_ids": ["123"]}),
            422,
            "unknown media",
        ),
        (
            json!({"status": "x", "poll": {"options": ["a", "b"], "expires_in": 300}}),
            422,
            "polls are not supported",
        ),
        (
            json!({"status": "x", "scheduled_at": "2999-01-01T00:00:00Z"}),
            422,
            "scheduled statuses are not supported",
        ),
        (
            json!({"status": "x", "in_reply_to_id": "123"}),
            404,
            "unknown parent",
        ),
        (
            json!({"status": "x", "in_reply_to_id": "abc"}),
            404,
            "malformed parent id",
        ),
        (
            json!({"status": "x", "in_reply_to_id": -5}),
            404,
            "negative parent id",
        ),
        (
            json!({"status": ["an", "array"]}),
            422,
            "a status that is not text",
        ),
    ];
    for (body, status, rule) in cases {
        let r = app.create_status(Some(&alice.token), &body).await;
        assert_eq!(r.status, status, "{rule}: {body}: {}", r.text);
        assert!(
            !r.error().is_empty(),
            "{rule}: an error message: {}",
            r.text
        );
    }
    // Malformed bodies.
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/statuses")
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body("{\"status\": "),
        )
        .await;
    r.expect(400);
    let r = app
        .send(
            app.request(Method::POST, "/api/v1/statuses")
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body("[\"hello\"]"),
        )
        .await;
    r.expect(400);
    assert_eq!(
        app.account(&alice).await["statuses_count"],
        1,
        "only the post with an unknown language was created"
    );
}

#[tokio::test]
async fn a_post_is_answered_as_it_is_read_back() {
    // The answer to a post is built from the row as written; it must be
    // what reading the status back gives, field for field.
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let parent = id_of(&app.post_status(&bob, "parent").await);
    let posted = app
        .post_status_with(
            &alice,
            json!({
                "status": format!("@{} @{} @nobody_here #Rust #tea https://example.com/x", bob.username, alice.username),
                "in_reply_to_id": parent,
                "visibility": "unlisted",
                "spoiler_text": "cw",
                "language": "de",
            }),
        )
        .await;
    assert_eq!(
        posted["account"]["statuses_count"], 1,
        "the new post counts"
    );
    assert_eq!(posted["mentions"].as_array().map(Vec::len), Some(2));
    let read = app
        .status(&id_of(&posted), Some(&alice))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        posted, read,
        "the answer to the post differs from a read of it"
    );
    let plain = app.post_status(&alice, "second").await;
    let read = app
        .status(&id_of(&plain), Some(&alice))
        .await
        .expect(200)
        .clone();
    assert_eq!(plain, read);
    assert_eq!(plain["account"]["statuses_count"], 2);
}

#[tokio::test]
async fn replies_link_to_their_parent_and_count() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let parent = id_of(&app.post_status(&alice, "parent").await);
    let reply = app.reply(&bob, &parent, "a reply").await;
    assert_eq!(reply["in_reply_to_id"], parent.as_str());
    assert_eq!(
        reply["in_reply_to_account_id"],
        alice.id.as_str(),
        "in_reply_to_account_id is the parent's author"
    );
    // JSON clients may send the id as a number.
    let numeric: i64 = parent.parse().unwrap();
    let second = app
        .post_status_with(
            &alice,
            json!({"status": "self reply", "in_reply_to_id": numeric}),
        )
        .await;
    assert_eq!(
        second["in_reply_to_id"],
        parent.as_str(),
        "a numeric in_reply_to_id"
    );
    assert_eq!(second["in_reply_to_account_id"], alice.id.as_str());
    let v = app.status(&parent, None).await.expect(200).clone();
    assert_eq!(v["replies_count"], 2, "each reply bumps replies_count");
    // A parent the author cannot see is not found.
    let private = app.post_visible(&alice, "followers only", "private").await;
    let r = app
        .create_status(
            Some(&carol.token),
            &json!({"status": "sneaky", "in_reply_to_id": private}),
        )
        .await;
    assert_eq!(
        r.expect(404)["error"],
        "Record not found",
        "replying to a status one cannot see is 404"
    );
    // Deleting a reply gives the count back.
    app.delete(
        &format!("/api/v1/statuses/{}", id_of(&reply)),
        Some(&bob.token),
    )
    .await
    .expect(200);
    let v = app.status(&parent, None).await.expect(200).clone();
    assert_eq!(v["replies_count"], 1, "a deleted reply no longer counts");
    // A deleted parent cannot be replied to.
    app.delete(&format!("/api/v1/statuses/{parent}"), Some(&alice.token))
        .await
        .expect(200);
    let r = app
        .create_status(
            Some(&bob.token),
            &json!({"status": "too late", "in_reply_to_id": parent}),
        )
        .await;
    r.expect(404);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_status() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let post = |user: &User, key: &str, text: &str| {
        app.request(Method::POST, "/api/v1/statuses")
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "status": text }))
    };
    let first = app.send(post(&alice, "key-1", "first")).await;
    let first_id = id_of(first.expect(200));
    let again = app.send(post(&alice, "key-1", "different text")).await;
    assert_eq!(
        id_of(again.expect(200)),
        first_id,
        "a repeated key returns the originally created status"
    );
    assert_eq!(
        again.json["content"], "<p>first</p>",
        "parameters are not compared"
    );
    assert_eq!(
        app.account(&alice).await["statuses_count"],
        1,
        "a repeated key creates nothing"
    );
    // A refused request does not use up its key.
    let bad = app
        .send(
            app.request(Method::POST, "/api/v1/statuses")
                .bearer_auth(&alice.token)
                .header("Idempotency-Key", "key-0")
                .json(&json!({ "status": "" })),
        )
        .await;
    bad.expect(422);
    let good = app.send(post(&alice, "key-0", "now valid")).await;
    assert_eq!(
        good.expect(200)["content"],
        "<p>now valid</p>",
        "a key whose first request was refused creates the status"
    );
    // Another account's identical key is its own.
    let bobs = app.send(post(&bob, "key-1", "bob's")).await;
    assert_ne!(
        id_of(bobs.expect(200)),
        first_id,
        "keys of different accounts never collide"
    );
    // An unreasonably long key is refused or ignored, never a server error.
    let long = "k".repeat(300);
    let r = app.send(post(&alice, &long, "long key")).await;
    assert!(
        r.status == 200 || r.status == 422,
        "a 300-character key: {} {}",
        r.status,
        r.text
    );
    let created = usize::from(r.status == 200);
    // A different key is a different status.
    let other = app.send(post(&alice, "key-2", "second")).await;
    assert_ne!(id_of(other.expect(200)), first_id);
    // Concurrent retries with one key create one status.
    let (a, b, c) = tokio::join!(
        app.send(post(&alice, "key-3", "race")),
        app.send(post(&alice, "key-3", "race")),
        app.send(post(&alice, "key-3", "race")),
    );
    let raced = [
        id_of(a.expect(200)),
        id_of(b.expect(200)),
        id_of(c.expect(200)),
    ];
    assert!(
        raced.iter().all(|id| *id == raced[0]),
        "concurrent requests with one key share one status: {raced:?}"
    );
    assert_eq!(
        app.account(&alice).await["statuses_count"],
        4 + created,
        "one status per key"
    );
    // The key lives an hour.
    app.clock.advance(std::time::Duration::from_secs(3601));
    let later = app.send(post(&alice, "key-1", "an hour later")).await;
    assert_ne!(
        id_of(later.expect(200)),
        first_id,
        "a key older than an hour is forgotten"
    );
    // A repeat after the status was deleted is 404.
    let fresh = app.send(post(&alice, "key-4", "to delete")).await;
    let fresh_id = id_of(fresh.expect(200));
    app.delete(&format!("/api/v1/statuses/{fresh_id}"), Some(&alice.token))
        .await
        .expect(200);
    let r = app.send(post(&alice, "key-4", "to delete")).await;
    assert_eq!(r.status, 404, "the keyed status was deleted: {}", r.text);
}

/// Every social endpoint that needs a user: no token 401, a token without
/// the scope 403, an application token 422.
#[tokio::test]
async fn tokens_scopes_and_users_are_checked() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let status = id_of(&app.post_status(&bob, "target").await);
    let mine = id_of(&app.post_status(&alice, "mine").await);
    let read_only = app.token_for(&alice, "read").await;
    let mut tokens: std::collections::HashMap<&str, String> = Default::default();
    let app_token = app.app_only_token("read write follow push").await;
    let s = |p: &str| format!("/api/v1/statuses/{status}{p}");
    let a = |p: &str| format!("/api/v1/accounts/{}{p}", bob.id);
    // (method, path, a granular scope that allows it, one that does not)
    let cases: Vec<(Method, String, &str, &str)> = vec![
        (
            Method::POST,
            "/api/v1/statuses".into(),
            "write:statuses",
            "write:favourites",
        ),
        (
            Method::DELETE,
            format!("/api/v1/statuses/{mine}"),
            "write:statuses",
            "write:favourites",
        ),
        (
            Method::POST,
            s("/reblog"),
            "write:statuses",
            "write:favourites",
        ),
        (
            Method::POST,
            s("/unreblog"),
            "write:statuses",
            "write:favourites",
        ),
        (
            Method::POST,
            s("/favourite"),
            "write:favourites",
            "write:statuses",
        ),
        (
            Method::POST,
            s("/unfavourite"),
            "write:favourites",
            "write:statuses",
        ),
        (
            Method::POST,
            a("/follow"),
            "write:follows",
            "write:statuses",
        ),
        (Method::POST, a("/unfollow"), "follow", "write:statuses"),
        (Method::POST, a("/block"), "write:blocks", "write:follows"),
        (Method::POST, a("/unblock"), "follow", "write:follows"),
        (Method::POST, a("/mute"), "write:mutes", "write:blocks"),
        (Method::POST, a("/unmute"), "write:mutes", "write:blocks"),
        (
            Method::GET,
            "/api/v1/timelines/home".into(),
            "read:statuses",
            "read:accounts",
        ),
        (
            Method::GET,
            "/api/v1/notifications".into(),
            "read:notifications",
            "read:statuses",
        ),
        (
            Method::POST,
            "/api/v1/notifications/clear".into(),
            "write:notifications",
            "write:statuses",
        ),
        (
            Method::GET,
            "/api/v1/favourites".into(),
            "read:favourites",
            "read:statuses",
        ),
        (
            Method::GET,
            "/api/v1/blocks".into(),
            "read:blocks",
            "read:mutes",
        ),
        (
            Method::GET,
            "/api/v1/mutes".into(),
            "read:mutes",
            "read:blocks",
        ),
        (
            Method::GET,
            "/api/v1/follow_requests".into(),
            "read:follows",
            "read:statuses",
        ),
        (
            Method::GET,
            format!("/api/v1/accounts/relationships?id[]={}", bob.id),
            "read:follows",
            "read:statuses",
        ),
    ];
    for (method, path, allowed, refused) in cases {
        let call = |token: Option<&str>| {
            let mut req = app.request(method.clone(), &path);
            if method == Method::POST {
                req = req.json(&json!({"status": "scoped"}));
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req
        };
        let r = app.send(call(None)).await;
        assert_eq!(r.status, 401, "{method} {path} without a token: {}", r.text);
        assert_eq!(r.error(), "The access token is invalid");
        let r = app.send(call(Some("not-a-token"))).await;
        assert_eq!(
            r.status, 401,
            "{method} {path} with a bad token: {}",
            r.text
        );
        if method != Method::GET {
            let r = app.send(call(Some(&read_only))).await;
            assert_eq!(
                r.status, 403,
                "{method} {path} with a read token: {}",
                r.text
            );
            assert_eq!(r.error(), "This action is outside the authorized scopes");
        }
        for scope in [allowed, refused] {
            if !tokens.contains_key(scope) {
                tokens.insert(scope, app.token_for(&alice, scope).await);
            }
        }
        let r = app.send(call(Some(&tokens[refused]))).await;
        assert_eq!(
            r.status, 403,
            "{method} {path} with only {refused}: {}",
            r.text
        );
        let r = app.send(call(Some(&app_token))).await;
        assert_eq!(
            r.status, 422,
            "{method} {path} with an app token: {}",
            r.text
        );
        assert_eq!(r.error(), "This method requires an authenticated user");
        let r = app.send(call(Some(&tokens[allowed]))).await;
        assert!(
            r.status < 400,
            "{method} {path} with {allowed} must be allowed: {} {}",
            r.status,
            r.text
        );
    }
}

#[tokio::test]
async fn show_and_delete() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let text = "delete me #later @nobody";
    let id = id_of(&app.post_status(&alice, text).await);
    // Anonymous readers get no viewer flags; signed-in ones do.
    let anon = app.status(&id, None).await.expect(200).clone();
    assert_status_shape(&anon, false);
    assert!(
        anon.get("favourited").is_none(),
        "no viewer flags for an anonymous reader: {anon}"
    );
    let signed = app.status(&id, Some(&bob)).await.expect(200).clone();
    assert_status_shape(&signed, true);
    assert_eq!(signed["favourited"], false);
    // Not found: unknown, malformed, someone else's to delete.
    for bad in ["123", "abc", "-1", "99999999999999999999999", "1.5"] {
        let r = app.get(&format!("/api/v1/statuses/{bad}"), None).await;
        assert_eq!(r.status, 404, "GET status {bad}: {}", r.text);
        assert_eq!(r.error(), "Record not found");
        let r = app
            .delete(&format!("/api/v1/statuses/{bad}"), Some(&alice.token))
            .await;
        assert_eq!(r.status, 404, "DELETE status {bad}: {}", r.text);
    }
    let r = app
        .delete(&format!("/api/v1/statuses/{id}"), Some(&bob.token))
        .await;
    assert_eq!(
        r.status, 404,
        "deleting another's status is 404: {}",
        r.text
    );
    // Boost and favourite it, then delete: counters go back.
    app.act(&bob, &id, "reblog").await.expect(200);
    app.act(&bob, &id, "favourite").await.expect(200);
    assert_eq!(
        app.account(&bob).await["statuses_count"],
        1,
        "a boost counts"
    );
    let r = app
        .delete(&format!("/api/v1/statuses/{id}"), Some(&alice.token))
        .await;
    let deleted = r.expect(200).clone();
    assert_eq!(deleted["id"], id.as_str());
    assert_eq!(
        deleted["text"], text,
        "DELETE returns the source text for delete-and-redraft"
    );
    assert!(deleted["content"].as_str().unwrap().starts_with("<p>"));
    app.status(&id, Some(&alice)).await.expect(404);
    app.status(&id, None).await.expect(404);
    app.delete(&format!("/api/v1/statuses/{id}"), Some(&alice.token))
        .await
        .expect(404);
    assert_eq!(app.account(&alice).await["statuses_count"], 0);
    assert_eq!(
        app.account(&bob).await["statuses_count"],
        0,
        "deleting a status deletes its boosts"
    );
    app.act(&bob, &id, "favourite").await.expect(404);
}

/// Builds a thread and checks `ancestors` (oldest first) and `descendants`
/// (depth-first, siblings by id), filtered by what the viewer may see.
#[tokio::test]
async fn context_orders_the_thread() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let root = id_of(&app.post_status(&alice, "root").await);
    let a = id_of(&app.reply(&bob, &root, "a").await);
    let b = id_of(&app.reply(&carol, &root, "b").await);
    let a1 = id_of(&app.reply(&alice, &a, "a1").await);
    let a2 = id_of(&app.reply(&carol, &a, "a2").await);
    let a1x = id_of(&app.reply(&bob, &a1, "a1x").await);
    let b1 = id_of(&app.reply(&alice, &b, "b1").await);
    // A direct reply to root, seen by alice (mentioned) and carol (author) only.
    let secret = id_of(
        &app.post_status_with(
            &carol,
            json!({"status": format!("@{} secret", alice.username), "in_reply_to_id": root, "visibility": "direct"}),
        )
        .await,
    );
    let tree: Vec<(&str, Vec<&str>)> = vec![
        (root.as_str(), vec![a.as_str(), b.as_str(), secret.as_str()]),
        (a.as_str(), vec![a1.as_str(), a2.as_str()]),
        (a1.as_str(), vec![a1x.as_str()]),
        (b.as_str(), vec![b1.as_str()]),
    ];
    fn dfs(node: &str, tree: &[(&str, Vec<&str>)], hidden: &[&str], out: &mut Vec<String>) {
        let kids: Vec<&str> = tree
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, k)| k.clone())
            .unwrap_or_default();
        let mut kids: Vec<String> = newest_first(&kids);
        kids.reverse(); // oldest (smallest id) first
        for k in kids {
            if hidden.contains(&k.as_str()) {
                continue;
            }
            out.push(k.clone());
            dfs(&k, tree, hidden, out);
        }
    }
    // (viewer, hidden statuses)
    let viewers: Vec<(Option<&User>, Vec<&str>)> = vec![
        (None, vec![secret.as_str()]),
        (Some(&bob), vec![secret.as_str()]),
        (Some(&alice), vec![]),
        (Some(&carol), vec![]),
    ];
    for (viewer, hidden) in viewers {
        let who = viewer.map_or("anonymous", |u| u.username.as_str());
        let token = viewer.map(|u| u.token.as_str());
        let v = app
            .get(&format!("/api/v1/statuses/{root}/context"), token)
            .await
            .expect(200)
            .clone();
        assert_eq!(v["ancestors"], json!([]), "the root has no ancestors");
        let mut expected = Vec::new();
        dfs(&root, &tree, &hidden, &mut expected);
        assert_eq!(
            ids(v["descendants"].as_array().unwrap()),
            expected,
            "descendants of root for {who}: depth-first, siblings by id, hidden ones left out"
        );
    }
    let v = app
        .get(&format!("/api/v1/statuses/{a1x}/context"), None)
        .await
        .expect(200)
        .clone();
    assert_eq!(
        ids(v["ancestors"].as_array().unwrap()),
        [root.clone(), a.clone(), a1.clone()],
        "ancestors run oldest first"
    );
    assert_eq!(v["descendants"], json!([]));
    let v = app
        .get(&format!("/api/v1/statuses/{a}/context"), None)
        .await
        .expect(200)
        .clone();
    assert_eq!(ids(v["ancestors"].as_array().unwrap()), [root.as_str()]);
    let mut expected = Vec::new();
    dfs(&a, &tree, &[], &mut expected);
    assert_eq!(ids(v["descendants"].as_array().unwrap()), expected);
    for s in v["descendants"].as_array().unwrap() {
        assert_status_shape(s, false);
    }
    // A hidden status has no context; an unknown one neither.
    app.get(
        &format!("/api/v1/statuses/{secret}/context"),
        Some(&bob.token),
    )
    .await
    .expect(404);
    app.get("/api/v1/statuses/123/context", None)
        .await
        .expect(404);
    // A deleted middle drops out of both lists.
    app.delete(&format!("/api/v1/statuses/{a1}"), Some(&alice.token))
        .await
        .expect(200);
    let v = app
        .get(&format!("/api/v1/statuses/{root}/context"), None)
        .await
        .expect(200)
        .clone();
    assert!(
        !ids(v["descendants"].as_array().unwrap()).contains(&a1),
        "a deleted reply is not a descendant"
    );
    // A public reply to a followers-only status: the parent is an ancestor
    // only for those who may see it.
    app.follow(&bob, &alice).await;
    let private = app.post_visible(&alice, "followers only", "private").await;
    let public_reply = id_of(&app.reply(&bob, &private, "public reply").await);
    // (viewer, expected ancestors)
    let cases: Vec<(Option<&User>, Vec<&str>)> = vec![
        (None, vec![]),
        (Some(&carol), vec![]),
        (Some(&bob), vec![private.as_str()]),
        (Some(&alice), vec![private.as_str()]),
    ];
    for (viewer, expected) in cases {
        let who = viewer.map_or("anonymous", |u| u.username.as_str());
        let v = app
            .get(
                &format!("/api/v1/statuses/{public_reply}/context"),
                viewer.map(|u| u.token.as_str()),
            )
            .await
            .expect(200)
            .clone();
        assert_eq!(
            ids(v["ancestors"].as_array().unwrap()),
            expected,
            "ancestors of a reply to a private status, as {who}"
        );
    }
}

#[tokio::test]
async fn reblog_and_unreblog() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let original = id_of(&app.post_status(&alice, "boost me").await);
    let r = app.act(&bob, &original, "reblog").await;
    let wrapper = r.expect(200).clone();
    assert_status_shape(&wrapper, true);
    assert_ne!(wrapper["id"], original.as_str(), "a boost has its own id");
    assert_eq!(wrapper["content"], "", "a boost wrapper has empty content");
    assert_eq!(wrapper["account"]["id"], bob.id.as_str());
    assert_eq!(wrapper["reblog"]["id"], original.as_str());
    assert_eq!(wrapper["reblog"]["reblogged"], true);
    assert_eq!(wrapper["reblog"]["reblogs_count"], 1);
    assert_eq!(wrapper["visibility"], "public");
    // Idempotent, also through the wrapper's id.
    for target in [&original, &id_of(&wrapper)] {
        let again = app.act(&bob, target, "reblog").await.expect(200).clone();
        assert_eq!(
            again["id"], wrapper["id"],
            "boosting twice returns the same boost"
        );
        assert_eq!(again["reblog"]["reblogs_count"], 1);
    }
    // GET on the wrapper shows the boost.
    let v = app.status(&id_of(&wrapper), None).await.expect(200).clone();
    assert_eq!(v["reblog"]["id"], original.as_str());
    // Unreblog returns the original, idempotently.
    for _ in 0..2 {
        let v = app
            .act(&bob, &original, "unreblog")
            .await
            .expect(200)
            .clone();
        assert_eq!(v["id"], original.as_str(), "unreblog returns the original");
        assert_eq!(v["reblogged"], false);
        assert_eq!(v["reblogs_count"], 0);
    }
    app.status(&id_of(&wrapper), None).await.expect(404);
    assert_eq!(app.account(&bob).await["statuses_count"], 0);
    // Boost visibility: never more public than the original; direct refused.
    let v = app
        .post_json(
            &format!("/api/v1/statuses/{original}/reblog"),
            Some(&bob.token),
            &json!({"visibility": "unlisted"}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v["visibility"], "unlisted", "reblog visibility parameter");
    app.act(&bob, &original, "unreblog").await.expect(200);
    let quiet = app
        .post_visible(&alice, "unlisted original", "unlisted")
        .await;
    let v = app
        .post_json(
            &format!("/api/v1/statuses/{quiet}/reblog"),
            Some(&bob.token),
            &json!({"visibility": "public"}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(
        v["visibility"], "unlisted",
        "a boost is never more public than the original"
    );
    // The booster may delete the boost itself.
    let r = app
        .delete(&format!("/api/v1/statuses/{}", id_of(&v)), Some(&bob.token))
        .await;
    assert_eq!(r.expect(200)["id"], v["id"], "DELETE on a boost removes it");
    let o = app.status(&quiet, None).await.expect(200).clone();
    assert_eq!(
        o["reblogs_count"], 0,
        "deleting the boost gives the count back"
    );
    for bad in ["direct", "everyone"] {
        let r = app
            .post_form(
                &format!("/api/v1/statuses/{original}/reblog"),
                Some(&bob.token),
                &[("visibility", bad)],
            )
            .await;
        assert_eq!(r.status, 422, "reblog visibility {bad}: {}", r.text);
    }
    // Who may boost what.
    app.follow(&bob, &alice).await;
    let private = app.post_visible(&alice, "followers only", "private").await;
    let direct = app
        .post_visible(&alice, &format!("@{} psst", bob.username), "direct")
        .await;
    let unlisted = app.post_visible(&alice, "quiet", "unlisted").await;
    // (who, status, expected, rule)
    let cases: Vec<(&User, &str, u16, &str)> = vec![
        (&bob, &unlisted, 200, "unlisted statuses can be boosted"),
        (
            &bob,
            &private,
            403,
            "a follower cannot boost a private status",
        ),
        (&bob, &direct, 403, "a direct message cannot be boosted"),
        (
            &alice,
            &private,
            200,
            "an author may boost their own private status",
        ),
        (
            &alice,
            &direct,
            403,
            "not even the author boosts a direct message",
        ),
        (&bob, "123", 404, "unknown status"),
        (&bob, "zzz", 404, "malformed id"),
    ];
    for (who, status, expected, rule) in cases {
        let r = app.act(who, status, "reblog").await;
        assert_eq!(r.status, expected, "{rule}: {}", r.text);
        if expected == 403 {
            assert_eq!(r.error(), "This action is not allowed");
        }
    }
    let own = app.status(&private, Some(&alice)).await.expect(200).clone();
    assert_eq!(own["reblogs_count"], 1);
    app.act(&bob, "123", "unreblog").await.expect(404);
}

#[tokio::test]
async fn favourite_and_unfavourite() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let id = id_of(&app.post_status(&alice, "like me").await);
    for _ in 0..2 {
        let v = app.act(&bob, &id, "favourite").await.expect(200).clone();
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["favourited"], true);
        assert_eq!(v["favourites_count"], 1, "favouriting is idempotent");
    }
    let v = app.act(&carol, &id, "favourite").await.expect(200).clone();
    assert_eq!(v["favourites_count"], 2);
    // Favouriting a boost favourites the original.
    let boost = id_of(app.act(&carol, &id, "reblog").await.expect(200));
    let v = app
        .act(&alice, &boost, "favourite")
        .await
        .expect(200)
        .clone();
    assert_eq!(
        v["id"],
        id.as_str(),
        "a boost's favourite lands on the original"
    );
    assert_eq!(v["favourites_count"], 3);
    // Others see the count, not the flag.
    let v = app.status(&id, Some(&carol)).await.expect(200).clone();
    assert_eq!(v["favourited"], true);
    assert_eq!(v["reblogged"], true);
    let v = app.status(&id, None).await.expect(200).clone();
    assert_eq!(v["favourites_count"], 3);
    for _ in 0..2 {
        let v = app.act(&bob, &id, "unfavourite").await.expect(200).clone();
        assert_eq!(v["favourited"], false);
        assert_eq!(v["favourites_count"], 2, "unfavouriting is idempotent");
    }
    app.act(&bob, "123", "favourite").await.expect(404);
    app.act(&bob, "123", "unfavourite").await.expect(404);
    let private = app.post_visible(&alice, "mine", "private").await;
    app.act(&bob, &private, "favourite").await.expect(404);
}

#[tokio::test]
async fn who_boosted_and_favourited_pages_with_links() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let id = id_of(&app.post_status(&alice, "popular").await);
    let mut fans = Vec::new();
    for _ in 0..3 {
        let u = app.user().await;
        app.act(&u, &id, "favourite").await.expect(200);
        app.act(&u, &id, "reblog").await.expect(200);
        fans.push(u);
    }
    for list in ["favourited_by", "reblogged_by"] {
        let all = app
            .list(&format!("/api/v1/statuses/{id}/{list}"), None)
            .await;
        let expected: Vec<String> = fans.iter().rev().map(|u| u.id.clone()).collect();
        assert_eq!(ids(&all), expected, "{list}: newest first");
        let r = app
            .get(&format!("/api/v1/statuses/{id}/{list}?limit=2"), None)
            .await;
        let page = r.list();
        assert_eq!(ids(&page), expected[..2], "{list}: limit=2");
        let links = r.links();
        let next = links.next.unwrap_or_else(|| panic!("{list}: no next link"));
        assert!(next.starts_with(&app.url(&format!("/api/v1/statuses/{id}/{list}?"))));
        assert!(next.contains("max_id="), "{list}: next has max_id: {next}");
        assert_eq!(query_param(&next, "limit").as_deref(), Some("2"));
        assert!(links.prev.unwrap().contains("min_id="));
        let rest = app.list(&app.local_path(&next), None).await;
        assert_eq!(ids(&rest), expected[2..], "{list}: the next page");
    }
    // A status one cannot see has no audience to list.
    let private = app.post_visible(&alice, "hidden", "private").await;
    for list in ["favourited_by", "reblogged_by"] {
        app.get(&format!("/api/v1/statuses/{private}/{list}"), None)
            .await
            .expect(404);
        app.get(&format!("/api/v1/statuses/123/{list}"), None)
            .await
            .expect(404);
        app.get(&format!("/api/v1/statuses/{id}/{list}?limit=-1"), None)
            .await
            .expect(400);
    }
}

#[tokio::test]
async fn favourites_list_pages_by_favourite() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(id_of(&app.post_status(&alice, &format!("s{i}")).await));
    }
    // Favourited out of posting order: the list follows favouriting order.
    for i in [1, 0, 2] {
        app.act(&bob, &statuses[i], "favourite").await.expect(200);
    }
    let all = app.list("/api/v1/favourites", Some(&bob)).await;
    assert_eq!(
        ids(&all),
        [
            statuses[2].clone(),
            statuses[0].clone(),
            statuses[1].clone()
        ],
        "favourites are listed newest favourite first"
    );
    assert!(all.iter().all(|s| s["favourited"] == true));
    let r = app
        .get("/api/v1/favourites?limit=2", Some(&bob.token))
        .await;
    assert_eq!(r.list().len(), 2);
    let next = r.links().next.expect("next link");
    let rest = app.list(&app.local_path(&next), Some(&bob)).await;
    assert_eq!(
        ids(&rest),
        [statuses[1].as_str()],
        "the next page of favourites"
    );
    let r = app.get(&app.local_path(&next), Some(&bob.token)).await;
    let after = r.links().next.expect("next link");
    let empty = app.get(&app.local_path(&after), Some(&bob.token)).await;
    assert_eq!(empty.list(), Vec::<Value>::new());
    assert!(
        empty.header("link").is_none(),
        "no Link header on an empty page"
    );
    // Unfavouriting removes it; a deleted status drops out.
    app.act(&bob, &statuses[0], "unfavourite").await.expect(200);
    app.delete(
        &format!("/api/v1/statuses/{}", statuses[2]),
        Some(&alice.token),
    )
    .await
    .expect(200);
    let all = app.list("/api/v1/favourites", Some(&bob)).await;
    assert_eq!(ids(&all), [statuses[1].as_str()]);
}
