//! Bulk loading ([`BulkLoad`]): a store loaded in bulk answers like one
//! written through the normal path.
//!
//! The same small network is written into two fresh stores of one adapter:
//! into the first through [`BulkLoad`] (as `starling-bench seed` does:
//! accounts and follows in two calls each, tokens, statuses with their
//! replies' and boosts' counters given, then `finish_bulk`), into the second
//! through the writes the use cases make (registration, the app, tokens,
//! follows, posts, and `set_large` where the core would mark an account).
//! Every read the server makes of such a network must then answer alike on
//! both, and as the network says: accounts with their derived counters,
//! sign-in by username and by email, tokens, follow lists from both sides
//! (followers, following, the fan-out's follower walk, relationships), the
//! large-account marks as a reader's follow rows carry them, what a home
//! rebuild reads, statuses with their threads, boosts and hashtags, the
//! public timeline. A bulk load writes no events, and finishing again (as
//! after an interrupted load: `begin_bulk`, then `finish_bulk`) changes
//! nothing.
//!
//! The network has accounts on many shards (so, for an adapter with several
//! physical databases, follows, replies, boosts, hashtags and email rows
//! whose sides are on different databases), one account above the
//! large-account threshold, one exactly below it, a reply, a self-reply, a
//! boost, hashtags (one carried by a non-public post), and every visibility.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use starling_domain::oauth::{AccessToken, App, OOB};
use starling_domain::{
    Account, FollowOptions, Id, IdGenerator, Page, ScopeSet, Secret, ShardId, Status, Visibility,
};

use super::support::{boost, post, post_as, reply, tagged};
use crate::{
    AccountStatusFilter, BulkFollow, BulkLoad, BulkOptions, FinishOptions, NewAccount, NewStatus,
    Stamp, Store,
};

/// Accounts with this many followers are large; `cat` has it, `ann` one
/// less.
const THRESHOLD: i64 = 4;

const NAMES: [&str; 8] = ["Ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];

/// The network, written the same way into both stores.
struct Network {
    accounts: Vec<NewAccount>,
    app: App,
    /// Each account's token, then an app token.
    tokens: Vec<(Secret, AccessToken)>,
    follows: Vec<BulkFollow>,
    /// In id order, counters zero (as a new status is written).
    statuses: Vec<Status>,
}

fn network() -> Network {
    let ids = IdGenerator::new();
    let accounts: Vec<NewAccount> = NAMES
        .iter()
        .map(|name| {
            let email = format!("{name}@Example.COM");
            NewAccount {
                email_key: email.to_lowercase(),
                email,
                ..super::new_account(&ids, name, "unused")
            }
        })
        .collect();
    let id = |name: &str| {
        accounts
            .iter()
            .find(|n| n.account.username == name)
            .map(|n| n.account.id)
            .expect("an account of the network")
    };
    let app_shard = ShardId::random();
    let app = App {
        id: ids.next(app_shard),
        client_id: Secret::generate(app_shard).expose().to_owned(),
        client_secret_hash: Secret::generate(app_shard).hash(),
        name: "bulk".into(),
        website: None,
        redirect_uris: vec![OOB.to_owned()],
        scopes: ScopeSet::parse("read write follow").expect("scopes"),
        created_at_ms: 1_700_000_000_000,
    };
    let token = |account: Option<Id>| {
        let secret = Secret::generate(account.map_or(app.id.shard(), Id::shard));
        let token = AccessToken {
            token_hash: secret.hash(),
            app_id: app.id,
            account_id: account,
            scopes: app.scopes,
            created_at_ms: 1_700_000_000_000,
        };
        (secret, token)
    };
    let mut tokens: Vec<(Secret, AccessToken)> =
        accounts.iter().map(|n| token(Some(n.account.id))).collect();
    tokens.push(token(None));
    let follows = [
        ("Ann", "cat"),
        ("ben", "cat"),
        ("dan", "cat"),
        ("eve", "cat"),
        ("ben", "Ann"),
        ("cat", "Ann"),
        ("dan", "Ann"),
        ("eve", "ben"),
        ("fay", "gus"),
        ("gus", "fay"),
        ("Ann", "fay"),
        ("hal", "eve"),
    ]
    .into_iter()
    .map(|(follower, followee)| {
        let (follower, followee) = (id(follower), id(followee));
        let follow = ids.next(follower.shard());
        BulkFollow {
            id: follow,
            follower,
            followee,
            created_at_ms: follow.unix_ms() as i64,
        }
    })
    .collect();
    let mut statuses = Vec::new();
    let hello = tagged(&ids, id("cat"), &["rust"]);
    statuses.push(hello.clone());
    let about = tagged(&ids, id("Ann"), &["rust", "bulk"]);
    statuses.push(about.clone());
    statuses.push(reply(&ids, id("dan"), &hello, "hi cat"));
    statuses.push(boost(&ids, id("ben"), &about));
    statuses.push(post_as(
        &ids,
        id("eve"),
        "followers only",
        Visibility::Private,
    ));
    statuses.push(Status {
        mentions: vec![id("gus")],
        ..post_as(&ids, id("fay"), "@gus psst", Visibility::Direct)
    });
    statuses.push(post_as(&ids, id("cat"), "quietly", Visibility::Unlisted));
    statuses.push(Status {
        visibility: Visibility::Unlisted,
        ..tagged(&ids, id("gus"), &["bulk"])
    });
    statuses.push(reply(&ids, id("Ann"), &about, "and more"));
    for name in NAMES {
        statuses.push(post(&ids, id(name), &format!("{name} says hello")));
    }
    Network {
        accounts,
        app,
        tokens,
        follows,
        statuses,
    }
}

/// The statuses as a bulk load takes them: replies' and boosts' counters on
/// their parents and originals already (a bulk load takes status counters
/// as given).
fn with_counters(statuses: &[Status]) -> Vec<Status> {
    let mut replies: HashMap<Id, i64> = HashMap::new();
    let mut boosts: HashMap<Id, i64> = HashMap::new();
    for s in statuses {
        if let Some(parent) = s.in_reply_to_id {
            *replies.entry(parent).or_default() += 1;
        }
        if let Some(original) = s.reblog_of_id {
            *boosts.entry(original).or_default() += 1;
        }
    }
    statuses
        .iter()
        .map(|s| Status {
            replies_count: replies.get(&s.id).copied().unwrap_or(0),
            reblogs_count: boosts.get(&s.id).copied().unwrap_or(0),
            ..s.clone()
        })
        .collect()
}

async fn write_normally(store: &dyn Store, net: &Network) {
    for new in &net.accounts {
        store.create_account(new).await.expect("create account");
    }
    store.create_app(&net.app).await.expect("create app");
    for (secret, token) in &net.tokens {
        store
            .create_token(secret.shard(), token)
            .await
            .expect("create token");
    }
    for f in &net.follows {
        store
            .follow(
                f.follower,
                f.followee,
                FollowOptions::default(),
                false,
                Stamp {
                    id: f.id,
                    at_ms: f.created_at_ms,
                },
            )
            .await
            .expect("follow");
    }
    for s in &net.statuses {
        store
            .create_status(&NewStatus {
                status: s.clone(),
                idempotency: None,
            })
            .await
            .expect("create status");
    }
    // What the core does when a follow takes an account to the threshold.
    for new in &net.accounts {
        let account = new.account.id;
        let followers = net.follows.iter().filter(|f| f.followee == account).count();
        if followers as i64 >= THRESHOLD {
            store.set_large(account, true).await.expect("set large");
        }
    }
}

async fn load_in_bulk<B: Store + BulkLoad>(store: &B, net: &Network) {
    store
        .begin_bulk(&BulkOptions::default())
        .await
        .expect("begin_bulk");
    let (first, rest) = net.accounts.split_at(3);
    store.load_accounts(first).await.expect("load accounts");
    store.load_accounts(rest).await.expect("load accounts");
    // The app goes through the ordinary seam, as the bench's does.
    store.create_app(&net.app).await.expect("create app");
    let tokens: Vec<AccessToken> = net.tokens.iter().map(|(_, t)| t.clone()).collect();
    store.load_tokens(&tokens).await.expect("load tokens");
    let (first, rest) = net.follows.split_at(5);
    store.load_follows(first).await.expect("load follows");
    store.load_follows(rest).await.expect("load follows");
    store
        .load_statuses(&with_counters(&net.statuses))
        .await
        .expect("load statuses");
    let report = store
        .finish_bulk(&FinishOptions {
            large_account_threshold: THRESHOLD,
        })
        .await
        .expect("finish_bulk");
    assert_eq!(
        report.large_accounts, 1,
        "one account reaches the threshold"
    );
}

/// Asserts both stores gave the same answer, and returns it.
fn same<T: PartialEq + Debug>(what: &str, bulk: T, normal: T) -> T {
    assert_eq!(
        bulk, normal,
        "{what}: the bulk-loaded store (left) answers unlike the one written normally (right)"
    );
    bulk
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Every read below, on both stores, compared with each other and with the
/// network.
async fn compare(bulk: &dyn Store, normal: &dyn Store, net: &Network) {
    let all: Vec<Id> = net.accounts.iter().map(|n| n.account.id).collect();
    let first_page = Page::first(100);
    assert_eq!(
        same(
            "count_accounts",
            bulk.count_accounts().await.expect("count"),
            normal.count_accounts().await.expect("count"),
        ),
        all.len() as u64
    );
    let large: Vec<Id> = all
        .iter()
        .copied()
        .filter(|a| net.follows.iter().filter(|f| f.followee == *a).count() as i64 >= THRESHOLD)
        .collect();
    assert_eq!(large.len(), 1);

    for new in &net.accounts {
        let a = new.account.id;
        let name = new.account.username.as_str();
        // The account, with the counters the rows imply.
        let account: Account = same(
            &format!("account {name}"),
            bulk.account(a).await.expect("read"),
            normal.account(a).await.expect("read"),
        )
        .expect("the account exists");
        let followers: Vec<(Id, Id)> = net
            .follows
            .iter()
            .filter(|f| f.followee == a)
            .map(|f| (f.id, f.follower))
            .collect();
        let following: Vec<(Id, Id)> = net
            .follows
            .iter()
            .filter(|f| f.follower == a)
            .map(|f| (f.id, f.followee))
            .collect();
        let own: Vec<&Status> = net.statuses.iter().filter(|s| s.account_id == a).collect();
        assert_eq!(
            (
                account.followers_count,
                account.following_count,
                account.statuses_count,
                account.last_status_at_ms
            ),
            (
                followers.len() as i64,
                following.len() as i64,
                // As Mastodon counts: not the direct ones.
                own.iter()
                    .filter(|s| s.visibility != Visibility::Direct)
                    .count() as i64,
                own.iter().map(|s| s.created_at_ms).max()
            ),
            "{name}'s counters"
        );

        // Found by username and by email, as sign-in looks them up.
        let key = name.to_ascii_lowercase();
        let by_name = same(
            &format!("account_by_username {name}"),
            bulk.account_by_username(&key).await.expect("read"),
            normal.account_by_username(&key).await.expect("read"),
        );
        assert_eq!(by_name.map(|x| x.id), Some(a));
        let login = |l: Option<crate::Login>| l.map(|l| (l.account_id, l.password_hash));
        let by_email = same(
            &format!("login_by_email {name}"),
            login(bulk.login_by_email(&new.email_key).await.expect("read")),
            login(normal.login_by_email(&new.email_key).await.expect("read")),
        );
        assert_eq!(by_email, Some((a, new.password_hash.clone())));
        same(
            &format!("login_by_username {name}"),
            login(bulk.login_by_username(&key).await.expect("read")),
            login(normal.login_by_username(&key).await.expect("read")),
        );
        assert_eq!(
            same(
                &format!("account_email {name}"),
                bulk.account_email(a).await.expect("read"),
                normal.account_email(a).await.expect("read"),
            ),
            Some(new.email.clone())
        );

        // The follow lists, from both sides.
        let listed = same(
            &format!("followers of {name}"),
            bulk.followers(a, &first_page).await.expect("followers"),
            normal.followers(a, &first_page).await.expect("followers"),
        );
        assert_eq!(
            sorted(listed),
            sorted(followers.clone()),
            "{name}'s followers"
        );
        let listed = same(
            &format!("following of {name}"),
            bulk.following(a, &first_page).await.expect("following"),
            normal.following(a, &first_page).await.expect("following"),
        );
        assert_eq!(
            sorted(listed),
            sorted(following.clone()),
            "{name}'s followees"
        );
        let walked = same(
            &format!("follower_batch of {name}"),
            bulk.follower_batch(a, None, 100).await.expect("walk"),
            normal.follower_batch(a, None, 100).await.expect("walk"),
        );
        assert_eq!(
            walked.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            sorted(followers.iter().map(|(_, f)| *f).collect()),
            "{name}'s follower walk"
        );
        assert!(
            walked.iter().all(|(_, o)| *o == FollowOptions::default()),
            "bulk follows have the default options"
        );
        assert!(same(
            &format!("notified_followers of {name}"),
            bulk.notified_followers(a, None, 100).await.expect("read"),
            normal.notified_followers(a, None, 100).await.expect("read"),
        )
        .is_empty());
        same(
            &format!("relationships of {name}"),
            bulk.relationships(a, &all).await.expect("relationships"),
            normal.relationships(a, &all).await.expect("relationships"),
        );

        // Large accounts: the mark, and its copy on the reader's follow rows.
        assert_eq!(
            same(
                &format!("is_large {name}"),
                bulk.is_large(a).await.expect("read"),
                normal.is_large(a).await.expect("read"),
            ),
            large.contains(&a),
            "{name}'s large mark"
        );
        let large_followees = same(
            &format!("large_followees of {name}"),
            bulk.large_followees(a).await.expect("read"),
            normal.large_followees(a).await.expect("read"),
        );
        assert_eq!(
            sorted(large_followees.iter().map(|(f, _)| *f).collect()),
            sorted(
                following
                    .iter()
                    .map(|(_, f)| *f)
                    .filter(|f| large.contains(f))
                    .collect()
            ),
            "{name}'s large followees"
        );

        // What a home rebuild reads: the followees, the large ones, and the
        // posts of the others and the reader's own.
        let followees = same(
            &format!("followees of {name}"),
            bulk.followees(a, 10_000).await.expect("read"),
            normal.followees(a, 10_000).await.expect("read"),
        );
        let mut authors: Vec<Id> = followees
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| !large.contains(f))
            .collect();
        authors.push(a);
        let home = same(
            &format!("home rebuild of {name}"),
            bulk.statuses_by_authors(&authors, &Page::first(40))
                .await
                .expect("read"),
            normal
                .statuses_by_authors(&authors, &Page::first(40))
                .await
                .expect("read"),
        );
        let expected: Vec<Id> = sorted(
            net.statuses
                .iter()
                .filter(|s| authors.contains(&s.account_id))
                .map(|s| s.id)
                .collect(),
        )
        .into_iter()
        .rev()
        .collect();
        assert_eq!(
            home.iter().map(|s| s.id).collect::<Vec<_>>(),
            expected,
            "{name}'s home rebuild reads their own and their small followees' posts"
        );

        // Their posts, as a viewer who may see everything sees them.
        let filter = AccountStatusFilter {
            only_media: false,
            exclude_replies: false,
            exclude_reblogs: false,
            up_to: Visibility::Direct,
            mentioning: None,
            tagged: None,
        };
        let listed = same(
            &format!("account_statuses of {name}"),
            bulk.account_statuses(a, &filter, &first_page)
                .await
                .expect("read"),
            normal
                .account_statuses(a, &filter, &first_page)
                .await
                .expect("read"),
        );
        assert_eq!(listed.len(), own.len(), "{name}'s statuses");
    }

    // Tokens authenticate, on the shard their text names.
    for (secret, token) in &net.tokens {
        let found = same(
            "token",
            bulk.token(secret.shard(), &secret.hash())
                .await
                .expect("read"),
            normal
                .token(secret.shard(), &secret.hash())
                .await
                .expect("read"),
        );
        assert_eq!(found.as_ref(), Some(token), "a loaded token authenticates");
    }

    // Statuses, with the counters other shards keep for them, and what
    // lists them from other shards.
    let expected = with_counters(&net.statuses);
    for s in &expected {
        let found = same(
            "status",
            bulk.status(s.id).await.expect("read"),
            normal.status(s.id).await.expect("read"),
        );
        assert_eq!(found.as_ref(), Some(s), "status as loaded");
        let descendants = same(
            "descendants",
            bulk.descendants(s.id, 10).await.expect("read"),
            normal.descendants(s.id, 10).await.expect("read"),
        );
        assert_eq!(descendants.len() as i64, s.replies_count, "thread rows");
        let boosted_by = same(
            "reblogged_by",
            bulk.reblogged_by(s.id, &first_page).await.expect("read"),
            normal.reblogged_by(s.id, &first_page).await.expect("read"),
        );
        assert_eq!(boosted_by.len() as i64, s.reblogs_count, "boost rows");
    }
    let mut tagged_public: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &net.statuses {
        for tag in &s.tags {
            *tagged_public.entry(tag.as_str()).or_default() +=
                usize::from(s.visibility == Visibility::Public && !s.is_reblog());
        }
    }
    for (tag, public) in tagged_public {
        let listed = same(
            &format!("tag_statuses #{tag}"),
            bulk.tag_statuses(tag, &first_page).await.expect("read"),
            normal.tag_statuses(tag, &first_page).await.expect("read"),
        );
        assert_eq!(listed.len(), public, "#{tag}'s public statuses");
    }
    for (prefix, found) in [("bu", "bulk"), ("ru", "rust")] {
        assert_eq!(
            same(
                &format!("search_tags {prefix}"),
                bulk.search_tags(prefix, 10, 0).await.expect("search"),
                normal.search_tags(prefix, 10, 0).await.expect("search"),
            ),
            vec![found.to_owned()]
        );
    }
    let public = same(
        "public_statuses",
        bulk.public_statuses(&first_page).await.expect("read"),
        normal.public_statuses(&first_page).await.expect("read"),
    );
    assert!(!public.is_empty());
    same(
        "max_ids",
        bulk.max_ids().await.expect("max").into_iter().max(),
        normal.max_ids().await.expect("max").into_iter().max(),
    );
}

/// The same network, bulk-loaded into `bulk` and written through the normal
/// path into `normal` (both fresh, migrated and empty), answers alike.
pub async fn bulk_load_answers_like_the_normal_path<B: Store + BulkLoad>(
    bulk: &B,
    normal: &dyn Store,
) {
    let net = network();
    write_normally(normal, &net).await;
    load_in_bulk(bulk, &net).await;
    assert_eq!(
        bulk.outbox_len().await.expect("outbox"),
        0,
        "a bulk load writes no events"
    );
    compare(bulk, normal, &net).await;

    // An interrupted load is repaired by beginning and finishing again;
    // finishing a finished load changes nothing.
    bulk.begin_bulk(&BulkOptions::default())
        .await
        .expect("begin_bulk");
    let report = bulk
        .finish_bulk(&FinishOptions {
            large_account_threshold: THRESHOLD,
        })
        .await
        .expect("finish_bulk again");
    assert_eq!(report.large_accounts, 1);
    compare(bulk, normal, &net).await;
}
