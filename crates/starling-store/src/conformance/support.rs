//! Helpers the social conformance cases share: making accounts, statuses and
//! stamps, reading the outbox, and the one paging check every listing that
//! takes a [`Page`] goes through.
//!
//! Ids come from an [`IdGenerator`] on the shard that owns the row (a status
//! on its author's shard, a follow on the follower's, a notification on its
//! recipient's), as the core does, so an adapter that routes by an id's shard
//! finds what it wrote.

use std::cmp::Reverse;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use starling_domain::account::ProfileUpdate;
use starling_domain::{
    Account, Event, EventKind, Id, IdGenerator, Page, ShardId, Status, Visibility,
};

use crate::{Created, NewStatus, Stamp, Store, StoreResult};

/// Creates an account called `username` (email `username@example.com`).
pub(super) async fn user(store: &dyn Store, ids: &IdGenerator, username: &str) -> Account {
    let new = super::new_account(ids, username, &format!("{username}@example.com"));
    store.create_account(&new).await.expect("create account");
    new.account
}

/// Gives an account a display name.
pub(super) async fn set_display_name(store: &dyn Store, id: Id, name: &str) {
    let update = ProfileUpdate {
        display_name: Some(name.to_owned()),
        ..ProfileUpdate::default()
    };
    store
        .update_profile(id, &update)
        .await
        .expect("update profile")
        .expect("account exists");
}

/// The account as the store has it now (counters included).
pub(super) async fn reload(store: &dyn Store, id: Id) -> Account {
    store
        .account(id)
        .await
        .expect("read account")
        .expect("account exists")
}

/// A stamp for a write owned by `shard`, timed by its own id.
pub(super) fn stamp(ids: &IdGenerator, shard: ShardId) -> Stamp {
    let id = ids.next(shard);
    Stamp {
        id,
        at_ms: id.unix_ms() as i64,
    }
}

/// A public post by `author`, not yet written.
pub(super) fn post(ids: &IdGenerator, author: Id, text: &str) -> Status {
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
        language: Some("en".to_owned()),
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

/// A post with another visibility.
pub(super) fn post_as(ids: &IdGenerator, author: Id, text: &str, visibility: Visibility) -> Status {
    Status {
        visibility,
        ..post(ids, author, text)
    }
}

/// A post carrying hashtags (lowercase names).
pub(super) fn tagged(ids: &IdGenerator, author: Id, tags: &[&str]) -> Status {
    Status {
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..post(ids, author, &format!("about #{}", tags.join(" #")))
    }
}

/// A public reply by `author` to `parent`.
pub(super) fn reply(ids: &IdGenerator, author: Id, parent: &Status, text: &str) -> Status {
    Status {
        in_reply_to_id: Some(parent.id),
        in_reply_to_account_id: Some(parent.account_id),
        ..post(ids, author, text)
    }
}

/// A public boost of `original` by `booster` (empty text, as the core makes them).
pub(super) fn boost(ids: &IdGenerator, booster: Id, original: &Status) -> Status {
    Status {
        reblog_of_id: Some(original.id),
        text: String::new(),
        content: String::new(),
        language: None,
        ..post(ids, booster, "")
    }
}

/// Writes a status that must be new, and returns it as stored.
pub(super) async fn create(store: &dyn Store, status: Status) -> Status {
    let created = store
        .create_status(&NewStatus {
            status: status.clone(),
            idempotency: None,
        })
        .await
        .expect("create status");
    assert_eq!(
        created,
        Created::New(Box::new(status.clone())),
        "create_status of a fresh status returns Created::New with the status as given"
    );
    status
}

/// A status as the store has it now (counters included).
pub(super) async fn reload_status(store: &dyn Store, id: Id) -> Status {
    store
        .status(id)
        .await
        .expect("read status")
        .expect("status exists")
}

pub(super) fn status_ids(statuses: Vec<Status>) -> Vec<Id> {
    statuses.into_iter().map(|s| s.id).collect()
}

/// Sorts ids newest first, the order every listing uses.
pub(super) fn newest_first(mut ids: Vec<Id>) -> Vec<Id> {
    ids.sort_unstable_by_key(|id| Reverse(*id));
    ids
}

/// Sorts `(row id, other id)` pairs newest first by row id.
pub(super) fn rows_newest_first(mut rows: Vec<(Id, Id)>) -> Vec<(Id, Id)> {
    rows.sort_unstable_by_key(|row| Reverse(row.0));
    rows
}

pub(super) fn sorted(mut ids: Vec<Id>) -> Vec<Id> {
    ids.sort_unstable();
    ids
}

/// Reads and removes everything in the outbox: the events written since the
/// last call, oldest first.
pub(super) async fn take_events(store: &dyn Store) -> Vec<Event> {
    const MAX: usize = 1000;
    let pending = store.outbox_pending(MAX).await.expect("outbox_pending");
    assert!(pending.len() < MAX, "test wrote more events than it reads");
    let keys: Vec<(u32, i64)> = pending.iter().map(|e| e.key).collect();
    store.outbox_remove(&keys).await.expect("outbox_remove");
    pending.into_iter().map(|e| e.event).collect()
}

/// The kinds of the events written since the last read of the outbox.
pub(super) async fn take_kinds(store: &dyn Store) -> Vec<EventKind> {
    take_events(store)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Asserts that nothing was written to the outbox since the last read.
pub(super) async fn assert_no_events(store: &dyn Store, why: &str) {
    let events = take_events(store).await;
    assert!(
        events.is_empty(),
        "{why}: expected no event, got {events:?}"
    );
}

/// The event a write with `stamp` emits.
pub(super) fn stamped(stamp: Stamp, kind: EventKind) -> Event {
    Event {
        id: stamp.id,
        created_at_ms: stamp.at_ms,
        kind,
    }
}

/// The `StatusCreated` event of `status`: stamped with its own id and time.
pub(super) fn created_event(status: &Status) -> Event {
    Event {
        id: status.id,
        created_at_ms: status.created_at_ms,
        kind: EventKind::StatusCreated {
            status_id: status.id,
            author_id: status.account_id,
        },
    }
}

/// One page of a listing, as the store answers it.
pub(super) type Listing<'a, T> = Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'a>>;

/// Checks a listing against [`Page::select`] over its full contents
/// (`full`, newest first): `max_id` is exclusive, `since_id` gives the
/// newest items above it, `min_id` the items just above it (still returned
/// newest first), `limit` caps the page, and bounds need not be ids of items.
///
/// ```ignore
/// check_paging("followers", &rows, |r| r.0, |p| {
///     Box::pin(async move { store.followers(account, &p).await })
/// })
/// .await;
/// ```
pub(super) async fn check_paging<'a, T>(
    what: &str,
    full: &[T],
    id_of: impl Fn(&T) -> Id,
    list: impl Fn(Page) -> Listing<'a, T>,
) where
    T: Clone + Debug + PartialEq,
{
    let all: Vec<Id> = full.iter().map(&id_of).collect();
    assert!(
        all.len() >= 4,
        "{what}: a paging check needs at least four items to tell pages apart"
    );
    assert!(
        all.windows(2).all(|w| w[0] > w[1]),
        "{what}: the expected list must be newest first"
    );
    let n = all.len();
    let (newest, mid, oldest) = (all[0], all[n / 2], all[n - 1]);
    // Not necessarily the id of an item: bounds are plain numbers.
    let near_mid = Id::from_i64(mid.as_i64() + 1);
    let page = |max_id, since_id, min_id, limit| Page {
        max_id,
        since_id,
        min_id,
        limit,
    };
    let pages = [
        Page::first(n + 5),
        Page::first(1),
        Page::first(2),
        page(Some(newest), None, None, 2),
        page(Some(mid), None, None, n),
        page(Some(near_mid), None, None, n),
        page(Some(oldest), None, None, n),
        page(None, Some(oldest), None, 2),
        page(None, Some(mid), None, n),
        page(None, Some(newest), None, n),
        page(None, None, Some(oldest), 2),
        page(None, None, Some(near_mid), 1),
        page(None, None, Some(newest), n),
        page(Some(newest), None, Some(oldest), n),
        page(Some(newest), Some(oldest), None, 1),
        page(Some(newest), None, Some(oldest), 1),
        page(None, Some(mid), Some(oldest), n),
        page(None, Some(oldest), Some(mid), 1),
    ];
    for p in pages {
        let expected = p.select(full.to_vec(), &id_of);
        let got = list(p)
            .await
            .unwrap_or_else(|e| panic!("{what} with {p:?} failed: {e}"));
        assert_eq!(
            got, expected,
            "{what} with {p:?}: wrong page (max_id is exclusive; since_id gives the newest \
             items above it; min_id the items just above it, newest first; at most limit)"
        );
    }
}
