//! Conformance cases for [`crate::GraphStore`]: accounts multi-get and
//! search, follows and follow requests with their counters and events, the
//! follower listings the fan-out walks, large accounts, blocks, mutes and
//! relationships.

use starling_domain::{
    Account, EventKind, FollowOptions, Id, IdGenerator, Page, Relationship, ShardId,
};

use super::support::{
    assert_no_events, check_paging, reload, rows_newest_first, set_display_name, sorted, stamp,
    stamped, take_events, take_kinds, user,
};
use crate::{FollowOutcome, Hidden, Stamp, Store};

const PLAIN: FollowOptions = FollowOptions {
    reblogs: true,
    notify: false,
};
const NOTIFY: FollowOptions = FollowOptions {
    reblogs: true,
    notify: true,
};
const QUIET: FollowOptions = FollowOptions {
    reblogs: false,
    notify: false,
};

/// `follower` follows (or with `request`, asks to follow) `followee`,
/// stamped on the follower's shard.
async fn follow(
    store: &dyn Store,
    ids: &IdGenerator,
    follower: Id,
    followee: Id,
    options: FollowOptions,
    request: bool,
) -> (FollowOutcome, Stamp) {
    let at = stamp(ids, follower.shard());
    let outcome = store
        .follow(follower, followee, options, request, at)
        .await
        .expect("follow");
    (outcome, at)
}

async fn relationship(store: &dyn Store, viewer: Id, target: Id) -> Relationship {
    let mut all = store
        .relationships(viewer, &[target])
        .await
        .expect("relationships");
    assert_eq!(all.len(), 1, "one relationship per target");
    all.remove(0)
}

/// `(followers_count, following_count)` of an account.
async fn counts(store: &dyn Store, id: Id) -> (i64, i64) {
    let a = reload(store, id).await;
    (a.followers_count, a.following_count)
}

fn account_ids(accounts: &[Account]) -> Vec<Id> {
    accounts.iter().map(|a| a.id).collect()
}

pub async fn accounts_multi_get_skips_missing(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let missing = ids.next(ShardId::for_key("ghost"));
    let mut got = store
        .accounts(&[bob.id, missing, alice.id])
        .await
        .expect("accounts");
    got.sort_unstable_by_key(|a| a.id);
    let mut expected = vec![alice, bob];
    expected.sort_unstable_by_key(|a| a.id);
    assert_eq!(
        got, expected,
        "accounts() returns those that exist and skips missing ids"
    );
    assert!(store.accounts(&[]).await.expect("accounts").is_empty());
}

pub async fn search_accounts_by_username_and_display_name(store: &dyn Store) {
    let ids = IdGenerator::new();
    // The exact match is created last, so it is neither first by id nor by
    // creation; a display name in another case must still match.
    let fan = user(store, &ids, "bob").await;
    set_display_name(store, fan.id, "Alice Fan").await;
    let bot = user(store, &ids, "alicebot").await;
    set_display_name(store, bot.id, "Alice Bot").await;
    let alicia = user(store, &ids, "Alicia").await;
    user(store, &ids, "xalice").await;
    let erin = user(store, &ids, "erin").await;
    set_display_name(store, erin.id, "Not Alice").await;
    let alice = user(store, &ids, "alice").await;
    let search = |prefix: &'static str, limit, offset| async move {
        account_ids(
            &store
                .search_accounts(prefix, limit, offset)
                .await
                .expect("search_accounts"),
        )
    };

    let found = search("alice", 10, 0).await;
    assert_eq!(
        found.first(),
        Some(&alice.id),
        "an exact username match comes first"
    );
    assert_eq!(
        sorted(found),
        sorted(vec![alice.id, fan.id, bot.id]),
        "search_accounts matches username and display-name prefixes, case-insensitively, \
         each account once (not substrings)"
    );
    assert_eq!(
        sorted(search("ali", 10, 0).await),
        sorted(vec![alice.id, fan.id, bot.id, alicia.id])
    );
    assert_eq!(
        search("alicia", 10, 0).await,
        vec![alicia.id],
        "usernames match case-insensitively"
    );
    assert!(search("zz", 10, 0).await.is_empty());

    assert_eq!(
        search("alice", 1, 0).await,
        vec![alice.id],
        "limit caps the result, exact first"
    );
    let rest = search("alice", 10, 1).await;
    assert_eq!(
        sorted(rest.clone()),
        sorted(vec![fan.id, bot.id]),
        "offset skips the first"
    );
    let (one, two) = (search("alice", 1, 1).await, search("alice", 1, 2).await);
    assert_eq!(
        sorted([one, two].concat()),
        sorted(rest),
        "pages by offset are disjoint and cover the matches"
    );
    assert!(
        search("alice", 10, 3).await.is_empty(),
        "an offset past the end is empty"
    );
}

pub async fn search_accounts_pages_agree(store: &dyn Store) {
    let ids = IdGenerator::new();
    // Matches that differ in everything an adapter might order by (username,
    // display name, creation, followers), more of them than a small page
    // asks for, so limit + offset must pick the same order every time.
    let mut matches = Vec::new();
    for name in ["alicez", "alicem", "alicea"] {
        matches.push(user(store, &ids, name).await.id);
    }
    for (name, display) in [("qq", "Alice Q"), ("rr", "alice b"), ("alicex", "Alice X")] {
        let a = user(store, &ids, name).await.id;
        set_display_name(store, a, display).await;
        matches.push(a);
    }
    user(store, &ids, "bob").await;
    // The last by name is the most followed.
    for name in ["f1", "f2", "f3"] {
        let fan = user(store, &ids, name).await.id;
        follow(store, &ids, fan, matches[0], PLAIN, false).await;
    }
    let fan = reload(store, matches[0]).await;
    assert_eq!(fan.followers_count, 3);
    let search = |limit, offset| async move {
        account_ids(
            &store
                .search_accounts("alice", limit, offset)
                .await
                .expect("search_accounts"),
        )
    };

    let all = search(20, 0).await;
    assert_eq!(
        sorted(all.clone()),
        sorted(matches.clone()),
        "every match, each once"
    );
    for limit in 1..=3 {
        for offset in 0..=all.len() {
            let end = (offset + limit).min(all.len());
            assert_eq!(
                search(limit, offset).await,
                all[offset..end].to_vec(),
                "search_accounts(limit {limit}, offset {offset}) must be that slice of the full \
                 result: pages by offset may not skip or repeat accounts"
            );
        }
    }
}

pub async fn follow_is_counted_once_and_updates_options(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;

    let (outcome, at) = follow(store, &ids, alice.id, bob.id, PLAIN, false).await;
    assert_eq!(outcome, FollowOutcome::Following);
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::Followed {
                follower_id: alice.id,
                followee_id: bob.id,
            }
        )],
        "a new follow emits one Followed event, stamped with the stamp"
    );
    assert_eq!(
        counts(store, alice.id).await,
        (0, 1),
        "the follower's following_count goes up"
    );
    assert_eq!(
        counts(store, bob.id).await,
        (1, 0),
        "the followee's followers_count goes up"
    );
    assert_eq!(
        relationship(store, alice.id, bob.id).await,
        Relationship {
            following: true,
            showing_reblogs: true,
            notifying: false,
            ..Relationship::none(bob.id)
        }
    );
    assert_eq!(
        relationship(store, bob.id, alice.id).await,
        Relationship {
            followed_by: true,
            ..Relationship::none(alice.id)
        }
    );
    let row = vec![(at.id, bob.id)];
    assert_eq!(
        store
            .following(alice.id, &Page::first(10))
            .await
            .expect("following"),
        row,
        "the follow row id is the stamp id"
    );
    assert_eq!(
        store
            .followers(bob.id, &Page::first(10))
            .await
            .expect("followers"),
        vec![(at.id, alice.id)]
    );

    let changed = FollowOptions {
        reblogs: false,
        notify: true,
    };
    let (outcome, _) = follow(store, &ids, alice.id, bob.id, changed, false).await;
    assert_eq!(
        outcome,
        FollowOutcome::Following,
        "a repeated follow is still Following"
    );
    assert_no_events(store, "a repeated follow emits nothing").await;
    assert_eq!(
        counts(store, alice.id).await,
        (0, 1),
        "a repeated follow is not counted"
    );
    assert_eq!(
        counts(store, bob.id).await,
        (1, 0),
        "a repeated follow is not counted"
    );
    let now = relationship(store, alice.id, bob.id).await;
    assert!(
        now.following && !now.showing_reblogs && now.notifying,
        "a repeated follow updates the options: {now:?}"
    );
    assert_eq!(
        store
            .following(alice.id, &Page::first(10))
            .await
            .expect("following"),
        row,
        "an existing follow keeps its row id"
    );
    assert_eq!(
        store.followees(alice.id, 10).await.expect("followees"),
        vec![(bob.id, changed)]
    );
    assert_eq!(
        store.follower_batch(bob.id, None, 10).await.expect("batch"),
        vec![(alice.id, changed)]
    );

    let (outcome, _) = follow(store, &ids, alice.id, bob.id, PLAIN, true).await;
    assert_eq!(
        outcome,
        FollowOutcome::Following,
        "asking to follow someone already followed is Following"
    );
    assert_no_events(store, "a request over an existing follow emits nothing").await;
    let now = relationship(store, alice.id, bob.id).await;
    assert!(
        now.following && !now.requested,
        "an existing follow does not become a request: {now:?}"
    );
    assert!(
        now.showing_reblogs && !now.notifying,
        "its options are updated: {now:?}"
    );
    assert!(store
        .follow_requests(bob.id, &Page::first(10))
        .await
        .expect("requests")
        .is_empty());
    assert_eq!(counts(store, bob.id).await, (1, 0));
}

pub async fn follow_requests_are_authorized_or_rejected(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;

    let (outcome, asked) = follow(store, &ids, alice.id, bob.id, PLAIN, true).await;
    assert_eq!(outcome, FollowOutcome::Requested);
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            asked,
            EventKind::FollowRequested {
                follower_id: alice.id,
                followee_id: bob.id,
            }
        )],
        "a new request emits one FollowRequested event"
    );
    assert_eq!(
        counts(store, alice.id).await,
        (0, 0),
        "a request is not counted"
    );
    assert_eq!(
        counts(store, bob.id).await,
        (0, 0),
        "a request is not counted"
    );
    let mine = relationship(store, alice.id, bob.id).await;
    assert!(
        mine.requested && !mine.following,
        "the requester sees requested: {mine:?}"
    );
    let theirs = relationship(store, bob.id, alice.id).await;
    assert!(
        theirs.requested_by && !theirs.followed_by,
        "the requested sees requested_by: {theirs:?}"
    );
    assert_eq!(
        store
            .follow_requests(bob.id, &Page::first(10))
            .await
            .expect("requests"),
        vec![(asked.id, alice.id)],
        "follow_requests lists (request id = stamp id, requester)"
    );
    assert!(
        store
            .followers(bob.id, &Page::first(10))
            .await
            .expect("followers")
            .is_empty(),
        "a request is not a follower"
    );
    assert!(store
        .following(alice.id, &Page::first(10))
        .await
        .expect("following")
        .is_empty());
    assert!(store
        .follower_batch(bob.id, None, 10)
        .await
        .expect("batch")
        .is_empty());
    assert!(store
        .followers_among(bob.id, &[alice.id])
        .await
        .expect("among")
        .is_empty());

    let (outcome, _) = follow(store, &ids, alice.id, bob.id, NOTIFY, true).await;
    assert_eq!(
        outcome,
        FollowOutcome::Requested,
        "a repeated request is still Requested"
    );
    assert_no_events(store, "a repeated request emits nothing").await;
    assert_eq!(
        store
            .follow_requests(bob.id, &Page::first(10))
            .await
            .expect("requests"),
        vec![(asked.id, alice.id)],
        "a repeated request keeps its row"
    );

    let (_, carols) = follow(store, &ids, carol.id, bob.id, PLAIN, true).await;
    take_events(store).await;
    assert_eq!(
        store
            .follow_requests(bob.id, &Page::first(10))
            .await
            .expect("requests"),
        rows_newest_first(vec![(asked.id, alice.id), (carols.id, carol.id)]),
        "follow_requests are newest first"
    );

    let granted = stamp(&ids, alice.id.shard());
    assert!(
        store
            .authorize_follow_request(bob.id, alice.id, granted)
            .await
            .expect("authorize"),
        "authorizing a pending request is true"
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            granted,
            EventKind::FollowRequestAuthorized {
                follower_id: alice.id,
                followee_id: bob.id,
            }
        )],
        "an authorized request emits FollowRequestAuthorized"
    );
    assert_eq!(
        counts(store, alice.id).await,
        (0, 1),
        "an authorized request is counted"
    );
    assert_eq!(
        counts(store, bob.id).await,
        (1, 0),
        "an authorized request is counted"
    );
    let mine = relationship(store, alice.id, bob.id).await;
    assert!(
        mine.following && !mine.requested,
        "the request became a follow: {mine:?}"
    );
    assert!(
        mine.showing_reblogs && mine.notifying,
        "the follow has the request's latest options: {mine:?}"
    );
    assert_eq!(
        store
            .followers(bob.id, &Page::first(10))
            .await
            .expect("followers"),
        vec![(granted.id, alice.id)],
        "the follow made by authorizing has the authorize stamp's id, as follow does"
    );
    assert_eq!(
        store
            .follow_requests(bob.id, &Page::first(10))
            .await
            .expect("requests"),
        vec![(carols.id, carol.id)],
        "an authorized request is no longer pending"
    );
    assert!(
        !store
            .authorize_follow_request(bob.id, alice.id, stamp(&ids, alice.id.shard()))
            .await
            .expect("authorize"),
        "authorizing twice is false"
    );
    assert_no_events(store, "a second authorize emits nothing").await;
    assert_eq!(counts(store, bob.id).await, (1, 0));

    assert!(
        store
            .reject_follow_request(bob.id, carol.id)
            .await
            .expect("reject"),
        "rejecting a pending request is true"
    );
    assert_no_events(store, "a rejection emits nothing").await;
    assert!(store
        .follow_requests(bob.id, &Page::first(10))
        .await
        .expect("requests")
        .is_empty());
    assert_eq!(
        relationship(store, carol.id, bob.id).await,
        Relationship::none(bob.id),
        "a rejected request is gone"
    );
    assert!(
        !store
            .reject_follow_request(bob.id, carol.id)
            .await
            .expect("reject"),
        "rejecting twice is false"
    );
    assert!(
        !store
            .authorize_follow_request(bob.id, carol.id, stamp(&ids, carol.id.shard()))
            .await
            .expect("authorize"),
        "a rejected request cannot be authorized"
    );
    assert!(
        !store
            .reject_follow_request(bob.id, alice.id)
            .await
            .expect("reject"),
        "a follow is not a request to reject"
    );
    assert_eq!(counts(store, bob.id).await, (1, 0));
    assert_eq!(counts(store, carol.id).await, (0, 0));
}

pub async fn unfollow_ends_follows_and_withdraws_requests(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await;
    let bob = user(store, &ids, "bob").await;
    let carol = user(store, &ids, "carol").await;
    follow(store, &ids, alice.id, bob.id, NOTIFY, false).await;
    follow(store, &ids, carol.id, bob.id, PLAIN, true).await;
    take_events(store).await;

    let at = stamp(&ids, alice.id.shard());
    assert!(
        store
            .unfollow(alice.id, bob.id, at)
            .await
            .expect("unfollow"),
        "unfollow ends a follow"
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::Unfollowed {
                follower_id: alice.id,
                followee_id: bob.id,
            }
        )],
        "an unfollow emits one Unfollowed event"
    );
    assert_eq!(
        counts(store, alice.id).await,
        (0, 0),
        "unfollow lowers following_count"
    );
    assert_eq!(
        counts(store, bob.id).await,
        (0, 0),
        "unfollow lowers followers_count"
    );
    assert_eq!(
        relationship(store, alice.id, bob.id).await,
        Relationship::none(bob.id)
    );
    assert!(store
        .followers(bob.id, &Page::first(10))
        .await
        .expect("followers")
        .is_empty());
    assert!(store
        .notified_followers(bob.id, None, 10)
        .await
        .expect("notified")
        .is_empty());
    assert!(
        !store
            .unfollow(alice.id, bob.id, stamp(&ids, alice.id.shard()))
            .await
            .expect("unfollow"),
        "unfollowing twice is false"
    );
    assert_no_events(store, "a second unfollow emits nothing").await;

    assert!(
        store
            .unfollow(carol.id, bob.id, stamp(&ids, carol.id.shard()))
            .await
            .expect("unfollow"),
        "unfollow withdraws a pending request"
    );
    assert_no_events(store, "withdrawing a request ends no follow").await;
    assert!(store
        .follow_requests(bob.id, &Page::first(10))
        .await
        .expect("requests")
        .is_empty());
    assert_eq!(
        relationship(store, carol.id, bob.id).await,
        Relationship::none(bob.id)
    );
    assert_eq!(
        counts(store, bob.id).await,
        (0, 0),
        "a withdrawn request was never counted"
    );
    assert!(
        !store
            .unfollow(bob.id, carol.id, stamp(&ids, bob.id.shard()))
            .await
            .expect("unfollow"),
        "unfollow is false with neither a follow nor a request"
    );
}

pub async fn followers_and_following_are_listed(store: &dyn Store) {
    let ids = IdGenerator::new();
    let star = user(store, &ids, "star").await;
    let mut fans = Vec::new();
    for name in ["f1", "f2", "f3", "f4", "f5"] {
        fans.push(user(store, &ids, name).await.id);
    }
    let stranger = user(store, &ids, "stranger").await.id;
    let requester = user(store, &ids, "requester").await.id;
    let mut follower_rows = Vec::new();
    let mut following_rows = Vec::new();
    for (n, fan) in fans.iter().copied().enumerate() {
        let (_, at) = follow(store, &ids, fan, star.id, PLAIN, false).await;
        follower_rows.push((at.id, fan));
        if n < 4 {
            let options = if n % 2 == 0 { QUIET } else { NOTIFY };
            let (_, at) = follow(store, &ids, star.id, fan, options, false).await;
            following_rows.push((at.id, fan));
        }
    }
    follow(store, &ids, requester, star.id, PLAIN, true).await;
    follow(store, &ids, stranger, fans[0], PLAIN, false).await;
    let follower_rows = rows_newest_first(follower_rows);
    let following_rows = rows_newest_first(following_rows);
    assert_eq!(counts(store, star.id).await, (5, 4));

    let account = star.id;
    check_paging(
        "followers",
        &follower_rows,
        |r| r.0,
        |p| Box::pin(async move { store.followers(account, &p).await }),
    )
    .await;
    check_paging(
        "following",
        &following_rows,
        |r| r.0,
        |p| Box::pin(async move { store.following(account, &p).await }),
    )
    .await;

    let missing = ids.next(ShardId::for_key("ghost"));
    assert_eq!(
        sorted(
            store
                .followers_among(
                    star.id,
                    &[fans[0], stranger, fans[2], requester, star.id, missing]
                )
                .await
                .expect("followers_among")
        ),
        sorted(vec![fans[0], fans[2]]),
        "followers_among keeps only the candidates that follow (not requesters)"
    );
    assert!(store
        .followers_among(star.id, &[])
        .await
        .expect("among")
        .is_empty());

    let mut followees = store.followees(star.id, 10).await.expect("followees");
    followees.sort_unstable_by_key(|f| f.0);
    let mut expected: Vec<(Id, FollowOptions)> = fans[..4]
        .iter()
        .enumerate()
        .map(|(n, f)| (*f, if n % 2 == 0 { QUIET } else { NOTIFY }))
        .collect();
    expected.sort_unstable_by_key(|f| f.0);
    assert_eq!(
        followees, expected,
        "followees lists everyone followed, with options"
    );
    let two = store.followees(star.id, 2).await.expect("followees");
    assert_eq!(two.len(), 2, "followees returns at most limit");
    assert!(two.iter().all(|f| expected.contains(f)));
}

pub async fn follower_batches_walk_by_follower_id(store: &dyn Store) {
    let ids = IdGenerator::new();
    let star = user(store, &ids, "star").await;
    let mut expected = Vec::new();
    for (n, name) in ["f1", "f2", "f3", "f4", "f5"].into_iter().enumerate() {
        let fan = user(store, &ids, name).await.id;
        let options = match n {
            1 | 3 => NOTIFY,
            2 => QUIET,
            _ => PLAIN,
        };
        follow(store, &ids, fan, star.id, options, false).await;
        expected.push((fan, options));
    }
    let requester = user(store, &ids, "requester").await.id;
    follow(store, &ids, requester, star.id, NOTIFY, true).await;
    expected.sort_unstable_by_key(|f| f.0);
    let batch = |after: Option<Id>, limit| async move {
        store
            .follower_batch(star.id, after, limit)
            .await
            .expect("follower_batch")
    };

    assert_eq!(
        batch(None, 10).await,
        expected,
        "follower_batch: followers ascending by id, with options"
    );
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = batch(after, 2).await;
        assert!(page.len() <= 2, "follower_batch returns at most limit");
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        walked.extend(page);
    }
    assert_eq!(
        walked, expected,
        "walking with `after` visits every follower once, in order"
    );
    let between = Id::from_i64(expected[1].0.as_i64() + 1);
    assert_eq!(
        batch(Some(between), 10).await,
        expected[2..].to_vec(),
        "after need not be a follower's id"
    );

    let notified: Vec<Id> = expected
        .iter()
        .filter(|(_, o)| o.notify)
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(notified.len(), 2);
    let notified_after = |after: Option<Id>, limit| async move {
        store
            .notified_followers(star.id, after, limit)
            .await
            .expect("notified_followers")
    };
    assert_eq!(
        notified_after(None, 10).await,
        notified,
        "notified_followers lists only followers with notify, ascending (not requesters)"
    );
    assert_eq!(
        notified_after(None, 1).await,
        notified[..1].to_vec(),
        "at most limit"
    );
    assert_eq!(
        notified_after(Some(notified[0]), 10).await,
        notified[1..].to_vec(),
        "above after"
    );
    follow(store, &ids, notified[0], star.id, PLAIN, false).await;
    assert_eq!(
        notified_after(None, 10).await,
        notified[1..].to_vec(),
        "turning notify off on a follow takes it out of notified_followers"
    );
}

pub async fn large_accounts_are_found_from_follow_rows(store: &dyn Store) {
    let ids = IdGenerator::new();
    let big = user(store, &ids, "big").await.id;
    let small = user(store, &ids, "small").await.id;
    let fan = user(store, &ids, "fan").await.id;
    let late = user(store, &ids, "late").await.id;
    let asker = user(store, &ids, "asker").await.id;
    follow(store, &ids, fan, big, NOTIFY, false).await;
    follow(store, &ids, fan, small, PLAIN, false).await;
    take_events(store).await;

    assert!(
        !store.is_large(big).await.expect("is_large"),
        "accounts start small"
    );
    assert!(store.large_followees(fan).await.expect("large").is_empty());
    assert!(
        store.set_large(big, true).await.expect("set_large"),
        "set_large changes a small account"
    );
    assert!(
        !store.set_large(big, true).await.expect("set_large"),
        "set_large is false when unchanged"
    );
    assert_no_events(store, "set_large emits nothing").await;
    assert!(store.is_large(big).await.expect("is_large"));
    assert!(!store.is_large(small).await.expect("is_large"));
    assert_eq!(
        store.large_followees(fan).await.expect("large"),
        vec![(big, NOTIFY)],
        "set_large marks existing follow rows: large_followees lists it with options"
    );

    follow(store, &ids, late, big, PLAIN, false).await;
    follow(store, &ids, asker, big, PLAIN, true).await;
    assert_eq!(
        store.large_followees(late).await.expect("large"),
        vec![(big, PLAIN)],
        "a follow made after set_large remembers the followee is large"
    );
    assert!(
        store
            .large_followees(asker)
            .await
            .expect("large")
            .is_empty(),
        "a request is not a follow"
    );
    follow(store, &ids, fan, big, QUIET, false).await;
    assert_eq!(
        store.large_followees(fan).await.expect("large"),
        vec![(big, QUIET)],
        "large_followees has the follow's current options"
    );
    assert!(store
        .unfollow(late, big, stamp(&ids, late.shard()))
        .await
        .expect("unfollow"));
    assert!(
        store.large_followees(late).await.expect("large").is_empty(),
        "an ended follow is not listed"
    );

    assert!(
        store.set_large(big, false).await.expect("set_large"),
        "set_large(false) changes a large account"
    );
    assert!(
        !store.set_large(big, false).await.expect("set_large"),
        "set_large is false when unchanged"
    );
    assert!(!store.is_large(big).await.expect("is_large"));
    assert!(
        store.large_followees(fan).await.expect("large").is_empty(),
        "set_large(false) clears the follow rows"
    );
    assert!(store
        .authorize_follow_request(big, asker, stamp(&ids, asker.shard()))
        .await
        .expect("authorize"));
    assert!(store
        .large_followees(asker)
        .await
        .expect("large")
        .is_empty());
    assert!(store.set_large(big, true).await.expect("set_large"));
    assert_eq!(
        store.large_followees(asker).await.expect("large"),
        vec![(big, PLAIN)],
        "an authorized request is a follow row set_large marks"
    );
}

pub async fn blocks_sever_follows_and_requests_both_ways(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    let dave = user(store, &ids, "dave").await.id;
    follow(store, &ids, alice, bob, PLAIN, false).await;
    follow(store, &ids, bob, alice, PLAIN, false).await;
    follow(store, &ids, dave, alice, PLAIN, false).await;
    follow(store, &ids, alice, carol, PLAIN, true).await;
    follow(store, &ids, carol, alice, PLAIN, true).await;
    take_events(store).await;

    let at = stamp(&ids, alice.shard());
    assert!(
        store.block(alice, bob, at).await.expect("block"),
        "a new block is true"
    );
    assert_eq!(
        take_events(store).await,
        vec![stamped(
            at,
            EventKind::Blocked {
                account_id: alice,
                target_id: bob,
            }
        )],
        "a block emits exactly one Blocked event, standing for the ended follows"
    );
    assert_eq!(
        counts(store, alice).await,
        (1, 0),
        "the follows with the blocked account are gone from the counters"
    );
    assert_eq!(
        counts(store, bob).await,
        (0, 0),
        "the follows with the blocker are gone from the counters"
    );
    assert_eq!(
        relationship(store, alice, bob).await,
        Relationship {
            blocking: true,
            ..Relationship::none(bob)
        },
        "the blocker sees blocking and no follow"
    );
    assert_eq!(
        relationship(store, bob, alice).await,
        Relationship {
            blocked_by: true,
            ..Relationship::none(alice)
        },
        "the blocked sees blocked_by and no follow"
    );
    assert_eq!(
        store
            .followers(alice, &Page::first(10))
            .await
            .expect("followers")
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        vec![dave],
        "other follows stay"
    );
    assert!(store
        .following(alice, &Page::first(10))
        .await
        .expect("following")
        .is_empty());
    assert_eq!(
        store
            .hidden_among(alice, &[bob, carol, dave])
            .await
            .expect("hidden"),
        Hidden {
            blocked: vec![bob],
            ..Hidden::default()
        },
        "the blocker must not see the blocked"
    );
    assert_eq!(
        store
            .hidden_among(bob, &[alice, carol])
            .await
            .expect("hidden"),
        Hidden {
            blocked: vec![alice],
            ..Hidden::default()
        },
        "the blocked must not see the blocker"
    );
    assert!(
        !store
            .block(alice, bob, stamp(&ids, alice.shard()))
            .await
            .expect("block"),
        "blocking twice is false"
    );
    assert_no_events(store, "a second block emits nothing").await;
    assert_eq!(
        store.blocks(alice, &Page::first(10)).await.expect("blocks"),
        vec![(at.id, bob)],
        "the block row id is the stamp id"
    );

    let at = stamp(&ids, alice.shard());
    assert!(store.block(alice, carol, at).await.expect("block"));
    assert_eq!(
        take_kinds(store).await,
        vec![EventKind::Blocked {
            account_id: alice,
            target_id: carol,
        }]
    );
    assert!(
        store
            .follow_requests(alice, &Page::first(10))
            .await
            .expect("requests")
            .is_empty(),
        "a block drops the target's request"
    );
    assert!(
        store
            .follow_requests(carol, &Page::first(10))
            .await
            .expect("requests")
            .is_empty(),
        "a block drops the blocker's request"
    );
    assert_eq!(
        relationship(store, alice, carol).await,
        Relationship {
            blocking: true,
            ..Relationship::none(carol)
        }
    );
    assert_eq!(counts(store, carol).await, (0, 0));

    assert!(
        store.unblock(alice, bob).await.expect("unblock"),
        "unblock ends a block"
    );
    assert!(
        !store.unblock(alice, bob).await.expect("unblock"),
        "unblocking twice is false"
    );
    assert!(
        !store.unblock(bob, alice).await.expect("unblock"),
        "only the blocker can unblock"
    );
    assert_no_events(store, "unblock emits nothing").await;
    assert_eq!(
        relationship(store, alice, bob).await,
        Relationship::none(bob),
        "an unblock restores no follow"
    );
    assert_eq!(
        relationship(store, bob, alice).await,
        Relationship::none(alice)
    );
    assert_eq!(
        store.hidden_among(bob, &[alice]).await.expect("hidden"),
        Hidden::default()
    );
    assert_eq!(
        store.blocks(alice, &Page::first(10)).await.expect("blocks"),
        vec![(at.id, carol)]
    );
}

pub async fn blocks_can_be_renewed_after_unblock(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    assert!(store
        .block(alice, bob, stamp(&ids, alice.shard()))
        .await
        .expect("block"));
    assert!(store.unblock(alice, bob).await.expect("unblock"));
    follow(store, &ids, bob, alice, PLAIN, false).await;
    assert!(
        relationship(store, bob, alice).await.following,
        "a follow made after an unblock stands"
    );
    take_events(store).await;

    let again = stamp(&ids, alice.shard());
    assert!(
        store.block(alice, bob, again).await.expect("block"),
        "blocking again after an unblock is a new block"
    );
    assert_eq!(
        take_kinds(store).await,
        vec![EventKind::Blocked {
            account_id: alice,
            target_id: bob,
        }]
    );
    assert_eq!(
        relationship(store, alice, bob).await,
        Relationship {
            blocking: true,
            ..Relationship::none(bob)
        },
        "the renewed block severs the newer follow"
    );
    assert_eq!(
        relationship(store, bob, alice).await,
        Relationship {
            blocked_by: true,
            ..Relationship::none(alice)
        }
    );
    assert_eq!(counts(store, alice).await, (0, 0));
    assert_eq!(counts(store, bob).await, (0, 0));
    assert_eq!(
        store.blocks(alice, &Page::first(10)).await.expect("blocks"),
        vec![(again.id, bob)],
        "only the renewed block is listed, with its own id"
    );
    assert_eq!(
        store.hidden_among(bob, &[alice]).await.expect("hidden"),
        Hidden {
            blocked: vec![alice],
            ..Hidden::default()
        }
    );
}

pub async fn mutes_hide_with_or_without_notifications(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    follow(store, &ids, alice, bob, PLAIN, false).await;
    take_events(store).await;

    let at = stamp(&ids, alice.shard());
    store.mute(alice, bob, true, at).await.expect("mute");
    assert_no_events(store, "a mute emits nothing").await;
    assert_eq!(
        store
            .hidden_among(alice, &[bob, carol])
            .await
            .expect("hidden"),
        Hidden {
            blocked: vec![],
            muted: vec![bob],
            muted_notifications: vec![bob],
        },
        "a mute with notifications hides content and notifications"
    );
    assert_eq!(
        relationship(store, alice, bob).await,
        Relationship {
            following: true,
            showing_reblogs: true,
            muting: true,
            muting_notifications: true,
            ..Relationship::none(bob)
        },
        "a mute leaves the follow alone"
    );
    assert_eq!(
        store.hidden_among(bob, &[alice]).await.expect("hidden"),
        Hidden::default(),
        "muting is one-way"
    );
    assert_eq!(
        relationship(store, bob, alice).await,
        Relationship {
            followed_by: true,
            ..Relationship::none(alice)
        },
        "the muted account does not see the mute"
    );
    assert_eq!(counts(store, bob).await, (1, 0));

    store
        .mute(alice, bob, false, stamp(&ids, alice.shard()))
        .await
        .expect("mute");
    assert_eq!(
        store.hidden_among(alice, &[bob]).await.expect("hidden"),
        Hidden {
            muted: vec![bob],
            ..Hidden::default()
        },
        "muting again updates the notifications flag"
    );
    let now = relationship(store, alice, bob).await;
    assert!(now.muting && !now.muting_notifications, "{now:?}");
    assert_eq!(
        store.mutes(alice, &Page::first(10)).await.expect("mutes"),
        vec![(at.id, bob)],
        "an updated mute keeps its row id"
    );

    assert!(
        store.unmute(alice, bob).await.expect("unmute"),
        "unmute ends a mute"
    );
    assert!(
        !store.unmute(alice, bob).await.expect("unmute"),
        "unmuting twice is false"
    );
    assert_no_events(store, "unmute emits nothing").await;
    assert_eq!(
        store.hidden_among(alice, &[bob]).await.expect("hidden"),
        Hidden::default()
    );
    assert!(store
        .mutes(alice, &Page::first(10))
        .await
        .expect("mutes")
        .is_empty());
}

pub async fn blocks_and_mutes_are_paged(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let mut blocks = Vec::new();
    let mut mutes = Vec::new();
    for name in ["t1", "t2", "t3", "t4", "t5"] {
        let target = user(store, &ids, name).await.id;
        let at = stamp(&ids, alice.shard());
        assert!(store.block(alice, target, at).await.expect("block"));
        blocks.push((at.id, target));
        let at = stamp(&ids, alice.shard());
        store.mute(alice, target, false, at).await.expect("mute");
        mutes.push((at.id, target));
    }
    let blocks = rows_newest_first(blocks);
    let mutes = rows_newest_first(mutes);
    check_paging(
        "blocks",
        &blocks,
        |r| r.0,
        |p| Box::pin(async move { store.blocks(alice, &p).await }),
    )
    .await;
    check_paging(
        "mutes",
        &mutes,
        |r| r.0,
        |p| Box::pin(async move { store.mutes(alice, &p).await }),
    )
    .await;
}

pub async fn relationships_come_in_the_order_given(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    let dave = user(store, &ids, "dave").await.id;
    follow(store, &ids, alice, bob, QUIET, false).await;
    follow(store, &ids, carol, alice, PLAIN, false).await;
    store
        .mute(alice, dave, false, stamp(&ids, alice.shard()))
        .await
        .expect("mute");
    let unknown = ids.next(ShardId::for_key("ghost"));

    assert_eq!(
        store
            .relationships(alice, &[dave, unknown, bob, carol])
            .await
            .expect("relationships"),
        vec![
            Relationship {
                muting: true,
                ..Relationship::none(dave)
            },
            Relationship::none(unknown),
            Relationship {
                following: true,
                showing_reblogs: false,
                ..Relationship::none(bob)
            },
            Relationship {
                followed_by: true,
                ..Relationship::none(carol)
            },
        ],
        "one relationship per target, in the order given; unknown targets get an empty one"
    );
    assert!(store
        .relationships(alice, &[])
        .await
        .expect("relationships")
        .is_empty());
}

pub async fn relations_agree_with_relationships(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    let dave = user(store, &ids, "dave").await.id;
    let erin = user(store, &ids, "erin").await.id;
    let frank = user(store, &ids, "frank").await.id;
    follow(store, &ids, alice, bob, QUIET, false).await;
    follow(store, &ids, alice, carol, PLAIN, false).await;
    follow(store, &ids, carol, alice, PLAIN, false).await;
    store
        .mute(alice, carol, false, stamp(&ids, alice.shard()))
        .await
        .expect("mute");
    store
        .block(alice, dave, stamp(&ids, alice.shard()))
        .await
        .expect("block");
    store
        .block(erin, alice, stamp(&ids, erin.shard()))
        .await
        .expect("block");
    follow(store, &ids, alice, frank, PLAIN, true).await;
    let unknown = ids.next(ShardId::for_key("ghost"));

    let targets = [frank, unknown, erin, dave, carol, bob, carol];
    let relations = store.relations(alice, &targets).await.expect("relations");
    assert_eq!(
        relations.iter().map(|r| r.id).collect::<Vec<_>>(),
        targets.to_vec(),
        "one relation per target, in the order given"
    );
    let full = store
        .relationships(alice, &targets)
        .await
        .expect("relationships");
    for (r, f) in relations.iter().zip(&full) {
        assert_eq!(*r, crate::RelationFlags::from(f), "relations of {}", r.id);
    }
    let flags = |id: Id| relations.iter().find(|r| r.id == id).copied();
    assert_eq!(
        flags(bob).map(|r| (r.following, r.showing_reblogs)),
        Some((true, false)),
        "following with boosts hidden"
    );
    assert_eq!(
        flags(carol).map(|r| (r.following, r.showing_reblogs, r.muting)),
        Some((true, true, true)),
        "following with boosts, muted"
    );
    assert!(
        flags(dave).is_some_and(|r| r.blocked),
        "blocked by the viewer"
    );
    assert!(
        flags(erin).is_some_and(|r| r.blocked),
        "blocking the viewer"
    );
    assert_eq!(
        flags(frank),
        Some(crate::RelationFlags::none(frank)),
        "a pending request is no follow"
    );
    assert_eq!(
        flags(unknown),
        Some(crate::RelationFlags::none(unknown)),
        "an unknown account has no relation"
    );
    assert!(store
        .relations(alice, &[])
        .await
        .expect("relations")
        .is_empty());

    // Viewers with only one kind of fact, or none (adapters may look for
    // blocks and mutes only where the viewer has some).
    let only = |viewer: Id, target: Id| async move {
        store.relations(viewer, &[target]).await.expect("relations")[0]
    };
    assert!(only(erin, alice).await.blocked, "erin blocks alice");
    assert!(only(dave, alice).await.blocked, "dave is blocked by alice");
    assert!(!only(dave, alice).await.muting, "dave mutes nobody");
    assert_eq!(only(bob, alice).await, crate::RelationFlags::none(alice));
    let gina = user(store, &ids, "gina").await.id;
    store
        .mute(gina, bob, true, stamp(&ids, gina.shard()))
        .await
        .expect("mute");
    let muted = only(gina, bob).await;
    assert!(muted.muting && !muted.blocked && !muted.following);
}

/// Who `notified_followers_before` lists for a status posted between two
/// notify follows: the earlier follower always; the later one is left out
/// by adapters that can tell when a follow was made (`strict`), and by the
/// others listed exactly as `notified_followers` would.
async fn check_notified_before(store: &dyn Store, strict: bool) {
    let ids = IdGenerator::new();
    let star = user(store, &ids, "star").await.id;
    let early = user(store, &ids, "early").await.id;
    let quiet = user(store, &ids, "quiet").await.id;
    let late = user(store, &ids, "late").await.id;
    follow(store, &ids, early, star, NOTIFY, false).await;
    follow(store, &ids, quiet, star, PLAIN, false).await;
    std::thread::sleep(std::time::Duration::from_millis(2));
    let status = ids.next(star.shard());
    std::thread::sleep(std::time::Duration::from_millis(2));
    follow(store, &ids, late, star, NOTIFY, false).await;

    let before = |after: Option<Id>, limit| async move {
        store
            .notified_followers_before(star, status, after, limit)
            .await
            .expect("notified_followers_before")
    };
    let all = store
        .notified_followers(star, None, 10)
        .await
        .expect("notified_followers");
    let got = before(None, 10).await;
    assert!(
        got.contains(&early),
        "a notify follow made before the status is listed"
    );
    assert!(!got.contains(&quiet), "a follow without notify is not");
    if strict || !got.contains(&late) {
        assert_eq!(got, vec![early], "a follow made after the status is not");
    } else {
        assert_eq!(got, all, "an adapter that cannot tell lists them all");
    }
    assert_eq!(
        before(Some(early), 10).await,
        got.iter()
            .copied()
            .filter(|f| *f > early)
            .collect::<Vec<_>>(),
        "above after"
    );
    assert!(before(None, 1).await.len() <= 1, "at most limit");
}

pub async fn notified_followers_before_lists_earlier_follows(store: &dyn Store) {
    check_notified_before(store, false).await;
}

/// For adapters whose follow rows carry time-ordered ids (not in the suite's
/// list: such an adapter's tests call it themselves).
pub async fn notified_followers_before_leaves_out_later_follows(store: &dyn Store) {
    check_notified_before(store, true).await;
}

/// Asserts that nothing joins `a` and `b` either way, on either side: no
/// follow, no request, in relationships and listings alike.
async fn assert_severed(store: &dyn Store, a: Id, b: Id, why: &str) {
    let second = |rows: Vec<(Id, Id)>| rows.into_iter().map(|r| r.1).collect::<Vec<_>>();
    for (me, other) in [(a, b), (b, a)] {
        let rel = relationship(store, me, other).await;
        assert!(
            !rel.following && !rel.requested && !rel.followed_by && !rel.requested_by,
            "{why}: no follow nor request between them ({rel:?})"
        );
        let page = Page::first(40);
        let followers = second(store.followers(me, &page).await.expect("followers"));
        assert!(!followers.contains(&other), "{why}: not a follower");
        let following = second(store.following(me, &page).await.expect("following"));
        assert!(!following.contains(&other), "{why}: not followed");
        let requests = second(store.follow_requests(me, &page).await.expect("requests"));
        assert!(!requests.contains(&other), "{why}: no request listed");
        assert!(
            store
                .followers_among(me, &[other])
                .await
                .expect("followers among")
                .is_empty(),
            "{why}: not among the followers"
        );
    }
}

pub async fn follows_and_requests_are_refused_while_blocked(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    assert!(store
        .block(alice, bob, stamp(&ids, alice.shard()))
        .await
        .expect("block"));
    take_events(store).await;
    for request in [false, true] {
        assert_eq!(
            follow(store, &ids, bob, alice, PLAIN, request).await.0,
            FollowOutcome::Blocked,
            "the blocked cannot follow nor ask to (request: {request})"
        );
        assert_eq!(
            follow(store, &ids, alice, bob, PLAIN, request).await.0,
            FollowOutcome::Blocked,
            "the blocker cannot follow nor ask to (request: {request})"
        );
    }
    assert_no_events(store, "a refused follow emits nothing").await;
    assert_severed(store, alice, bob, "refused while blocked").await;
    assert_eq!(counts(store, alice).await, (0, 0));
    assert_eq!(counts(store, bob).await, (0, 0));

    assert!(store.unblock(alice, bob).await.expect("unblock"));
    assert_eq!(
        follow(store, &ids, bob, alice, PLAIN, false).await.0,
        FollowOutcome::Following,
        "after the unblock a follow stands"
    );
    assert!(relationship(store, bob, alice).await.following);
    assert_eq!(counts(store, alice).await, (1, 0));
}

pub async fn a_block_severs_follows_stamped_after_it(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    // The blocks are stamped first, the follows after: the follows'
    // calls are ahead of the blocks' (as when a follow is in flight while
    // the block is being made), but their ids are newer.
    let block_bob = stamp(&ids, alice.shard());
    let block_carol = stamp(&ids, alice.shard());
    follow(store, &ids, bob, alice, PLAIN, false).await;
    follow(store, &ids, alice, bob, PLAIN, false).await;
    follow(store, &ids, carol, alice, PLAIN, true).await;
    follow(store, &ids, alice, carol, PLAIN, true).await;
    assert!(relationship(store, bob, alice).await.following);
    assert!(relationship(store, carol, alice).await.requested);

    assert!(store.block(alice, bob, block_bob).await.expect("block"));
    assert_severed(store, alice, bob, "a block severs newer follows").await;
    assert_eq!(counts(store, alice).await, (0, 0), "the counters agree");
    assert_eq!(counts(store, bob).await, (0, 0), "the counters agree");
    assert!(store.block(alice, carol, block_carol).await.expect("block"));
    assert_severed(store, alice, carol, "a block drops newer requests").await;

    assert!(store.unblock(alice, bob).await.expect("unblock"));
    assert!(store.unblock(alice, carol).await.expect("unblock"));
    assert_severed(store, alice, bob, "an unblock restores nothing").await;
    assert_severed(store, alice, carol, "an unblock restores nothing").await;
}

pub async fn follow_racing_a_block_never_survives_it(store: &dyn Store) {
    let ids = IdGenerator::new();
    for round in 0..24 {
        let alice = user(store, &ids, &format!("alice{round}")).await.id;
        let bob = user(store, &ids, &format!("bob{round}")).await.id;
        // Alternate which is stamped first, whether it is a request, and
        // whether the follow starts first.
        let request = round % 4 >= 2;
        let (block_at, follow_at) = if round % 2 == 0 {
            let b = stamp(&ids, alice.shard());
            (b, stamp(&ids, bob.shard()))
        } else {
            let f = stamp(&ids, bob.shard());
            (stamp(&ids, alice.shard()), f)
        };
        let follow = async {
            if round % 3 == 0 {
                tokio::task::yield_now().await;
            }
            store
                .follow(bob, alice, PLAIN, request, follow_at)
                .await
                .expect("follow")
        };
        let block = async {
            if round % 3 == 1 {
                tokio::task::yield_now().await;
            }
            store.block(alice, bob, block_at).await.expect("block")
        };
        let (outcome, blocked) = tokio::join!(follow, block);
        assert!(blocked, "round {round}: the block is new");
        let why = format!("round {round} (follow answered {outcome:?})");
        let rel = relationship(store, bob, alice).await;
        assert!(rel.blocked_by, "{why}: blocked");
        assert_severed(store, alice, bob, &why).await;
        assert_eq!(counts(store, alice).await, (0, 0), "{why}: counters");
        assert_eq!(counts(store, bob).await, (0, 0), "{why}: counters");
        assert!(store.unblock(alice, bob).await.expect("unblock"));
        assert_severed(store, alice, bob, &format!("{why}, after the unblock")).await;
        assert_eq!(
            counts(store, alice).await,
            (0, 0),
            "{why}: counters after the unblock"
        );
    }
}
