//! Timelines (mastodon-api.md §4.3) and pagination (§1.9): home (filled on
//! write, rebuilt on read, large accounts merged at read time), public, tag
//! and account statuses.
//!
//! Home timelines are checked on both of their paths: a reader whose list
//! exists before the posts (fan-out on write, so `settle` first) and a
//! reader who reads for the first time afterwards (rebuild from the store).

use serde_json::{json, Value};

use crate::helpers::{
    assert_status_shape, enc, ids, newest_first, query_param, shown, TestApp, User,
};

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Asserts that `user`'s home shows exactly `expected` (ids of what each
/// entry shows: the status, or for a boost the boosted status), newest
/// first by entry id.
async fn assert_home(app: &TestApp, user: &User, expected: &[&str], rule: &str) {
    let home = app.home(user).await;
    for s in &home {
        assert_status_shape(s, true);
    }
    let entry_ids = ids(&home);
    let sorted = newest_first(&entry_ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(entry_ids, sorted, "{rule}: home is newest first");
    let mut got = shown(&home);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{rule}: what {}'s home shows", user.username);
}

#[tokio::test]
async fn home_shows_own_posts_and_followees_posts_and_boosts() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let dave = app.user().await;
    // Alice is active (her list exists); eve reads for the first time later.
    let eve = app.user().await;
    app.follow(&alice, &bob).await;
    app.follow(&eve, &bob).await;
    assert_home(&app, &alice, &[], "nothing posted yet").await;
    let b1 = id_of(&app.post_status(&bob, "bob 1").await);
    let c1 = id_of(&app.post_status(&carol, "carol 1").await);
    let a1 = id_of(&app.post_status(&alice, "alice 1").await);
    let d1 = id_of(&app.post_status(&dave, "dave 1").await);
    let boost = app.act(&bob, &d1, "reblog").await.expect(200).clone();
    let b2 = app.post_visible(&bob, "bob unlisted", "unlisted").await;
    let b3 = app.post_visible(&bob, "bob private", "private").await;
    let dm = app
        .post_visible(&bob, &format!("@{} just you", alice.username), "direct")
        .await;
    let _dm_other = app
        .post_visible(&bob, &format!("@{} not alice", carol.username), "direct")
        .await;
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&b1, &a1, &d1, &b2, &b3, &dm],
        "own posts, followee's posts of every visibility, direct messages to her, boosts; not carol's",
    )
    .await;
    let home = app.home(&alice).await;
    let wrapper = home
        .iter()
        .find(|s| s["id"] == boost["id"])
        .expect("the boost entry is the wrapper");
    assert_eq!(wrapper["account"]["id"], bob.id.as_str());
    assert_eq!(wrapper["reblog"]["account"]["id"], dave.id.as_str());
    assert_home(&app, &eve, &[&b1, &d1, &b2, &b3], "rebuilt on first read").await;
    let home = shown(&app.home(&alice).await);
    assert!(home.contains(&dm), "still there after other reads");
    // A new followee's recent posts arrive with the follow.
    app.follow(&alice, &carol).await;
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&b1, &a1, &d1, &b2, &b3, &dm, &c1],
        "a new followee's earlier posts are merged in",
    )
    .await;
    // The viewer's flags apply.
    app.act(&alice, &b1, "favourite").await.expect(200);
    let home = app.home(&alice).await;
    let fav = home.iter().find(|s| s["id"] == b1.as_str()).unwrap();
    assert_eq!(fav["favourited"], true, "home applies the viewer's flags");
    // Carol never followed anyone: her home is her own.
    assert_home(&app, &carol, &[&c1], "a home with no followees").await;
}

#[tokio::test]
async fn home_hides_boosts_of_followees_who_boosts_are_hidden() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let late = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    for u in [&alice, &late] {
        app.follow_with(u, &bob, json!({"reblogs": false})).await;
    }
    app.home(&alice).await;
    let c1 = id_of(&app.post_status(&carol, "carol").await);
    app.act(&bob, &c1, "reblog").await.expect(200);
    let b1 = id_of(&app.post_status(&bob, "bob's own").await);
    app.settle().await;
    assert_home(&app, &alice, &[&b1], "reblogs=false hides boosts (fan-out)").await;
    assert_home(&app, &late, &[&b1], "reblogs=false hides boosts (rebuild)").await;
    // Showing them again applies to boosts from then on.
    app.follow_with(&alice, &bob, json!({"reblogs": true}))
        .await;
    let c2 = id_of(&app.post_status(&carol, "carol again").await);
    app.act(&bob, &c2, "reblog").await.expect(200);
    app.settle().await;
    let home = shown(&app.home(&alice).await);
    assert!(
        home.contains(&c2),
        "after reblogs=true the next boost shows: {home:?}"
    );
}

#[tokio::test]
async fn home_drops_replies_to_accounts_not_followed() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let late = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let dave = app.user().await;
    for u in [&alice, &late] {
        app.follow(u, &bob).await;
        app.follow(u, &dave).await;
    }
    app.home(&alice).await;
    let to_carol = id_of(&app.post_status(&carol, "carol").await);
    let to_dave = id_of(&app.post_status(&dave, "dave").await);
    let to_bob = id_of(&app.post_status(&bob, "bob").await);
    let to_alice = id_of(&app.post_status(&alice, "alice").await);
    let r_carol = id_of(&app.reply(&bob, &to_carol, "reply to carol").await);
    let r_dave = id_of(&app.reply(&bob, &to_dave, "reply to dave").await);
    let r_self = id_of(&app.reply(&bob, &to_bob, "thread").await);
    let r_alice = id_of(&app.reply(&bob, &to_alice, "reply to alice").await);
    app.settle().await;
    assert!(!r_carol.is_empty());
    assert_home(
        &app,
        &alice,
        &[&to_dave, &to_bob, &to_alice, &r_dave, &r_self, &r_alice],
        "replies to followed accounts, to oneself and self-threads show; a reply to carol does not",
    )
    .await;
    let late_home = shown(&app.home(&late).await);
    assert!(
        !late_home.contains(&r_carol) && late_home.contains(&r_dave) && late_home.contains(&r_self),
        "the same rule on a rebuilt home: {late_home:?}"
    );
}

#[tokio::test]
async fn home_reflects_deletes_unfollows_blocks_and_mutes() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let dave = app.user().await;
    for u in [&bob, &carol, &dave] {
        app.follow(&alice, u).await;
    }
    app.home(&alice).await;
    let b1 = id_of(&app.post_status(&bob, "b1").await);
    let b2 = id_of(&app.post_status(&bob, "b2").await);
    let c1 = id_of(&app.post_status(&carol, "c1").await);
    let d1 = id_of(&app.post_status(&dave, "d1 #hometag").await);
    let boost = id_of(app.act(&carol, &b2, "reblog").await.expect(200));
    app.settle().await;
    assert_home(&app, &alice, &[&b1, &b2, &c1, &d1, &b2], "before").await;
    app.delete(&format!("/api/v1/statuses/{b1}"), Some(&bob.token))
        .await
        .expect(200);
    assert!(
        !shown(&app.home(&alice).await).contains(&b1),
        "a deleted status is gone at once"
    );
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&b2, &c1, &d1, &b2],
        "a deleted status is gone",
    )
    .await;
    app.unfollow(&alice, &bob).await;
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&c1, &d1, &b2],
        "an unfollowed account's posts leave; a followee's boost of them stays",
    )
    .await;
    app.block(&alice, &carol).await;
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&d1],
        "a blocked account's posts and boosts leave",
    )
    .await;
    assert!(!boost.is_empty());
    // A followee boosts dave's post; then dave is muted.
    let erin = app.user().await;
    app.follow(&alice, &erin).await;
    app.act(&erin, &d1, "reblog").await.expect(200);
    app.settle().await;
    assert_home(
        &app,
        &alice,
        &[&d1, &d1],
        "dave's post and erin's boost of it",
    )
    .await;
    app.mute(&alice, &dave).await;
    assert_home(
        &app,
        &alice,
        &[],
        "a muted account's posts, and boosts of them, are hidden",
    )
    .await;
    for path in ["/api/v1/timelines/public", "/api/v1/timelines/tag/hometag"] {
        let list = shown(&app.list(path, Some(&alice)).await);
        assert!(
            !list.contains(&d1),
            "{path}: a muted account's posts are hidden from the muter"
        );
        let list = shown(&app.list(path, None).await);
        assert!(list.contains(&d1), "{path}: others still see them");
    }
    app.account_action(&alice, &dave, "unmute")
        .await
        .expect(200);
    assert_home(&app, &alice, &[&d1, &d1], "unmuting shows them again").await;
    // A new reader sees the same after a rebuild.
    let zed = app.user().await;
    app.follow(&zed, &dave).await;
    app.follow(&zed, &bob).await;
    app.unfollow(&zed, &bob).await;
    app.settle().await;
    assert_home(&app, &zed, &[&d1], "rebuilt without the unfollowed account").await;
}

#[tokio::test]
async fn large_accounts_are_merged_at_read_time() {
    let app = TestApp::spawn_with(|c| c.large_account_threshold = 2).await;
    let star = app.user().await;
    let f1 = app.user().await;
    let f2 = app.user().await;
    let f3 = app.user().await;
    let stranger = app.user().await;
    let other = app.user().await;
    app.home(&f1).await;
    app.follow(&f1, &star).await;
    app.follow_with(&f2, &star, json!({"reblogs": false})).await;
    app.follow(&f3, &star).await;
    app.settle().await;
    let s1 = id_of(&app.post_status(&star, "to the many").await);
    let o1 = id_of(&app.post_status(&other, "other").await);
    let boost = app.act(&star, &o1, "reblog").await.expect(200).clone();
    let reply = id_of(&app.reply(&star, &o1, "reply to other").await);
    let private = app.post_visible(&star, "fans only", "private").await;
    app.settle().await;
    assert!(!reply.is_empty() && !boost.is_null());
    assert_home(
        &app,
        &f1,
        &[&s1, &o1, &private],
        "a large account's posts and boosts are merged in (its reply to a stranger is not)",
    )
    .await;
    assert_home(
        &app,
        &f2,
        &[&s1, &private],
        "merged at read time, reblogs=false still hides boosts",
    )
    .await;
    assert_home(&app, &stranger, &[], "non-followers get nothing").await;
    assert_home(
        &app,
        &star,
        &[&s1, &o1, &reply, &private],
        "the author's own home",
    )
    .await;
    // Pagination works across the merge.
    let r = app
        .get("/api/v1/timelines/home?limit=1", Some(&f1.token))
        .await;
    let first = r.list();
    assert_eq!(first.len(), 1);
    let next = r.links().next.expect("next link");
    let second = app.list(&app.local_path(&next), Some(&f1)).await;
    assert_eq!(second.len(), 1);
    assert_ne!(ids(&first), ids(&second), "pages do not repeat entries");
    // Deleting removes it from every home.
    app.delete(&format!("/api/v1/statuses/{s1}"), Some(&star.token))
        .await
        .expect(200);
    app.settle().await;
    assert_home(&app, &f1, &[&o1, &private], "deleted large-account post").await;
    // Unfollowing a large account removes its posts too.
    app.unfollow(&f3, &star).await;
    app.settle().await;
    assert_home(&app, &f3, &[], "unfollowed large account").await;
    // Dropping below the threshold: fanned out on write again.
    app.unfollow(&f2, &star).await;
    app.settle().await;
    let s2 = id_of(&app.post_status(&star, "small again").await);
    app.settle().await;
    assert_home(
        &app,
        &f1,
        &[&o1, &private, &s2],
        "no longer large: earlier and new posts are in the home",
    )
    .await;
}

#[tokio::test]
async fn public_timeline_is_public_original_posts_only() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let b1 = id_of(&app.post_status(&bob, "bob public").await);
    let p = id_of(&app.post_status(&alice, "public").await);
    let _u = app.post_visible(&alice, "unlisted", "unlisted").await;
    let _v = app.post_visible(&alice, "private", "private").await;
    let _d = app.post_visible(&alice, "direct", "direct").await;
    let _r = id_of(&app.reply(&alice, &b1, "reply to bob").await);
    let thread = id_of(&app.reply(&alice, &p, "self thread").await);
    let _boost = app.act(&alice, &b1, "reblog").await.expect(200);
    let expected = newest_first(&[&b1, &p, &thread]);
    for query in ["", "?local=true", "?local=1", "?remote=false"] {
        for viewer in [None, Some(&bob)] {
            let list = app
                .list(&format!("/api/v1/timelines/public{query}"), viewer)
                .await;
            for s in &list {
                assert_status_shape(s, viewer.is_some());
            }
            assert_eq!(
                ids(&list),
                expected,
                "public{query}: public posts and self-threads only; no unlisted, private, direct, replies to others or boosts"
            );
        }
    }
    for query in ["?remote=true", "?only_media=true", "?only_media=1"] {
        let list = app
            .list(&format!("/api/v1/timelines/public{query}"), None)
            .await;
        assert!(list.is_empty(), "public{query}: nothing matches");
    }
    // Deleted posts leave it.
    app.delete(&format!("/api/v1/statuses/{p}"), Some(&alice.token))
        .await
        .expect(200);
    let list = app.list("/api/v1/timelines/public", None).await;
    assert!(
        !ids(&list).contains(&p),
        "a deleted post leaves the public timeline"
    );
}

#[tokio::test]
async fn tag_timeline_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let t1 = id_of(&app.post_status(&alice, "about #Rust").await);
    let t2 = id_of(&app.post_status(&bob, "more #rust and #other").await);
    let t3 = id_of(&app.post_status(&alice, "#RUST").await);
    let _unlisted = app.post_visible(&alice, "#rust quietly", "unlisted").await;
    let _private = app.post_visible(&alice, "#rust secretly", "private").await;
    let _boost = app.act(&bob, &t1, "reblog").await.expect(200);
    let _near = app.post_status(&alice, "#rusty is another tag").await;
    let u = id_of(&app.post_status(&alice, "#Ünïcode works").await);
    let expected = newest_first(&[&t1, &t2, &t3]);
    for tag in ["rust", "Rust", "RUST", "%23rust"] {
        let list = app
            .list(&format!("/api/v1/timelines/tag/{tag}"), None)
            .await;
        assert_eq!(
            ids(&list),
            expected,
            "tag/{tag}: public statuses with #rust in any case; not unlisted, private, boosts or #rusty"
        );
    }
    let list = app
        .list(
            &format!("/api/v1/timelines/tag/{}", enc("ünïcode")),
            Some(&bob),
        )
        .await;
    assert_eq!(ids(&list), [u.as_str()], "non-ASCII tags, percent-encoded");
    for unknown in ["nothing", "no-such!tag", "123", "%20"] {
        let r = app
            .get(&format!("/api/v1/timelines/tag/{unknown}"), None)
            .await;
        assert_eq!(
            r.status, 200,
            "unknown or malformed tag {unknown}: {}",
            r.text
        );
        assert!(r.list().is_empty());
        assert!(r.header("link").is_none(), "no Link on an empty page");
    }
    let list = app
        .list("/api/v1/timelines/tag/rust?only_media=true", None)
        .await;
    assert!(list.is_empty());
}

#[tokio::test]
async fn account_statuses_and_their_filters() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let b1 = id_of(&app.post_status(&bob, "bob").await);
    let tagged = app.post_visible(&alice, "about #TagMe", "unlisted").await;
    let p = id_of(&app.post_status(&alice, "post").await);
    let reply = id_of(&app.reply(&alice, &b1, "reply to bob").await);
    let thread = id_of(&app.reply(&alice, &p, "self thread").await);
    let boost = id_of(app.act(&alice, &b1, "reblog").await.expect(200));
    let path = format!("/api/v1/accounts/{}/statuses", alice.id);
    // (query, expected entry ids, rule)
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "",
            vec![&boost, &thread, &reply, &p, &tagged],
            "everything, newest first",
        ),
        (
            "?exclude_replies=true",
            vec![&boost, &thread, &p, &tagged],
            "replies to others left out, self-threads kept",
        ),
        (
            "?exclude_replies=1",
            vec![&boost, &thread, &p, &tagged],
            "Mastodon.py booleans",
        ),
        (
            "?exclude_reblogs=true",
            vec![&thread, &reply, &p, &tagged],
            "boosts left out",
        ),
        (
            "?exclude_replies=true&exclude_reblogs=true",
            vec![&thread, &p, &tagged],
            "both",
        ),
        (
            "?exclude_replies=false",
            vec![&boost, &thread, &reply, &p, &tagged],
            "false is false",
        ),
        ("?only_media=true", vec![], "no media attached anywhere"),
        ("?pinned=true", vec![], "nothing pinned"),
    ];
    for (query, expected, rule) in cases {
        let list = app.list(&format!("{path}{query}"), None).await;
        for s in &list {
            assert_status_shape(s, false);
        }
        let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(ids(&list), expected, "account statuses{query}: {rule}");
    }
    let list = app.list(&path, None).await;
    assert_eq!(
        list[0]["reblog"]["id"],
        b1.as_str(),
        "a boost entry wraps the original"
    );
    // Who sees what is in visibility.rs; unknown accounts are 404.
    app.get("/api/v1/accounts/123/statuses", None)
        .await
        .expect(404);
    app.get("/api/v1/accounts/x/statuses", None)
        .await
        .expect(404);
}

/// `tagged` (mastodon-api.md §4.1): only the account's statuses with that
/// hashtag, in any case.
#[tokio::test]
async fn account_statuses_tagged() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let tagged = app.post_visible(&alice, "about #TagMe", "unlisted").await;
    app.post_status(&alice, "untagged").await;
    app.post_status(&alice, "#other tag").await;
    app.post_status(&bob, "bob's #tagme").await;
    let boost = app.post_status(&bob, "#tagme boosted").await;
    app.act(&alice, boost["id"].as_str().unwrap(), "reblog")
        .await
        .expect(200);
    let path = format!("/api/v1/accounts/{}/statuses", alice.id);
    // (query, expected, rule)
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "?tagged=tagme",
            vec![&tagged],
            "only the account's own statuses with #tagme",
        ),
        ("?tagged=TagMe", vec![&tagged], "tagged is case-insensitive"),
        ("?tagged=nothing", vec![], "an unused tag"),
    ];
    for (query, expected, rule) in cases {
        let list = app.list(&format!("{path}{query}"), None).await;
        assert_eq!(ids(&list), expected, "account statuses{query}: {rule}");
    }
}

/// One set of pagination rules, checked on every status timeline.
#[tokio::test]
async fn pagination_on_every_status_timeline() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut s = Vec::new();
    for i in 0..5 {
        s.push(id_of(
            &app.post_status(&alice, &format!("#pg number {i}")).await,
        ));
    }
    app.settle().await;
    // s[4] is the newest.
    let (s1, s2, s3, s4, s5) = (&s[0], &s[1], &s[2], &s[3], &s[4]);
    // (path, carried filter, needs a token)
    let endpoints: Vec<(String, &str, bool)> = vec![
        ("/api/v1/timelines/home".into(), "", true),
        ("/api/v1/timelines/public".into(), "local=true", false),
        ("/api/v1/timelines/tag/pg".into(), "only_media=false", false),
        (
            format!("/api/v1/accounts/{}/statuses", alice.id),
            "exclude_replies=true",
            false,
        ),
        ("/api/v1/favourites".into(), "", true),
    ];
    for id in &s {
        app.act(&alice, id, "favourite").await.expect(200);
    }
    for (path, filter, auth) in endpoints {
        let token = auth.then_some(alice.token.as_str());
        let q = |params: &str| {
            let mut parts: Vec<&str> = Vec::new();
            if !filter.is_empty() {
                parts.push(filter);
            }
            if !params.is_empty() {
                parts.push(params);
            }
            if parts.is_empty() {
                path.clone()
            } else {
                format!("{path}?{}", parts.join("&"))
            }
        };
        // (params, expected ids, rule)
        let cases: Vec<(String, Vec<&String>, &str)> = vec![
            (String::new(), vec![s5, s4, s3, s2, s1], "newest first"),
            ("limit=2".into(), vec![s5, s4], "limit"),
            (
                format!("max_id={s4}"),
                vec![s3, s2, s1],
                "max_id: older than",
            ),
            (
                format!("since_id={s2}"),
                vec![s5, s4, s3],
                "since_id: newer than",
            ),
            (
                format!("since_id={s2}&limit=2"),
                vec![s5, s4],
                "since_id: the newest page above the cutoff",
            ),
            (
                format!("min_id={s2}&limit=2"),
                vec![s4, s3],
                "min_id: the page just above, newest first",
            ),
            (
                format!("min_id={s1}&max_id={s5}"),
                vec![s4, s3, s2],
                "min_id and max_id together",
            ),
            (format!("max_id={s1}"), vec![], "nothing older"),
        ];
        for (params, expected, rule) in cases {
            let url = q(&params);
            let r = app.get(&url, token).await;
            let list = r.list();
            let expected: Vec<String> = expected.into_iter().cloned().collect();
            if path.ends_with("favourites") {
                // Cursors are favourite ids there: only the unbounded and
                // limited pages are comparable.
                if params.is_empty() || params == "limit=2" {
                    assert_eq!(ids(&list), expected, "{url}: {rule}");
                }
                continue;
            }
            assert_eq!(ids(&list), expected, "{url}: {rule}");
            if list.is_empty() {
                assert!(
                    r.header("link").is_none(),
                    "{url}: no Link on an empty page"
                );
            }
        }
        // Link header: absolute, next first with max_id, prev with min_id,
        // filters and limit carried, cursors replaced (checked on the
        // second page, whose request already had a max_id).
        let first = app.get(&q("limit=2"), token).await;
        let url = app.local_path(&first.links().next.expect("next link"));
        let r = app.get(&url, token).await;
        let raw = r
            .header("link")
            .unwrap_or_else(|| panic!("{url}: Link header"));
        assert!(
            raw.starts_with('<') && raw.contains(">; rel=\"next\", <"),
            "{url}: next first: {raw}"
        );
        let links = r.links();
        let next = links.next.unwrap();
        let prev = links.prev.unwrap();
        for link in [&next, &prev] {
            assert!(
                link.starts_with(&app.url(&format!("{path}?"))),
                "{url}: absolute: {link}"
            );
            assert_eq!(
                query_param(link, "limit").as_deref(),
                Some("2"),
                "{url}: limit carried: {link}"
            );
            if let Some((k, v)) = filter.split_once('=') {
                assert_eq!(
                    query_param(link, k).as_deref(),
                    Some(v),
                    "{url}: {k} carried: {link}"
                );
            }
        }
        assert!(next.contains("max_id="), "{url}: {next}");
        assert!(prev.contains("min_id="), "{url}: {prev}");
        assert_eq!(query_param(&next, "min_id"), None, "{url}: {next}");
        assert_eq!(query_param(&prev, "max_id"), None, "{url}: {prev}");
        for link in [&next, &prev] {
            let cursors = url::Url::parse(link)
                .unwrap()
                .query_pairs()
                .filter(|(k, _)| k.ends_with("_id"))
                .count();
            assert_eq!(cursors, 1, "{url}: exactly one cursor per link: {link}");
        }
        // Walking next links visits everything once; walking prev links
        // from the last page comes back up.
        let mut seen = Vec::new();
        let mut page = q("limit=2");
        let mut last_prev = None;
        for _ in 0..10 {
            let r = app.get(&page, token).await;
            let list = r.list();
            if list.is_empty() {
                assert!(
                    r.header("link").is_none(),
                    "{page}: no Link on the empty last page"
                );
                break;
            }
            seen.extend(ids(&list));
            let links = r.links();
            last_prev = links.prev;
            page = app.local_path(&links.next.expect("next link"));
        }
        let all: Vec<String> = vec![s5, s4, s3, s2, s1].into_iter().cloned().collect();
        assert_eq!(
            seen, all,
            "{path}: walking next links visits each status once"
        );
        let mut page = app.local_path(&last_prev.expect("prev link on the last page"));
        let mut up = Vec::new();
        for _ in 0..10 {
            let r = app.get(&page, token).await;
            let list = r.list();
            if list.is_empty() {
                break;
            }
            up.splice(0..0, ids(&list));
            page = app.local_path(&r.links().prev.expect("prev link"));
        }
        assert_eq!(
            up,
            all[..4],
            "{path}: walking prev links from the oldest page climbs back to the newest"
        );
        // Bad values are 400, never 500.
        for bad in [
            "limit=-1",
            "limit=abc",
            "max_id=abc",
            "since_id=-",
            "min_id=1.5",
        ] {
            let r = app.get(&q(bad), token).await;
            assert_eq!(r.status, 400, "{path}?{bad}: {}", r.text);
            assert!(!r.error().is_empty());
        }
    }
    // The Link header never leaks an access token given in the query.
    let r = app
        .get(
            &format!(
                "/api/v1/timelines/home?limit=2&access_token={}",
                alice.token
            ),
            None,
        )
        .await;
    assert_eq!(r.list().len(), 2, "access_token in the query authenticates");
    assert!(
        !r.header("link").unwrap().contains(&alice.token),
        "the Link header must not carry access_token"
    );
}

#[tokio::test]
async fn limit_defaults_to_20_and_is_clamped_to_40() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    for i in 0..45 {
        app.post_status(&alice, &format!("n{i}")).await;
    }
    let path = format!("/api/v1/accounts/{}/statuses", alice.id);
    // (query, expected length)
    let cases = [
        ("", 20),
        ("?limit=5", 5),
        ("?limit=40", 40),
        ("?limit=41", 40),
        ("?limit=1000", 40),
    ];
    for (query, len) in cases {
        assert_eq!(
            app.list(&format!("{path}{query}"), None).await.len(),
            len,
            "account statuses{query}"
        );
        assert_eq!(
            app.list(&format!("/api/v1/timelines/public{query}"), None)
                .await
                .len(),
            len,
            "public{query}"
        );
    }
    let r = app.get(&format!("{path}?limit=-5"), None).await;
    assert_eq!(
        r.expect(400)["error"],
        "Pagination values for `offset` and `limit` must be positive"
    );
}

/// Checks that every cursor page of `path` is the matching slice of the
/// whole list (read with `limit=40`): `max_id`, `min_id` and `since_id`
/// around each entry, two at a time.
async fn assert_pages_agree(app: &TestApp, path: &str, user: &User) {
    let full = ids(&app.list(&format!("{path}?limit=40"), Some(user)).await);
    let n = full.len();
    assert!(n >= 3, "{path}: too short to check paging: {full:?}");
    for (k, id) in full.iter().enumerate() {
        // (params, expected slice, rule)
        let cases = [
            (
                format!("max_id={id}&limit=2"),
                &full[(k + 1).min(n)..(k + 3).min(n)],
                "max_id: the two just older",
            ),
            (
                format!("min_id={id}&limit=2"),
                &full[k.saturating_sub(2)..k],
                "min_id: the two just newer, newest first",
            ),
            (
                format!("since_id={id}&limit=2"),
                &full[..k.min(2)],
                "since_id: the newest two above",
            ),
        ];
        for (params, expected, rule) in cases {
            let got = ids(&app.list(&format!("{path}?{params}"), Some(user)).await);
            assert_eq!(
                got, expected,
                "{path}?{params}: {rule}; whole list {full:?}"
            );
        }
    }
}

#[tokio::test]
async fn home_pages_agree_with_the_whole_list() {
    let app = TestApp::spawn_with(|c| c.large_account_threshold = 2).await;
    let reader = app.user().await;
    let fan = app.user().await;
    let star = app.user().await;
    let friend = app.user().await;
    app.home(&reader).await;
    app.follow(&reader, &star).await;
    app.follow(&fan, &star).await;
    app.follow(&reader, &friend).await;
    app.settle().await;
    for i in 0..4 {
        app.post_status(&star, &format!("star {i}")).await;
        app.post_status(&friend, &format!("friend {i}")).await;
        app.post_status(&reader, &format!("me {i}")).await;
    }
    app.settle().await;
    let home = app.home(&reader).await;
    assert_eq!(
        home.len(),
        12,
        "own, fanned-out and merged (large) posts: {:?}",
        ids(&home)
    );
    assert_pages_agree(&app, "/api/v1/timelines/home", &reader).await;
    // The same on the other lists.
    assert_pages_agree(&app, "/api/v1/timelines/public", &reader).await;
    assert_pages_agree(
        &app,
        &format!("/api/v1/accounts/{}/statuses", star.id),
        &reader,
    )
    .await;
}

/// An approved follow request merges the followee's posts (followers-only
/// ones too) into the requester's home, like a follow does.
#[tokio::test]
async fn an_approved_follow_request_fills_the_home() {
    let app = TestApp::spawn().await;
    let lock = app.user().await;
    let asker = app.user().await;
    app.update_profile(&lock, json!({"locked": true})).await;
    let public = id_of(&app.post_status(&lock, "public").await);
    let private = app.post_visible(&lock, "followers only", "private").await;
    app.home(&asker).await;
    app.follow(&asker, &lock).await;
    app.settle().await;
    assert_home(&app, &asker, &[], "a pending request shows nothing").await;
    app.get(&format!("/api/v1/statuses/{private}"), Some(&asker.token))
        .await
        .expect(404);
    app.post_empty(
        &format!("/api/v1/follow_requests/{}/authorize", asker.id),
        Some(&lock.token),
    )
    .await
    .expect(200);
    app.settle().await;
    assert_home(
        &app,
        &asker,
        &[&public, &private],
        "approved: earlier posts are merged in",
    )
    .await;
    let later = app.post_visible(&lock, "later", "private").await;
    app.settle().await;
    assert_home(
        &app,
        &asker,
        &[&public, &private, &later],
        "and later posts are fanned out",
    )
    .await;
}

/// Home pages are written from fragments rendered once per version of a
/// status and of an account: each change must show on the next read, for
/// the writer and for everyone else, and the viewer's own flags must never
/// leak from one reader's page into another's.
#[tokio::test]
async fn home_pages_show_each_change_at_once_and_flags_per_reader() {
    let app = TestApp::spawn().await;
    let author = app.user().await;
    let fan = app.user().await;
    let other = app.user().await;
    app.follow(&fan, &author).await;
    app.follow(&other, &author).await;
    let post = id_of(
        &app.post_status(&author, "#rendered once, shown often")
            .await,
    );
    app.settle().await;
    let entry = |home: Vec<Value>| {
        home.into_iter()
            .find(|s| s["id"] == post.as_str())
            .expect("the post is on the home page")
    };
    // Both readers render (and cache) the same status first.
    for reader in [&fan, &other] {
        let s = entry(app.home(reader).await);
        assert_status_shape(&s, true);
        assert_eq!(s["favourites_count"], 0);
        assert_eq!(s["favourited"], false);
        assert_eq!(s["tags"][0]["name"], "rendered");
    }
    app.act(&fan, &post, "favourite").await.expect(200);
    let s = entry(app.home(&fan).await);
    assert_eq!(s["favourites_count"], 1, "the writer sees the new counter");
    assert_eq!(s["favourited"], true);
    let s = entry(app.home(&other).await);
    assert_eq!(s["favourites_count"], 1, "another reader sees it too");
    assert_eq!(s["favourited"], false, "flags are the reader's own");
    app.update_profile(&author, json!({ "display_name": "Renamed Author" }))
        .await;
    for reader in [&fan, &other] {
        let s = entry(app.home(reader).await);
        assert_eq!(s["account"]["display_name"], "Renamed Author");
    }
    app.act(&fan, &post, "unfavourite").await.expect(200);
    let s = entry(app.home(&other).await);
    assert_eq!(s["favourites_count"], 0);
}
