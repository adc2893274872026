//! What Phanpy and Elk fetch at start-up (mastodon-api.md §7): each must
//! answer 200 JSON (or Elk's expected 404), never an error page.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn empty_lists_answer_200_json() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // (path, needs a user token)
    let cases = [
        ("/api/v1/custom_emojis", false),
        ("/api/v1/instance/rules", false),
        ("/api/v1/trends/tags", false),
        ("/api/v1/trends/statuses", false),
        ("/api/v1/trends/links", false),
        ("/api/v1/lists", true),
        ("/api/v1/followed_tags", true),
        ("/api/v1/follow_requests", true),
        ("/api/v1/announcements", true),
        ("/api/v1/filters", true),
        ("/api/v2/filters", true),
        ("/api/v1/mutes", true),
        ("/api/v1/blocks", true),
        ("/api/v1/bookmarks", true),
        ("/api/v1/favourites", true),
        ("/api/v1/conversations", true),
        ("/api/v1/conversations/", true),
        ("/api/v1/scheduled_statuses", true),
        ("/api/v1/featured_tags", true),
        ("/api/v1/domain_blocks", true),
        ("/api/v1/notifications", true),
        ("/api/v1/timelines/home", true),
        ("/api/v1/timelines/public", false),
    ];
    for (path, needs_user) in cases {
        let r = app.get(path, Some(&user.token)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json, json!([]), "{path} starts empty");
        assert!(
            r.header("link").is_none(),
            "{path}: no Link header on an empty list"
        );
        let anon = app.get(path, None).await;
        if needs_user {
            assert_eq!(anon.status, 401, "{path} without a token: {}", anon.text);
            assert_eq!(anon.error(), "The access token is invalid");
        } else {
            assert_eq!(anon.status, 200, "{path} is public: {}", anon.text);
        }
    }
}

#[tokio::test]
async fn preferences_follow_the_account() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let v = app
        .get("/api/v1/preferences", Some(&user.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["posting:default:visibility"], "public");
    assert_eq!(v["posting:default:sensitive"], false);
    assert!(
        v["posting:default:language"].is_string() || v["posting:default:language"].is_null(),
        "{v}"
    );
    assert_eq!(v["reading:expand:media"], "default");
    assert_eq!(v["reading:expand:spoilers"], false);
    app.update_profile(
        &user,
        json!({"source": {"privacy": "private", "sensitive": true, "language": "fr"}}),
    )
    .await;
    let v = app
        .get("/api/v1/preferences", Some(&user.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["posting:default:visibility"], "private");
    assert_eq!(v["posting:default:sensitive"], true);
    assert_eq!(v["posting:default:language"], "fr");
    app.get("/api/v1/preferences", None).await.expect(401);
}

#[tokio::test]
async fn push_subscription_is_a_json_404() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let r = app
        .get("/api/v1/push/subscription", Some(&user.token))
        .await;
    assert_eq!(
        r.expect(404),
        &json!({"error": "Record not found"}),
        "Elk reads 404 as 'no subscription'"
    );
    app.get("/api/v1/push/subscription", None).await.expect(401);
}

#[tokio::test]
async fn markers_start_empty() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let r = app
        .get(
            "/api/v1/markers?timeline[]=home&timeline[]=notifications",
            Some(&user.token),
        )
        .await;
    assert_eq!(r.expect(200), &json!({}));
}
