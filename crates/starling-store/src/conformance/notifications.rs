//! Conformance cases for [`crate::NotificationStore`]: idempotent creation,
//! filtered and paged listings, ownership, dismissal, unread counts and
//! markers.

use std::cmp::Reverse;

use starling_domain::{Id, IdGenerator, Notification, NotificationType, Page};

use super::support::{check_paging, create, newest_first, post, sorted, user};
use crate::{Marker, NotificationFilter, Store};

/// A notification for `recipient` (id on the recipient's shard) caused by
/// the event `event_id`.
fn notification(
    ids: &IdGenerator,
    recipient: Id,
    kind: NotificationType,
    from: Id,
    status_id: Option<Id>,
    event_id: Id,
) -> Notification {
    let id = ids.next(recipient.shard());
    Notification {
        id,
        account_id: recipient,
        kind,
        from_account_id: from,
        status_id,
        created_at_ms: id.unix_ms() as i64,
        event_id,
    }
}

/// The same notification as a redelivered event makes it: a fresh id and
/// time, the same `(account_id, kind, event_id)`.
fn redelivered(ids: &IdGenerator, n: &Notification) -> Notification {
    notification(
        ids,
        n.account_id,
        n.kind,
        n.from_account_id,
        n.status_id,
        n.event_id,
    )
}

async fn list(store: &dyn Store, account: Id, filter: &NotificationFilter) -> Vec<Notification> {
    store
        .notifications(account, filter, &Page::first(50))
        .await
        .expect("notifications")
}

async fn list_ids(store: &dyn Store, account: Id, filter: &NotificationFilter) -> Vec<Id> {
    list(store, account, filter)
        .await
        .into_iter()
        .map(|n| n.id)
        .collect()
}

pub async fn notifications_are_created_once_per_event(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    let status = create(store, post(&ids, alice, "hello")).await;
    let (favourited, followed, mentioned) = (
        ids.next(bob.shard()),
        ids.next(carol.shard()),
        ids.next(bob.shard()),
    );
    let batch = vec![
        notification(
            &ids,
            alice,
            NotificationType::Favourite,
            bob,
            Some(status.id),
            favourited,
        ),
        notification(&ids, alice, NotificationType::Follow, carol, None, followed),
        // One event may notify one account in two ways, and several accounts.
        notification(
            &ids,
            alice,
            NotificationType::Mention,
            bob,
            Some(status.id),
            mentioned,
        ),
        notification(
            &ids,
            alice,
            NotificationType::Status,
            bob,
            Some(status.id),
            mentioned,
        ),
        notification(
            &ids,
            carol,
            NotificationType::Mention,
            bob,
            Some(status.id),
            mentioned,
        ),
    ];
    store.create_notifications(&batch).await.expect("create");
    let alices: Vec<Notification> = {
        let mut v: Vec<Notification> = batch
            .iter()
            .filter(|n| n.account_id == alice)
            .cloned()
            .collect();
        v.sort_unstable_by_key(|n| Reverse(n.id));
        v
    };
    assert_eq!(
        list(store, alice, &NotificationFilter::default()).await,
        alices,
        "notifications round-trip, newest first, one per (account, kind, event)"
    );
    assert_eq!(
        list_ids(store, carol, &NotificationFilter::default()).await,
        vec![batch[4].id]
    );

    let again: Vec<Notification> = batch.iter().map(|n| redelivered(&ids, n)).collect();
    store
        .create_notifications(&again)
        .await
        .expect("create again");
    assert_eq!(
        list(store, alice, &NotificationFilter::default()).await,
        alices,
        "a redelivered batch creates nothing new: (account_id, kind, event_id) is the key"
    );
    assert_eq!(
        list_ids(store, carol, &NotificationFilter::default()).await,
        vec![batch[4].id]
    );
    assert!(store
        .notification(alice, again[0].id)
        .await
        .expect("read")
        .is_none());

    // Half old, half new: only the new half is created.
    let fresh = notification(
        &ids,
        alice,
        NotificationType::Reblog,
        carol,
        Some(status.id),
        ids.next(carol.shard()),
    );
    store
        .create_notifications(&[redelivered(&ids, &batch[1]), fresh.clone()])
        .await
        .expect("create mixed");
    assert_eq!(
        list_ids(store, alice, &NotificationFilter::default()).await,
        newest_first(alices.iter().map(|n| n.id).chain([fresh.id]).collect()),
        "in a mixed batch the new notifications are created and the known ones skipped"
    );
    store
        .create_notifications(&[])
        .await
        .expect("an empty batch is fine");
}

pub async fn notifications_filter_and_page(store: &dyn Store) {
    use NotificationType::*;
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    let status = create(store, post(&ids, alice, "hello")).await.id;
    let made = [
        (Favourite, bob),
        (Follow, carol),
        (Mention, bob),
        (Reblog, bob),
        (Favourite, carol),
        (Mention, carol),
        (Status, carol),
        (FollowRequest, bob),
    ]
    .map(|(kind, from)| {
        let status = matches!(kind, Favourite | Mention | Reblog | Status).then_some(status);
        notification(&ids, alice, kind, from, status, ids.next(from.shard()))
    });
    let elsewhere = notification(
        &ids,
        bob,
        Mention,
        alice,
        Some(status),
        ids.next(alice.shard()),
    );
    store.create_notifications(&made).await.expect("create");
    store
        .create_notifications(&[elsewhere])
        .await
        .expect("create");
    let pick = |keep: &dyn Fn(&Notification) -> bool| -> Vec<Id> {
        newest_first(made.iter().filter(|n| keep(n)).map(|n| n.id).collect())
    };
    let filter = |types: Vec<NotificationType>,
                  exclude_types: Vec<NotificationType>,
                  from_account| NotificationFilter {
        types,
        exclude_types,
        from_account,
    };

    let all = pick(&|_| true);
    assert_eq!(
        list_ids(store, alice, &NotificationFilter::default()).await,
        all,
        "an empty filter lists all of the account's notifications, newest first"
    );
    assert_eq!(
        list_ids(store, alice, &filter(vec![Mention], vec![], None)).await,
        pick(&|n| n.kind == Mention),
        "types keeps only those kinds"
    );
    assert_eq!(
        list_ids(store, alice, &filter(vec![Mention, Follow], vec![], None)).await,
        pick(&|n| matches!(n.kind, Mention | Follow))
    );
    assert_eq!(
        list_ids(store, alice, &filter(vec![], vec![Favourite, Reblog], None)).await,
        pick(&|n| !matches!(n.kind, Favourite | Reblog)),
        "exclude_types drops those kinds"
    );
    assert_eq!(
        list_ids(store, alice, &filter(vec![], vec![], Some(bob))).await,
        pick(&|n| n.from_account_id == bob),
        "from_account keeps only that account's"
    );
    assert_eq!(
        list_ids(
            store,
            alice,
            &filter(vec![Favourite, Mention], vec![Mention], Some(carol))
        )
        .await,
        pick(&|n| n.kind == Favourite && n.from_account_id == carol),
        "types, exclude_types and from_account combine"
    );

    check_paging(
        "notifications",
        &all,
        |id| *id,
        |p| {
            Box::pin(async move {
                let got = store
                    .notifications(alice, &NotificationFilter::default(), &p)
                    .await?;
                Ok(got.into_iter().map(|n| n.id).collect())
            })
        },
    )
    .await;
    let some = filter(vec![Favourite, Mention, Status], vec![], None);
    let some = &some;
    check_paging(
        "notifications (filtered)",
        &pick(&|n| matches!(n.kind, Favourite | Mention | Status)),
        |id| *id,
        |p| {
            Box::pin(async move {
                let got = store.notifications(alice, some, &p).await?;
                Ok(got.into_iter().map(|n| n.id).collect())
            })
        },
    )
    .await;
}

pub async fn notifications_belong_to_their_owner(store: &dyn Store) {
    use NotificationType::*;
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let first = notification(&ids, alice, Follow, bob, None, ids.next(bob.shard()));
    let second = notification(&ids, alice, Follow, bob, None, ids.next(bob.shard()));
    let bobs = notification(&ids, bob, Follow, alice, None, ids.next(alice.shard()));
    store
        .create_notifications(&[first.clone(), second.clone(), bobs.clone()])
        .await
        .expect("create");

    assert_eq!(
        store.notification(alice, first.id).await.expect("read"),
        Some(first.clone())
    );
    assert_eq!(
        store.notification(bob, first.id).await.expect("read"),
        None,
        "a notification is only found for its owner"
    );
    assert_eq!(
        store
            .notification(alice, ids.next(alice.shard()))
            .await
            .expect("read"),
        None
    );

    assert!(
        !store
            .dismiss_notification(bob, first.id)
            .await
            .expect("dismiss"),
        "only the owner can dismiss a notification"
    );
    assert!(store
        .notification(alice, first.id)
        .await
        .expect("read")
        .is_some());
    assert!(
        store
            .dismiss_notification(alice, first.id)
            .await
            .expect("dismiss"),
        "dismiss removes it"
    );
    assert!(
        !store
            .dismiss_notification(alice, first.id)
            .await
            .expect("dismiss"),
        "dismissing twice is false"
    );
    assert_eq!(
        store.notification(alice, first.id).await.expect("read"),
        None
    );
    assert_eq!(
        list_ids(store, alice, &NotificationFilter::default()).await,
        vec![second.id]
    );

    let third = notification(&ids, alice, Mention, bob, None, ids.next(bob.shard()));
    store.create_notifications(&[third]).await.expect("create");
    store.clear_notifications(alice).await.expect("clear");
    assert!(
        list(store, alice, &NotificationFilter::default())
            .await
            .is_empty(),
        "clear removes all of the account's notifications"
    );
    assert_eq!(
        list(store, bob, &NotificationFilter::default()).await,
        vec![bobs],
        "clear leaves other accounts' notifications"
    );
    store
        .clear_notifications(alice)
        .await
        .expect("clearing nothing is fine");
}

pub async fn unread_notifications_are_counted(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(notification(
            &ids,
            alice,
            NotificationType::Follow,
            bob,
            None,
            ids.next(bob.shard()),
        ));
    }
    made.push(notification(
        &ids,
        bob,
        NotificationType::Follow,
        alice,
        None,
        ids.next(alice.shard()),
    ));
    store.create_notifications(&made).await.expect("create");
    let mine = sorted(made[..5].iter().map(|n| n.id).collect());
    let count = |after: Option<Id>, limit| async move {
        store
            .count_notifications_after(alice, after, limit)
            .await
            .expect("count")
    };

    assert_eq!(
        count(None, 100).await,
        5,
        "after None counts all of the account's notifications"
    );
    assert_eq!(count(None, 3).await, 3, "the count stops at limit");
    assert_eq!(
        count(Some(mine[1]), 100).await,
        3,
        "only ids above after count"
    );
    assert_eq!(
        count(Some(mine[1]), 2).await,
        2,
        "capped by limit with after too"
    );
    assert_eq!(
        count(Some(mine[4]), 100).await,
        0,
        "nothing above the newest"
    );
    assert_eq!(count(Some(Id::from_i64(0)), 100).await, 5);
    assert_eq!(
        store
            .count_notifications_after(bob, None, 100)
            .await
            .expect("count"),
        1
    );
}

pub async fn markers_count_versions(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let (first, second, third) = (
        ids.next(alice.shard()),
        ids.next(alice.shard()),
        ids.next(alice.shard()),
    );
    assert!(store.markers(alice).await.expect("markers").is_empty());

    let home = store
        .set_marker(alice, "home", first, 1_000)
        .await
        .expect("set");
    assert_eq!(
        home,
        Marker {
            timeline: "home".into(),
            last_read_id: first,
            version: 1,
            updated_at_ms: 1_000,
        },
        "a new marker starts at version 1"
    );
    let home = store
        .set_marker(alice, "home", second, 2_000)
        .await
        .expect("set");
    assert_eq!(
        home,
        Marker {
            timeline: "home".into(),
            last_read_id: second,
            version: 2,
            updated_at_ms: 2_000,
        },
        "saving a marker again raises the version by one"
    );
    let home = store
        .set_marker(alice, "home", second, 3_000)
        .await
        .expect("set");
    assert_eq!(
        home.version, 3,
        "every save raises the version, even to the same id"
    );
    let notifications = store
        .set_marker(alice, "notifications", third, 4_000)
        .await
        .expect("set");
    assert_eq!(notifications.version, 1, "versions are per timeline");

    let mut markers = store.markers(alice).await.expect("markers");
    markers.sort_unstable_by(|a, b| a.timeline.cmp(&b.timeline));
    assert_eq!(
        markers,
        vec![home, notifications],
        "markers lists each timeline's latest save"
    );
    assert!(
        store.markers(bob).await.expect("markers").is_empty(),
        "markers are per account"
    );
    assert_eq!(
        store
            .set_marker(bob, "home", first, 5_000)
            .await
            .expect("set")
            .version,
        1,
        "versions are per account"
    );
}
