//! The store conformance suite: what every [`Store`] adapter must do.
//!
//! Each case is a function taking a freshly migrated, empty store. An
//! adapter's tests run them all with [`store_conformance_suite!`]:
//!
//! ```ignore
//! async fn fresh() -> (Box<dyn Store>, Guard) { ... }
//! starling_store::store_conformance_suite!(fresh);
//! ```
//!
//! The cases speak only through the traits (never SQL), so the same text
//! states the contract for every adapter. Accounts and OAuth live here; the
//! social traits have their own files: [`statuses`] (statuses, boosts,
//! favourites, listings, search), [`graph`] (follows, requests, large
//! accounts, blocks, mutes, relationships), [`notifications`]
//! (notifications and markers) and [`outbox`] (the outbox and `max_ids`).
//! [`bulk`] holds the case for the bulk-load seam ([`crate::BulkLoad`]),
//! which takes two stores (one loaded in bulk, one written normally), so an
//! adapter's tests call it themselves rather than through the macro.
//! [`support`] holds the helpers they share, among them the one paging check
//! every listing that takes a [`starling_domain::Page`] goes through.

mod bulk;
mod graph;
mod media;
mod notifications;
mod outbox;
mod statuses;
mod support;

pub use bulk::*;
pub use graph::*;
pub use media::*;
pub use notifications::*;
pub use outbox::*;
pub use statuses::*;

use starling_domain::account::{Privacy, ProfileField, ProfileUpdate};
use starling_domain::oauth::{AccessToken, App, AuthCode};
use starling_domain::{Account, Id, IdGenerator, ScopeSet, Secret, ShardId};

use crate::{NewAccount, Store, StoreError};

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async
/// fn returning `(store, guard)`; the guard lives as long as the test (a temp
/// dir, a dropped database).
///
/// `store_conformance_suite!(optional $make)` is for adapters that need a
/// server: `$make` returns `Option<(store, guard)>`, and a test whose
/// `$make` returns `None` (no server; it said so) ends there.
#[macro_export]
macro_rules! store_conformance_suite {
    (optional $make:path) => {
        $crate::store_conformance_suite!(@list optional $make);
    };
    ($make:path) => {
        $crate::store_conformance_suite!(@list required $make);
    };
    (@list $mode:ident $make:path) => {
        $crate::store_conformance_suite!(@cases $mode $make;
            ping_and_migrate_twice,
            accounts_round_trip,
            usernames_are_unique_case_insensitively,
            emails_are_unique_and_failures_leave_nothing,
            logins_by_email_and_username,
            profile_updates_are_applied,
            apps_round_trip,
            auth_codes_are_single_use,
            tokens_round_trip_and_revoke,
            max_ids_cover_what_was_written,
            text_with_nul_finds_nothing,
            // statuses
            status_round_trip_and_author_counters,
            replies_bump_their_parent_only,
            boosts_count_once_per_account,
            idempotency_keys_hold_until_expiry,
            delete_status_requires_its_author,
            delete_status_cleans_up_everything,
            deleting_a_boost_fixes_the_original,
            favourites_are_idempotent,
            who_favourited_and_boosted_is_paged,
            descendants_walk_the_thread_in_id_order,
            account_statuses_filter_and_page,
            public_statuses_are_public_originals,
            tag_statuses_list_public_tagged_statuses,
            statuses_by_authors_merges_their_statuses,
            search_tags_by_prefix,
            interactions_among_match_favourites_and_boosts,
            statuses_count_leaves_out_direct_posts,
            replies_count_counts_public_and_unlisted_replies,
            reblogged_by_lists_public_and_unlisted_boosts,
            tagged_filter_compares_tags_exactly,
            // graph
            accounts_multi_get_skips_missing,
            search_accounts_by_username_and_display_name,
            search_accounts_pages_agree,
            follow_is_counted_once_and_updates_options,
            follow_requests_are_authorized_or_rejected,
            unfollow_ends_follows_and_withdraws_requests,
            followers_and_following_are_listed,
            follower_batches_walk_by_follower_id,
            large_accounts_are_found_from_follow_rows,
            blocks_sever_follows_and_requests_both_ways,
            blocks_can_be_renewed_after_unblock,
            follows_and_requests_are_refused_while_blocked,
            a_block_severs_follows_stamped_after_it,
            follow_racing_a_block_never_survives_it,
            mutes_hide_with_or_without_notifications,
            blocks_and_mutes_are_paged,
            relationships_come_in_the_order_given,
            relations_agree_with_relationships,
            notified_followers_before_lists_earlier_follows,
            // notifications
            notifications_are_created_once_per_event,
            notifications_filter_and_page,
            notifications_belong_to_their_owner,
            unread_notifications_are_counted,
            markers_count_versions,
            // outbox
            outbox_hands_out_events_in_commit_order,
            max_ids_cover_social_rows,
            // media
            media_round_trips_and_updates,
            deferred_processing_leaves_an_event,
            stale_unattached_media_is_swept,
            discarded_media_is_gone_but_for_the_sweeper,
        );
    };
    (@cases required $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $make().await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
    (@cases optional $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((store, _guard)) = $make().await else {
                    return;
                };
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

fn new_account(ids: &IdGenerator, username: &str, email: &str) -> NewAccount {
    let shard = ShardId::for_key(&username.to_ascii_lowercase());
    NewAccount {
        account: Account::new(ids.next(shard), username, None, 1_700_000_000_000),
        email: email.to_owned(),
        email_key: email.to_lowercase(),
        password_hash: "$argon2id$fake".to_owned(),
        locale: Some("en".to_owned()),
    }
}

pub async fn ping_and_migrate_twice(store: &dyn Store) {
    store.ping().await.expect("ping");
    store.migrate().await.expect("migrations are idempotent");
    store.ping().await.expect("ping after migrate");
}

pub async fn accounts_round_trip(store: &dyn Store) {
    let ids = IdGenerator::new();
    let new = new_account(&ids, "Alice", "Alice@Example.com");
    store.create_account(&new).await.expect("create");
    let by_id = store
        .account(new.account.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(by_id, new.account);
    let by_name = store
        .account_by_username("alice")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(by_name.id, new.account.id);
    assert!(store
        .account_by_username("bob")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .account(ids.next(ShardId::for_key("nobody")))
        .await
        .expect("read")
        .is_none());
    assert_eq!(
        store
            .account_email(new.account.id)
            .await
            .expect("read")
            .as_deref(),
        Some("Alice@Example.com")
    );
    assert_eq!(store.count_accounts().await.expect("count"), 1);
}

pub async fn usernames_are_unique_case_insensitively(store: &dyn Store) {
    let ids = IdGenerator::new();
    store
        .create_account(&new_account(&ids, "carol", "c1@example.com"))
        .await
        .expect("create");
    let err = store
        .create_account(&new_account(&ids, "CAROL", "c2@example.com"))
        .await
        .expect_err("duplicate username");
    assert!(matches!(err, StoreError::Conflict("username")), "{err:?}");
    // The failed attempt released the email it tried to claim.
    store
        .create_account(&new_account(&ids, "carol2", "c2@example.com"))
        .await
        .expect("email free");
    assert_eq!(store.count_accounts().await.expect("count"), 2);
}

pub async fn emails_are_unique_and_failures_leave_nothing(store: &dyn Store) {
    let ids = IdGenerator::new();
    store
        .create_account(&new_account(&ids, "dave", "d@example.com"))
        .await
        .expect("create");
    let err = store
        .create_account(&new_account(&ids, "dave2", "D@EXAMPLE.COM"))
        .await
        .expect_err("duplicate email");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert!(store
        .account_by_username("dave2")
        .await
        .expect("read")
        .is_none());
    assert_eq!(store.count_accounts().await.expect("count"), 1);
}

pub async fn logins_by_email_and_username(store: &dyn Store) {
    let ids = IdGenerator::new();
    let new = new_account(&ids, "Erin", "erin@example.com");
    store.create_account(&new).await.expect("create");
    let login = store
        .login_by_email("erin@example.com")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(login.account_id, new.account.id);
    assert_eq!(login.password_hash, new.password_hash);
    let login = store
        .login_by_username("erin")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(login.account_id, new.account.id);
    assert!(store
        .login_by_email("nobody@example.com")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .login_by_username("nobody")
        .await
        .expect("read")
        .is_none());
}

pub async fn profile_updates_are_applied(store: &dyn Store) {
    let ids = IdGenerator::new();
    let new = new_account(&ids, "frank", "f@example.com");
    store.create_account(&new).await.expect("create");
    let update = ProfileUpdate {
        display_name: Some("Frank ✨".into()),
        note: Some("line one\nline two".into()),
        locked: Some(true),
        privacy: Some(Privacy::Unlisted),
        language: Some(Some("de".into())),
        fields: Some(vec![ProfileField {
            name: "web".into(),
            value: "https://f.example".into(),
        }]),
        ..ProfileUpdate::default()
    };
    let updated = store
        .update_profile(new.account.id, &update)
        .await
        .expect("update")
        .expect("exists");
    let read = store
        .account(new.account.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(updated, read);
    assert_eq!(read.display_name, "Frank ✨");
    assert_eq!(read.note, "line one\nline two");
    assert!(read.locked && !read.bot && read.discoverable);
    assert_eq!(read.privacy, Privacy::Unlisted);
    assert_eq!(read.language.as_deref(), Some("de"));
    assert_eq!(read.fields.len(), 1);
    // An empty update changes nothing.
    let same = store
        .update_profile(new.account.id, &ProfileUpdate::default())
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(same, read);
    let missing = ids.next(ShardId::for_key("ghost"));
    assert!(store
        .update_profile(missing, &update)
        .await
        .expect("update")
        .is_none());
}

fn app(ids: &IdGenerator) -> (App, Secret) {
    let client_id = Secret::generate(ShardId::random());
    let secret = Secret::generate(client_id.shard());
    let app = App {
        id: ids.next(client_id.shard()),
        client_id: client_id.expose().to_owned(),
        client_secret_hash: secret.hash(),
        name: "Test app".into(),
        website: Some("https://app.example".into()),
        redirect_uris: vec![
            "urn:ietf:wg:oauth:2.0:oob".into(),
            "https://app.example/cb".into(),
        ],
        scopes: ScopeSet::parse("read write follow push").expect("scopes"),
        created_at_ms: 1_700_000_000_000,
    };
    (app, client_id)
}

pub async fn apps_round_trip(store: &dyn Store) {
    let ids = IdGenerator::new();
    let (app, client_id) = app(&ids);
    store.create_app(&app).await.expect("create");
    assert_eq!(store.app(app.id).await.expect("read").as_ref(), Some(&app));
    assert_eq!(
        store
            .app_by_client_id(client_id.shard(), client_id.expose())
            .await
            .expect("read"),
        Some(app)
    );
    assert!(store
        .app_by_client_id(client_id.shard(), "nope")
        .await
        .expect("read")
        .is_none());
}

pub async fn auth_codes_are_single_use(store: &dyn Store) {
    let ids = IdGenerator::new();
    let (app, _) = app(&ids);
    let account = ids.next(ShardId::for_key("gina"));
    let code = Secret::generate(account.shard());
    let record = AuthCode {
        code_hash: code.hash(),
        app_id: app.id,
        account_id: account,
        redirect_uri: "https://app.example/cb".into(),
        scopes: ScopeSet::parse("read").expect("scopes"),
        code_challenge: Some("challenge".into()),
        expires_at_ms: 1_700_000_600_000,
    };
    store
        .create_auth_code(code.shard(), &record)
        .await
        .expect("create");
    let hash = code.hash();
    let (a, b) = tokio::join!(
        store.take_auth_code(code.shard(), &hash),
        store.take_auth_code(code.shard(), &hash)
    );
    let taken: Vec<AuthCode> = [a.expect("take"), b.expect("take")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(taken, vec![record], "exactly one racer gets the code");
    assert!(store
        .take_auth_code(code.shard(), &code.hash())
        .await
        .expect("take")
        .is_none());
}

pub async fn tokens_round_trip_and_revoke(store: &dyn Store) {
    let ids = IdGenerator::new();
    let (app, _) = app(&ids);
    let account = ids.next(ShardId::for_key("hank"));
    let user_token = Secret::generate(account.shard());
    let app_token = Secret::generate(app.id.shard());
    let user = AccessToken {
        token_hash: user_token.hash(),
        app_id: app.id,
        account_id: Some(account),
        scopes: ScopeSet::parse("read write").expect("scopes"),
        created_at_ms: 1_700_000_000_000,
    };
    let anon = AccessToken {
        token_hash: app_token.hash(),
        account_id: None,
        ..user.clone()
    };
    store
        .create_token(user_token.shard(), &user)
        .await
        .expect("create");
    store
        .create_token(app_token.shard(), &anon)
        .await
        .expect("create");
    assert_eq!(
        store
            .token(user_token.shard(), &user_token.hash())
            .await
            .expect("read"),
        Some(user)
    );
    assert_eq!(
        store
            .token(app_token.shard(), &app_token.hash())
            .await
            .expect("read"),
        Some(anon)
    );
    assert!(store
        .revoke_token(user_token.shard(), &user_token.hash())
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_token(user_token.shard(), &user_token.hash())
        .await
        .expect("revoke"));
    assert!(store
        .token(user_token.shard(), &user_token.hash())
        .await
        .expect("read")
        .is_none());
    let other = Secret::generate(account.shard());
    assert!(store
        .token(other.shard(), &other.hash())
        .await
        .expect("read")
        .is_none());
}

pub async fn max_ids_cover_what_was_written(store: &dyn Store) {
    let ids = IdGenerator::new();
    let new = new_account(&ids, "ivy", "ivy@example.com");
    store.create_account(&new).await.expect("create");
    let (app, _) = app(&ids);
    store.create_app(&app).await.expect("create");
    let max: Option<Id> = store.max_ids().await.expect("max").into_iter().max();
    assert_eq!(max, Some(new.account.id.max(app.id)));
}

pub async fn text_with_nul_finds_nothing(store: &dyn Store) {
    use crate::AccountStatusFilter;
    use starling_domain::{Page, Status, Visibility};

    let ids = IdGenerator::new();
    let new = new_account(&ids, "alice", "alice@example.com");
    store.create_account(&new).await.expect("create");
    let alice = new.account.id;
    let (app, client_id) = app(&ids);
    store.create_app(&app).await.expect("create app");
    let status = Status {
        tags: vec!["cats".to_owned()],
        ..support::post(&ids, alice, "about #cats")
    };
    support::create(store, status).await;

    for text in ["\0", "alice\0", "al\0ice", "\0alice"] {
        assert!(
            store
                .account_by_username(text)
                .await
                .expect("a name with NUL is no error")
                .is_none(),
            "{text:?}: no account"
        );
        assert!(store
            .login_by_username(text)
            .await
            .expect("login")
            .is_none());
        assert!(store
            .login_by_email(&format!("{text}@example.com"))
            .await
            .expect("login by email")
            .is_none());
        assert!(store
            .app_by_client_id(client_id.shard(), &format!("{}{text}", client_id.expose()))
            .await
            .expect("app")
            .is_none());
        assert!(store
            .search_accounts(text, 10, 0)
            .await
            .expect("search accounts")
            .is_empty());
    }
    for text in ["\0", "cats\0", "ca\0ts", "\0cats"] {
        assert!(
            store
                .search_tags(text, 10, 0)
                .await
                .expect("search tags")
                .is_empty(),
            "{text:?}: no tag"
        );
        assert!(store
            .tag_statuses(text, &Page::first(10))
            .await
            .expect("tag statuses")
            .is_empty());
        let filter = AccountStatusFilter {
            only_media: false,
            exclude_replies: false,
            exclude_reblogs: false,
            up_to: Visibility::Direct,
            mentioning: None,
            tagged: Some(text.to_owned()),
        };
        assert!(store
            .account_statuses(alice, &filter, &Page::first(10))
            .await
            .expect("account statuses")
            .is_empty());
    }
    // The same reads without the NUL find what is there.
    assert!(store
        .account_by_username("alice")
        .await
        .expect("read")
        .is_some());
    assert_eq!(
        store.search_tags("cats", 10, 0).await.expect("tags"),
        vec!["cats".to_owned()]
    );
}
