//! The PostgreSQL adapter's mirror log under crashes: with two physical
//! databases, cross-shard writes are stopped after their first side (the
//! fault-injection hook stands for a process dying there), the other sides
//! are checked to be missing, and `repair_mirrors` must make both sides
//! agree, counters included, and change nothing when run again. Also: a
//! later write applies leftovers of its queue first, writes from both sides
//! that cross each other end consistent, and several repairers running at
//! once beside traffic apply each op exactly once.
#![cfg(feature = "postgres")]

mod pg_support;

use pg_support::{stamp, PLAIN};

use std::time::Duration;

use sqlx::Connection;

use starling_domain::{Account, Id, IdGenerator, Page, Relationship, ShardId, Status, Visibility};
use starling_store::{
    AccountStatusFilter, CrashPoint, Created, GraphStore, NewAccount, NewStatus, OutboxStore,
    PgStore, StatusStore, Store, StoreError,
};

/// A username (`base` plus a number) whose shard is on database `db`.
fn name_on(store: &PgStore, db: usize, base: &str) -> String {
    (0..)
        .map(|n| format!("{base}{n}"))
        .find(|name| store.physical_index(ShardId::for_key(name)) == db)
        .unwrap_or_default()
}

/// An email (`base` plus a number, at example.com) whose shard is on
/// database `db`.
fn email_on(store: &PgStore, db: usize, base: &str) -> String {
    (0..)
        .map(|n| format!("{base}{n}@example.com"))
        .find(|email| store.physical_index(ShardId::for_key(email)) == db)
        .unwrap_or_default()
}

fn new_account(ids: &IdGenerator, username: &str, email: &str) -> NewAccount {
    NewAccount {
        account: Account::new(
            ids.next(ShardId::for_key(username)),
            username,
            None,
            1_700_000_000_000,
        ),
        email: email.to_owned(),
        email_key: email.to_owned(),
        password_hash: "$argon2id$fake".to_owned(),
        locale: None,
    }
}

async fn user(store: &PgStore, ids: &IdGenerator, db: usize, base: &str) -> Id {
    let name = name_on(store, db, base);
    let new = new_account(ids, &name, &format!("{name}@example.com"));
    store.create_account(&new).await.expect("create account");
    new.account.id
}

fn post(ids: &IdGenerator, author: Id, text: &str) -> Status {
    let id = ids.next(author.shard());
    Status {
        id,
        account_id: author,
        reblog_of_id: None,
        in_reply_to_id: None,
        in_reply_to_account_id: None,
        text: text.to_owned(),
        content: format!("<p>{text}</p>"),
        spoiler_text: String::new(),
        sensitive: false,
        visibility: Visibility::Public,
        language: None,
        app_id: None,
        mentions: vec![],
        tags: vec![],
        created_at_ms: id.unix_ms() as i64,
        replies_count: 0,
        reblogs_count: 0,
        favourites_count: 0,
        media: Vec::new(),
    }
}

fn reply(ids: &IdGenerator, author: Id, parent: &Status) -> Status {
    Status {
        in_reply_to_id: Some(parent.id),
        in_reply_to_account_id: Some(parent.account_id),
        ..post(ids, author, "a reply")
    }
}

fn boost(ids: &IdGenerator, booster: Id, original: &Status) -> Status {
    Status {
        reblog_of_id: Some(original.id),
        text: String::new(),
        content: String::new(),
        ..post(ids, booster, "")
    }
}

async fn create(store: &PgStore, status: Status) -> Status {
    let created = store
        .create_status(&NewStatus {
            status: status.clone(),
            idempotency: None,
        })
        .await
        .expect("create status");
    assert_eq!(created, Created::New(Box::new(status.clone())));
    status
}

async fn account(store: &PgStore, id: Id) -> Account {
    store
        .account(id)
        .await
        .expect("read account")
        .expect("account exists")
}

/// `(statuses, followers, following)` counts of an account.
async fn counts(store: &PgStore, id: Id) -> (i64, i64, i64) {
    let a = account(store, id).await;
    (a.statuses_count, a.followers_count, a.following_count)
}

async fn status(store: &PgStore, id: Id) -> Option<Status> {
    store.status(id).await.expect("read status")
}

/// `(replies, reblogs, favourites)` counts of a status.
async fn status_counts(store: &PgStore, id: Id) -> (i64, i64, i64) {
    let s = status(store, id).await.expect("status exists");
    (s.replies_count, s.reblogs_count, s.favourites_count)
}

async fn relationship(store: &PgStore, viewer: Id, target: Id) -> Relationship {
    store
        .relationships(viewer, &[target])
        .await
        .expect("relationships")
        .remove(0)
}

fn page() -> Page {
    Page::first(50)
}

/// Removes every waiting event; returns how many there were.
async fn drain_outbox(store: &PgStore) -> usize {
    let pending = store.outbox_pending(1000).await.expect("outbox");
    let keys: Vec<(u32, i64)> = pending.iter().map(|e| e.key).collect();
    store.outbox_remove(&keys).await.expect("outbox remove");
    pending.len()
}

#[tokio::test]
async fn sides_converge_after_a_crash_between_them() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_convergence", 2, false).await
    else {
        return;
    };
    let ids = IdGenerator::new();
    // Alice on the first database, Bob on the second: every write below
    // has its sides on different databases.
    let alice = user(&store, &ids, 0, "alice").await;
    let bob = user(&store, &ids, 1, "bob").await;
    let original = create(&store, post(&ids, alice, "hello")).await;
    let doomed = create(&store, post(&ids, alice, "doomed")).await;
    let bobs_boost_of_doomed = create(&store, boost(&ids, bob, &doomed)).await;
    assert!(store
        .favourite(bob, doomed.id, stamp(&ids, bob.shard()))
        .await
        .expect("favourite"));
    let tag = (0..)
        .map(|n| format!("converge{n}"))
        .find(|t| store.physical_index(ShardId::for_key(t)) == 0)
        .unwrap_or_default();
    drain_outbox(&store).await;

    store.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    // A follow, a favourite, a reply, a boost, a tagged post and a delete,
    // each stopped after its first side (Bob's database, except the
    // delete, which starts on Alice's).
    store
        .follow(bob, alice, PLAIN, false, stamp(&ids, bob.shard()))
        .await
        .expect("follow");
    let favourited = stamp(&ids, bob.shard());
    assert!(store
        .favourite(bob, original.id, favourited)
        .await
        .expect("favourite"));
    let answer = create(&store, reply(&ids, bob, &original)).await;
    let boosted = create(&store, boost(&ids, bob, &original)).await;
    let tagged = create(
        &store,
        Status {
            tags: vec![tag.clone()],
            ..post(&ids, bob, "tagged")
        },
    )
    .await;
    assert!(store
        .delete_status(alice, doomed.id, stamp(&ids, alice.shard()))
        .await
        .expect("delete")
        .is_some());
    // A registration whose email is on the other database than the account.
    let dave_name = name_on(&store, 1, "dave");
    let dave_email = email_on(&store, 0, "dave");
    let dave = new_account(&ids, &dave_name, &dave_email);
    store.create_account(&dave).await.expect("register");
    store.crash_for_tests(None);

    assert_eq!(
        drain_outbox(&store).await,
        6,
        "every first side wrote its event (the delete's included)"
    );
    // The first sides are there...
    assert_eq!(
        counts(&store, bob).await,
        (4, 0, 1),
        "Bob's side: his reply, boost and tagged post (and the boost of the deleted status), \
         his follow"
    );
    assert!(relationship(&store, bob, alice).await.following);
    assert_eq!(
        store
            .favourited_among(bob, &[original.id])
            .await
            .expect("favourited"),
        vec![original.id]
    );
    assert!(status(&store, doomed.id).await.is_none());
    // ...the other sides are not.
    assert_eq!(counts(&store, alice).await, (1, 0, 0));
    assert!(!relationship(&store, alice, bob).await.followed_by);
    assert!(store
        .followers(alice, &page())
        .await
        .expect("followers")
        .is_empty());
    assert_eq!(status_counts(&store, original.id).await, (0, 0, 0));
    assert!(store
        .favourited_by(original.id, &page())
        .await
        .expect("favourited_by")
        .is_empty());
    assert!(store
        .reblogged_by(original.id, &page())
        .await
        .expect("reblogged_by")
        .is_empty());
    assert!(store
        .descendants(original.id, 10)
        .await
        .expect("descendants")
        .is_empty());
    assert!(store
        .tag_statuses(&tag, &page())
        .await
        .expect("tag")
        .is_empty());
    assert!(
        status(&store, bobs_boost_of_doomed.id).await.is_some(),
        "the deleted status's boost is still on Bob's side"
    );
    assert_eq!(
        store
            .favourited_among(bob, &[doomed.id])
            .await
            .expect("favourited"),
        vec![doomed.id],
        "the deleted status's favourite is still on Bob's side"
    );
    assert_eq!(
        store
            .login_by_email(&dave_email)
            .await
            .expect("login")
            .map(|l| l.account_id),
        Some(dave.account.id),
        "a pending claim whose account exists signs in"
    );

    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        8,
        "repair settles seven ops (follow, favourite, reply, boost, tag, and the delete's \
         boosts and favourites) and one email claim"
    );

    assert_eq!(counts(&store, alice).await, (1, 1, 0));
    assert_eq!(
        counts(&store, bob).await,
        (3, 0, 1),
        "the boost of the deleted status is gone"
    );
    assert_eq!(
        relationship(&store, alice, bob).await,
        Relationship {
            followed_by: true,
            ..Relationship::none(bob)
        }
    );
    assert_eq!(
        store
            .followers(alice, &page())
            .await
            .expect("followers")
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>(),
        vec![bob]
    );
    assert_eq!(
        store.follower_batch(alice, None, 10).await.expect("batch"),
        vec![(bob, PLAIN)]
    );
    assert_eq!(status_counts(&store, original.id).await, (1, 1, 1));
    assert_eq!(
        store
            .favourited_by(original.id, &page())
            .await
            .expect("favourited_by"),
        vec![(favourited.id, bob)]
    );
    assert_eq!(
        store
            .reblogged_by(original.id, &page())
            .await
            .expect("reblogged_by"),
        vec![(boosted.id, bob)]
    );
    assert_eq!(
        store
            .descendants(original.id, 10)
            .await
            .expect("descendants")
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![answer.id]
    );
    assert_eq!(
        store
            .tag_statuses(&tag, &page())
            .await
            .expect("tag")
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![tagged.id]
    );
    assert_eq!(
        store.search_tags(&tag, 5, 0).await.expect("search"),
        vec![tag.clone()]
    );
    assert!(status(&store, bobs_boost_of_doomed.id).await.is_none());
    assert_eq!(
        store.reblog_by(bob, doomed.id).await.expect("reblog_by"),
        None
    );
    assert!(store
        .favourited_among(bob, &[doomed.id])
        .await
        .expect("favourited")
        .is_empty());
    assert_eq!(
        store
            .login_by_email(&dave_email)
            .await
            .expect("login")
            .map(|l| l.account_id),
        Some(dave.account.id)
    );
    assert_eq!(drain_outbox(&store).await, 0, "repair emits no events");

    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0,
        "a second repair finds nothing"
    );
    assert_eq!(counts(&store, alice).await, (1, 1, 0));
    assert_eq!(counts(&store, bob).await, (3, 0, 1));
    assert_eq!(status_counts(&store, original.id).await, (1, 1, 1));
}

#[tokio::test]
async fn registrations_that_crash_are_settled() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_convergence", 2, false).await
    else {
        return;
    };
    let ids = IdGenerator::new();

    // Died after claiming the email, before creating the account.
    let erin_email = email_on(&store, 0, "erin");
    let erin = new_account(&ids, &name_on(&store, 1, "erin"), &erin_email);
    store.crash_for_tests(Some(CrashPoint::AfterEmailClaim));
    let err = store.create_account(&erin).await.expect_err("crashed");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    store.crash_for_tests(None);
    assert!(store
        .account(erin.account.id)
        .await
        .expect("read")
        .is_none());
    assert!(
        store
            .login_by_email(&erin_email)
            .await
            .expect("login")
            .is_none(),
        "a claim whose account does not exist does not sign in"
    );
    let again = new_account(&ids, &name_on(&store, 1, "erin2x"), &erin_email);
    let err = store
        .create_account(&again)
        .await
        .expect_err("email still claimed");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");

    // Died after creating the account, before confirming the claim.
    let fay_email = email_on(&store, 1, "fay");
    let fay = new_account(&ids, &name_on(&store, 0, "fay"), &fay_email);
    store.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    store.create_account(&fay).await.expect("register");
    store.crash_for_tests(None);

    assert_eq!(
        store
            .repair_mirrors(Duration::from_secs(3600))
            .await
            .expect("repair"),
        0,
        "young claims are left alone (their registration may still be running)"
    );
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        2,
        "one claim released, one confirmed"
    );
    store
        .create_account(&again)
        .await
        .expect("the released email is free again");
    assert_eq!(
        store
            .login_by_email(&fay_email)
            .await
            .expect("login")
            .map(|l| l.account_id),
        Some(fay.account.id)
    );
    let err = store
        .create_account(&new_account(&ids, &name_on(&store, 0, "fay2x"), &fay_email))
        .await
        .expect_err("confirmed claim");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert_eq!(store.count_accounts().await.expect("count"), 2);
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0
    );
}

#[tokio::test]
async fn a_later_write_applies_the_leftovers_of_its_queue_first() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_convergence", 2, false).await
    else {
        return;
    };
    let ids = IdGenerator::new();
    let alice = user(&store, &ids, 0, "alice").await;
    let bob = user(&store, &ids, 1, "bob").await;
    let original = create(&store, post(&ids, alice, "hello")).await;

    store.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    store
        .follow(bob, alice, PLAIN, false, stamp(&ids, bob.shard()))
        .await
        .expect("follow");
    assert!(store
        .favourite(bob, original.id, stamp(&ids, bob.shard()))
        .await
        .expect("favourite"));
    store.crash_for_tests(None);
    // Undone before any repair: each undo must land after what it undoes.
    assert!(store
        .unfollow(bob, alice, stamp(&ids, bob.shard()))
        .await
        .expect("unfollow"));
    assert!(store
        .unfavourite(bob, original.id)
        .await
        .expect("unfavourite"));

    assert_eq!(counts(&store, alice).await, (1, 0, 0));
    assert_eq!(counts(&store, bob).await, (0, 0, 0));
    assert!(store
        .followers(alice, &page())
        .await
        .expect("followers")
        .is_empty());
    assert_eq!(status_counts(&store, original.id).await, (0, 0, 0));
    assert!(store
        .favourited_by(original.id, &page())
        .await
        .expect("favourited_by")
        .is_empty());
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0,
        "nothing was left for repair"
    );
}

#[tokio::test]
async fn writes_from_both_sides_that_cross_end_consistent() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_convergence", 2, false).await
    else {
        return;
    };
    let ids = IdGenerator::new();
    let alice = user(&store, &ids, 0, "alice").await;
    let bob = user(&store, &ids, 1, "bob").await;
    let carol = user(&store, &ids, 1, "carol").await;
    let liked = create(&store, post(&ids, alice, "liked, then deleted")).await;
    let boosted = create(&store, post(&ids, alice, "boosted, then deleted")).await;
    store
        .follow(carol, alice, PLAIN, true, stamp(&ids, carol.shard()))
        .await
        .expect("request");

    // Bob's side writes first, its mirror is late; Alice's side meanwhile
    // deletes, blocks, authorizes.
    store.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    assert!(store
        .favourite(bob, liked.id, stamp(&ids, bob.shard()))
        .await
        .expect("favourite"));
    let bobs_boost = create(&store, boost(&ids, bob, &boosted)).await;
    store
        .follow(bob, alice, PLAIN, false, stamp(&ids, bob.shard()))
        .await
        .expect("follow");
    store.crash_for_tests(None);
    for doomed in [liked.id, boosted.id] {
        assert!(store
            .delete_status(alice, doomed, stamp(&ids, alice.shard()))
            .await
            .expect("delete")
            .is_some());
    }
    assert!(store
        .block(alice, bob, stamp(&ids, alice.shard()))
        .await
        .expect("block"));
    // Alice authorizes Carol, whose withdrawal crosses it.
    store.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    assert!(store
        .authorize_follow_request(alice, carol, stamp(&ids, carol.shard()))
        .await
        .expect("authorize"));
    store.crash_for_tests(None);
    assert!(store
        .unfollow(carol, alice, stamp(&ids, carol.shard()))
        .await
        .expect("withdraw"));

    store.repair_mirrors(Duration::ZERO).await.expect("repair");

    assert!(
        store
            .favourited_among(bob, &[liked.id])
            .await
            .expect("favourited")
            .is_empty(),
        "a favourite of a status deleted meanwhile is removed"
    );
    assert!(
        status(&store, bobs_boost.id).await.is_none(),
        "a boost of a status deleted meanwhile is removed"
    );
    assert_eq!(
        relationship(&store, bob, alice).await,
        Relationship {
            blocked_by: true,
            ..Relationship::none(alice)
        },
        "a follow crossed by a newer block is undone"
    );
    assert_eq!(
        relationship(&store, alice, bob).await,
        Relationship {
            blocking: true,
            ..Relationship::none(bob)
        }
    );
    assert_eq!(
        relationship(&store, alice, carol).await,
        Relationship::none(carol),
        "an authorization crossed by a withdrawal is undone"
    );
    assert_eq!(
        relationship(&store, carol, alice).await,
        Relationship::none(alice)
    );
    assert_eq!(counts(&store, alice).await, (0, 0, 0));
    assert_eq!(counts(&store, bob).await, (0, 0, 0));
    assert_eq!(counts(&store, carol).await, (0, 0, 0));
    assert!(store
        .followers(alice, &page())
        .await
        .expect("followers")
        .is_empty());
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0
    );
}

async fn repair_thrice(store: &PgStore) {
    for _ in 0..3 {
        store.repair_mirrors(Duration::ZERO).await.expect("repair");
    }
}

#[tokio::test]
async fn concurrent_repairers_beside_traffic_apply_each_op_once() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_convergence", 2).await else {
        return;
    };
    // Three "processes" over the same two databases.
    let writer = pg_support::store_over(&urls).await;
    writer.migrate().await.expect("migrate");
    let repairers = [
        pg_support::store_over(&urls).await,
        pg_support::store_over(&urls).await,
    ];
    let ids = IdGenerator::new();
    let star = user(&writer, &ids, 0, "star").await;
    let status_of_star = create(&writer, post(&ids, star, "popular")).await;
    let mut fans = Vec::new();
    for n in 0..12 {
        fans.push(user(&writer, &ids, n % 2, &format!("fan{n}x")).await);
    }

    // Half the fans' writes crash after their first side...
    writer.crash_for_tests(Some(CrashPoint::AfterFirstSide));
    for fan in &fans[..6] {
        writer
            .follow(*fan, star, PLAIN, false, stamp(&ids, fan.shard()))
            .await
            .expect("follow");
        writer
            .favourite(*fan, status_of_star.id, stamp(&ids, fan.shard()))
            .await
            .expect("favourite");
    }
    writer.crash_for_tests(None);
    // ...then two repairers, each twice at once, run beside the others'
    // writes (which go through the same queues).
    let traffic = async {
        for fan in &fans[6..] {
            writer
                .follow(*fan, star, PLAIN, false, stamp(&ids, fan.shard()))
                .await
                .expect("follow");
            writer
                .favourite(*fan, status_of_star.id, stamp(&ids, fan.shard()))
                .await
                .expect("favourite");
        }
    };
    tokio::join!(
        repair_thrice(&repairers[0]),
        repair_thrice(&repairers[0]),
        repair_thrice(&repairers[1]),
        repair_thrice(&repairers[1]),
        traffic
    );
    // Exactly once: every counter equals its rows.
    writer.repair_mirrors(Duration::ZERO).await.expect("repair");

    let followers = writer.followers(star, &page()).await.expect("followers");
    assert_eq!(followers.len(), 12);
    assert_eq!(counts(&writer, star).await, (1, 12, 0));
    let favourited_by = writer
        .favourited_by(status_of_star.id, &page())
        .await
        .expect("favourited_by");
    assert_eq!(favourited_by.len(), 12);
    assert_eq!(status_counts(&writer, status_of_star.id).await, (0, 0, 12));
    for fan in &fans {
        assert_eq!(counts(&writer, *fan).await, (0, 0, 1));
    }
    let filter = AccountStatusFilter {
        only_media: false,
        exclude_replies: false,
        exclude_reblogs: false,
        up_to: Visibility::Direct,
        mentioning: None,
        tagged: None,
    };
    assert_eq!(
        writer
            .account_statuses(star, &filter, &page())
            .await
            .expect("statuses")
            .len(),
        1
    );
    for store in repairers.iter().chain([&writer]) {
        store.close().await;
    }
}

/// A small xorshift, so the random traffic is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One writer's share of the random traffic.
async fn random_writes(
    store: &PgStore,
    ids: &IdGenerator,
    people: &[Id],
    posts: &[Status],
    seed: u64,
) {
    let mut rng = Rng(seed);
    for _ in 0..60 {
        let a = people[rng.below(people.len())];
        let b = people[rng.below(people.len())];
        let s = &posts[rng.below(posts.len())];
        let at = stamp(ids, a.shard());
        match rng.below(13) {
            0 | 1 => {
                let request = rng.below(2) == 0;
                if a != b {
                    store
                        .follow(a, b, PLAIN, request, at)
                        .await
                        .expect("follow");
                }
            }
            2 => {
                store.unfollow(a, b, at).await.expect("unfollow");
            }
            3 => {
                store
                    .authorize_follow_request(b, a, at)
                    .await
                    .expect("authorize");
            }
            4 => {
                store.reject_follow_request(b, a).await.expect("reject");
            }
            5 => {
                if a != b {
                    store.block(a, b, at).await.expect("block");
                }
            }
            6 => {
                store.unblock(a, b).await.expect("unblock");
            }
            7 => {
                store.favourite(a, s.id, at).await.expect("favourite");
            }
            8 => {
                store.unfavourite(a, s.id).await.expect("unfavourite");
            }
            9 => {
                store
                    .create_status(&NewStatus {
                        status: boost(ids, a, s),
                        idempotency: None,
                    })
                    .await
                    .expect("boost");
            }
            10 => {
                if let Some(boosted) = store.reblog_by(a, s.id).await.expect("reblog_by") {
                    store
                        .delete_status(a, boosted.id, at)
                        .await
                        .expect("unboost");
                }
            }
            11 => {
                store
                    .set_large(a, rng.below(2) == 0)
                    .await
                    .expect("set_large");
            }
            _ => {
                if rng.below(3) == 0 {
                    store
                        .delete_status(s.account_id, s.id, stamp(ids, s.account_id.shard()))
                        .await
                        .expect("delete");
                }
            }
        }
    }
}

/// Rounds of random traffic (`STARLING_MIRROR_SOAK_ROUNDS`, default 2), each
/// by four writers at once over six accounts on two databases and four new
/// posts (which may be deleted under the writers' feet), with every side
/// checked against the other after each round.
#[tokio::test]
async fn random_concurrent_traffic_keeps_both_sides_in_step() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_convergence", 2).await else {
        return;
    };
    let store = pg_support::store_over(&urls).await;
    let ids = IdGenerator::new();
    let mut people = Vec::new();
    for n in 0..6 {
        people.push(user(&store, &ids, n % 2, &format!("p{n}x")).await);
    }
    let rounds: u64 = std::env::var("STARLING_MIRROR_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    for round in 0..rounds {
        let mut posts = Vec::new();
        for p in &people[..4] {
            posts.push(create(&store, post(&ids, *p, "post")).await);
        }
        let seed = |n: u64| (round * 4 + n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tokio::join!(
            random_writes(&store, &ids, &people, &posts, seed(0)),
            random_writes(&store, &ids, &people, &posts, seed(1)),
            random_writes(&store, &ids, &people, &posts, seed(2)),
            random_writes(&store, &ids, &people, &posts, seed(3)),
        );
        check_in_step(&store, &urls, &people, &posts).await;
    }
    store.close().await;
}

/// Both sides of every fact among `people` and `posts` agree, and every
/// counter matches its rows.
async fn check_in_step(store: &PgStore, urls: &[String], people: &[Id], posts: &[Status]) {
    assert_eq!(
        store.repair_mirrors(Duration::ZERO).await.expect("repair"),
        0,
        "nothing crashed: every write settled its own ops"
    );
    for url in urls {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        let dead: Vec<(String, String)> =
            sqlx::query_as("SELECT body, error FROM dead_mirror_ops ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .expect("dead ops");
        assert!(dead.is_empty(), "ops failed: {dead:?}");
        conn.close().await.expect("close");
    }

    let everything = AccountStatusFilter {
        only_media: false,
        exclude_replies: false,
        exclude_reblogs: false,
        up_to: Visibility::Direct,
        mentioning: None,
        tagged: None,
    };
    for &a in people {
        let (statuses, followers, following) = counts(store, a).await;
        let listed_followers = store.followers(a, &page()).await.expect("followers");
        let listed_following = store.following(a, &page()).await.expect("following");
        assert_eq!(followers, listed_followers.len() as i64, "followers of {a}");
        assert_eq!(following, listed_following.len() as i64, "following of {a}");
        assert_eq!(
            statuses,
            store
                .account_statuses(a, &everything, &page())
                .await
                .expect("statuses")
                .len() as i64,
            "statuses of {a}"
        );
        let large: Vec<Id> = store
            .large_followees(a)
            .await
            .expect("large")
            .into_iter()
            .map(|f| f.0)
            .collect();
        for (_, b) in &listed_following {
            assert_eq!(
                large.contains(b),
                store.is_large(*b).await.expect("is_large"),
                "{a}'s copy of {b}'s large flag"
            );
        }
        let mine = store.relationships(a, people).await.expect("relationships");
        for (b, rel) in people.iter().zip(&mine) {
            let theirs = relationship(store, *b, a).await;
            assert_eq!(rel.following, theirs.followed_by, "{a} follows {b}");
            assert_eq!(rel.requested, theirs.requested_by, "{a} asked {b}");
            assert_eq!(rel.blocking, theirs.blocked_by, "{a} blocks {b}");
        }
    }
    for s in posts {
        if status(store, s.id).await.is_none() {
            for &a in people {
                assert!(
                    store
                        .favourited_among(a, &[s.id])
                        .await
                        .expect("favourited_among")
                        .is_empty(),
                    "{a} still favourites the deleted {}",
                    s.id
                );
                assert!(
                    store
                        .reblogged_among(a, &[s.id])
                        .await
                        .expect("reblogged_among")
                        .is_empty(),
                    "{a} still boosts the deleted {}",
                    s.id
                );
            }
            continue;
        }
        let (_, reblogs, favourites) = status_counts(store, s.id).await;
        let by: Vec<Id> = store
            .favourited_by(s.id, &page())
            .await
            .expect("favourited_by")
            .into_iter()
            .map(|f| f.1)
            .collect();
        let boosters: Vec<Id> = store
            .reblogged_by(s.id, &page())
            .await
            .expect("reblogged_by")
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(favourites, by.len() as i64, "favourites of {}", s.id);
        assert_eq!(reblogs, boosters.len() as i64, "boosts of {}", s.id);
        for &a in people {
            let favourited = !store
                .favourited_among(a, &[s.id])
                .await
                .expect("favourited_among")
                .is_empty();
            assert_eq!(favourited, by.contains(&a), "{a} favourited {}", s.id);
            let boosted = !store
                .reblogged_among(a, &[s.id])
                .await
                .expect("reblogged_among")
                .is_empty();
            assert_eq!(boosted, boosters.contains(&a), "{a} boosted {}", s.id);
        }
    }
}
