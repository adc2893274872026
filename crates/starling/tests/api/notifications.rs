//! Notifications (mastodon-api.md §4.4) and markers (§7). Notifications are
//! written by a background consumer, so every test settles first.

use serde_json::{json, Value};

use crate::helpers::{ids, query_param, TestApp, User};

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[track_caller]
fn assert_notification_shape(n: &Value) {
    let id = n["id"]
        .as_str()
        .unwrap_or_else(|| panic!("notification.id is a string: {n}"));
    assert!(n["type"].is_string(), "notification.type: {n}");
    assert_eq!(
        n["group_key"],
        format!("ungrouped-{id}"),
        "group_key is ungrouped-<id>: {n}"
    );
    let created = n["created_at"].as_str().unwrap_or("");
    assert!(
        created.len() == 24 && created.ends_with('Z'),
        "created_at: {n}"
    );
    assert!(n["account"]["id"].is_string(), "notification.account: {n}");
}

/// `(type, actor id, status id)` of each notification, newest first.
fn summary(list: &[Value]) -> Vec<(String, String, Option<String>)> {
    list.iter()
        .map(|n| {
            assert_notification_shape(n);
            (
                n["type"].as_str().unwrap().to_owned(),
                n["account"]["id"].as_str().unwrap().to_owned(),
                n.get("status")
                    .and_then(|s| s["id"].as_str())
                    .map(str::to_owned),
            )
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test]
async fn every_kind_arrives_after_settling() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let locked = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    app.update_profile(&locked, json!({"locked": true})).await;
    let post = id_of(&app.post_status(&alice, "hello").await);
    app.follow_with(&carol, &alice, json!({"notify": true}))
        .await;
    let mention = id_of(
        &app.post_status(&bob, &format!("hi @{}", alice.username))
            .await,
    );
    let dm = app
        .post_visible(&bob, &format!("@{} psst", alice.username), "direct")
        .await;
    app.act(&bob, &post, "reblog").await.expect(200);
    app.act(&bob, &post, "favourite").await.expect(200);
    app.follow(&bob, &alice).await;
    app.follow(&bob, &locked).await;
    let news = id_of(&app.post_status(&alice, "news for the notified").await);
    app.settle().await;
    // (recipient, [(type, actor, status)], rule)
    let s = |x: &str| Some(x.to_owned());
    let cases: Vec<(&User, Vec<(&str, &User, Option<String>)>, &str)> = vec![
        (
            &alice,
            vec![
                ("follow", &carol, None),
                ("mention", &bob, s(&mention)),
                ("mention", &bob, s(&dm)),
                ("reblog", &bob, s(&post)),
                ("favourite", &bob, s(&post)),
                ("follow", &bob, None),
            ],
            "mentions (also in direct messages), boosts, favourites and follows",
        ),
        (
            &locked,
            vec![("follow_request", &bob, None)],
            "a request to a locked account",
        ),
        (
            &carol,
            vec![("status", &alice, s(&news))],
            "a notify:true follow",
        ),
        (&bob, vec![], "nothing happened to bob"),
    ];
    for (recipient, expected, rule) in cases {
        let list = app.notifications(recipient).await;
        let got = sorted(summary(&list));
        let want = sorted(
            expected
                .into_iter()
                .map(|(t, from, st)| (t.to_owned(), from.id.clone(), st))
                .collect(),
        );
        assert_eq!(got, want, "{}'s notifications: {rule}", recipient.username);
        let nids = ids(&list);
        let mut by_id = nids.clone();
        by_id.sort_by_key(|s| std::cmp::Reverse(s.parse::<i64>().unwrap()));
        assert_eq!(nids, by_id, "notifications are newest first");
        for n in &list {
            if n.get("status").is_some_and(|s| !s.is_null()) {
                assert!(
                    ["mention", "status", "reblog", "favourite"]
                        .contains(&n["type"].as_str().unwrap()),
                    "only status kinds carry a status: {n}"
                );
            } else {
                assert!(
                    ["follow", "follow_request"].contains(&n["type"].as_str().unwrap()),
                    "status kinds must carry their status: {n}"
                );
            }
        }
    }
    // Settling twice changes nothing (consumers are idempotent).
    app.settle().await;
    assert_eq!(app.notifications(&alice).await.len(), 6);
}

#[tokio::test]
async fn own_actions_and_plain_replies_notify_nobody() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    app.follow_with(&bob, &alice, json!({"notify": true})).await;
    app.settle().await;
    let post = id_of(
        &app.post_status(&alice, &format!("note to @{}", alice.username))
            .await,
    );
    app.act(&alice, &post, "favourite").await.expect(200);
    app.act(&alice, &post, "reblog").await.expect(200);
    app.reply(&alice, &post, "self reply").await;
    let bobs = id_of(&app.post_status(&bob, "bob's").await);
    // Not notify-worthy for a notify:true follower: boosts, replies to
    // others, direct messages not addressed to them.
    app.act(&alice, &bobs, "reblog").await.expect(200);
    app.reply(&alice, &bobs, "reply without a mention").await;
    app.post_visible(&alice, "to nobody", "direct").await;
    app.settle().await;
    let alice_list = app.notifications(&alice).await;
    assert_eq!(
        summary(&alice_list),
        [("follow".to_owned(), bob.id.clone(), None)],
        "one's own mentions, favourites and boosts notify nobody"
    );
    let got: Vec<String> = summary(&app.notifications(&bob).await)
        .into_iter()
        .map(|(t, _, s)| format!("{t} {}", s.unwrap_or_default()))
        .collect();
    assert!(
        got.iter()
            .all(|n| n.starts_with("status ") || n.starts_with("reblog ")),
        "bob: status notifications for originals and one boost notification: {got:?}"
    );
    assert_eq!(
        got.iter().filter(|n| n.starts_with("reblog ")).count(),
        1,
        "bob is told of the boost of his post: {got:?}"
    );
    assert!(
        !got.iter().any(|n| n.starts_with("mention ")),
        "a reply without a mention is not a mention: {got:?}"
    );
}

#[tokio::test]
async fn types_and_exclude_types_filter() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let post = id_of(&app.post_status(&alice, "x").await);
    app.post_status(&bob, &format!("@{} hi", alice.username))
        .await;
    app.act(&bob, &post, "favourite").await.expect(200);
    app.follow(&bob, &alice).await;
    app.follow(&carol, &alice).await;
    app.settle().await;
    let kinds = |list: &[Value]| {
        sorted(
            list.iter()
                .map(|n| n["type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        )
    };
    // (query, expected kinds, rule)
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            "".into(),
            vec!["favourite", "follow", "follow", "mention"],
            "all",
        ),
        ("types[]=mention".into(), vec!["mention"], "one type"),
        (
            "types[]=mention&types[]=follow".into(),
            vec!["follow", "follow", "mention"],
            "two types",
        ),
        (
            "types=follow".into(),
            vec!["follow", "follow"],
            "a plain types=",
        ),
        (
            "exclude_types[]=follow".into(),
            vec!["favourite", "mention"],
            "exclusion",
        ),
        (
            "exclude_types[]=follow&exclude_types[]=mention".into(),
            vec!["favourite"],
            "two exclusions",
        ),
        ("types[]=poll".into(), vec![], "a type with none"),
        (
            "types[]=nonsense".into(),
            vec![],
            "only unknown types: nothing",
        ),
        (
            "exclude_types[]=nonsense".into(),
            vec!["favourite", "follow", "follow", "mention"],
            "unknown exclusions are ignored",
        ),
        (
            format!("account_id={}", carol.id),
            vec!["follow"],
            "one actor",
        ),
        ("account_id=123".into(), vec![], "an actor with none"),
    ];
    for (query, expected, rule) in cases {
        let list = app
            .list(&format!("/api/v1/notifications?{query}"), Some(&alice))
            .await;
        assert_eq!(kinds(&list), expected, "notifications?{query}: {rule}");
    }
    // The Link header carries the filters.
    let r = app
        .get(
            "/api/v1/notifications?types[]=follow&limit=1",
            Some(&alice.token),
        )
        .await;
    assert_eq!(r.list().len(), 1);
    let links = r.links();
    let next = links.next.expect("next link");
    assert_eq!(
        query_param(&next, "types[]").as_deref(),
        Some("follow"),
        "types[] carried: {next}"
    );
    assert!(next.contains("max_id="));
    assert!(links.prev.unwrap().contains("min_id="));
    let rest = app.list(&app.local_path(&next), Some(&alice)).await;
    assert_eq!(
        kinds(&rest),
        ["follow"],
        "the second follow is on the next page"
    );
    assert_ne!(ids(&rest), ids(&r.list()));
}

#[tokio::test]
async fn notifications_page_with_links() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut fans = Vec::new();
    for _ in 0..5 {
        let u = app.user().await;
        app.follow(&u, &alice).await;
        fans.push(u);
    }
    app.settle().await;
    let all = app.notifications(&alice).await;
    assert_eq!(all.len(), 5);
    let all_ids = ids(&all);
    let r = app
        .get("/api/v1/notifications?limit=2", Some(&alice.token))
        .await;
    assert_eq!(ids(&r.list()), all_ids[..2]);
    let next = r.links().next.unwrap();
    let r2 = app.get(&app.local_path(&next), Some(&alice.token)).await;
    assert_eq!(ids(&r2.list()), all_ids[2..4]);
    let r = app
        .get(
            &format!("/api/v1/notifications?since_id={}", all_ids[2]),
            Some(&alice.token),
        )
        .await;
    assert_eq!(ids(&r.list()), all_ids[..2], "since_id");
    let r = app
        .get(
            &format!("/api/v1/notifications?min_id={}&limit=1", all_ids[2]),
            Some(&alice.token),
        )
        .await;
    assert_eq!(ids(&r.list()), all_ids[1..2], "min_id: just above");
    let r = app
        .get(
            &format!("/api/v1/notifications?max_id={}", all_ids[4]),
            Some(&alice.token),
        )
        .await;
    assert!(r.list().is_empty());
    assert!(r.header("link").is_none(), "no Link on an empty page");
    for bad in ["limit=-1", "max_id=x"] {
        app.get(&format!("/api/v1/notifications?{bad}"), Some(&alice.token))
            .await
            .expect(400);
    }
    let r = app
        .get("/api/v1/notifications?limit=500", Some(&alice.token))
        .await;
    assert_eq!(r.list().len(), 5, "a large limit is clamped, not refused");
}

#[tokio::test]
async fn show_dismiss_and_clear() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    app.follow(&bob, &alice).await;
    app.follow(&carol, &alice).await;
    app.follow(&alice, &bob).await;
    app.settle().await;
    let list = app.notifications(&alice).await;
    assert_eq!(list.len(), 2);
    let first = id_of(&list[0]);
    let v = app
        .get(
            &format!("/api/v1/notifications/{first}"),
            Some(&alice.token),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v, list[0], "GET /:id shows the same notification");
    // Not someone else's; not unknown ids.
    for (user, id) in [(&bob, first.as_str()), (&alice, "123"), (&alice, "abc")] {
        let r = app
            .get(&format!("/api/v1/notifications/{id}"), Some(&user.token))
            .await;
        assert_eq!(
            r.status, 404,
            "notification {id} for {}: {}",
            user.username, r.text
        );
        let r = app
            .post_empty(
                &format!("/api/v1/notifications/{id}/dismiss"),
                Some(&user.token),
            )
            .await;
        assert_eq!(
            r.status, 404,
            "dismissing {id} as {}: {}",
            user.username, r.text
        );
    }
    let r = app
        .post_empty(
            &format!("/api/v1/notifications/{first}/dismiss"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(r.expect(200), &json!({}), "dismiss answers {{}}");
    app.get(
        &format!("/api/v1/notifications/{first}"),
        Some(&alice.token),
    )
    .await
    .expect(404);
    assert_eq!(app.notifications(&alice).await.len(), 1);
    let r = app
        .post_empty("/api/v1/notifications/clear", Some(&alice.token))
        .await;
    assert_eq!(r.expect(200), &json!({}), "clear answers {{}}");
    assert!(app.notifications(&alice).await.is_empty());
    assert_eq!(
        app.notifications(&bob).await.len(),
        1,
        "clearing is per account"
    );
    let r = app
        .post_empty("/api/v1/notifications/clear", Some(&alice.token))
        .await;
    r.expect(200);
}

#[tokio::test]
async fn hidden_actors_and_statuses_drop_out() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let dave = app.user().await;
    let post = id_of(&app.post_status(&alice, "x").await);
    app.act(&bob, &post, "favourite").await.expect(200);
    app.act(&carol, &post, "favourite").await.expect(200);
    let mention = id_of(
        &app.post_status(&dave, &format!("@{} hey", alice.username))
            .await,
    );
    app.settle().await;
    assert_eq!(app.notifications(&alice).await.len(), 3);
    app.mute(&alice, &bob).await;
    app.block(&alice, &carol).await;
    let actors: Vec<String> = app
        .notifications(&alice)
        .await
        .iter()
        .map(|n| n["account"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actors,
        [dave.id.as_str()],
        "notifications from muted and blocked accounts are hidden"
    );
    app.post_json(
        &format!("/api/v1/accounts/{}/mute", bob.id),
        Some(&alice.token),
        &json!({"notifications": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.notifications(&alice).await.len(),
        2,
        "a mute without notifications keeps them"
    );
    app.delete(&format!("/api/v1/statuses/{mention}"), Some(&dave.token))
        .await
        .expect(200);
    app.settle().await;
    let kinds: Vec<String> = app
        .notifications(&alice)
        .await
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["favourite"],
        "a deleted status's notification is gone"
    );
}

async fn unread_count(app: &TestApp, user: &User, query: &str) -> Value {
    app.get(
        &format!("/api/v1/notifications/unread_count{query}"),
        Some(&user.token),
    )
    .await
    .expect(200)["count"]
        .clone()
}

#[tokio::test]
async fn unread_count_follows_the_notifications_marker() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let fans = [app.user().await, app.user().await, app.user().await];
    for u in &fans {
        app.follow(u, &alice).await;
    }
    app.settle().await;
    let list = app.notifications(&alice).await;
    let nids = ids(&list);
    let unread = |query: &'static str| unread_count(&app, &alice, query);
    assert_eq!(unread("").await, 3, "no marker: everything is unread");
    assert_eq!(unread("?limit=2").await, 2, "the count stops at limit");
    app.get(
        "/api/v1/notifications/unread_count?limit=x",
        Some(&alice.token),
    )
    .await
    .expect(400);
    // Markers start empty.
    let v = app
        .get(
            "/api/v1/markers?timeline[]=notifications",
            Some(&alice.token),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v, json!({}), "no markers yet");
    // Form (Mastodon.py): mark the middle one read.
    let v = app
        .post_form(
            "/api/v1/markers",
            Some(&alice.token),
            &[("notifications[last_read_id]", nids[1].as_str())],
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v["notifications"]["last_read_id"], nids[1].as_str());
    assert_eq!(v["notifications"]["version"], 1);
    assert!(v["notifications"]["updated_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(
        v.get("home").is_none(),
        "only the timelines saved are answered"
    );
    assert_eq!(unread("").await, 1, "only newer notifications are unread");
    // JSON (masto.js), both timelines, the version goes up.
    let v = app
        .post_json(
            "/api/v1/markers",
            Some(&alice.token),
            &json!({"notifications": {"last_read_id": nids[0]}, "home": {"last_read_id": "12345"}}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v["notifications"]["version"], 2);
    assert_eq!(v["home"]["last_read_id"], "12345");
    assert_eq!(v["home"]["version"], 1);
    assert_eq!(unread("").await, 0);
    // GET filters by timeline[].
    let v = app
        .get("/api/v1/markers?timeline[]=home", Some(&alice.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(v["home"]["last_read_id"], "12345");
    assert!(
        v.get("notifications").is_none(),
        "only the timelines asked for"
    );
    let v = app
        .get(
            "/api/v1/markers?timeline[]=home&timeline[]=notifications",
            Some(&alice.token),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(v["notifications"]["last_read_id"], nids[0].as_str());
    // Markers are per account.
    let other = app
        .get("/api/v1/markers?timeline[]=home", Some(&fans[0].token))
        .await
        .expect(200)
        .clone();
    assert_eq!(other, json!({}));
    // Bad input.
    // (body, rule)
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "nothing to save"),
        (
            json!({"notifications": {"last_read_id": "abc"}}),
            "a malformed id",
        ),
        (json!({"notifications": {}}), "no last_read_id"),
        (json!({"notifications": "12"}), "not an object"),
    ];
    for (body, rule) in cases {
        let r = app
            .post_json("/api/v1/markers", Some(&alice.token), &body)
            .await;
        assert_eq!(r.status, 400, "markers {body}: {rule}: {}", r.text);
        assert!(!r.error().is_empty());
    }
    app.get("/api/v1/markers", None).await.expect(401);
    app.post_json(
        "/api/v1/markers",
        None,
        &json!({"home": {"last_read_id": "1"}}),
    )
    .await
    .expect(401);
}

/// Mastodon: approving a request is not a new follow (`FollowRequest#
/// authorize!` creates no notification), and the `follow_request`
/// notification goes away with the request, approved or rejected.
#[tokio::test]
async fn answered_follow_requests_leave_no_notifications() {
    let app = TestApp::spawn().await;
    let lock = app.user().await;
    let asker = app.user().await;
    app.update_profile(&lock, json!({"locked": true})).await;
    app.follow(&asker, &lock).await;
    let other = app.user().await;
    app.follow(&other, &lock).await;
    app.settle().await;
    assert_eq!(
        sorted(summary(&app.notifications(&lock).await)),
        sorted(vec![
            ("follow_request".to_owned(), asker.id.clone(), None),
            ("follow_request".to_owned(), other.id.clone(), None),
        ]),
        "one follow_request notification per request"
    );
    app.post_empty(
        &format!("/api/v1/follow_requests/{}/authorize", asker.id),
        Some(&lock.token),
    )
    .await
    .expect(200);
    app.post_empty(
        &format!("/api/v1/follow_requests/{}/reject", other.id),
        Some(&lock.token),
    )
    .await
    .expect(200);
    app.settle().await;
    let got = summary(&app.notifications(&lock).await);
    assert!(
        !got.iter().any(|(t, _, _)| t == "follow"),
        "approving a request must not notify a new follow: {got:?}"
    );
    assert!(
        got.is_empty(),
        "answered requests leave no follow_request notifications: {got:?}"
    );
    assert!(
        app.notifications(&asker).await.is_empty(),
        "the requester is not notified either"
    );
}
