//! The social half of the store seam: statuses, the follow graph, blocks and
//! mutes, notifications, markers, search, and the outbox.
//!
//! Placement (DESIGN.md "Data placement"): a status on its author's shard; a
//! follow on the follower's shard and mirrored on the followee's; a
//! favourite on the favouriter's shard with the counter on the status's
//! shard; a notification on its recipient's shard; a tag on its name's
//! shard. Writes that have side effects store their [`Event`] in the outbox
//! of the shard they wrote, in the same transaction, and only when something
//! changed: a repeated follow or favourite writes nothing and emits nothing.
//!
//! The SQLite adapter holds every shard in one file, so a cross-shard write
//! (follow, favourite, reply) is one transaction there. The PostgreSQL
//! adapter writes its own side, the event and a mirror log entry in one
//! transaction, then applies the other side before returning (and
//! [`crate::Store::repair`] finishes it after a crash). Either way, the
//! contract the conformance suite checks holds when a call returns: both
//! sides agree.

use async_trait::async_trait;
use starling_domain::{
    Account, Event, FollowOptions, Id, Notification, NotificationType, Page, Relationship, Status,
    Visibility,
};

use crate::StoreResult;

/// The id and time a write is stamped with: the id of the row it creates
/// (a favourite, a follow, a block) and of the event it emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub id: Id,
    pub at_ms: i64,
}

/// An `Idempotency-Key` of the author, kept until `expires_at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub expires_at_ms: i64,
}

/// A status to create. Its event is `StatusCreated` stamped with the
/// status's own id and time.
#[derive(Clone, Debug)]
pub struct NewStatus {
    pub status: Status,
    pub idempotency: Option<IdempotencyKey>,
}

/// What `create_status` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Written, with its event.
    New(Box<Status>),
    /// Nothing written: the author used this idempotency key before it
    /// expired, or (for a boost) already boosted this status. Carries the
    /// earlier status's id (which may since have been deleted).
    Existing(Id),
    /// Nothing written: this attachment is not (any more) the author's
    /// unattached, processed upload.
    MediaUnavailable(Id),
}

/// Which of an account's statuses a listing wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountStatusFilter {
    pub exclude_replies: bool,
    pub exclude_reblogs: bool,
    /// The least public visibility included (`Public` = public only,
    /// `Unlisted` = public and unlisted, `Private` adds followers-only,
    /// `Direct` = everything).
    pub up_to: Visibility,
    /// Also statuses of any visibility that mention this account (what a
    /// mentioned viewer may see).
    pub mentioning: Option<Id>,
    /// Only statuses with this hashtag (lowercase, without `#`).
    pub tagged: Option<String>,
    /// Only statuses with attachments (`only_media`; a boost has none of
    /// its own).
    pub only_media: bool,
}

impl AccountStatusFilter {
    /// Whether `status` (one of the account's) passes the filter: the
    /// adapters' `account_statuses` statement in Rust, for answers
    /// computed from cached statuses. The conformance suite holds the two
    /// to the same answers.
    pub fn admits(&self, status: &Status) -> bool {
        let visible = status.visibility.rank() <= self.up_to.rank()
            || self.mentioning.is_some_and(|m| status.mentions_account(m));
        let reply_kept = !self.exclude_replies
            || status.in_reply_to_id.is_none()
            || status.in_reply_to_account_id == Some(status.account_id);
        let boost_kept = !self.exclude_reblogs || status.reblog_of_id.is_none();
        let tag_kept = self
            .tagged
            .as_ref()
            .is_none_or(|t| status.tags.iter().any(|have| have == t));
        let media_kept = !self.only_media || !status.media.is_empty();
        visible && reply_kept && boost_kept && tag_kept && media_kept
    }
}

/// What a follow call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowOutcome {
    /// The follower now follows (newly, or already did: options updated).
    Following,
    /// A follow request is pending (newly, or already was).
    Requested,
    /// Nothing written: one of the two blocks the other (checked inside
    /// the follow's own transaction, so a block committed meanwhile is
    /// seen).
    Blocked,
}

/// Which notifications a listing wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    /// Only these kinds (empty = all).
    pub types: Vec<NotificationType>,
    /// Never these kinds.
    pub exclude_types: Vec<NotificationType>,
    /// Only from this account.
    pub from_account: Option<Id>,
}

/// A saved reading position (`/api/v1/markers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub timeline: String,
    pub last_read_id: Id,
    pub version: i64,
    pub updated_at_ms: i64,
}

/// An outbox row waiting for the relay. `key` is opaque to callers (the
/// adapter knows which physical database and row it names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub key: (u32, i64),
    pub event: Event,
}

/// Accounts among some candidates that a viewer must not see content from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hidden {
    /// Blocked by the viewer, or blocking the viewer.
    pub blocked: Vec<Id>,
    /// Muted by the viewer.
    pub muted: Vec<Id>,
    /// Muted by the viewer including notifications.
    pub muted_notifications: Vec<Id>,
}

/// What hydration needs of a viewer's relationship to an author: a slice
/// of [`Relationship`] that an adapter can read in one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelationFlags {
    pub id: Id,
    pub following: bool,
    /// Following with boosts shown (false when not following).
    pub showing_reblogs: bool,
    /// Blocked by the viewer, or blocking the viewer.
    pub blocked: bool,
    pub muting: bool,
}

impl RelationFlags {
    pub fn none(id: Id) -> Self {
        Self {
            id,
            following: false,
            showing_reblogs: false,
            blocked: false,
            muting: false,
        }
    }
}

impl From<&Relationship> for RelationFlags {
    fn from(r: &Relationship) -> Self {
        Self {
            id: r.id,
            following: r.following,
            showing_reblogs: r.following && r.showing_reblogs,
            blocked: r.blocking || r.blocked_by,
            muting: r.muting,
        }
    }
}

/// Which of some statuses an account has favourited and boosted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interactions {
    pub favourited: Vec<Id>,
    pub reblogged: Vec<Id>,
}

#[async_trait]
pub trait StatusStore: Send + Sync + 'static {
    /// Creates a status atomically with everything it implies: its tags, the
    /// author's `statuses_count` and `last_status_at`, the parent's
    /// `replies_count`, the boosted status's `reblogs_count`, the
    /// idempotency key, and its `StatusCreated` event. Returns
    /// `Created::Existing` and writes nothing if the author's idempotency key
    /// is still live, or if this is a second boost of one status by one
    /// account.
    async fn create_status(&self, new: &NewStatus) -> StoreResult<Created>;

    async fn status(&self, id: Id) -> StoreResult<Option<Status>>;

    /// Multi-get: the statuses that exist among `ids`, in any order.
    async fn statuses(&self, ids: &[Id]) -> StoreResult<Vec<Status>>;

    /// Deletes `account_id`'s status `id`, every boost of it, its favourites
    /// and its hashtag rows, fixing all counters (the author's and boosters'
    /// `statuses_count`, the parent's `replies_count`, the boosted status's
    /// `reblogs_count`), with one `StatusDeleted` event (stamped `stamp`).
    /// Returns the deleted status; `None` if there is no such status of that
    /// account.
    async fn delete_status(
        &self,
        account_id: Id,
        id: Id,
        stamp: Stamp,
    ) -> StoreResult<Option<Status>>;

    /// `account_id`'s boost of `status_id`, if any.
    async fn reblog_by(&self, account_id: Id, status_id: Id) -> StoreResult<Option<Status>>;

    /// Those of `ids` that `account_id` has boosted.
    async fn reblogged_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>>;

    /// Those of `ids` that `account_id` has favourited, and those it has
    /// boosted (what `favourited_among` and `reblogged_among` answer, in one
    /// call: an adapter may read both at once).
    async fn interactions_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Interactions> {
        if ids.is_empty() {
            return Ok(Interactions::default());
        }
        Ok(Interactions {
            favourited: self.favourited_among(account_id, ids).await?,
            reblogged: self.reblogged_among(account_id, ids).await?,
        })
    }

    /// All replies below `id`, recursively, at most `limit`, in id order.
    async fn descendants(&self, id: Id, limit: usize) -> StoreResult<Vec<Status>>;

    /// An account's statuses (and boosts), newest first.
    async fn account_statuses(
        &self,
        account_id: Id,
        filter: &AccountStatusFilter,
        page: &Page,
    ) -> StoreResult<Vec<Status>>;

    /// Public statuses that are not boosts nor replies to someone else,
    /// newest first (the public timeline's fallback).
    async fn public_statuses(&self, page: &Page) -> StoreResult<Vec<Status>>;

    /// Public statuses tagged `tag` (lowercase), newest first.
    async fn tag_statuses(&self, tag: &str, page: &Page) -> StoreResult<Vec<Status>>;

    /// The statuses (and boosts) of any of `authors` that fall in `page`,
    /// newest first, whatever their visibility (the caller filters):
    /// rebuilding a home timeline and merging large accounts into one. The
    /// cost is bounded by `authors.len() * page.limit` rows, never by how
    /// many statuses the authors have.
    async fn statuses_by_authors(&self, authors: &[Id], page: &Page) -> StoreResult<Vec<Status>>;

    /// The ids of `author`'s newest `limit` statuses and boosts, newest
    /// first, whatever their visibility: what the object cache keeps of an
    /// author. Read from the `(account_id, id)` index alone, no rows.
    async fn recent_status_ids(&self, author: Id, limit: usize) -> StoreResult<Vec<Id>>;

    /// Hashtags used at least once that start with `prefix` (lowercase): an
    /// exact match first, then the others by name. Bounded by `limit + offset`.
    async fn search_tags(
        &self,
        prefix: &str,
        limit: usize,
        offset: usize,
    ) -> StoreResult<Vec<String>>;

    // ---- favourites -----------------------------------------------------

    /// Favourites a status (row id = `stamp.id`), incrementing its counter
    /// and emitting `Favourited`. `false` (nothing written) if it already
    /// was, or if the status does not exist.
    async fn favourite(&self, account_id: Id, status_id: Id, stamp: Stamp) -> StoreResult<bool>;

    /// Removes a favourite and decrements the counter; `false` if none.
    async fn unfavourite(&self, account_id: Id, status_id: Id) -> StoreResult<bool>;

    /// Those of `ids` that `account_id` has favourited.
    async fn favourited_among(&self, account_id: Id, ids: &[Id]) -> StoreResult<Vec<Id>>;

    /// `(favourite id, account id)` of who favourited a status, newest first.
    async fn favourited_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// `(boost id, account id)` of who boosted a status, newest first.
    async fn reblogged_by(&self, status_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// `(favourite id, status id)` of an account's favourites, newest first.
    async fn favourites(&self, account_id: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;
}

#[async_trait]
pub trait GraphStore: Send + Sync + 'static {
    /// Multi-get of accounts; missing ids are skipped; any order.
    async fn accounts(&self, ids: &[Id]) -> StoreResult<Vec<Account>>;

    /// Accounts whose username or display name starts with `prefix`
    /// (lowercase): an exact username match first, then the others. The cost
    /// is bounded by `limit + offset`, not by how many accounts match.
    async fn search_accounts(
        &self,
        prefix: &str,
        limit: usize,
        offset: usize,
    ) -> StoreResult<Vec<Account>>;

    /// Follows `followee`, or with `request` asks to. Idempotent: an
    /// existing follow or request only has its options updated. A new follow
    /// (row id `stamp.id`) bumps both counters and emits `Followed`; a new
    /// request emits `FollowRequested`. The follow row remembers whether the
    /// followee is large (see [`GraphStore::set_large`]). While either
    /// blocks the other, nothing is written and the answer is
    /// [`FollowOutcome::Blocked`]; a follow racing a block never survives
    /// it, on either side.
    async fn follow(
        &self,
        follower: Id,
        followee: Id,
        options: FollowOptions,
        request: bool,
        stamp: Stamp,
    ) -> StoreResult<FollowOutcome>;

    /// Ends a follow (counters, `Unfollowed` event) or withdraws a request.
    /// `false` if there was neither.
    async fn unfollow(&self, follower: Id, followee: Id, stamp: Stamp) -> StoreResult<bool>;

    /// Turns `requester`'s pending request into a follow (as `follow` does,
    /// but its event is `FollowRequestAuthorized`). `false` if there was no
    /// request.
    async fn authorize_follow_request(
        &self,
        account: Id,
        requester: Id,
        stamp: Stamp,
    ) -> StoreResult<bool>;

    /// Drops a pending request; `false` if there was none.
    async fn reject_follow_request(&self, account: Id, requester: Id) -> StoreResult<bool>;

    /// How many requests to follow `account` are pending.
    async fn count_follow_requests(&self, account: Id) -> StoreResult<u64>;

    /// `(request id, requester)` of pending requests to `account`, newest first.
    async fn follow_requests(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// One relationship per target, in the order given (unknown targets get
    /// an empty relationship).
    async fn relationships(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<Relationship>>;

    /// What hydration needs of `relationships` (following, boosts shown,
    /// blocked either way, muting), one per target in the order given; an
    /// adapter may read it in one query.
    async fn relations(&self, viewer: Id, targets: &[Id]) -> StoreResult<Vec<RelationFlags>> {
        if targets.is_empty() {
            return Ok(vec![]);
        }
        Ok(self
            .relationships(viewer, targets)
            .await?
            .iter()
            .map(RelationFlags::from)
            .collect())
    }

    /// `(follow id, follower)`, newest first.
    async fn followers(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// `(follow id, followee)`, newest first.
    async fn following(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// Followers with ids above `after`, ascending, at most `limit`, with
    /// their follow options: the fan-out's cursor walk.
    async fn follower_batch(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<(Id, FollowOptions)>>;

    /// Followers with `notify` set and ids above `after`, ascending, at most
    /// `limit`: who gets a `status` notification when `account` posts. Its
    /// cost grows with those followers only.
    async fn notified_followers(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>>;

    /// As [`GraphStore::notified_followers`], leaving out follows made
    /// after `before` (a status's id: who followed with `notify` when it was
    /// posted, however late its event is handled). The default cannot tell
    /// when a follow was made and leaves out nothing; adapters whose follow
    /// rows carry time-ordered ids override it.
    async fn notified_followers_before(
        &self,
        account: Id,
        before: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<Vec<Id>> {
        let _ = before;
        self.notified_followers(account, after, limit).await
    }

    /// Those of `candidates` that follow `account`.
    async fn followers_among(&self, account: Id, candidates: &[Id]) -> StoreResult<Vec<Id>>;

    /// Everyone `account` follows, with options, at most `limit` (rebuilds).
    async fn followees(&self, account: Id, limit: usize) -> StoreResult<Vec<(Id, FollowOptions)>>;

    /// The large accounts `account` follows: read from the follow rows'
    /// large flag, so the cost grows with those accounts only.
    async fn large_followees(&self, account: Id) -> StoreResult<Vec<(Id, FollowOptions)>>;

    /// Whether `account` is marked large (not fanned out on write).
    async fn is_large(&self, account: Id) -> StoreResult<bool>;

    /// Marks `account` large or not, on its row and on every follow row that
    /// points at it. `false` if it already was so.
    async fn set_large(&self, account: Id, large: bool) -> StoreResult<bool>;

    /// Blocks `target` (row id `stamp.id`): removes follows and requests
    /// both ways (fixing the counters) and emits one `Blocked` event, which
    /// stands for the ended follows too. `false` if already blocked.
    async fn block(&self, account: Id, target: Id, stamp: Stamp) -> StoreResult<bool>;

    async fn unblock(&self, account: Id, target: Id) -> StoreResult<bool>;

    /// Mutes `target` (row id `stamp.id`), or updates `notifications` on an
    /// existing mute.
    async fn mute(
        &self,
        account: Id,
        target: Id,
        notifications: bool,
        stamp: Stamp,
    ) -> StoreResult<()>;

    async fn unmute(&self, account: Id, target: Id) -> StoreResult<bool>;

    /// `(block id, target)`, newest first.
    async fn blocks(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// `(mute id, target)`, newest first.
    async fn mutes(&self, account: Id, page: &Page) -> StoreResult<Vec<(Id, Id)>>;

    /// Of `candidates`, who `viewer` must not see content from.
    async fn hidden_among(&self, viewer: Id, candidates: &[Id]) -> StoreResult<Hidden>;
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Creates notifications; one that exists with the same
    /// `(account_id, kind, event_id)` is skipped (consumers are retried).
    async fn create_notifications(&self, notifications: &[Notification]) -> StoreResult<()>;

    /// An account's notifications, newest first.
    async fn notifications(
        &self,
        account: Id,
        filter: &NotificationFilter,
        page: &Page,
    ) -> StoreResult<Vec<Notification>>;

    async fn notification(&self, account: Id, id: Id) -> StoreResult<Option<Notification>>;

    async fn dismiss_notification(&self, account: Id, id: Id) -> StoreResult<bool>;

    /// Removes `account`'s notifications of `kind` from `from` (an answered
    /// follow request's).
    async fn dismiss_notifications_from(
        &self,
        account: Id,
        kind: NotificationType,
        from: Id,
    ) -> StoreResult<()>;

    async fn clear_notifications(&self, account: Id) -> StoreResult<()>;

    /// How many notifications have ids above `after`, counting at most `limit`.
    async fn count_notifications_after(
        &self,
        account: Id,
        after: Option<Id>,
        limit: usize,
    ) -> StoreResult<u64>;

    async fn markers(&self, account: Id) -> StoreResult<Vec<Marker>>;

    /// Saves a position; the version goes up by one each time.
    async fn set_marker(
        &self,
        account: Id,
        timeline: &str,
        last_read_id: Id,
        at_ms: i64,
    ) -> StoreResult<Marker>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Events not yet handed to the bus, oldest first (in commit order per
    /// physical database), at most `limit`.
    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>>;

    /// Forgets delivered entries.
    async fn outbox_remove(&self, keys: &[(u32, i64)]) -> StoreResult<()>;

    /// How many events wait in the outbox (a metric; may be approximate).
    async fn outbox_len(&self) -> StoreResult<u64>;

    /// Keeps an event a consumer gave up on, for an operator to inspect.
    async fn record_dead_letter(
        &self,
        consumer: &str,
        event: &Event,
        error: &str,
    ) -> StoreResult<()>;
}
