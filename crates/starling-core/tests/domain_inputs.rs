//! Free-text inputs that reach the use cases by a path that bypasses the
//! HTTP edge's parameter parser (which answers 400 to NUL): the use cases
//! refuse NUL themselves, as a validation error (422 at the edge), before
//! anything reaches the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use starling_cache::MemoryTimelineCache;
use starling_core::accounts::{ProfileInput, Registration};
use starling_core::oauth::NewApp;
use starling_core::search::SearchKinds;
use starling_core::statuses::PostInput;
use starling_core::{Core, CoreError, CoreSettings, Passwords, Principal, Seams};
use starling_domain::account::ProfileField;
use starling_domain::validation::ErrorCode;
use starling_domain::{Id, IdGenerator, ManualClock, ScopeSet, SecretHash};
use starling_store::{SqliteStore, Store};

struct World {
    core: Core,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).await.unwrap());
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new());
    let timelines = Arc::new(MemoryTimelineCache::new(
        800,
        std::time::Duration::from_secs(3600),
        10_000,
        clock.clone(),
    ));
    let core = Core::new(
        Seams {
            store: store.clone(),
            timelines,
            invalidations: Arc::new(starling_cache::LocalInvalidations),
            shared_objects: None,
            media: Arc::new(starling_media::FsStorage::new(
                std::env::temp_dir().join("starling-core-test-media"),
            )),
            live: std::sync::Arc::new(starling_bus::InProcessLive::new()),
        },
        Arc::new(IdGenerator::new()),
        clock,
        Passwords::new(1).unwrap(),
        CoreSettings {
            base_url: "https://starling.test".into(),
            ..CoreSettings::default()
        },
    );
    World {
        core,
        store,
        _dir: dir,
    }
}

fn registration(username: &str, password: &str) -> Registration {
    Registration {
        username: Some(username.into()),
        email: Some(format!("{}@example.com", username.replace('\0', ""))),
        password: Some(password.into()),
        agreement: true,
        locale: Some("en".into()),
        reason: None,
    }
}

fn principal(account: Id) -> Principal {
    Principal {
        token_hash: SecretHash([7; 32]),
        token_shard: account.shard(),
        app_id: Id::from_i64(1),
        account_id: Some(account),
        scopes: ScopeSet::parse("read write follow").unwrap(),
    }
}

/// The error is a validation error naming `field`, code `ERR_INVALID`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, CoreError>, field: &str) {
    match result {
        Err(CoreError::Validation(errors)) => assert!(
            errors
                .0
                .iter()
                .any(|e| e.field == field && e.code == ErrorCode::Invalid),
            "{field}: {errors:?}"
        ),
        other => panic!("{field}: expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn nul_is_refused_by_the_use_cases() {
    let w = world().await;
    let core = &w.core;
    let alice = core
        .create_account(&registration("alice", "correct horse battery"))
        .await
        .unwrap();
    let me = principal(alice.id);

    // Registration.
    refused(
        core.create_account(&registration("bo\0b", "correct horse battery"))
            .await,
        "username",
    );
    refused(
        core.create_account(&registration("bob", "correct horse\0battery"))
            .await,
        "password",
    );

    // Statuses and their content warnings.
    let post = |text: &str, spoiler: &str| PostInput {
        text: Some(text.into()),
        spoiler_text: Some(spoiler.into()),
        ..PostInput::default()
    };
    refused(core.post_status(&me, post("a\0b", "")).await, "text");
    refused(
        core.post_status(&me, post("ok", "c\0w")).await,
        "spoiler_text",
    );

    // The profile.
    let update = |f: &dyn Fn(&mut ProfileInput)| {
        let mut input = ProfileInput::default();
        f(&mut input);
        input
    };
    refused(
        core.update_profile(&me, update(&|p| p.display_name = Some("Al\0ice".into())))
            .await,
        "display_name",
    );
    refused(
        core.update_profile(&me, update(&|p| p.note = Some("\0".into())))
            .await,
        "note",
    );
    for (name, value) in [("Site\0", "x"), ("Site", "x\0")] {
        let field = ProfileField {
            name: name.into(),
            value: value.into(),
        };
        refused(
            core.update_profile(&me, update(&|p| p.fields = Some(vec![field.clone()])))
                .await,
            "fields",
        );
    }

    // Applications.
    let app = |name: &str, uri: &str, website: Option<&str>| NewApp {
        client_name: name.into(),
        redirect_uris: vec![uri.into()],
        scopes: Some("read".into()),
        website: website.map(str::to_owned),
    };
    let oob = "urn:ietf:wg:oauth:2.0:oob";
    refused(core.create_app(app("ev\0il", oob, None)).await, "name");
    refused(
        core.create_app(app("app", "https://a.example/\0cb", None))
            .await,
        "redirect_uri",
    );
    refused(
        core.create_app(app("app", oob, Some("https://a.example/\0")))
            .await,
        "website",
    );

    // Search.
    let all = SearchKinds {
        accounts: true,
        hashtags: true,
        statuses: true,
    };
    refused(core.search(Some(alice.id), "al\0", all, 5, 0).await, "q");
    refused(core.search(None, "#a\0b", all, 5, 0).await, "q");
    refused(core.search_accounts("a\0", 5, 0).await, "q");

    // Signing in with one fails like any wrong sign-in.
    assert_eq!(
        core.check_password("alice\0", "correct horse battery")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        core.check_password("alice@example.com", "correct horse battery\0")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        core.check_password("alice@example.com", "correct horse battery")
            .await
            .unwrap(),
        Some(alice.id)
    );

    // Nothing was written: alice alone, with no statuses and her profile.
    assert_eq!(w.store.count_accounts().await.unwrap(), 1);
    let alice = core.account(alice.id).await.unwrap();
    assert_eq!(alice.statuses_count, 0);
    assert_eq!(alice.display_name, "");
    assert!(alice.fields.is_empty());
    // And the same inputs without the NUL are fine.
    core.post_status(&me, post("ab", "cw")).await.unwrap();
    core.create_app(app(
        "app",
        "https://a.example/cb",
        Some("https://a.example/"),
    ))
    .await
    .unwrap();
}
