//! Conformance cases for [`crate::OutboxStore`] and for `max_ids` over the
//! social rows: events leave in commit order and are forgotten exactly when
//! asked; a restarted id generator is raised above every id in use.

use starling_domain::{
    EventKind, FollowOptions, Id, IdGenerator, Notification, NotificationType, ShardId, Status,
};

use super::support::{create, created_event, post, stamp, stamped, take_events, user};
use crate::{Stamp, Store};

pub async fn outbox_hands_out_events_in_commit_order(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    take_events(store).await;
    assert_eq!(store.outbox_len().await.expect("len"), 0);

    // Ids made first are committed last: the outbox follows commit order,
    // not id order.
    let followed = stamp(&ids, alice.shard());
    let early = post(&ids, alice, "early");
    let late = post(&ids, alice, "late");
    create(store, late.clone()).await;
    create(store, early.clone()).await;
    let deleted = stamp(&ids, alice.shard());
    store
        .delete_status(alice, late.id, deleted)
        .await
        .expect("delete")
        .expect("deleted");
    store
        .follow(alice, bob, FollowOptions::default(), false, followed)
        .await
        .expect("follow");
    let expected = vec![
        created_event(&late),
        created_event(&early),
        stamped(
            deleted,
            EventKind::StatusDeleted {
                status_id: late.id,
                author_id: alice,
                reblog_of_id: None,
                public: late.is_public_post(),
                tags: late.tags.clone(),
            },
        ),
        stamped(
            followed,
            EventKind::Followed {
                follower_id: alice,
                followee_id: bob,
            },
        ),
    ];

    assert_eq!(
        store.outbox_len().await.expect("len"),
        4,
        "outbox_len counts waiting events"
    );
    let all = store.outbox_pending(100).await.expect("pending");
    assert_eq!(
        all.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        expected,
        "outbox_pending returns events oldest first, in commit order"
    );
    let mut keys: Vec<(u32, i64)> = all.iter().map(|e| e.key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 4, "every outbox entry has its own key");
    assert_eq!(
        store.outbox_pending(2).await.expect("pending"),
        all[..2].to_vec(),
        "outbox_pending returns at most limit, the oldest"
    );
    assert_eq!(
        store.outbox_len().await.expect("len"),
        4,
        "reading the outbox removes nothing"
    );

    let first_two: Vec<(u32, i64)> = all[..2].iter().map(|e| e.key).collect();
    store.outbox_remove(&first_two).await.expect("remove");
    assert_eq!(
        store.outbox_pending(100).await.expect("pending"),
        all[2..].to_vec(),
        "outbox_remove forgets exactly the given keys"
    );
    assert_eq!(store.outbox_len().await.expect("len"), 2);
    store
        .outbox_remove(&[])
        .await
        .expect("removing nothing is fine");
    store
        .outbox_remove(&first_two)
        .await
        .expect("removing forgotten keys again is fine (a relay may retry)");
    assert_eq!(store.outbox_len().await.expect("len"), 2);

    store
        .record_dead_letter("fanout", &expected[0], "gave up after 5 tries")
        .await
        .expect("record_dead_letter");
    assert_eq!(
        store.outbox_pending(100).await.expect("pending"),
        all[2..].to_vec(),
        "a dead letter is kept aside, not put back in the outbox"
    );

    let rest: Vec<(u32, i64)> = all[2..].iter().map(|e| e.key).collect();
    store.outbox_remove(&rest).await.expect("remove");
    assert!(store.outbox_pending(100).await.expect("pending").is_empty());
    assert_eq!(store.outbox_len().await.expect("len"), 0);
}

/// An id a millisecond after `prev`, on `shard`: newer than anything written
/// so far, whichever shards those were on.
fn after(prev: Id, shard: ShardId) -> Id {
    Id::from_parts(prev.unix_ms() + 1, shard, 0)
}

fn stamp_after(prev: Id, shard: ShardId) -> Stamp {
    let id = after(prev, shard);
    Stamp {
        id,
        at_ms: id.unix_ms() as i64,
    }
}

pub async fn max_ids_cover_social_rows(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let carol = user(store, &ids, "carol").await.id;
    // Events are removed before each check: what must be covered is the
    // rows, which stay.
    let max = || async {
        take_events(store).await;
        store.max_ids().await.expect("max_ids").into_iter().max()
    };
    assert_eq!(max().await, Some(alice.max(bob).max(carol)));

    let status = create(
        store,
        Status {
            id: after(alice.max(bob).max(carol), alice.shard()),
            ..post(&ids, alice, "hello")
        },
    )
    .await;
    assert_eq!(max().await, Some(status.id), "max_ids covers status ids");

    let follow = stamp_after(status.id, bob.shard());
    store
        .follow(bob, alice, FollowOptions::default(), false, follow)
        .await
        .expect("follow");
    assert_eq!(max().await, Some(follow.id), "max_ids covers follow ids");

    let request = stamp_after(follow.id, carol.shard());
    store
        .follow(carol, alice, FollowOptions::default(), true, request)
        .await
        .expect("follow");
    assert_eq!(
        max().await,
        Some(request.id),
        "max_ids covers follow request ids"
    );

    let notification = Notification {
        id: after(request.id, alice.shard()),
        account_id: alice,
        kind: NotificationType::Follow,
        from_account_id: bob,
        status_id: None,
        created_at_ms: 0,
        event_id: follow.id,
    };
    store
        .create_notifications(std::slice::from_ref(&notification))
        .await
        .expect("create");
    assert_eq!(
        max().await,
        Some(notification.id),
        "max_ids covers notification ids"
    );

    let favourite = stamp_after(notification.id, bob.shard());
    assert!(store
        .favourite(bob, status.id, favourite)
        .await
        .expect("favourite"));
    assert_eq!(
        max().await,
        Some(favourite.id),
        "max_ids covers favourite ids"
    );

    let mute = stamp_after(favourite.id, alice.shard());
    store.mute(alice, carol, false, mute).await.expect("mute");
    assert_eq!(max().await, Some(mute.id), "max_ids covers mute ids");

    let block = stamp_after(mute.id, bob.shard());
    assert!(store.block(bob, carol, block).await.expect("block"));
    assert_eq!(max().await, Some(block.id), "max_ids covers block ids");
}
