//! Statuses (posts and boosts) and the rules of who may see and do what.

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Who a status is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone; shown on public timelines.
    Public,
    /// Everyone, but kept off public timelines.
    Unlisted,
    /// Followers (and mentioned accounts) only.
    Private,
    /// Mentioned accounts only.
    Direct,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Private => "private",
            Self::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "unlisted" => Some(Self::Unlisted),
            "private" => Some(Self::Private),
            "direct" => Some(Self::Direct),
            _ => None,
        }
    }

    /// A reply or boost may not be more public than this.
    pub fn rank(self) -> u8 {
        match self {
            Self::Public => 0,
            Self::Unlisted => 1,
            Self::Private => 2,
            Self::Direct => 3,
        }
    }
}

impl From<crate::account::Privacy> for Visibility {
    fn from(p: crate::account::Privacy) -> Self {
        use crate::account::Privacy;
        match p {
            Privacy::Public => Self::Public,
            Privacy::Unlisted => Self::Unlisted,
            Privacy::Private => Self::Private,
            Privacy::Direct => Self::Direct,
        }
    }
}

/// A status as stored: a post, a reply, or a boost (`reblog_of_id` set,
/// empty text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: Id,
    pub account_id: Id,
    pub reblog_of_id: Option<Id>,
    pub in_reply_to_id: Option<Id>,
    pub in_reply_to_account_id: Option<Id>,
    /// The source text as typed (returned by DELETE for redrafting).
    pub text: String,
    /// Sanitized HTML, rendered once at write time.
    pub content: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub visibility: Visibility,
    pub language: Option<String>,
    /// The app that posted it (shown to its author).
    pub app_id: Option<Id>,
    /// Local accounts mentioned, in order of appearance.
    pub mentions: Vec<Id>,
    /// Lowercased hashtag names.
    pub tags: Vec<String>,
    pub created_at_ms: i64,
    pub replies_count: i64,
    pub reblogs_count: i64,
    pub favourites_count: i64,
    /// Its attachments, in the order the author gave them; kept with the
    /// status (they do not change once attached), so a page of statuses
    /// is still one read.
    pub media: Vec<crate::media::MediaAttachment>,
}

impl Status {
    pub fn is_reblog(&self) -> bool {
        self.reblog_of_id.is_some()
    }

    /// A reply to someone other than its author (kept off public timelines
    /// and off the home timelines of people who do not follow that someone).
    pub fn is_reply_to_other(&self) -> bool {
        matches!(self.in_reply_to_account_id, Some(a) if a != self.account_id)
    }

    pub fn mentions_account(&self, id: Id) -> bool {
        self.mentions.contains(&id)
    }

    /// Whether it shows on the public and hashtag timelines: public, not a
    /// boost, not a reply to someone else (the store's public index keeps
    /// the same terms).
    pub fn on_public_timelines(&self) -> bool {
        self.is_public_post() && !self.is_reply_to_other()
    }

    /// Public and not a boost: what hashtag timelines show.
    pub fn is_public_post(&self) -> bool {
        self.visibility == Visibility::Public && !self.is_reblog()
    }
}

/// What the viewer is to a status's author, as far as visibility cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    /// The viewer follows the author.
    pub following: bool,
    /// Either blocks the other.
    pub blocked: bool,
}

/// Whether `viewer` (None = anonymous) may see `status`.
pub fn can_view(status: &Status, viewer: Option<Id>, rel: Relation) -> bool {
    let Some(viewer) = viewer else {
        return matches!(status.visibility, Visibility::Public | Visibility::Unlisted);
    };
    if viewer == status.account_id {
        return true;
    }
    if rel.blocked {
        return false;
    }
    match status.visibility {
        Visibility::Public | Visibility::Unlisted => true,
        Visibility::Private => rel.following || status.mentions_account(viewer),
        Visibility::Direct => status.mentions_account(viewer),
    }
}

/// Whether `viewer`, who can see `status`, may boost it: public and unlisted
/// statuses, and an author's own followers-only statuses (Mastodon's rule).
pub fn can_boost(status: &Status, viewer: Id) -> bool {
    match status.visibility {
        Visibility::Public | Visibility::Unlisted => true,
        Visibility::Private => status.account_id == viewer,
        Visibility::Direct => false,
    }
}

/// Whether `status` belongs in `owner`'s home timeline: the owner's own
/// statuses, and those of accounts they follow (`follow` = the options of
/// that follow), except boosts from accounts whose boosts they hid, direct
/// messages not addressed to them, and replies to accounts they do not
/// follow (`follows_reply_target`) unless the reply is addressed to them
/// (mentions them). Fan-out, rebuilds and large-account merges all decide
/// with this one function.
pub fn belongs_in_home(
    status: &Status,
    owner: Id,
    follow: Option<crate::social::FollowOptions>,
    follows_reply_target: bool,
) -> bool {
    if status.account_id == owner {
        return true;
    }
    let Some(options) = follow else {
        return false;
    };
    if status.is_reblog() && !options.reblogs {
        return false;
    }
    if status.visibility == Visibility::Direct && !status.mentions_account(owner) {
        return false;
    }
    if status.is_reply_to_other()
        && status.in_reply_to_account_id != Some(owner)
        && !follows_reply_target
        && !status.mentions_account(owner)
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(author: i64, visibility: Visibility, mentions: Vec<i64>) -> Status {
        Status {
            id: Id::from_i64(1 << 20),
            account_id: Id::from_i64(author),
            reblog_of_id: None,
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            text: String::new(),
            content: String::new(),
            spoiler_text: String::new(),
            sensitive: false,
            visibility,
            language: None,
            app_id: None,
            mentions: mentions.into_iter().map(Id::from_i64).collect(),
            tags: vec![],
            created_at_ms: 0,
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            media: Vec::new(),
        }
    }

    #[test]
    fn visibility_matrix() {
        use Visibility::*;
        let me = Some(Id::from_i64(7));
        let follower = Relation {
            following: true,
            blocked: false,
        };
        let stranger = Relation::default();
        let blocked = Relation {
            following: true,
            blocked: true,
        };
        // (visibility, mentioned viewer?, relation, anonymous, expected for viewer)
        let cases = [
            (Public, false, stranger, true, true),
            (Unlisted, false, stranger, true, true),
            (Private, false, stranger, false, false),
            (Private, false, follower, false, true),
            (Private, true, stranger, false, true),
            (Direct, false, follower, false, false),
            (Direct, true, stranger, false, true),
            (Public, false, blocked, true, false),
            (Direct, true, blocked, false, false),
        ];
        for (vis, mentioned, rel, anon, expected) in cases {
            let s = status(1, vis, if mentioned { vec![7] } else { vec![] });
            assert_eq!(
                can_view(&s, me, rel),
                expected,
                "{vis:?} {rel:?} {mentioned}"
            );
            assert_eq!(can_view(&s, None, rel), anon, "anonymous {vis:?}");
            assert!(
                can_view(&s, Some(Id::from_i64(1)), blocked),
                "author sees own"
            );
        }
    }

    #[test]
    fn boost_rules() {
        use Visibility::*;
        let viewer = Id::from_i64(7);
        assert!(can_boost(&status(1, Public, vec![]), viewer));
        assert!(can_boost(&status(1, Unlisted, vec![]), viewer));
        assert!(!can_boost(&status(1, Private, vec![]), viewer));
        assert!(can_boost(&status(7, Private, vec![]), viewer));
        assert!(!can_boost(&status(7, Direct, vec![]), viewer));
    }
}
