//! Two object caches ("processes", each a `Core` with its own memory level)
//! over one store and one shared level, as `api` processes share Redis:
//!
//! - what one process read, the other finds in the shared level without
//!   the store;
//! - a write through one process (a favourite, a profile change) is seen
//!   by the other at once (its copy dropped by the invalidation message,
//!   the shared one tombstoned), and even with the message lost, the shared
//!   level never serves the old copy again;
//! - a reader that read a row before a write and fills after the writer's
//!   invalidation does not put the old row back in the shared level.
//!
//! The shared level here is the memory adapter (Redis passes the same
//! conformance suite in starling-cache); invalidation messages go through
//! an in-test broadcast that can lose them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use starling_cache::{
    CacheResult, Invalidation, InvalidationHandler, Invalidations, LocalInvalidations,
    MemorySharedObjects, MemoryTimelineCache, ObjectKind, SharedObjects,
};
use starling_core::accounts::ProfileInput;
use starling_core::{
    Core, CoreError, CoreSettings, ObjectCache, Passwords, Principal, Seams, SharedLevel,
};
use starling_domain::{
    Account, Id, IdGenerator, ManualClock, ScopeSet, SecretHash, ShardId, Status, SystemClock,
    Visibility,
};
use starling_store::{Created, NewAccount, NewStatus, SqliteStore, Stamp, Store};

/// Pub/sub between the test's processes; `lose` drops every message.
#[derive(Default)]
struct Broadcast {
    handlers: Mutex<Vec<InvalidationHandler>>,
    lose: AtomicBool,
}

#[async_trait]
impl Invalidations for Broadcast {
    async fn publish(&self, what: &Invalidation) -> CacheResult<()> {
        if !self.lose.load(Ordering::SeqCst) {
            let handlers = self.handlers.lock().unwrap().clone();
            for handler in handlers {
                handler(what.clone());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, handler: InvalidationHandler) -> CacheResult<()> {
        self.handlers.lock().unwrap().push(handler);
        Ok(())
    }
}

struct World {
    store: Arc<dyn Store>,
    shared: Arc<MemorySharedObjects>,
    broadcast: Arc<Broadcast>,
    ids: Arc<IdGenerator>,
    alice: Id,
    bob: Id,
    _dir: tempfile::TempDir,
}

/// The favourites count `core` shows for `id` (anonymous read).
async fn favourites_of(core: &Core, id: Id) -> i64 {
    core.status(None, id).await.unwrap().status.favourites_count
}

/// Whether `core` shows `id` as favourited by `viewer`.
async fn favourited_by(core: &Core, viewer: Id, id: Id) -> bool {
    let view = core.status(Some(viewer), id).await.unwrap();
    view.viewer.unwrap().favourited
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

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).await.unwrap());
    store.migrate().await.unwrap();
    let ids = Arc::new(IdGenerator::new());
    let mut accounts = Vec::new();
    for username in ["alice", "bob"] {
        let id = ids.next(ShardId::for_key(username));
        store
            .create_account(&NewAccount {
                account: Account::new(id, username, None, 1_700_000_000_000),
                email: format!("{username}@example.com"),
                email_key: format!("{username}@example.com"),
                password_hash: "$argon2id$unused".into(),
                locale: None,
            })
            .await
            .unwrap();
        accounts.push(id);
    }
    World {
        store,
        shared: Arc::new(MemorySharedObjects::new(10_000, Arc::new(SystemClock))),
        broadcast: Arc::new(Broadcast::default()),
        ids,
        alice: accounts[0],
        bob: accounts[1],
        _dir: dir,
    }
}

impl World {
    /// A process: its own `Core` (and object cache) over the shared store,
    /// shared level (if `shared`) and broadcast.
    async fn process(&self, shared: bool, memory_ttl: Duration) -> Core {
        let core = Core::new(
            Seams {
                store: self.store.clone(),
                timelines: Arc::new(MemoryTimelineCache::new(
                    800,
                    Duration::from_secs(3600),
                    1_000,
                    Arc::new(ManualClock::new()),
                )),
                invalidations: self.broadcast.clone(),
                shared_objects: shared.then(|| self.shared.clone() as Arc<dyn SharedObjects>),
                media: std::sync::Arc::new(starling_media::FsStorage::new(
                    std::env::temp_dir().join("starling-core-test-media"),
                )),
                live: std::sync::Arc::new(starling_bus::InProcessLive::new()),
            },
            self.ids.clone(),
            Arc::new(SystemClock),
            Passwords::new(1).unwrap(),
            CoreSettings {
                base_url: "https://starling.test".into(),
                object_cache_ttl: memory_ttl,
                ..CoreSettings::default()
            },
        );
        core.listen_for_invalidations().await.unwrap();
        core
    }

    fn stamp(&self, shard: ShardId) -> Stamp {
        Stamp {
            id: self.ids.next(shard),
            at_ms: 1_700_000_000_000,
        }
    }

    /// A public status by alice, written straight to the store (no cache
    /// involved).
    async fn post(&self, text: &str) -> Status {
        let status = Status {
            id: self.ids.next(self.alice.shard()),
            account_id: self.alice,
            reblog_of_id: None,
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            text: text.into(),
            content: format!("<p>{text}</p>"),
            spoiler_text: String::new(),
            sensitive: false,
            visibility: Visibility::Public,
            language: None,
            app_id: None,
            mentions: vec![],
            tags: vec![],
            created_at_ms: 1_700_000_000_000,
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            media: Vec::new(),
        };
        let created = self
            .store
            .create_status(&NewStatus {
                status: status.clone(),
                idempotency: None,
            })
            .await
            .unwrap();
        assert!(matches!(created, Created::New(_)));
        status
    }
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_second_process_finds_in_the_shared_level_what_the_first_read() {
    let w = world().await;
    let (one, two) = (w.process(true, LONG).await, w.process(true, LONG).await);
    let alone = w.process(false, LONG).await;
    let status = w.post("hello from one").await;

    let seen = one.status(None, status.id).await.unwrap();
    assert_eq!(seen.status.text, "hello from one");

    // The row goes away underneath every cache (no invalidation).
    w.store
        .delete_status(w.alice, status.id, w.stamp(w.alice.shard()))
        .await
        .unwrap()
        .unwrap();
    assert!(w.store.status(status.id).await.unwrap().is_none());

    // The second process never read it: status and author come from the
    // shared level, without the store.
    let view = two.status(None, status.id).await.unwrap();
    assert_eq!(*view.status, status);
    assert_eq!(view.account.username, "alice");
    // A process without the shared level reads the store, which has
    // nothing.
    assert!(matches!(
        alone.status(None, status.id).await,
        Err(CoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_favourite_through_one_process_is_counted_at_once_by_the_other() {
    let w = world().await;
    let (one, two) = (w.process(true, LONG).await, w.process(true, LONG).await);
    let status = w.post("count me").await;
    assert_eq!(favourites_of(&one, status.id).await, 0);
    assert_eq!(favourites_of(&two, status.id).await, 0);
    assert!(!favourited_by(&two, w.bob, status.id).await);

    let after = one.favourite(&principal(w.bob), status.id).await.unwrap();
    assert_eq!(after.status.favourites_count, 1);
    assert!(after.viewer.unwrap().favourited);
    assert_eq!(
        favourites_of(&two, status.id).await,
        1,
        "no stale counter in the other process"
    );
    assert!(
        favourited_by(&two, w.bob, status.id).await,
        "the reader's flags, kept by the other process, dropped"
    );
    // And a third, fresh process finds the new count, not the old entry.
    let three = w.process(true, LONG).await;
    assert_eq!(favourites_of(&three, status.id).await, 1);

    one.unfavourite(&principal(w.bob), status.id).await.unwrap();
    assert_eq!(favourites_of(&two, status.id).await, 0);
    assert!(!favourited_by(&two, w.bob, status.id).await);
}

#[tokio::test]
async fn a_profile_change_through_one_process_is_shown_by_the_other() {
    let w = world().await;
    let (one, two) = (w.process(true, LONG).await, w.process(true, LONG).await);
    let status = w.post("by alice").await;
    assert_eq!(
        two.status(None, status.id)
            .await
            .unwrap()
            .account
            .display_name,
        ""
    );
    w.broadcast.lose.store(true, Ordering::SeqCst);
    one.update_profile(
        &principal(w.alice),
        ProfileInput {
            display_name: Some("Alice A.".into()),
            ..ProfileInput::default()
        },
    )
    .await
    .unwrap();
    // The message is lost: the other process's own copy may serve until
    // it expires, but the shared level no longer holds the old profile.
    let three = w.process(true, LONG).await;
    let view = three.status(None, status.id).await.unwrap();
    assert_eq!(view.account.display_name, "Alice A.");
}

#[tokio::test]
async fn with_the_message_lost_the_shared_level_serves_no_stale_copy() {
    let w = world().await;
    let one = w.process(true, LONG).await;
    // Its memory level expires fast: what it serves after is the shared
    // level's (or the store's).
    let two = w.process(true, Duration::from_millis(100)).await;
    let status = w.post("lost message").await;
    assert_eq!(favourites_of(&one, status.id).await, 0);
    assert_eq!(favourites_of(&two, status.id).await, 0);
    let entry = w
        .shared
        .get_many(ObjectKind::Status, &[status.id])
        .await
        .unwrap();
    assert!(entry[0].is_some(), "the first read filled the shared level");

    w.broadcast.lose.store(true, Ordering::SeqCst);
    one.favourite(&principal(w.bob), status.id).await.unwrap();
    let entry = w
        .shared
        .get_many(ObjectKind::Status, &[status.id])
        .await
        .unwrap();
    assert_eq!(entry, vec![None], "tombstoned before the writer answered");

    // The second process may serve its own copy until it expires (100 ms),
    // then sees the new count: the shared entry (60 s) is not read back.
    let started = Instant::now();
    loop {
        let count = favourites_of(&two, status.id).await;
        if count == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the old count outlived the memory level's TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A shared level that runs a hook before the next fill: a write that
/// commits and invalidates between a reader's store read and its fill.
struct BeforeFill {
    inner: Arc<MemorySharedObjects>,
    hook: Mutex<Option<Hook>>,
}

#[async_trait]
impl SharedObjects for BeforeFill {
    async fn get_many(&self, kind: ObjectKind, ids: &[Id]) -> CacheResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(kind, ids).await
    }

    async fn put_many(
        &self,
        kind: ObjectKind,
        items: &[(Id, Vec<u8>)],
        ttl: Duration,
    ) -> CacheResult<()> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.put_many(kind, items, ttl).await
    }

    async fn invalidate_many(
        &self,
        kind: ObjectKind,
        ids: &[Id],
        tombstone: Duration,
    ) -> CacheResult<()> {
        self.inner.invalidate_many(kind, ids, tombstone).await
    }
}

#[tokio::test]
async fn a_late_fill_does_not_put_back_what_a_write_invalidated() {
    let w = world().await;
    let status = w.post("raced").await;
    let level = |objects: Arc<dyn SharedObjects>| SharedLevel {
        objects,
        ttl: Duration::from_secs(60),
        tombstone: Duration::from_secs(60),
    };
    let racy = Arc::new(BeforeFill {
        inner: w.shared.clone(),
        hook: Mutex::new(None),
    });
    let reader = ObjectCache::new(
        1_000,
        LONG,
        Arc::new(LocalInvalidations),
        Some(level(racy.clone())),
    );
    let writer = ObjectCache::new(
        1_000,
        LONG,
        Arc::new(LocalInvalidations),
        Some(level(w.shared.clone())),
    );

    // Between the reader's store read and its fill: bob favourites, and
    // the writer invalidates.
    let (store, writer_, bob, stamp) = (
        w.store.clone(),
        writer.clone(),
        w.bob,
        w.stamp(w.bob.shard()),
    );
    *racy.hook.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            assert!(store.favourite(bob, status.id, stamp).await.unwrap());
            writer_.forget_statuses(&[status.id]).await;
        })
    }));
    let read = reader.statuses(&*w.store, &[status.id]).await.unwrap();
    assert_eq!(read[0].favourites_count, 0, "read before the write");
    assert!(racy.hook.lock().unwrap().is_none(), "the hook ran");

    // The late fill met the tombstone: the shared level does not hold the
    // old row, and a fresh process reads the new one.
    let entry = w
        .shared
        .get_many(ObjectKind::Status, &[status.id])
        .await
        .unwrap();
    assert_eq!(entry, vec![None]);
    let fresh = ObjectCache::new(
        1_000,
        LONG,
        Arc::new(LocalInvalidations),
        Some(level(w.shared.clone())),
    );
    let read = fresh.statuses(&*w.store, &[status.id]).await.unwrap();
    assert_eq!(read[0].favourites_count, 1);
}

#[tokio::test]
async fn reads_pinned_to_the_primary_skip_the_shared_copy() {
    let w = world().await;
    let level = SharedLevel {
        objects: w.shared.clone(),
        ttl: Duration::from_secs(60),
        tombstone: Duration::from_secs(5),
    };
    let cache = ObjectCache::new(1_000, LONG, Arc::new(LocalInvalidations), Some(level));
    let status = w.post("pinned").await;
    // A shared entry that disagrees with the store (as a stale one would).
    let mut stale = status.clone();
    stale.favourites_count = 99;
    w.shared
        .put_many(
            ObjectKind::Status,
            &[(status.id, starling_cache::CachedObject::encode(&stale))],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let read = cache.statuses(&*w.store, &[status.id]).await.unwrap();
    assert_eq!(
        read[0].favourites_count, 99,
        "a lookup uses the shared entry"
    );
    let pinned = starling_store::with_primary_reads(cache.statuses(&*w.store, &[status.id]))
        .await
        .unwrap();
    assert_eq!(
        pinned[0].favourites_count, 0,
        "a pinned one reads the store"
    );
}

#[tokio::test]
async fn an_authors_post_through_one_process_drops_the_recent_ids_another_keeps() {
    let w = world().await;
    let reader = ObjectCache::new(1_000, LONG, w.broadcast.clone(), None);
    reader.listen().await.unwrap();
    let writer = ObjectCache::new(1_000, LONG, w.broadcast.clone(), None);
    let first = w.post("one").await;
    let recent = reader.recent_ids(&*w.store, w.alice).await.unwrap();
    assert_eq!(recent.ids, vec![first.id]);
    assert!(recent.complete);

    // Written but not yet announced: the reader keeps its copy.
    let second = w.post("two").await;
    let recent = reader.recent_ids(&*w.store, w.alice).await.unwrap();
    assert_eq!(recent.ids, vec![first.id]);

    // The writer announces the change to alice (as every post does).
    writer.forget_accounts(&[w.alice]).await;
    let recent = reader.recent_ids(&*w.store, w.alice).await.unwrap();
    assert_eq!(recent.ids, vec![second.id, first.id]);
}

/// Tokens are kept in each process's memory: a token revoked through one
/// process stops working at once in another that had it cached.
#[tokio::test]
async fn a_token_revoked_through_one_process_stops_working_in_the_other() {
    let w = world().await;
    let (one, two) = (w.process(true, LONG).await, w.process(true, LONG).await);
    let (app, client_secret) = one
        .create_app(starling_core::oauth::NewApp {
            client_name: "revoker".into(),
            redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".into()],
            scopes: Some("read".into()),
            website: None,
        })
        .await
        .unwrap();
    let issued = one
        .token(starling_core::oauth::TokenParams {
            grant_type: Some("client_credentials".into()),
            client_id: Some(app.client_id.clone()),
            client_secret: Some(client_secret.expose().into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let bearer = issued.token.expose().to_owned();
    for core in [&one, &two] {
        let p = core.authenticate(&bearer).await.unwrap().expect("live");
        assert_eq!(p.app_id, app.id);
        // Asked again: from memory.
        assert!(core.authenticate(&bearer).await.unwrap().is_some());
    }
    two.revoke(
        Some(&app.client_id),
        Some(client_secret.expose()),
        Some(&bearer),
    )
    .await
    .unwrap();
    for core in [&two, &one] {
        assert!(
            core.authenticate(&bearer).await.unwrap().is_none(),
            "a revoked token is refused at once by every process"
        );
    }
}
