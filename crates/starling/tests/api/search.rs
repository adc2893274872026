//! Search (mastodon-api.md §4.5): `GET /api/v2/search` for accounts in the
//! forms toot and others send, hashtags as Tag objects, statuses by URL;
//! and `GET /api/v1/accounts/search`.

use serde_json::Value;

use crate::helpers::{enc, ids, TestApp, User};

async fn search(app: &TestApp, query: &str, viewer: Option<&User>) -> Value {
    let r = app
        .get(
            &format!("/api/v2/search?{query}"),
            viewer.map(|u| u.token.as_str()),
        )
        .await;
    assert_eq!(r.status, 200, "search?{query}: {}", r.text);
    for key in ["accounts", "statuses", "hashtags"] {
        assert!(
            r.json[key].is_array(),
            "search?{query}: {key} must always be present as an array: {}",
            r.text
        );
    }
    r.json.clone()
}

fn usernames(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn accounts_by_prefix_handle_and_url() {
    let app = TestApp::spawn().await;
    let alice = app.user_named("alice").await;
    let _alicia = app.user_named("alicia").await;
    let _ali = app.user_named("ali").await;
    let bob = app.user_named("bob").await;
    let _carol = app.user_named("carol").await;
    app.update_profile(&bob, serde_json::json!({"display_name": "Alibaba"}))
        .await;
    let domain = app.domain();
    // (q, expected usernames, whether their order matters, rule)
    let cases: Vec<(String, Vec<&str>, bool, &str)> = vec![
        (
            "ali".into(),
            vec!["ali", "alice", "alicia", "bob"],
            false,
            "username and display-name prefixes",
        ),
        (
            "alice".into(),
            vec!["alice"],
            true,
            "an exact username first",
        ),
        (
            "@alice".into(),
            vec!["alice"],
            true,
            "a leading @ is ignored",
        ),
        ("ALICE".into(), vec!["alice"], true, "case-insensitive"),
        (
            format!("alice@{domain}"),
            vec!["alice"],
            true,
            "user@<this host> is local",
        ),
        (
            format!("@alice@{domain}"),
            vec!["alice"],
            true,
            "@user@<this host>",
        ),
        (
            "alice@elsewhere.example".into(),
            vec![],
            true,
            "remote accounts are not known",
        ),
        ("alib".into(), vec!["bob"], true, "display-name prefix"),
        (
            "alic".into(),
            vec!["alice", "alicia"],
            false,
            "a shared prefix",
        ),
        ("zzz".into(), vec![], true, "no match"),
        (app.url("/@alice"), vec!["alice"], true, "a profile URL"),
        (
            app.url("/users/alice"),
            vec!["alice"],
            true,
            "an ActivityPub actor URL",
        ),
        (
            "https://elsewhere.example/@alice".into(),
            vec![],
            true,
            "another host's URL",
        ),
    ];
    for (q, expected, ordered, rule) in cases {
        for (extra, viewer) in [("", None), ("&type=accounts&resolve=true", Some(&alice))] {
            let v = search(&app, &format!("q={}{extra}", enc(&q)), viewer).await;
            let mut got = usernames(&v["accounts"]);
            let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
            if !ordered {
                got.sort();
                want.sort();
            }
            assert_eq!(got, want, "search q={q}{extra}: {rule}");
        }
    }
    let v = search(&app, "q=ali", None).await;
    assert_eq!(
        v["accounts"][0]["username"], "ali",
        "an exact username match comes first"
    );
    // toot's find_account: the result whose acct equals the name.
    let v = search(
        &app,
        &format!("q={}&type=accounts&resolve=true", enc("@alice")),
        Some(&bob),
    )
    .await;
    assert_eq!(v["accounts"][0]["acct"], "alice");
    assert_eq!(v["accounts"][0]["id"], alice.id.as_str());
    assert_eq!(
        v["hashtags"],
        serde_json::json!([]),
        "type=accounts leaves the others empty"
    );
    assert_eq!(v["statuses"], serde_json::json!([]));
    // limit and offset.
    let v = search(&app, "q=ali&type=accounts&limit=1", None).await;
    assert_eq!(v["accounts"].as_array().unwrap().len(), 1);
    let all = usernames(&search(&app, "q=ali&type=accounts", None).await["accounts"]);
    let second =
        usernames(&search(&app, "q=ali&type=accounts&offset=1", Some(&alice)).await["accounts"]);
    assert_eq!(second, all[1..], "offset skips results");
}

#[tokio::test]
async fn hashtags_are_tag_objects() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    app.post_status(&alice, "#rustacean #Rust #ruby").await;
    app.post_status(&alice, "#python").await;
    let v = search(&app, "q=rust&type=hashtags", None).await;
    let names: Vec<&str> = v["hashtags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["rust", "rustacean"],
        "an exact match first, then by name"
    );
    let tag = &v["hashtags"][0];
    assert_eq!(tag["url"], app.url("/tags/rust"));
    assert!(tag["history"].is_array(), "Tag.history is an array: {tag}");
    assert!(
        tag.is_object() && !tag.is_string(),
        "hashtags are Tag objects"
    );
    for q in ["%23ru", "RU", "ru"] {
        let v = search(&app, &format!("q={q}&type=hashtags"), Some(&alice)).await;
        let mut names: Vec<String> = v["hashtags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ruby", "rust", "rustacean"],
            "q={q}: prefix, any case, # ignored"
        );
        assert_eq!(v["accounts"], serde_json::json!([]));
    }
    let v = search(&app, "q=nothing&type=hashtags", None).await;
    assert_eq!(v["hashtags"], serde_json::json!([]));
    let v = search(&app, "q=ru&type=hashtags&limit=1", None).await;
    assert_eq!(v["hashtags"].as_array().unwrap().len(), 1);
    // Without a type, every kind is searched.
    let v = search(&app, "q=py", None).await;
    assert_eq!(v["hashtags"][0]["name"], "python");
}

#[tokio::test]
async fn statuses_by_url_respect_visibility() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let public = app.post_status(&alice, "find me").await;
    let id = public["id"].as_str().unwrap().to_owned();
    let private = app.post_visible(&alice, "not you", "private").await;
    for field in ["url", "uri"] {
        let q = public[field].as_str().unwrap();
        for viewer in [None, Some(&bob)] {
            let v = search(
                &app,
                &format!("q={}&type=statuses&resolve=true", enc(q)),
                viewer,
            )
            .await;
            assert_eq!(
                ids(v["statuses"].as_array().unwrap()),
                [id.as_str()],
                "a status's {field} finds it"
            );
        }
        let v = search(&app, &format!("q={}", enc(q)), None).await;
        assert_eq!(
            ids(v["statuses"].as_array().unwrap()),
            [id.as_str()],
            "{field} without type"
        );
    }
    let private_url = app.url(&format!("/@{}/{private}", alice.username));
    let v = search(
        &app,
        &format!("q={}&type=statuses", enc(&private_url)),
        Some(&bob),
    )
    .await;
    assert_eq!(
        v["statuses"],
        serde_json::json!([]),
        "a hidden status is not found by URL"
    );
    let v = search(
        &app,
        &format!("q={}&type=statuses", enc(&private_url)),
        Some(&alice),
    )
    .await;
    assert_eq!(
        ids(v["statuses"].as_array().unwrap()),
        [private.as_str()],
        "its author finds it"
    );
    for q in [
        app.url(&format!("/@{}/123", alice.username)),
        format!("https://elsewhere.example/@{}/{id}", alice.username),
        app.url("/nothing/here"),
    ] {
        let v = search(&app, &format!("q={}&type=statuses", enc(&q)), None).await;
        assert_eq!(v["statuses"], serde_json::json!([]), "q={q} finds nothing");
    }
    app.delete(&format!("/api/v1/statuses/{id}"), Some(&alice.token))
        .await
        .expect(200);
    let v = search(
        &app,
        &format!("q={}&type=statuses", enc(public["url"].as_str().unwrap())),
        None,
    )
    .await;
    assert_eq!(
        v["statuses"],
        serde_json::json!([]),
        "a deleted status is not found"
    );
}

#[tokio::test]
async fn bad_search_input_is_400() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    // (query, rule)
    let cases = [
        ("", "no q"),
        ("q=", "an empty q"),
        ("q=%20%20", "a blank q"),
        ("q=a&type=bogus", "an unknown type"),
        ("q=a&limit=-1", "a negative limit"),
        ("q=a&limit=abc", "a malformed limit"),
        ("q=a&type=accounts&offset=-2", "a negative offset"),
    ];
    for (query, rule) in cases {
        let r = app
            .get(&format!("/api/v2/search?{query}"), Some(&alice.token))
            .await;
        assert_eq!(r.status, 400, "search?{query}: {rule}: {}", r.text);
        assert!(!r.error().is_empty());
    }
    let r = app.get("/api/v2/search", None).await;
    assert_eq!(
        r.expect(400)["error"],
        "param is missing or the value is empty: q"
    );
    let v = search(&app, "q=a&limit=1000", None).await;
    assert!(
        v["accounts"].as_array().unwrap().len() <= 40,
        "limit is clamped"
    );
}

#[tokio::test]
async fn v1_account_search() {
    let app = TestApp::spawn().await;
    let me = app.user_named("searcher").await;
    let _a = app.user_named("sam").await;
    let _b = app.user_named("samantha").await;
    let _c = app.user_named("other").await;
    let r = app
        .get("/api/v1/accounts/search?q=sam", Some(&me.token))
        .await;
    let list = r.list();
    assert_eq!(usernames(&Value::Array(list)), ["sam", "samantha"]);
    let list = app
        .list(
            &format!("/api/v1/accounts/search?q={}", enc("@SAM")),
            Some(&me),
        )
        .await;
    assert_eq!(
        list[0]["username"], "sam",
        "exact match first, any case, @ ignored"
    );
    let list = app
        .list("/api/v1/accounts/search?q=sa&limit=1", Some(&me))
        .await;
    assert_eq!(list.len(), 1);
    let list = app
        .list("/api/v1/accounts/search?q=sa&offset=1", Some(&me))
        .await;
    assert_eq!(list.len(), 1, "offset");
    assert!(app
        .list("/api/v1/accounts/search?q=zzz", Some(&me))
        .await
        .is_empty());
    app.get("/api/v1/accounts/search?q=sam", None)
        .await
        .expect(401);
    app.get("/api/v1/accounts/search", Some(&me.token))
        .await
        .expect(400);
    app.get("/api/v1/accounts/search?q=sam&limit=-3", Some(&me.token))
        .await
        .expect(400);
}

/// `GET /api/v1/accounts/search` is for users (Mastodon: `require_user!`):
/// an application token is 422, a token without `read:accounts` 403.
#[tokio::test]
async fn v1_account_search_needs_a_user_with_read_accounts() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let path = "/api/v1/accounts/search?q=a";
    let app_token = app.app_only_token("read").await;
    let r = app.get(path, Some(&app_token)).await;
    assert_eq!(r.status, 422, "an application token: {}", r.text);
    assert_eq!(r.error(), "This method requires an authenticated user");
    let token = app.token_for(&me, "read:statuses").await;
    let r = app.get(path, Some(&token)).await;
    assert_eq!(r.status, 403, "without read:accounts: {}", r.text);
    let token = app.token_for(&me, "read:accounts").await;
    app.get(path, Some(&token)).await.expect(200);
}
