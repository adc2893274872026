//! The social graph and notifications: relationships, follow options,
//! notification kinds, and the page cursor every list uses.

use crate::id::Id;

/// A page of a list ordered by id, newest first (Mastodon's `max_id`,
/// `since_id`, `min_id`, `limit`). Stores return items newest first; with
/// `min_id` they take the `limit` items just above it (ascending), then
/// return those newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub max_id: Option<Id>,
    pub since_id: Option<Id>,
    pub min_id: Option<Id>,
    pub limit: usize,
}

impl Page {
    pub fn first(limit: usize) -> Self {
        Self {
            max_id: None,
            since_id: None,
            min_id: None,
            limit,
        }
    }

    /// The exclusive lower bound (`min_id` wins over `since_id`).
    pub fn lower(&self) -> Option<Id> {
        match (self.min_id, self.since_id) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the items closest to the lower bound are wanted (`min_id`).
    pub fn ascending(&self) -> bool {
        self.min_id.is_some()
    }

    /// Whether `id` lies inside the bounds.
    pub fn contains(&self, id: Id) -> bool {
        self.max_id.is_none_or(|m| id < m) && self.lower().is_none_or(|l| id > l)
    }

    /// Picks this page out of ids sorted newest first.
    pub fn select<T>(&self, items: Vec<T>, id_of: impl Fn(&T) -> Id) -> Vec<T> {
        let inside: Vec<T> = items
            .into_iter()
            .filter(|t| self.contains(id_of(t)))
            .collect();
        if self.ascending() {
            let skip = inside.len().saturating_sub(self.limit);
            inside.into_iter().skip(skip).collect()
        } else {
            inside.into_iter().take(self.limit).collect()
        }
    }
}

/// Options a follower sets on a follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowOptions {
    /// Show the followee's boosts in the home timeline.
    pub reblogs: bool,
    /// Notify on each of the followee's posts.
    pub notify: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            reblogs: true,
            notify: false,
        }
    }
}

/// What `viewer` is to `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relationship {
    pub id: Id,
    pub following: bool,
    pub showing_reblogs: bool,
    pub notifying: bool,
    pub followed_by: bool,
    pub blocking: bool,
    pub blocked_by: bool,
    pub muting: bool,
    pub muting_notifications: bool,
    pub requested: bool,
    pub requested_by: bool,
}

impl Relationship {
    /// No relation at all.
    pub fn none(id: Id) -> Self {
        Self {
            id,
            following: false,
            showing_reblogs: false,
            notifying: false,
            followed_by: false,
            blocking: false,
            blocked_by: false,
            muting: false,
            muting_notifications: false,
            requested: false,
            requested_by: false,
        }
    }
}

/// Kinds of notification Starling creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationType {
    Mention,
    Status,
    Reblog,
    Follow,
    FollowRequest,
    Favourite,
}

impl NotificationType {
    pub const ALL: [Self; 6] = [
        Self::Mention,
        Self::Status,
        Self::Reblog,
        Self::Follow,
        Self::FollowRequest,
        Self::Favourite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mention => "mention",
            Self::Status => "status",
            Self::Reblog => "reblog",
            Self::Follow => "follow",
            Self::FollowRequest => "follow_request",
            Self::Favourite => "favourite",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A notification as stored, on its recipient's shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: Id,
    pub account_id: Id,
    pub kind: NotificationType,
    pub from_account_id: Id,
    pub status_id: Option<Id>,
    pub created_at_ms: i64,
    /// The event that caused it: with `account_id` and `kind`, the key that
    /// makes creating it idempotent.
    pub event_id: Id,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[i64]) -> Vec<Id> {
        v.iter().copied().map(Id::from_i64).collect()
    }

    #[test]
    fn page_selects_like_mastodon() {
        let items = ids(&[9, 8, 7, 6, 5, 4, 3, 2, 1]);
        let page = |max: Option<i64>, since: Option<i64>, min: Option<i64>, limit| Page {
            max_id: max.map(Id::from_i64),
            since_id: since.map(Id::from_i64),
            min_id: min.map(Id::from_i64),
            limit,
        };
        let sel = |p: Page| p.select(items.clone(), |i| *i);
        assert_eq!(sel(page(None, None, None, 3)), ids(&[9, 8, 7]));
        assert_eq!(sel(page(Some(7), None, None, 3)), ids(&[6, 5, 4]));
        // since_id: the newest page above the cutoff.
        assert_eq!(sel(page(None, Some(3), None, 2)), ids(&[9, 8]));
        // min_id: the items just above it, newest first.
        assert_eq!(sel(page(None, None, Some(3), 2)), ids(&[5, 4]));
        assert_eq!(sel(page(Some(8), None, Some(3), 10)), ids(&[7, 6, 5, 4]));
        assert!(sel(page(Some(1), None, None, 3)).is_empty());
    }

    #[test]
    fn notification_types_round_trip() {
        for t in NotificationType::ALL {
            assert_eq!(NotificationType::parse(t.as_str()), Some(t));
        }
        assert_eq!(NotificationType::parse("poll"), None);
    }
}
