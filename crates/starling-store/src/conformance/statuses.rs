//! Conformance cases for [`crate::StatusStore`]: statuses and what they
//! imply (counters, tags, idempotency keys, events), boosts, replies,
//! deletes, favourites, the status listings and hashtag search.

use std::cmp::Reverse;

use starling_domain::{EventKind, Id, IdGenerator, Page, Status, Visibility};

use super::support::{
    assert_no_events, boost, check_paging, create, created_event, newest_first, post, post_as,
    reload, reload_status, reply, rows_newest_first, sorted, stamp, stamped, status_ids, tagged,
    take_events, user,
};
use crate::{AccountStatusFilter, Created, IdempotencyKey, NewStatus, Store};

const EVERYTHING: AccountStatusFilter = AccountStatusFilter {
    only_media: false,
    exclude_replies: false,
    exclude_reblogs: false,
    up_to: Visibility::Direct,
    mentioning: None,
    tagged: None,
};

pub async fn status_round_trip_and_author_counters(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;
    let (app, _) = super::app(&ids);
    store.create_app(&app).await.expect("create app");
    let question = create(store, post(&ids, bob.id, "a question")).await;
    take_events(store).await;

    // Every field set; mentions and tags deliberately not in sorted order.
    let mut mentions = vec![bob.id, carol.id];
    mentions.sort_unstable_by_key(|m| Reverse(*m));
    let id = ids.next(alice.id.shard());
    let status = Status {
        id,
        account_id: alice.id,
        reblog_of_id: None,
        in_reply_to_id: Some(question.id),
        in_reply_to_account_id: Some(bob.id),
        text: "@bob @carol ✨ about #SQLite and #Rust".into(),
        content: "<p>@bob @carol ✨ about <a href=\"#\">#SQLite</a> &amp; #Rust</p>".into(),
        spoiler_text: "cw: code".into(),
        sensitive: true,
        visibility: Visibility::Unlisted,
        language: Some("de".into()),
        app_id: Some(app.id),
        mentions,
        tags: vec!["sqlite".into(), "rust".into()],
        created_at_ms: id.unix_ms() as i64,
        replies_count: 0,
        reblogs_count: 0,
        favourites_count: 0,
        media: Vec::new(),
    };
    create(store, status.clone()).await;
    assert_eq!(
        store.status(id).await.expect("read status"),
        Some(status.clone()),
        "every field of a status round-trips (mentions and tags in their given order)"
    );
    assert_eq!(
        take_events(store).await,
        vec![created_event(&status)],
        "create_status stores one StatusCreated event stamped with the status's id and time"
    );
    let author = reload(store, alice.id).await;
    assert_eq!(
        author.statuses_count, 1,
        "the author's statuses_count goes up"
    );
    assert_eq!(
        author.last_status_at_ms,
        Some(status.created_at_ms),
        "the author's last_status_at is the new status's time"
    );

    let second = create(store, post_as(&ids, alice.id, "later", Visibility::Private)).await;
    let author = reload(store, alice.id).await;
    assert_eq!(author.statuses_count, 2, "each status counts");
    assert_eq!(author.last_status_at_ms, Some(second.created_at_ms));

    let missing = ids.next(alice.id.shard());
    assert_eq!(store.status(missing).await.expect("read status"), None);
    let mut got = store
        .statuses(&[missing, second.id, status.id])
        .await
        .expect("multi-get");
    got.sort_unstable_by_key(|s| s.id);
    assert_eq!(
        got,
        vec![status, second],
        "statuses() returns those that exist and skips missing ids"
    );
    assert!(store.statuses(&[]).await.expect("multi-get").is_empty());
}

pub async fn replies_bump_their_parent_only(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let root = create(store, post(&ids, alice.id, "root")).await;
    take_events(store).await;

    let answer = create(store, reply(&ids, bob.id, &root, "answer")).await;
    assert_eq!(
        take_events(store).await,
        vec![created_event(&answer)],
        "a reply stores exactly its own StatusCreated event"
    );
    assert_eq!(
        reload_status(store, root.id).await.replies_count,
        1,
        "a reply bumps its parent's replies_count"
    );
    create(store, reply(&ids, alice.id, &root, "self-reply")).await;
    assert_eq!(reload_status(store, root.id).await.replies_count, 2);

    create(store, reply(&ids, alice.id, &answer, "deeper")).await;
    assert_eq!(
        reload_status(store, answer.id).await.replies_count,
        1,
        "a reply to a reply bumps that reply"
    );
    assert_eq!(
        reload_status(store, root.id).await.replies_count,
        2,
        "only the direct parent's replies_count moves, not the thread root's"
    );
    assert_eq!(reload(store, bob.id).await.statuses_count, 1);
    assert_eq!(reload(store, alice.id).await.statuses_count, 3);
}

pub async fn boosts_count_once_per_account(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;
    let original = create(store, post(&ids, alice.id, "boost me")).await;
    let other = create(store, post(&ids, alice.id, "not boosted")).await;
    take_events(store).await;

    let bobs = create(store, boost(&ids, bob.id, &original)).await;
    assert_eq!(
        take_events(store).await,
        vec![created_event(&bobs)],
        "a boost stores its StatusCreated event"
    );
    assert_eq!(
        reload_status(store, original.id).await.reblogs_count,
        1,
        "a boost bumps the original's reblogs_count"
    );
    assert_eq!(
        reload(store, bob.id).await.statuses_count,
        1,
        "a boost counts as a status of its booster"
    );
    assert_eq!(
        store
            .reblog_by(bob.id, original.id)
            .await
            .expect("reblog_by"),
        Some(bobs.clone())
    );
    assert_eq!(
        store
            .reblog_by(carol.id, original.id)
            .await
            .expect("reblog_by"),
        None
    );
    assert_eq!(
        store.reblog_by(bob.id, other.id).await.expect("reblog_by"),
        None
    );
    let missing = ids.next(alice.id.shard());
    assert_eq!(
        store
            .reblogged_among(bob.id, &[other.id, original.id, missing])
            .await
            .expect("reblogged_among"),
        vec![original.id],
        "reblogged_among lists only the boosted ones"
    );
    assert!(store
        .reblogged_among(carol.id, &[original.id])
        .await
        .expect("reblogged_among")
        .is_empty());

    let again = boost(&ids, bob.id, &original);
    let created = store
        .create_status(&NewStatus {
            status: again.clone(),
            idempotency: None,
        })
        .await
        .expect("create status");
    assert_eq!(
        created,
        Created::Existing(bobs.id),
        "a second boost of one status by one account returns the first boost"
    );
    assert_no_events(store, "a repeated boost writes nothing").await;
    assert_eq!(
        store.status(again.id).await.expect("read status"),
        None,
        "the repeated boost was not stored"
    );
    assert_eq!(
        reload_status(store, original.id).await.reblogs_count,
        1,
        "a repeated boost is not counted"
    );
    assert_eq!(reload(store, bob.id).await.statuses_count, 1);

    let carols = create(store, boost(&ids, carol.id, &original)).await;
    assert_eq!(
        reload_status(store, original.id).await.reblogs_count,
        2,
        "each account's boost counts"
    );
    assert_eq!(
        store
            .reblogged_by(original.id, &Page::first(10))
            .await
            .expect("reblogged_by"),
        rows_newest_first(vec![(bobs.id, bob.id), (carols.id, carol.id)]),
        "reblogged_by lists (boost id, booster), newest first"
    );
}

pub async fn idempotency_keys_hold_until_expiry(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let t0 = ids.next(alice.id.shard()).unix_ms() as i64;
    // A status at `at_ms` under `key`, kept for `ttl` ms.
    let keyed = |author: Id, at_ms: i64, key: &str, ttl: i64| NewStatus {
        status: Status {
            created_at_ms: at_ms,
            ..post(&ids, author, "keyed")
        },
        idempotency: Some(IdempotencyKey {
            key: key.to_owned(),
            expires_at_ms: at_ms + ttl,
        }),
    };

    let first = keyed(alice.id, t0, "k1", 1000);
    assert_eq!(
        store.create_status(&first).await.expect("create"),
        Created::New(Box::new(first.status.clone()))
    );
    take_events(store).await;

    let retry = keyed(alice.id, t0 + 999, "k1", 1000);
    assert_eq!(
        store.create_status(&retry).await.expect("create"),
        Created::Existing(first.status.id),
        "a live idempotency key returns the status it made"
    );
    assert_no_events(store, "a repeated idempotency key writes nothing").await;
    assert_eq!(
        store.status(retry.status.id).await.expect("read"),
        None,
        "the retry was not stored"
    );
    assert_eq!(
        reload(store, alice.id).await.statuses_count,
        1,
        "the retry was not counted"
    );

    let bobs = keyed(bob.id, t0 + 10, "k1", 1000);
    assert_eq!(
        store.create_status(&bobs).await.expect("create"),
        Created::New(Box::new(bobs.status.clone())),
        "idempotency keys of different accounts do not collide"
    );
    let other_key = keyed(alice.id, t0 + 20, "k2", 1000);
    assert_eq!(
        store.create_status(&other_key).await.expect("create"),
        Created::New(Box::new(other_key.status.clone())),
        "another key of the same account is another status"
    );
    take_events(store).await;

    // expires_at_ms <= the new status's created_at_ms: the key is spent.
    let after_expiry = keyed(alice.id, t0 + 1000, "k1", 1000);
    assert_eq!(
        store.create_status(&after_expiry).await.expect("create"),
        Created::New(Box::new(after_expiry.status.clone())),
        "an idempotency key expires at expires_at_ms"
    );
    assert_eq!(
        take_events(store).await,
        vec![created_event(&after_expiry.status)]
    );

    let retry = keyed(alice.id, t0 + 1500, "k1", 1000);
    assert_eq!(
        store.create_status(&retry).await.expect("create"),
        Created::Existing(after_expiry.status.id),
        "a reused expired key is live again for the status it made"
    );

    // The key outlives its status.
    store
        .delete_status(
            alice.id,
            after_expiry.status.id,
            stamp(&ids, alice.id.shard()),
        )
        .await
        .expect("delete")
        .expect("deleted");
    take_events(store).await;
    let retry = keyed(alice.id, t0 + 1600, "k1", 1000);
    assert_eq!(
        store.create_status(&retry).await.expect("create"),
        Created::Existing(after_expiry.status.id),
        "a live key returns its status's id even after that status was deleted"
    );
    assert_no_events(store, "a repeated key after a delete writes nothing").await;
}

pub async fn delete_status_requires_its_author(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let status = create(store, tagged(&ids, alice.id, &["mine"])).await;
    take_events(store).await;

    let deleted = store
        .delete_status(bob.id, status.id, stamp(&ids, bob.id.shard()))
        .await
        .expect("delete");
    assert_eq!(deleted, None, "only the author can delete a status");
    let missing = ids.next(alice.id.shard());
    assert_eq!(
        store
            .delete_status(alice.id, missing, stamp(&ids, alice.id.shard()))
            .await
            .expect("delete"),
        None,
        "deleting a missing status is None"
    );
    assert_no_events(store, "a refused delete writes nothing").await;
    assert_eq!(
        reload_status(store, status.id).await,
        status,
        "a refused delete changes nothing"
    );
    assert_eq!(reload(store, alice.id).await.statuses_count, 1);
    assert_eq!(
        status_ids(
            store
                .tag_statuses("mine", &Page::first(10))
                .await
                .expect("tag")
        ),
        vec![status.id]
    );
}

pub async fn delete_status_cleans_up_everything(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;
    let dave = user(store, &ids, "dave").await;
    let parent = create(store, post(&ids, carol.id, "parent")).await;
    let doomed = create(
        store,
        Status {
            tags: vec!["doomed".into()],
            ..reply(&ids, alice.id, &parent, "#doomed")
        },
    )
    .await;
    let kept = create(store, tagged(&ids, alice.id, &["doomed"])).await;
    let bobs = create(store, boost(&ids, bob.id, &doomed)).await;
    let daves = create(store, boost(&ids, dave.id, &doomed)).await;
    for who in [bob.id, carol.id] {
        assert!(store
            .favourite(who, doomed.id, stamp(&ids, who.shard()))
            .await
            .expect("favourite"));
    }
    take_events(store).await;

    let at = stamp(&ids, alice.id.shard());
    let deleted = store
        .delete_status(alice.id, doomed.id, at)
        .await
        .expect("delete");
    assert_eq!(
        deleted.map(|s| s.id),
        Some(doomed.id),
        "delete_status returns the deleted status"
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::StatusDeleted {
                status_id: doomed.id,
                author_id: alice.id,
                reblog_of_id: None,
                public: doomed.is_public_post(),
                tags: doomed.tags.clone(),
            }
        )],
        "one StatusDeleted event, stamped with the stamp, stands for the status and its boosts"
    );
    assert_eq!(
        store.status(doomed.id).await.expect("read"),
        None,
        "the status is gone"
    );
    assert!(
        store
            .statuses(&[bobs.id, daves.id])
            .await
            .expect("multi-get")
            .is_empty(),
        "the status's boosts are gone"
    );
    assert_eq!(
        store.reblog_by(bob.id, doomed.id).await.expect("reblog_by"),
        None
    );
    assert!(store
        .reblogged_by(doomed.id, &Page::first(10))
        .await
        .expect("reblogged_by")
        .is_empty());
    assert_eq!(
        reload(store, alice.id).await.statuses_count,
        1,
        "the author's statuses_count goes down"
    );
    assert_eq!(
        reload(store, bob.id).await.statuses_count,
        0,
        "boosters' statuses_count goes down"
    );
    assert_eq!(
        reload(store, dave.id).await.statuses_count,
        0,
        "boosters' statuses_count goes down"
    );
    assert_eq!(
        reload_status(store, parent.id).await.replies_count,
        0,
        "the parent's replies_count goes down"
    );
    assert!(
        store
            .favourited_among(bob.id, &[doomed.id])
            .await
            .expect("favourited_among")
            .is_empty(),
        "the status's favourites are gone"
    );
    assert!(store
        .favourites(carol.id, &Page::first(10))
        .await
        .expect("favourites")
        .is_empty());
    assert!(store
        .favourited_by(doomed.id, &Page::first(10))
        .await
        .expect("favourited_by")
        .is_empty());
    assert_eq!(
        status_ids(
            store
                .tag_statuses("doomed", &Page::first(10))
                .await
                .expect("tag")
        ),
        vec![kept.id],
        "the status is gone from its hashtag listing, other statuses stay"
    );
    assert!(store
        .descendants(parent.id, 10)
        .await
        .expect("descendants")
        .is_empty());
    assert!(store
        .account_statuses(bob.id, &EVERYTHING, &Page::first(10))
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .delete_status(alice.id, doomed.id, stamp(&ids, alice.id.shard()))
            .await
            .expect("delete"),
        None,
        "a second delete finds nothing"
    );
    assert_no_events(store, "a second delete writes nothing").await;
}

pub async fn deleting_a_boost_fixes_the_original(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let original = create(store, post(&ids, alice.id, "boost me")).await;
    let bobs = create(store, boost(&ids, bob.id, &original)).await;
    assert!(store
        .favourite(bob.id, original.id, stamp(&ids, bob.id.shard()))
        .await
        .expect("favourite"));
    take_events(store).await;

    let at = stamp(&ids, bob.id.shard());
    assert_eq!(
        store
            .delete_status(bob.id, bobs.id, at)
            .await
            .expect("delete")
            .map(|s| s.id),
        Some(bobs.id)
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::StatusDeleted {
                status_id: bobs.id,
                author_id: bob.id,
                reblog_of_id: Some(original.id),
                public: false,
                tags: bobs.tags.clone(),
            }
        )],
        "deleting a boost emits StatusDeleted naming what it boosted"
    );
    let now = reload_status(store, original.id).await;
    assert_eq!(
        now.reblogs_count, 0,
        "deleting a boost lowers the original's reblogs_count"
    );
    assert_eq!(
        now.favourites_count, 1,
        "deleting a boost leaves the original's favourites"
    );
    assert_eq!(reload(store, bob.id).await.statuses_count, 0);
    assert_eq!(reload(store, alice.id).await.statuses_count, 1);
    assert_eq!(
        store
            .reblog_by(bob.id, original.id)
            .await
            .expect("reblog_by"),
        None
    );

    let again = create(store, boost(&ids, bob.id, &original)).await;
    assert_eq!(
        take_events(store).await,
        vec![created_event(&again)],
        "after unboosting, boosting again is new"
    );
    assert_eq!(reload_status(store, original.id).await.reblogs_count, 1);
}

pub async fn favourites_are_idempotent(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let status = create(store, post(&ids, alice.id, "like me")).await;
    let other = create(store, post(&ids, alice.id, "or me")).await;
    take_events(store).await;

    let at = stamp(&ids, bob.id.shard());
    assert!(
        store
            .favourite(bob.id, status.id, at)
            .await
            .expect("favourite"),
        "a new favourite is true"
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::Favourited {
                account_id: bob.id,
                status_id: status.id,
                author_id: alice.id,
            }
        )],
        "a favourite emits Favourited naming the status's author"
    );
    assert_eq!(
        reload_status(store, status.id).await.favourites_count,
        1,
        "a favourite bumps the counter"
    );
    assert!(
        !store
            .favourite(bob.id, status.id, stamp(&ids, bob.id.shard()))
            .await
            .expect("favourite"),
        "a repeated favourite is false"
    );
    assert_no_events(store, "a repeated favourite writes nothing").await;
    assert_eq!(
        reload_status(store, status.id).await.favourites_count,
        1,
        "a repeated favourite is not counted"
    );
    let missing = ids.next(alice.id.shard());
    assert!(
        !store
            .favourite(bob.id, missing, stamp(&ids, bob.id.shard()))
            .await
            .expect("favourite"),
        "favouriting a missing status is false"
    );
    assert_no_events(store, "favouriting a missing status writes nothing").await;
    assert_eq!(
        store
            .favourited_among(bob.id, &[other.id, status.id, missing])
            .await
            .expect("favourited_among"),
        vec![status.id]
    );
    assert_eq!(
        store
            .favourites(bob.id, &Page::first(10))
            .await
            .expect("favourites"),
        vec![(at.id, status.id)],
        "favourites lists (favourite id = stamp id, status id)"
    );
    assert_eq!(
        store
            .favourited_by(status.id, &Page::first(10))
            .await
            .expect("favourited_by"),
        vec![(at.id, bob.id)]
    );

    assert!(
        store
            .unfavourite(bob.id, status.id)
            .await
            .expect("unfavourite"),
        "unfavourite removes it"
    );
    assert_eq!(
        reload_status(store, status.id).await.favourites_count,
        0,
        "unfavourite lowers the counter"
    );
    assert!(store
        .favourited_among(bob.id, &[status.id])
        .await
        .expect("favourited_among")
        .is_empty());
    assert!(
        !store
            .unfavourite(bob.id, status.id)
            .await
            .expect("unfavourite"),
        "unfavourite without a favourite is false"
    );
    assert!(!store
        .unfavourite(bob.id, other.id)
        .await
        .expect("unfavourite"));
    assert_eq!(
        reload_status(store, status.id).await.favourites_count,
        0,
        "the counter never goes below zero"
    );
    assert!(
        store
            .favourite(bob.id, status.id, stamp(&ids, bob.id.shard()))
            .await
            .expect("favourite"),
        "favouriting again after unfavouriting is new"
    );
    assert_eq!(reload_status(store, status.id).await.favourites_count, 1);
}

pub async fn who_favourited_and_boosted_is_paged(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let mut fans = Vec::new();
    for name in ["f1", "f2", "f3", "f4", "f5"] {
        fans.push(user(store, &ids, name).await);
    }
    let status = create(store, post(&ids, alice.id, "popular")).await;
    let mut favourites = Vec::new();
    let mut boosts = Vec::new();
    for fan in &fans {
        let at = stamp(&ids, fan.id.shard());
        assert!(store
            .favourite(fan.id, status.id, at)
            .await
            .expect("favourite"));
        favourites.push((at.id, fan.id));
        boosts.push((create(store, boost(&ids, fan.id, &status)).await.id, fan.id));
    }
    let favourites = rows_newest_first(favourites);
    let boosts = rows_newest_first(boosts);
    check_paging(
        "favourited_by",
        &favourites,
        |r| r.0,
        |p| Box::pin(async move { store.favourited_by(status.id, &p).await }),
    )
    .await;
    check_paging(
        "reblogged_by",
        &boosts,
        |r| r.0,
        |p| Box::pin(async move { store.reblogged_by(status.id, &p).await }),
    )
    .await;

    // One account's favourites across statuses.
    let fan = fans[0].id;
    let first = favourites
        .iter()
        .find(|r| r.1 == fan)
        .expect("fan's favourite")
        .0;
    let mut rows = vec![(first, status.id)];
    for n in 0..4 {
        let other = create(store, post(&ids, alice.id, &format!("more {n}"))).await;
        let at = stamp(&ids, fan.shard());
        assert!(store.favourite(fan, other.id, at).await.expect("favourite"));
        rows.push((at.id, other.id));
    }
    let rows = rows_newest_first(rows);
    check_paging(
        "favourites",
        &rows,
        |r| r.0,
        |p| Box::pin(async move { store.favourites(fan, &p).await }),
    )
    .await;
}

pub async fn descendants_walk_the_thread_in_id_order(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let root = create(store, post(&ids, alice.id, "root")).await;
    let a = create(store, reply(&ids, bob.id, &root, "a")).await;
    let b = create(store, reply(&ids, alice.id, &a, "b")).await;
    let c = create(store, reply(&ids, alice.id, &root, "c")).await;
    let d = create(store, reply(&ids, bob.id, &b, "d")).await;
    let e = create(store, reply(&ids, bob.id, &c, "e")).await;
    let elsewhere = create(store, post(&ids, bob.id, "elsewhere")).await;
    create(
        store,
        reply(&ids, alice.id, &elsewhere, "not in the thread"),
    )
    .await;
    create(store, boost(&ids, bob.id, &root)).await;

    let thread = sorted(vec![a.id, b.id, c.id, d.id, e.id]);
    assert_eq!(
        status_ids(store.descendants(root.id, 20).await.expect("descendants")),
        thread,
        "descendants are every reply below, recursively, in id order (boosts are not replies)"
    );
    let first_three = status_ids(store.descendants(root.id, 3).await.expect("descendants"));
    assert_eq!(
        first_three.len(),
        3,
        "descendants returns limit replies when there are more"
    );
    assert!(
        first_three.windows(2).all(|w| w[0] < w[1]),
        "descendants come in id order"
    );
    assert!(
        first_three.iter().all(|id| thread.contains(id)),
        "a limited walk stays in the thread"
    );
    assert_eq!(
        status_ids(store.descendants(a.id, 20).await.expect("descendants")),
        sorted(vec![b.id, d.id]),
        "descendants of a reply are its own subtree"
    );
    assert!(
        store
            .descendants(d.id, 20)
            .await
            .expect("descendants")
            .is_empty(),
        "a leaf has no descendants"
    );
    let missing = ids.next(alice.id.shard());
    assert!(store
        .descendants(missing, 20)
        .await
        .expect("descendants")
        .is_empty());
}

pub async fn account_statuses_filter_and_page(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let bobs = create(store, post(&ids, bob.id, "bob's")).await;
    let public = create(store, post(&ids, alice.id, "public")).await;
    let unlisted = create(
        store,
        post_as(&ids, alice.id, "unlisted", Visibility::Unlisted),
    )
    .await;
    let private = create(
        store,
        post_as(&ids, alice.id, "private", Visibility::Private),
    )
    .await;
    let direct = create(store, post_as(&ids, alice.id, "direct", Visibility::Direct)).await;
    let self_reply = create(store, reply(&ids, alice.id, &public, "thread")).await;
    let other_reply = create(store, reply(&ids, alice.id, &bobs, "answer")).await;
    let boosted = create(store, boost(&ids, alice.id, &bobs)).await;
    let list = |filter: AccountStatusFilter| async move {
        status_ids(
            store
                .account_statuses(alice.id, &filter, &Page::first(50))
                .await
                .expect("account_statuses"),
        )
    };
    let ids_of = |v: &[&Status]| newest_first(v.iter().map(|s| s.id).collect());

    let all = ids_of(&[
        &public,
        &unlisted,
        &private,
        &direct,
        &self_reply,
        &other_reply,
        &boosted,
    ]);
    assert_eq!(
        list(EVERYTHING).await,
        all,
        "up_to Direct lists every status and boost of the account, newest first"
    );
    let up_to = |up_to| AccountStatusFilter {
        only_media: false,
        up_to,
        ..EVERYTHING
    };
    assert_eq!(
        list(up_to(Visibility::Public)).await,
        ids_of(&[&public, &self_reply, &other_reply, &boosted]),
        "up_to Public keeps public statuses only"
    );
    assert_eq!(
        list(up_to(Visibility::Unlisted)).await,
        ids_of(&[&public, &unlisted, &self_reply, &other_reply, &boosted]),
        "up_to Unlisted adds unlisted"
    );
    assert_eq!(
        list(up_to(Visibility::Private)).await,
        ids_of(&[
            &public,
            &unlisted,
            &private,
            &self_reply,
            &other_reply,
            &boosted
        ]),
        "up_to Private adds followers-only"
    );
    assert_eq!(
        list(AccountStatusFilter {
            only_media: false,
            exclude_replies: true,
            ..EVERYTHING
        })
        .await,
        ids_of(&[&public, &unlisted, &private, &direct, &self_reply, &boosted]),
        "exclude_replies drops replies to others and keeps self-replies"
    );
    assert_eq!(
        list(AccountStatusFilter {
            only_media: false,
            exclude_reblogs: true,
            ..EVERYTHING
        })
        .await,
        ids_of(&[
            &public,
            &unlisted,
            &private,
            &direct,
            &self_reply,
            &other_reply
        ]),
        "exclude_reblogs drops boosts"
    );
    assert_eq!(
        list(AccountStatusFilter {
            only_media: false,
            exclude_replies: true,
            exclude_reblogs: true,
            up_to: Visibility::Public,
            mentioning: None,
            tagged: None,
        })
        .await,
        ids_of(&[&public, &self_reply]),
        "filters combine"
    );
    let author = alice.id;
    check_paging(
        "account_statuses",
        &all,
        |id| *id,
        |p| {
            Box::pin(async move {
                store
                    .account_statuses(author, &EVERYTHING, &p)
                    .await
                    .map(status_ids)
            })
        },
    )
    .await;
    let pinned = AccountStatusFilter {
        only_media: false,
        exclude_reblogs: true,
        ..up_to(Visibility::Unlisted)
    };
    let pinned = &pinned;
    check_paging(
        "account_statuses (unlisted, no boosts)",
        &ids_of(&[&public, &unlisted, &self_reply, &other_reply]),
        |id| *id,
        |p| {
            Box::pin(async move {
                store
                    .account_statuses(author, pinned, &p)
                    .await
                    .map(status_ids)
            })
        },
    )
    .await;

    // `AccountStatusFilter::admits` (what the core filters cached statuses
    // with) agrees with the statement for every combination of filters.
    let mut to_bob = post_as(&ids, alice.id, "@bob hello", Visibility::Direct);
    to_bob.mentions = vec![bob.id];
    create(store, to_bob).await;
    let mut private_to_bob = tagged(&ids, alice.id, &["rust"]);
    private_to_bob.visibility = Visibility::Private;
    private_to_bob.mentions = vec![bob.id];
    create(store, private_to_bob).await;
    create(store, tagged(&ids, alice.id, &["rust", "tea"])).await;
    let mut unlisted_tagged = tagged(&ids, alice.id, &["tea"]);
    unlisted_tagged.visibility = Visibility::Unlisted;
    create(store, unlisted_tagged).await;
    let everything = store
        .account_statuses(alice.id, &EVERYTHING, &Page::first(50))
        .await
        .expect("account_statuses");
    let visibilities = [
        Visibility::Public,
        Visibility::Unlisted,
        Visibility::Private,
        Visibility::Direct,
    ];
    for up_to in visibilities {
        for mentioning in [None, Some(bob.id)] {
            for tagged in [None, Some("rust"), Some("tea"), Some("none")] {
                for (exclude_replies, exclude_reblogs) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let filter = AccountStatusFilter {
                        only_media: false,
                        exclude_replies,
                        exclude_reblogs,
                        up_to,
                        mentioning,
                        tagged: tagged.map(str::to_owned),
                    };
                    let expected: Vec<Id> = everything
                        .iter()
                        .filter(|s| filter.admits(s))
                        .map(|s| s.id)
                        .collect();
                    assert_eq!(
                        list(filter.clone()).await,
                        expected,
                        "admits and account_statuses agree on {filter:?}"
                    );
                }
            }
        }
    }
}

pub async fn public_statuses_are_public_originals(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let mut expected = Vec::new();
    for author in [alice.id, bob.id] {
        let public = create(store, post(&ids, author, "public")).await;
        expected.push(public.id);
        create(
            store,
            post_as(&ids, author, "unlisted", Visibility::Unlisted),
        )
        .await;
        create(store, post_as(&ids, author, "private", Visibility::Private)).await;
        create(store, post_as(&ids, author, "direct", Visibility::Direct)).await;
        expected.push(
            create(store, reply(&ids, author, &public, "self-reply"))
                .await
                .id,
        );
    }
    let alices = reload_status(store, expected[0]).await;
    create(store, reply(&ids, bob.id, &alices, "reply to someone else")).await;
    create(store, boost(&ids, bob.id, &alices)).await;
    expected.push(create(store, tagged(&ids, alice.id, &["late"])).await.id);
    let expected = newest_first(expected);

    assert_eq!(
        status_ids(
            store
                .public_statuses(&Page::first(50))
                .await
                .expect("public")
        ),
        expected,
        "public_statuses lists public statuses and self-replies; no boosts, replies to others, \
         or less public statuses"
    );
    check_paging(
        "public_statuses",
        &expected,
        |id| *id,
        |p| Box::pin(async move { store.public_statuses(&p).await.map(status_ids) }),
    )
    .await;
}

pub async fn tag_statuses_list_public_tagged_statuses(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let mut both = Vec::new();
    for author in [alice.id, bob.id, alice.id] {
        both.push(
            create(store, tagged(&ids, author, &["rust", "tokio"]))
                .await
                .id,
        );
    }
    let mut rust = both.clone();
    rust.push(create(store, tagged(&ids, bob.id, &["rust"])).await.id);
    let tokio_only = create(store, tagged(&ids, bob.id, &["tokio"])).await;
    create(store, post(&ids, alice.id, "no tags")).await;
    for visibility in [
        Visibility::Unlisted,
        Visibility::Private,
        Visibility::Direct,
    ] {
        create(
            store,
            Status {
                visibility,
                ..tagged(&ids, alice.id, &["rust"])
            },
        )
        .await;
    }
    let rust_status = reload_status(store, rust[0]).await;
    create(store, boost(&ids, bob.id, &rust_status)).await;
    let rust = newest_first(rust);

    assert_eq!(
        status_ids(
            store
                .tag_statuses("rust", &Page::first(50))
                .await
                .expect("tag")
        ),
        rust,
        "tag_statuses lists the public statuses with the tag (not boosts, nor less public ones)"
    );
    assert_eq!(
        status_ids(
            store
                .tag_statuses("tokio", &Page::first(50))
                .await
                .expect("tag")
        ),
        newest_first([both, vec![tokio_only.id]].concat()),
        "a status is listed under each of its tags"
    );
    assert!(
        store
            .tag_statuses("python", &Page::first(50))
            .await
            .expect("tag")
            .is_empty(),
        "an unknown tag lists nothing"
    );
    assert!(
        store
            .tag_statuses("rus", &Page::first(50))
            .await
            .expect("tag")
            .is_empty(),
        "tag_statuses matches the whole name, not a prefix"
    );
    check_paging(
        "tag_statuses",
        &rust,
        |id| *id,
        |p| Box::pin(async move { store.tag_statuses("rust", &p).await.map(status_ids) }),
    )
    .await;
}

pub async fn statuses_by_authors_merges_their_statuses(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;
    let mut wanted = Vec::new();
    let carols = create(store, post(&ids, carol.id, "carol's")).await;
    let mut carol_latest = carols.id;
    for round in 0..3 {
        for author in [alice.id, bob.id, carol.id] {
            let visibility = [Visibility::Public, Visibility::Private, Visibility::Direct][round];
            let s = create(store, post_as(&ids, author, "post", visibility)).await;
            if author == carol.id {
                carol_latest = s.id;
            } else {
                wanted.push(s.id);
            }
        }
    }
    wanted.push(create(store, boost(&ids, alice.id, &carols)).await.id);
    wanted.push(
        create(store, reply(&ids, bob.id, &carols, "reply"))
            .await
            .id,
    );
    let wanted = newest_first(wanted);
    let authors = [alice.id, bob.id];
    let authors = &authors[..];

    assert_eq!(
        status_ids(store.statuses_by_authors(authors, &Page::first(50)).await.expect("by authors")),
        wanted,
        "statuses_by_authors lists every status and boost of those authors, any visibility, newest first"
    );
    assert!(store
        .statuses_by_authors(&[], &Page::first(50))
        .await
        .expect("by authors")
        .is_empty());
    assert_eq!(
        status_ids(
            store
                .statuses_by_authors(&[carol.id], &Page::first(1))
                .await
                .expect("by authors")
        ),
        vec![carol_latest],
        "the page bounds apply to the merged list"
    );
    assert_eq!(
        store
            .recent_status_ids(carol.id, 2)
            .await
            .expect("recent ids"),
        status_ids(
            store
                .statuses_by_authors(&[carol.id], &Page::first(2))
                .await
                .expect("by authors")
        ),
        "recent_status_ids are the newest ids of statuses_by_authors"
    );
    let mut alices = store
        .recent_status_ids(alice.id, 50)
        .await
        .expect("recent ids");
    assert_eq!(alices.len(), 4, "every status and boost, any visibility");
    alices.retain(|id| !wanted.contains(id));
    assert!(alices.is_empty(), "only the author's own: {alices:?}");
    let nobody = ids.next(alice.id.shard());
    assert!(store
        .recent_status_ids(nobody, 10)
        .await
        .expect("recent ids")
        .is_empty());
    check_paging(
        "statuses_by_authors",
        &wanted,
        |id| *id,
        |p| Box::pin(async move { store.statuses_by_authors(authors, &p).await.map(status_ids) }),
    )
    .await;
}

pub async fn search_tags_by_prefix(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    create(store, tagged(&ids, alice.id, &["rustlang", "ruby"])).await;
    create(store, tagged(&ids, alice.id, &["rustacean", "trust"])).await;
    create(store, tagged(&ids, alice.id, &["rust", "rustlang"])).await;
    let search = |prefix: &'static str, limit, offset| async move {
        store
            .search_tags(prefix, limit, offset)
            .await
            .expect("search_tags")
    };

    assert_eq!(
        search("rust", 10, 0).await,
        vec!["rust", "rustacean", "rustlang"],
        "search_tags: the exact match first, then the others by name, each once"
    );
    assert_eq!(
        search("ru", 10, 0).await,
        vec!["ruby", "rust", "rustacean", "rustlang"],
        "by name without an exact match"
    );
    assert_eq!(
        search("rust", 1, 0).await,
        vec!["rust"],
        "limit caps the result"
    );
    assert_eq!(
        search("rust", 1, 1).await,
        vec!["rustacean"],
        "offset skips"
    );
    assert_eq!(search("rust", 10, 2).await, vec!["rustlang"]);
    assert!(
        search("rust", 10, 3).await.is_empty(),
        "an offset past the end is empty"
    );
    assert!(
        search("python", 10, 0).await.is_empty(),
        "no tag starts with it"
    );
    assert_eq!(
        search("trust", 10, 0).await,
        vec!["trust"],
        "prefix, not substring"
    );
}

pub async fn interactions_among_match_favourites_and_boosts(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let liked = create(store, post(&ids, alice.id, "liked")).await;
    let boosted = create(store, post(&ids, alice.id, "boosted")).await;
    let both = create(store, post(&ids, alice.id, "both")).await;
    let neither = create(store, post(&ids, alice.id, "neither")).await;
    for s in [&liked, &both] {
        store
            .favourite(bob.id, s.id, stamp(&ids, bob.id.shard()))
            .await
            .expect("favourite");
    }
    for s in [&boosted, &both] {
        create(store, boost(&ids, bob.id, s)).await;
    }
    // Alice's favourite of her own status is hers, not Bob's.
    store
        .favourite(alice.id, neither.id, stamp(&ids, alice.id.shard()))
        .await
        .expect("favourite");
    let missing = ids.next(alice.id.shard());
    // Repeated ids and more ids than any short list: each found once.
    let mut asked = vec![neither.id, both.id, missing, liked.id, boosted.id, both.id];
    for _ in 0..40 {
        asked.push(ids.next(alice.id.shard()));
    }
    // Only what lies among the ids asked, even with others nearby; and
    // nothing for an account that never favourited or boosted.
    let near = store
        .interactions_among(bob.id, &[neither.id])
        .await
        .expect("interactions_among");
    assert!(near.favourited.is_empty() && near.reblogged.is_empty());
    let span = store
        .interactions_among(bob.id, &[liked.id, neither.id])
        .await
        .expect("interactions_among");
    assert_eq!((span.favourited, span.reblogged), (vec![liked.id], vec![]));
    let quiet = user(store, &ids, "carol").await;
    let none = store
        .interactions_among(quiet.id, &asked)
        .await
        .expect("interactions_among");
    assert!(none.favourited.is_empty() && none.reblogged.is_empty());
    let got = store
        .interactions_among(bob.id, &asked)
        .await
        .expect("interactions_among");
    assert_eq!(
        sorted(got.favourited.clone()),
        sorted(vec![liked.id, both.id]),
        "favourited: what the account favourited among the ids, once each"
    );
    assert_eq!(
        sorted(got.reblogged.clone()),
        sorted(vec![boosted.id, both.id]),
        "reblogged: what the account boosted among the ids, once each"
    );
    assert_eq!(
        sorted(got.favourited),
        sorted(
            store
                .favourited_among(bob.id, &asked)
                .await
                .expect("favourited_among")
        ),
        "interactions_among agrees with favourited_among"
    );
    assert_eq!(
        sorted(got.reblogged),
        sorted(
            store
                .reblogged_among(bob.id, &asked)
                .await
                .expect("reblogged_among")
        ),
        "interactions_among agrees with reblogged_among"
    );
    assert_eq!(
        store
            .interactions_among(bob.id, &[])
            .await
            .expect("interactions_among"),
        crate::Interactions::default(),
        "no ids, nothing found"
    );
}

/// Deletes `status` as its author.
async fn delete(store: &dyn Store, ids: &IdGenerator, status: &Status) {
    store
        .delete_status(
            status.account_id,
            status.id,
            stamp(ids, status.account_id.shard()),
        )
        .await
        .expect("delete")
        .expect("the status existed");
}

pub async fn statuses_count_leaves_out_direct_posts(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let original = create(store, post(&ids, bob, "boost me")).await;
    let mut made = Vec::new();
    for visibility in [
        Visibility::Public,
        Visibility::Unlisted,
        Visibility::Private,
        Visibility::Direct,
    ] {
        made.push(create(store, post_as(&ids, alice, "hello", visibility)).await);
    }
    let private_boost = create(
        store,
        Status {
            visibility: Visibility::Private,
            ..boost(&ids, alice, &original)
        },
    )
    .await;
    assert_eq!(
        reload(store, alice).await.statuses_count,
        4,
        "public, unlisted and followers-only posts and boosts count; a direct one does not \
         (as Mastodon counts)"
    );
    let direct = made.pop().expect("the direct post");
    delete(store, &ids, &direct).await;
    assert_eq!(
        reload(store, alice).await.statuses_count,
        4,
        "deleting a direct post leaves the count alone"
    );
    let private = made.pop().expect("the followers-only post");
    delete(store, &ids, &private).await;
    assert_eq!(reload(store, alice).await.statuses_count, 3);
    // The original goes, and the boost with it.
    delete(store, &ids, &original).await;
    assert!(store
        .status(private_boost.id)
        .await
        .expect("read")
        .is_none());
    assert_eq!(
        reload(store, alice).await.statuses_count,
        2,
        "a boost removed with its original is uncounted"
    );
    assert_eq!(reload(store, bob).await.statuses_count, 0);
}

pub async fn replies_count_counts_public_and_unlisted_replies(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let parent = create(store, post(&ids, alice, "ask me")).await;
    let mut replies = Vec::new();
    for visibility in [
        Visibility::Public,
        Visibility::Unlisted,
        Visibility::Private,
        Visibility::Direct,
    ] {
        let r = Status {
            visibility,
            ..reply(&ids, bob, &parent, "an answer")
        };
        replies.push(create(store, r).await);
    }
    assert_eq!(
        reload_status(store, parent.id).await.replies_count,
        2,
        "only public and unlisted replies count (as Mastodon counts)"
    );
    let listed: Vec<Id> = store
        .descendants(parent.id, 10)
        .await
        .expect("descendants")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        replies.iter().map(|r| r.id).collect::<Vec<_>>(),
        "the thread holds every reply (readers filter it)"
    );
    // Deleting an uncounted reply leaves the count alone; a counted one
    // takes it down.
    delete(store, &ids, &replies[3]).await;
    delete(store, &ids, &replies[2]).await;
    assert_eq!(reload_status(store, parent.id).await.replies_count, 2);
    delete(store, &ids, &replies[1]).await;
    assert_eq!(reload_status(store, parent.id).await.replies_count, 1);
    delete(store, &ids, &replies[0]).await;
    assert_eq!(reload_status(store, parent.id).await.replies_count, 0);
}

pub async fn reblogged_by_lists_public_and_unlisted_boosts(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let original = create(store, post(&ids, alice, "boost me")).await;
    let mut boosts = Vec::new();
    for (name, visibility) in [
        ("bob", Visibility::Public),
        ("carol", Visibility::Private),
        ("dave", Visibility::Unlisted),
    ] {
        let booster = user(store, &ids, name).await.id;
        let b = Status {
            visibility,
            ..boost(&ids, booster, &original)
        };
        boosts.push(create(store, b).await);
    }
    let listed = store
        .reblogged_by(original.id, &Page::first(10))
        .await
        .expect("reblogged_by");
    assert_eq!(
        listed,
        rows_newest_first(vec![
            (boosts[0].id, boosts[0].account_id),
            (boosts[2].id, boosts[2].account_id),
        ]),
        "a followers-only boost is not listed (as Mastodon lists them)"
    );
    assert_eq!(
        reload_status(store, original.id).await.reblogs_count,
        3,
        "every boost counts (as Mastodon counts)"
    );
    assert_eq!(
        store
            .reblog_by(boosts[1].account_id, original.id)
            .await
            .expect("reblog_by")
            .map(|s| s.id),
        Some(boosts[1].id),
        "its booster still finds the followers-only boost"
    );
}

pub async fn tagged_filter_compares_tags_exactly(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let exact = create(store, tagged(&ids, alice, &["a_b"])).await;
    create(store, tagged(&ids, alice, &["axb"])).await;
    create(store, tagged(&ids, alice, &["a_bc"])).await;
    create(store, tagged(&ids, alice, &["xa_b"])).await;
    create(store, tagged(&ids, alice, &["a%b"])).await;
    let with = |tag: &str| AccountStatusFilter {
        only_media: false,
        exclude_replies: false,
        exclude_reblogs: false,
        up_to: Visibility::Direct,
        mentioning: None,
        tagged: Some(tag.to_owned()),
    };
    let found = status_ids(
        store
            .account_statuses(alice, &with("a_b"), &Page::first(10))
            .await
            .expect("account statuses"),
    );
    assert_eq!(
        found,
        vec![exact.id],
        "`_` is a character, not a wildcard; a tag matches whole"
    );
    let found = status_ids(
        store
            .account_statuses(alice, &with("a%"), &Page::first(10))
            .await
            .expect("account statuses"),
    );
    assert!(found.is_empty(), "`%` is a character, not a wildcard");
    for status in store
        .account_statuses(alice, &with("a_b"), &Page::first(10))
        .await
        .expect("account statuses")
    {
        assert!(with("a_b").admits(&status), "the Rust filter agrees");
    }
}
