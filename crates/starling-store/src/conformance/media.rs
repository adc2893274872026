//! Conformance cases for [`crate::MediaStore`]: uploads round-trip, only
//! unattached uploads change, deferred processing leaves an event in the
//! same transaction, the sweeper finds old unattached uploads, and a
//! discarded upload is gone for everyone but the sweeper.

use starling_domain::{
    EventKind, Focus, Id, IdGenerator, MediaAttachment, MediaFile, MediaState, MediaType,
};

use super::support::{assert_no_events, create, post, stamp, take_events, take_kinds, user};
use crate::{Created, NewStatus, Store};

fn upload(ids: &IdGenerator, owner: Id, at_ms: i64) -> MediaAttachment {
    MediaAttachment {
        id: ids.next(owner.shard()),
        account_id: owner,
        status_id: None,
        kind: MediaType::Image,
        state: MediaState::Processing,
        description: Some("a cat on a mat".into()),
        focus: None,
        original: None,
        small: None,
        blurhash: None,
        duration: None,
        error: None,
        created_at_ms: at_ms,
    }
}

pub async fn media_round_trips_and_updates(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    take_events(store).await;
    let mut media = upload(&ids, alice, 1_700_000_000_000);
    store.create_media(&media, false).await.expect("create");
    assert_no_events(store, "an upload processed at once has no event").await;
    assert_eq!(
        store.media(media.id).await.expect("read"),
        Some(media.clone())
    );

    let before = media.clone();
    media.state = MediaState::Ready;
    media.focus = Some(Focus { x: 0.5, y: -0.5 });
    media.description = Some("ünïcödé ✓ \"quoted\"".into());
    media.blurhash = Some("LEHV6nWB2yk8pyo0adR*.7kCMdnj".into());
    media.original = Some(MediaFile {
        key: format!("media/{}/original.jpg", media.id),
        content_type: "image/jpeg".into(),
        width: 1200,
        height: 800,
        size: 123_456,
    });
    assert!(store.update_media(&before, &media).await.expect("update"));
    assert_eq!(
        store.media(media.id).await.expect("read"),
        Some(media.clone())
    );

    // A writer that read the row before that change loses: it must read
    // again (compare-and-set).
    let mut late = before.clone();
    late.description = Some("late".into());
    assert!(!store
        .update_media(&before, &late)
        .await
        .expect("stale update"));

    // Someone else's id in the row is not theirs to change.
    let mallory = user(store, &ids, "mallory").await.id;
    let mut stolen = media.clone();
    stolen.account_id = mallory;
    stolen.description = Some("mine now".into());
    assert!(!store.update_media(&media, &stolen).await.expect("update"));
    assert_eq!(
        store.media(media.id).await.expect("read"),
        Some(media.clone())
    );

    assert_eq!(
        store.media(ids.next(alice.shard())).await.expect("read"),
        None
    );
}

pub async fn deferred_processing_leaves_an_event(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    take_events(store).await;
    let media = upload(&ids, alice, 1_700_000_000_000);
    store.create_media(&media, true).await.expect("create");
    assert_eq!(
        take_kinds(store).await,
        vec![EventKind::MediaUploaded {
            media_id: media.id,
            account_id: alice,
        }]
    );
}

pub async fn stale_unattached_media_is_swept(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let bob = user(store, &ids, "bob").await.id;
    let old_a = upload(&ids, alice, 1_000);
    let old_b = upload(&ids, bob, 2_000);
    let fresh = upload(&ids, alice, 9_000);
    for m in [&fresh, &old_b, &old_a] {
        store.create_media(m, false).await.expect("create");
    }
    let stale = store.stale_media(5_000, 10).await.expect("stale");
    let stale_ids: Vec<Id> = stale.iter().map(|m| m.id).collect();
    assert_eq!(
        stale_ids,
        vec![old_a.id, old_b.id],
        "oldest first, fresh kept"
    );
    assert_eq!(store.stale_media(5_000, 1).await.expect("stale").len(), 1);

    assert!(store
        .delete_unattached_media(old_a.id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_unattached_media(old_a.id)
        .await
        .expect("again"));
    assert_eq!(store.media(old_a.id).await.expect("read"), None);
    assert_eq!(store.media(fresh.id).await.expect("read"), Some(fresh));
}

/// `DELETE /api/v1/statuses/:id` with `delete_media`: the status's uploads
/// are discarded (then their files removed, then their rows).
pub async fn discarded_media_is_gone_but_for_the_sweeper(store: &dyn Store) {
    let ids = IdGenerator::new();
    let alice = user(store, &ids, "alice").await.id;
    let ready = |at_ms| {
        let mut m = upload(&ids, alice, at_ms);
        m.state = MediaState::Ready;
        m.original = Some(MediaFile {
            key: format!("media/{}/original.png", m.id),
            content_type: "image/png".into(),
            width: 4,
            height: 4,
            size: 100,
        });
        m
    };
    let pictured = ready(1_700_000_000_000);
    let spare = ready(1_700_000_000_000);
    for m in [&pictured, &spare] {
        store.create_media(m, false).await.expect("create");
    }
    let mut status = post(&ids, alice, "a picture");
    status.media = vec![MediaAttachment {
        status_id: Some(status.id),
        ..pictured.clone()
    }];
    create(store, status.clone()).await;

    // Attached, it is its status's: not discarded.
    assert!(!store.discard_media(pictured.id).await.expect("discard"));
    assert!(store.media(pictured.id).await.expect("read").is_some());

    // The status deleted, its upload is unattached again; discarded, no
    // read finds it, no update changes it and no status attaches it.
    let deleted = stamp(&ids, alice.shard());
    store
        .delete_status(alice, status.id, deleted)
        .await
        .expect("delete")
        .expect("deleted");
    let unattached = store
        .media(pictured.id)
        .await
        .expect("read")
        .expect("kept for a redraft");
    assert!(store.discard_media(pictured.id).await.expect("discard"));
    assert!(
        !store.discard_media(pictured.id).await.expect("again"),
        "discarded once only"
    );
    assert_eq!(store.media(pictured.id).await.expect("read"), None);
    let described = MediaAttachment {
        description: Some("too late".into()),
        ..unattached.clone()
    };
    assert!(!store
        .update_media(&unattached, &described)
        .await
        .expect("update"));
    let mut redraft = post(&ids, alice, "redrafted");
    redraft.media = vec![MediaAttachment {
        status_id: Some(redraft.id),
        ..unattached.clone()
    }];
    assert_eq!(
        store
            .create_status(&NewStatus {
                status: redraft.clone(),
                idempotency: None,
            })
            .await
            .expect("create"),
        Created::MediaUnavailable(pictured.id)
    );
    assert_eq!(store.status(redraft.id).await.expect("read"), None);

    // Its grace period is over: the sweeper finds it (with its files'
    // keys), before any upload of any age, and removes it.
    let stale = store.stale_media(1, 10).await.expect("stale");
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].id, pictured.id);
    assert_eq!(stale[0].original, pictured.original);
    assert!(store
        .delete_unattached_media(pictured.id)
        .await
        .expect("delete"));
    assert!(store.stale_media(1, 10).await.expect("stale").is_empty());

    // One never attached is discarded alike; an unknown one is not.
    assert!(store.discard_media(spare.id).await.expect("discard"));
    assert_eq!(store.media(spare.id).await.expect("read"), None);
    assert!(!store
        .discard_media(ids.next(alice.shard()))
        .await
        .expect("discard"));
}
