//! Domain events: what a write tells the rest of the system.
//!
//! Every write with side effects stores its [`Event`] in the outbox of the
//! shard it wrote, in the same transaction. A relay hands outbox rows to the
//! event bus; consumers (fan-out, notifications) react. Delivery is at least
//! once, so every consumer is idempotent, keyed by the event id.

use serde::{Deserialize, Serialize};

use crate::id::Id;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique; the dedupe key of consumers and of the bus.
    pub id: Id,
    pub created_at_ms: i64,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A post, reply or boost was created. Consumers read the status.
    StatusCreated { status_id: Id, author_id: Id },
    /// A status (and its boosts) was deleted; it is gone from the store, so
    /// the event carries what consumers need.
    StatusDeleted {
        status_id: Id,
        author_id: Id,
        reblog_of_id: Option<Id>,
        /// It was public and not a boost ([`crate::Status::is_public_post`]):
        /// the public and hashtag streams are told of the delete. (Absent
        /// in events written before it existed: those deletes reach
        /// followers only.)
        #[serde(default)]
        public: bool,
        /// Its hashtags, for the hashtag streams of a public post.
        #[serde(default)]
        tags: Vec<String>,
    },
    /// A follow took effect at the follower's request (the followee is
    /// told with a `follow` notification).
    Followed { follower_id: Id, followee_id: Id },
    /// A locked account accepted a follow request: a follow like
    /// `Followed`, but the followee made it, so nobody is notified.
    FollowRequestAuthorized { follower_id: Id, followee_id: Id },
    /// A locked account was asked to be followed.
    FollowRequested { follower_id: Id, followee_id: Id },
    /// A follow ended by an unfollow (a block says `Blocked` instead).
    Unfollowed { follower_id: Id, followee_id: Id },
    /// `account_id` favourited `status_id` (written by `author_id`).
    Favourited {
        account_id: Id,
        status_id: Id,
        author_id: Id,
    },
    /// `account_id` blocked `target_id` (follows both ways are gone).
    Blocked { account_id: Id, target_id: Id },
    /// An upload too large to process on the request path was received;
    /// a worker makes its variants.
    MediaUploaded { media_id: Id, account_id: Id },
}

impl EventKind {
    /// A short stable name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StatusCreated { .. } => "status_created",
            Self::StatusDeleted { .. } => "status_deleted",
            Self::Followed { .. } => "followed",
            Self::FollowRequestAuthorized { .. } => "follow_request_authorized",
            Self::FollowRequested { .. } => "follow_requested",
            Self::Unfollowed { .. } => "unfollowed",
            Self::Favourited { .. } => "favourited",
            Self::Blocked { .. } => "blocked",
            Self::MediaUploaded { .. } => "media_uploaded",
        }
    }
}

impl Event {
    pub fn to_json(&self) -> String {
        // Serialising a plain enum of ids cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_json() {
        let e = Event {
            id: Id::from_i64(99),
            created_at_ms: 5,
            kind: EventKind::Favourited {
                account_id: Id::from_i64(1),
                status_id: Id::from_i64(2),
                author_id: Id::from_i64(3),
            },
        };
        let json = e.to_json();
        assert!(json.contains("\"type\":\"favourited\""), "{json}");
        assert_eq!(Event::from_json(&json), Some(e));
        assert_eq!(Event::from_json("{\"nope\":1}"), None);
    }
}
