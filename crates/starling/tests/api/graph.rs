//! The social graph (mastodon-api.md §4.1): follow and unfollow with their
//! options, relationships, followers and following, locked accounts and
//! follow requests, blocks and mutes.

use serde_json::{json, Value};

use crate::helpers::{ids, query_param, TestApp, User};

/// The relationship fields of §5.3, all present with their types.
#[track_caller]
fn assert_relationship_shape(r: &Value) {
    assert!(r["id"].is_string(), "relationship.id is a string: {r}");
    for key in [
        "following",
        "showing_reblogs",
        "notifying",
        "followed_by",
        "blocking",
        "blocked_by",
        "muting",
        "muting_notifications",
        "requested",
        "requested_by",
        "domain_blocking",
        "endorsed",
    ] {
        assert!(r[key].is_boolean(), "relationship.{key} is a boolean: {r}");
    }
    assert!(r["note"].is_string(), "relationship.note: {r}");
    assert!(r.get("languages").is_some(), "relationship.languages: {r}");
}

async fn relationship(app: &TestApp, viewer: &User, target: &User) -> Value {
    let list = app
        .list(
            &format!("/api/v1/accounts/relationships?id[]={}", target.id),
            Some(viewer),
        )
        .await;
    assert_eq!(list.len(), 1, "one relationship per known id");
    list[0].clone()
}

async fn counts(app: &TestApp, user: &User) -> (i64, i64) {
    let a = app.account(user).await;
    (
        a["followers_count"].as_i64().unwrap(),
        a["following_count"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn follow_and_unfollow() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    for attempt in 0..2 {
        let rel = app.follow(&alice, &bob).await;
        assert_relationship_shape(&rel);
        assert_eq!(
            rel["id"],
            bob.id.as_str(),
            "the relationship names the target"
        );
        assert_eq!(rel["following"], true, "follow #{attempt}");
        assert_eq!(rel["showing_reblogs"], true, "reblogs default to shown");
        assert_eq!(rel["notifying"], false, "notify defaults to off");
        assert_eq!(rel["requested"], false);
        assert_eq!(
            counts(&app, &bob).await,
            (1, 0),
            "following twice counts once"
        );
        assert_eq!(counts(&app, &alice).await, (0, 1));
    }
    let back = relationship(&app, &bob, &alice).await;
    assert_eq!(back["followed_by"], true, "the other side sees followed_by");
    assert_eq!(back["following"], false);
    // A repeat with options updates them; one without keeps them.
    let rel = app
        .follow_with(&alice, &bob, json!({"reblogs": false, "notify": true}))
        .await;
    assert_eq!(rel["showing_reblogs"], false);
    assert_eq!(rel["notifying"], true);
    let rel = app.follow(&alice, &bob).await;
    assert_eq!(
        rel["showing_reblogs"], false,
        "a follow without options keeps the existing ones"
    );
    assert_eq!(rel["notifying"], true);
    let rel = app
        .post_form(
            &format!("/api/v1/accounts/{}/follow", bob.id),
            Some(&alice.token),
            &[("reblogs", "1"), ("notify", "0")],
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(rel["showing_reblogs"], true, "form booleans '1'/'0'");
    assert_eq!(rel["notifying"], false);
    assert_eq!(counts(&app, &bob).await, (1, 0));
    for _ in 0..2 {
        let rel = app.unfollow(&alice, &bob).await;
        assert_relationship_shape(&rel);
        assert_eq!(rel["following"], false, "unfollow is idempotent");
        assert_eq!(counts(&app, &bob).await, (0, 0));
        assert_eq!(counts(&app, &alice).await, (0, 0));
    }
    // Following again starts with default options.
    let rel = app.follow(&alice, &bob).await;
    assert_eq!(rel["showing_reblogs"], true);
    assert_eq!(rel["notifying"], false);
}

#[tokio::test]
async fn follow_targets_that_are_not_allowed() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    // (path, expected, rule)
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/api/v1/accounts/{}/follow", alice.id),
            404,
            "following oneself",
        ),
        (
            "/api/v1/accounts/123/follow".into(),
            404,
            "an unknown account",
        ),
        ("/api/v1/accounts/abc/follow".into(), 404, "a malformed id"),
        (
            "/api/v1/accounts/123/unfollow".into(),
            404,
            "unfollowing an unknown account",
        ),
        (
            "/api/v1/accounts/123/block".into(),
            404,
            "blocking an unknown account",
        ),
        (
            format!("/api/v1/accounts/{}/block", alice.id),
            404,
            "blocking oneself",
        ),
        (
            "/api/v1/accounts/123/mute".into(),
            404,
            "muting an unknown account",
        ),
        (
            format!("/api/v1/accounts/{}/mute", alice.id),
            404,
            "muting oneself",
        ),
        (
            "/api/v1/accounts/123/unblock".into(),
            404,
            "unblocking an unknown account",
        ),
        (
            "/api/v1/accounts/123/unmute".into(),
            404,
            "unmuting an unknown account",
        ),
    ];
    for (path, expected, rule) in cases {
        let r = app.post_empty(&path, Some(&alice.token)).await;
        assert_eq!(r.status, expected, "{rule}: POST {path}: {}", r.text);
        assert_eq!(r.error(), "Record not found", "{rule}");
    }
    // Blocked either way: 403.
    app.block(&bob, &alice).await;
    let r = app.account_action(&alice, &bob, "follow").await;
    assert_eq!(
        r.status, 403,
        "following someone who blocks you: {}",
        r.text
    );
    let r = app.account_action(&bob, &alice, "follow").await;
    assert_eq!(r.status, 403, "following someone you block: {}", r.text);
    assert_eq!(counts(&app, &bob).await, (0, 0));
}

#[tokio::test]
async fn relationships_in_request_order() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let a = app.user().await;
    let b = app.user().await;
    let c = app.user().await;
    app.follow(&me, &b).await;
    app.follow(&c, &me).await;
    app.mute(&me, &a).await;
    let q = format!(
        "/api/v1/accounts/relationships?id[]={}&id[]=123&id[]={}&id[]=nonsense&id[]={}",
        c.id, b.id, a.id
    );
    let list = app.list(&q, Some(&me)).await;
    for r in &list {
        assert_relationship_shape(r);
    }
    assert_eq!(
        ids(&list),
        [c.id.clone(), b.id.clone(), a.id.clone()],
        "request order kept, unknown ids omitted"
    );
    assert_eq!(list[0]["followed_by"], true);
    assert_eq!(list[0]["following"], false);
    assert_eq!(list[1]["following"], true);
    assert_eq!(list[2]["muting"], true);
    assert_eq!(
        list[2]["muting_notifications"], true,
        "mutes hide notifications by default"
    );
    // Mastodon.py sends one plain `id`; JSON-style indexes work too.
    let list = app
        .list(
            &format!("/api/v1/accounts/relationships?id={}", b.id),
            Some(&me),
        )
        .await;
    assert_eq!(ids(&list), [b.id.as_str()]);
    let list = app
        .list(
            &format!(
                "/api/v1/accounts/relationships?id[0]={}&id[1]={}",
                a.id, b.id
            ),
            Some(&me),
        )
        .await;
    assert_eq!(ids(&list), [a.id.clone(), b.id.clone()]);
    // Nothing asked, nothing known.
    assert!(app
        .list("/api/v1/accounts/relationships", Some(&me))
        .await
        .is_empty());
    assert!(app
        .list("/api/v1/accounts/relationships?id[]=123", Some(&me))
        .await
        .is_empty());
    // The caller's relationship to themselves.
    let list = app
        .list(
            &format!("/api/v1/accounts/relationships?id[]={}", me.id),
            Some(&me),
        )
        .await;
    assert_eq!(list[0]["following"], false);
}

#[tokio::test]
async fn followers_and_following_page_with_links() {
    let app = TestApp::spawn().await;
    let star = app.user().await;
    let mut fans = Vec::new();
    for _ in 0..3 {
        let u = app.user().await;
        app.follow(&u, &star).await;
        app.follow(&star, &u).await;
        fans.push(u);
    }
    let newest_first: Vec<String> = fans.iter().rev().map(|u| u.id.clone()).collect();
    for list in ["followers", "following"] {
        let path = format!("/api/v1/accounts/{}/{list}", star.id);
        let all = app.list(&path, None).await;
        assert_eq!(
            ids(&all),
            newest_first,
            "{list} newest first, readable anonymously"
        );
        let r = app.get(&format!("{path}?limit=2"), None).await;
        assert_eq!(ids(&r.list()), newest_first[..2], "{list} limit=2");
        let links = r.links();
        let next = links.next.expect("next link");
        assert!(next.starts_with(&app.url(&format!("{path}?"))), "{next}");
        assert!(next.contains("max_id="), "{next}");
        assert_eq!(query_param(&next, "limit").as_deref(), Some("2"));
        let prev = links.prev.expect("prev link");
        assert!(prev.contains("min_id="), "{prev}");
        let r = app.get(&app.local_path(&next), None).await;
        assert_eq!(ids(&r.list()), newest_first[2..], "{list}: the next page");
        let back = app.list(&app.local_path(&prev), None).await;
        assert!(back.is_empty(), "{list}: nothing newer than the first page");
        app.get(&format!("{path}?limit=-1"), None).await.expect(400);
        app.get(&format!("{path}?max_id=abc"), None)
            .await
            .expect(400);
    }
    for list in ["followers", "following"] {
        app.get(&format!("/api/v1/accounts/123/{list}"), None)
            .await
            .expect(404);
    }
    // An unfollow leaves the lists.
    app.unfollow(&fans[0], &star).await;
    let all = app
        .list(&format!("/api/v1/accounts/{}/followers", star.id), None)
        .await;
    assert_eq!(ids(&all), newest_first[..2]);
}

#[tokio::test]
async fn locked_accounts_take_follow_requests() {
    let app = TestApp::spawn().await;
    let lock = app.user().await;
    let asker = app.user().await;
    app.update_profile(&lock, json!({"locked": true})).await;
    for _ in 0..2 {
        let rel = app.follow(&asker, &lock).await;
        assert_eq!(
            rel["following"], false,
            "a locked account is not followed at once"
        );
        assert_eq!(rel["requested"], true, "a follow request is pending");
    }
    // Registered after the first request, so the two are well apart in time.
    let other = app.user().await;
    app.follow(&other, &lock).await;
    assert_eq!(
        counts(&app, &lock).await,
        (0, 0),
        "requests are not followers"
    );
    let r = app.get("/api/v1/follow_requests", Some(&lock.token)).await;
    assert_eq!(
        ids(&r.list()),
        [other.id.clone(), asker.id.clone()],
        "requests, newest first"
    );
    // Link-paginated; a page shorter than `limit` has no `next` (as
    // Mastodon's account lists: megalodon's get_all relies on it).
    assert!(r.links().prev.is_some(), "the list is Link-paginated");
    assert!(r.links().next.is_none(), "a short page is the last");
    assert_eq!(
        relationship(&app, &lock, &asker).await["requested_by"],
        true
    );
    // Authorize one, reject the other.
    let rel = app
        .post_empty(
            &format!("/api/v1/follow_requests/{}/authorize", asker.id),
            Some(&lock.token),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(rel["id"], asker.id.as_str());
    assert_eq!(
        rel["followed_by"], true,
        "authorized: the requester follows"
    );
    let rel = app
        .post_empty(
            &format!("/api/v1/follow_requests/{}/reject", other.id),
            Some(&lock.token),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(rel["followed_by"], false);
    assert_eq!(rel["requested_by"], false);
    let mine = relationship(&app, &asker, &lock).await;
    assert_eq!(mine["following"], true);
    assert_eq!(mine["requested"], false);
    let theirs = relationship(&app, &other, &lock).await;
    assert_eq!(theirs["following"], false);
    assert_eq!(theirs["requested"], false, "a rejected request is gone");
    assert_eq!(counts(&app, &lock).await, (1, 0));
    assert!(app
        .list("/api/v1/follow_requests", Some(&lock))
        .await
        .is_empty());
    // Nothing pending: authorizing is 404; rejecting is harmless.
    let r = app
        .post_empty(
            &format!("/api/v1/follow_requests/{}/authorize", other.id),
            Some(&lock.token),
        )
        .await;
    assert_eq!(r.status, 404, "authorizing no request: {}", r.text);
    app.post_empty("/api/v1/follow_requests/123/authorize", Some(&lock.token))
        .await
        .expect(404);
    app.post_empty("/api/v1/follow_requests/123/reject", Some(&lock.token))
        .await
        .expect(404);
    // Unfollow withdraws a pending request.
    app.follow(&other, &lock).await;
    let rel = app.unfollow(&other, &lock).await;
    assert_eq!(rel["requested"], false, "unfollow withdraws the request");
    assert!(app
        .list("/api/v1/follow_requests", Some(&lock))
        .await
        .is_empty());
}

#[tokio::test]
async fn blocks_end_follows_and_are_listed() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    app.follow(&alice, &bob).await;
    app.follow(&bob, &alice).await;
    for _ in 0..2 {
        let rel = app.block(&alice, &bob).await;
        assert_eq!(rel["blocking"], true, "block is idempotent");
        assert_eq!(rel["following"], false, "blocking ends my follow");
        assert_eq!(rel["followed_by"], false, "blocking ends their follow");
    }
    assert_eq!(counts(&app, &alice).await, (0, 0));
    assert_eq!(counts(&app, &bob).await, (0, 0));
    let theirs = relationship(&app, &bob, &alice).await;
    assert_eq!(theirs["blocked_by"], true);
    assert_eq!(theirs["blocking"], false);
    app.block(&alice, &carol).await;
    let r = app.get("/api/v1/blocks", Some(&alice.token)).await;
    assert_eq!(
        ids(&r.list()),
        [carol.id.clone(), bob.id.clone()],
        "blocks, newest first"
    );
    let r = app.get("/api/v1/blocks?limit=1", Some(&alice.token)).await;
    assert_eq!(ids(&r.list()), [carol.id.as_str()]);
    let next = r.links().next.expect("blocks are Link-paginated");
    assert_eq!(
        ids(&app.list(&app.local_path(&next), Some(&alice)).await),
        [bob.id.as_str()]
    );
    for _ in 0..2 {
        let rel = app
            .account_action(&alice, &bob, "unblock")
            .await
            .expect(200)
            .clone();
        assert_eq!(rel["blocking"], false, "unblock is idempotent");
        assert_eq!(
            rel["following"], false,
            "unblocking does not restore follows"
        );
    }
    assert_eq!(
        ids(&app.list("/api/v1/blocks", Some(&alice)).await),
        [carol.id.as_str()]
    );
    app.follow(&bob, &alice).await;
}

#[tokio::test]
async fn mutes_are_listed_and_optionally_keep_notifications() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    app.follow(&alice, &bob).await;
    let rel = app.mute(&alice, &bob).await;
    assert_eq!(rel["muting"], true);
    assert_eq!(rel["muting_notifications"], true);
    assert_eq!(rel["following"], true, "muting keeps the follow");
    let rel = app
        .post_json(
            &format!("/api/v1/accounts/{}/mute", bob.id),
            Some(&alice.token),
            &json!({"notifications": false}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(rel["muting"], true);
    assert_eq!(
        rel["muting_notifications"], false,
        "a repeat mute updates the notifications option"
    );
    app.mute(&alice, &carol).await;
    let r = app.get("/api/v1/mutes", Some(&alice.token)).await;
    assert_eq!(
        ids(&r.list()),
        [carol.id.clone(), bob.id.clone()],
        "mutes, newest first"
    );
    assert!(r.links().prev.is_some());
    assert!(r.links().next.is_none(), "a short page is the last");
    let theirs = relationship(&app, &bob, &alice).await;
    assert_eq!(theirs["muting"], false, "a mute is invisible to the muted");
    for _ in 0..2 {
        let rel = app
            .account_action(&alice, &bob, "unmute")
            .await
            .expect(200)
            .clone();
        assert_eq!(rel["muting"], false, "unmute is idempotent");
        assert_eq!(rel["muting_notifications"], false);
    }
    assert_eq!(
        ids(&app.list("/api/v1/mutes", Some(&alice)).await),
        [carol.id.as_str()]
    );
}
