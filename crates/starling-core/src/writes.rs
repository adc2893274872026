//! Where write side effects are decided.
//!
//! Other parts of the system keep copies of what the store holds: the
//! object cache (accounts, statuses, each viewer's relations and flags, and
//! resolved tokens, in this process and in the level shared with other
//! processes) and the relay, which waits to be told that the outbox has
//! new events. A write that forgets one of them serves stale data (or
//! relays late) until a TTL runs out.
//!
//! So every store write of the use cases is a method here, and each one
//! states next to the store call which [`Effects`] its outcome has; the
//! write is only done through [`Core::write`], which applies them with
//! [`Core::apply_effects`]. A new cache level is added to `Effects` and
//! `apply_effects`, and reaches every write at once; a new write is added
//! here, where its effects must be decided.
//!
//! `no_store_write_bypasses_writes` (below) scans the crate's sources and
//! fails if a store mutation is called anywhere else, or if the store
//! grows a method that is not classified as a read or a write.

use std::future::Future;

use starling_domain::account::ProfileUpdate;
use starling_domain::oauth::{AccessToken, App, AuthCode};
use starling_domain::{
    Account, Event, FollowOptions, Id, MediaAttachment, Notification, NotificationType,
    Relationship, SecretHash, ShardId, Status,
};
use starling_store::{
    Created, FollowOutcome, Marker, NewAccount, NewStatus, Stamp, Store, StoreResult,
};

use crate::{Core, CoreResult};

/// What a write changed that is kept elsewhere too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Effects {
    /// The write added events to the outbox: the local relay is poked.
    pub outbox: bool,
    /// Accounts whose profile or counters changed.
    pub accounts: Vec<Id>,
    /// Statuses whose counters or existence changed.
    pub statuses: Vec<Id>,
    /// Viewers whose relations or flags (favourited, boosted) changed.
    pub viewers: Vec<Id>,
    /// Tokens revoked.
    pub tokens: Vec<SecretHash>,
}

impl Effects {
    /// A write nobody else keeps a copy of.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn outbox(mut self, written: bool) -> Self {
        self.outbox |= written;
        self
    }

    pub fn accounts(mut self, ids: impl IntoIterator<Item = Id>) -> Self {
        extend_unique(&mut self.accounts, ids);
        self
    }

    pub fn statuses(mut self, ids: impl IntoIterator<Item = Id>) -> Self {
        extend_unique(&mut self.statuses, ids);
        self
    }

    pub fn viewers(mut self, ids: impl IntoIterator<Item = Id>) -> Self {
        extend_unique(&mut self.viewers, ids);
        self
    }

    pub fn tokens(mut self, hashes: impl IntoIterator<Item = SecretHash>) -> Self {
        for h in hashes {
            if !self.tokens.contains(&h) {
                self.tokens.push(h);
            }
        }
        self
    }

    /// A relation between `a` and `b` changed: what each sees of the other
    /// (readers' relations are kept in memory), and their accounts too when
    /// `counted` (follower and following counts may have moved).
    pub fn relation(self, a: Id, b: Id, counted: bool) -> Self {
        let this = self.viewers([a, b]);
        if counted {
            this.accounts([a, b])
        } else {
            this
        }
    }

    /// A status was created (`Created::New`): its event, its author's
    /// counters, the counters of the status it replies to or boosts, and
    /// for a boost the booster's flags.
    pub fn status_created(s: &Status) -> Self {
        let this = Self::none()
            .outbox(true)
            .accounts([s.account_id])
            .statuses(s.in_reply_to_id.into_iter().chain(s.reblog_of_id));
        if s.is_reblog() {
            this.viewers([s.account_id])
        } else {
            this
        }
    }

    /// A status was deleted: as [`Effects::status_created`], and the status
    /// itself (deleting a boost is unboosting).
    pub fn status_deleted(s: &Status) -> Self {
        Self::status_created(s).statuses([s.id])
    }

    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }
}

fn extend_unique(into: &mut Vec<Id>, ids: impl IntoIterator<Item = Id>) {
    for id in ids {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

impl Core {
    /// Performs a write's effects: pokes the relay, then drops the changed
    /// objects from every process's object cache.
    pub async fn apply_effects(&self, effects: &Effects) {
        if effects.outbox {
            self.outbox_written.notify_one();
        }
        if !effects.accounts.is_empty() {
            self.objects.forget_accounts(&effects.accounts).await;
        }
        if !effects.statuses.is_empty() {
            self.objects.forget_statuses(&effects.statuses).await;
        }
        if !effects.viewers.is_empty() {
            self.objects.forget_viewers(&effects.viewers).await;
        }
        for hash in &effects.tokens {
            self.objects.forget_token(*hash).await;
        }
    }

    /// Runs one store write, then the effects `decide` reads off its
    /// outcome. A failed write has none (it wrote nothing, or the store
    /// will be read again anyway when its caller retries).
    async fn write<T>(
        &self,
        write: impl Future<Output = StoreResult<T>>,
        decide: impl FnOnce(&T) -> Effects,
    ) -> CoreResult<T> {
        let outcome = write.await?;
        let effects = decide(&outcome);
        self.apply_effects(&effects).await;
        Ok(outcome)
    }

    // ---- accounts and OAuth -----------------------------------------------

    /// A new account: nothing kept of it yet.
    pub(crate) async fn write_account(&self, new: &NewAccount) -> CoreResult<()> {
        self.write(self.store.create_account(new), |_| Effects::none())
            .await
    }

    /// Statuses show their author's profile: no process may keep the old
    /// one (the shared level would serve it for its whole TTL).
    pub(crate) async fn write_profile(
        &self,
        id: Id,
        update: &ProfileUpdate,
    ) -> CoreResult<Option<Account>> {
        self.write(self.store.update_profile(id, update), |updated| {
            Effects::none().accounts(updated.as_ref().map(|a| a.id))
        })
        .await
    }

    pub(crate) async fn write_app(&self, app: &App) -> CoreResult<()> {
        self.write(self.store.create_app(app), |_| Effects::none())
            .await
    }

    pub(crate) async fn write_auth_code(&self, shard: ShardId, code: &AuthCode) -> CoreResult<()> {
        self.write(self.store.create_auth_code(shard, code), |_| {
            Effects::none()
        })
        .await
    }

    /// Codes are single-use and never cached.
    pub(crate) async fn write_take_auth_code(
        &self,
        shard: ShardId,
        hash: &SecretHash,
    ) -> CoreResult<Option<AuthCode>> {
        self.write(self.store.take_auth_code(shard, hash), |_| Effects::none())
            .await
    }

    /// A new token: only live tokens are cached, so nothing to drop.
    pub(crate) async fn write_token(&self, shard: ShardId, token: &AccessToken) -> CoreResult<()> {
        self.write(self.store.create_token(shard, token), |_| Effects::none())
            .await
    }

    /// Revocation works at once: the token is dropped everywhere, revoked
    /// by this call or by a concurrent one.
    pub(crate) async fn write_revoke_token(
        &self,
        shard: ShardId,
        hash: &SecretHash,
    ) -> CoreResult<bool> {
        self.write(self.store.revoke_token(shard, hash), |_| {
            Effects::none().tokens([*hash])
        })
        .await
    }

    // ---- media --------------------------------------------------------------

    /// An upload's row; with `process_later`, its event for the media
    /// workers (the relay is poked). Uploads are not cached.
    pub(crate) async fn write_media(
        &self,
        media: &MediaAttachment,
        process_later: bool,
    ) -> CoreResult<()> {
        self.write(self.store.create_media(media, process_later), |_| {
            Effects::none().outbox(process_later)
        })
        .await
    }

    /// A compare-and-set of an unattached upload (not cached; attached
    /// copies live in their status, which this cannot change).
    pub(crate) async fn write_media_update(
        &self,
        current: &MediaAttachment,
        next: &MediaAttachment,
    ) -> CoreResult<bool> {
        self.write(self.store.update_media(current, next), |_| Effects::none())
            .await
    }

    pub(crate) async fn write_media_removal(&self, id: Id) -> CoreResult<bool> {
        self.write(self.store.delete_unattached_media(id), |_| Effects::none())
            .await
    }

    /// Nothing keeps a copy of an unattached upload (its deleted status,
    /// which did, was dropped from the caches when it was deleted).
    pub(crate) async fn write_media_discard(&self, id: Id) -> CoreResult<bool> {
        self.write(self.store.discard_media(id), |_| Effects::none())
            .await
    }

    // ---- statuses ---------------------------------------------------------

    pub(crate) async fn write_status(&self, new: &NewStatus) -> CoreResult<Created> {
        self.write(self.store.create_status(new), |created| match created {
            Created::New(s) => Effects::status_created(s),
            Created::Existing(_) | Created::MediaUnavailable(_) => Effects::none(),
        })
        .await
    }

    pub(crate) async fn write_delete_status(
        &self,
        account: Id,
        id: Id,
        stamp: Stamp,
    ) -> CoreResult<Option<Status>> {
        self.write(self.store.delete_status(account, id, stamp), |deleted| {
            deleted
                .as_ref()
                .map_or_else(Effects::none, Effects::status_deleted)
        })
        .await
    }

    pub(crate) async fn write_favourite(
        &self,
        account: Id,
        status: Id,
        stamp: Stamp,
    ) -> CoreResult<bool> {
        self.write(self.store.favourite(account, status, stamp), |&new| {
            if new {
                Effects::none()
                    .outbox(true)
                    .statuses([status])
                    .viewers([account])
            } else {
                Effects::none()
            }
        })
        .await
    }

    /// No event (Mastodon sends none for an unfavourite).
    pub(crate) async fn write_unfavourite(&self, account: Id, status: Id) -> CoreResult<bool> {
        self.write(self.store.unfavourite(account, status), |&removed| {
            if removed {
                Effects::none().statuses([status]).viewers([account])
            } else {
                Effects::none()
            }
        })
        .await
    }

    // ---- the social graph -------------------------------------------------

    /// `before` is the relationship read before the write: only a new
    /// follow or request has an event.
    pub(crate) async fn write_follow(
        &self,
        follower: Id,
        followee: Id,
        options: FollowOptions,
        request: bool,
        stamp: Stamp,
        before: &Relationship,
    ) -> CoreResult<FollowOutcome> {
        self.write(
            self.store
                .follow(follower, followee, options, request, stamp),
            |outcome| {
                let new = *outcome == FollowOutcome::Following && !before.following
                    || *outcome == FollowOutcome::Requested && !before.requested;
                // New or not, the options may have changed.
                Effects::none()
                    .outbox(new)
                    .relation(follower, followee, true)
            },
        )
        .await
    }

    pub(crate) async fn write_unfollow(
        &self,
        follower: Id,
        followee: Id,
        stamp: Stamp,
    ) -> CoreResult<bool> {
        self.write(self.store.unfollow(follower, followee, stamp), |&ended| {
            Effects::none()
                .outbox(ended)
                .relation(follower, followee, true)
        })
        .await
    }

    pub(crate) async fn write_authorize_follow_request(
        &self,
        account: Id,
        requester: Id,
        stamp: Stamp,
    ) -> CoreResult<bool> {
        self.write(
            self.store
                .authorize_follow_request(account, requester, stamp),
            |&authorized| {
                if authorized {
                    Effects::none()
                        .outbox(true)
                        .relation(account, requester, true)
                } else {
                    Effects::none()
                }
            },
        )
        .await
    }

    /// A pending request is in no cached relation.
    pub(crate) async fn write_reject_follow_request(
        &self,
        account: Id,
        requester: Id,
    ) -> CoreResult<bool> {
        self.write(self.store.reject_follow_request(account, requester), |_| {
            Effects::none()
        })
        .await
    }

    /// Whether an account is large is read from the store, never cached.
    pub(crate) async fn write_large(&self, account: Id, large: bool) -> CoreResult<bool> {
        self.write(self.store.set_large(account, large), |_| Effects::none())
            .await
    }

    /// A block severs follows either way: counters change.
    pub(crate) async fn write_block(
        &self,
        account: Id,
        target: Id,
        stamp: Stamp,
    ) -> CoreResult<bool> {
        self.write(self.store.block(account, target, stamp), |&new| {
            Effects::none().outbox(new).relation(account, target, true)
        })
        .await
    }

    pub(crate) async fn write_unblock(&self, account: Id, target: Id) -> CoreResult<bool> {
        self.write(self.store.unblock(account, target), |_| {
            Effects::none().relation(account, target, false)
        })
        .await
    }

    pub(crate) async fn write_mute(
        &self,
        account: Id,
        target: Id,
        notifications: bool,
        stamp: Stamp,
    ) -> CoreResult<()> {
        self.write(
            self.store.mute(account, target, notifications, stamp),
            |_| Effects::none().relation(account, target, false),
        )
        .await
    }

    pub(crate) async fn write_unmute(&self, account: Id, target: Id) -> CoreResult<bool> {
        self.write(self.store.unmute(account, target), |_| {
            Effects::none().relation(account, target, false)
        })
        .await
    }

    // ---- notifications and markers (read from the store, never cached) ----

    pub(crate) async fn write_notifications(&self, list: &[Notification]) -> CoreResult<()> {
        self.write(self.store.create_notifications(list), |_| Effects::none())
            .await
    }

    pub(crate) async fn write_dismiss_notification(&self, account: Id, id: Id) -> CoreResult<bool> {
        self.write(self.store.dismiss_notification(account, id), |_| {
            Effects::none()
        })
        .await
    }

    pub(crate) async fn write_dismiss_notifications_from(
        &self,
        account: Id,
        kind: NotificationType,
        from: Id,
    ) -> CoreResult<()> {
        self.write(
            self.store.dismiss_notifications_from(account, kind, from),
            |_| Effects::none(),
        )
        .await
    }

    pub(crate) async fn write_clear_notifications(&self, account: Id) -> CoreResult<()> {
        self.write(self.store.clear_notifications(account), |_| Effects::none())
            .await
    }

    pub(crate) async fn write_marker(
        &self,
        account: Id,
        timeline: &str,
        last_read_id: Id,
        at_ms: i64,
    ) -> CoreResult<Marker> {
        self.write(
            self.store
                .set_marker(account, timeline, last_read_id, at_ms),
            |_| Effects::none(),
        )
        .await
    }
}

// ---- the outbox's own bookkeeping (the relay and the bus hold a store, not
// a `Core`; these writes change nothing anyone keeps) ----------------------

/// Drops relayed events from the outbox.
pub(crate) async fn outbox_remove(store: &dyn Store, keys: &[(u32, i64)]) -> StoreResult<()> {
    store.outbox_remove(keys).await
}

/// Keeps an event a consumer gave up on.
pub(crate) async fn record_dead_letter(
    store: &dyn Store,
    consumer: &str,
    event: &Event,
    error: &str,
) -> StoreResult<()> {
    store.record_dead_letter(consumer, event, error).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Store methods that change nothing. Every method of the store's
    /// traits is in exactly one of these two lists.
    const STORE_READS: &[&str] = &[
        "ping",
        "max_ids",
        "account",
        "account_by_username",
        "login_by_email",
        "login_by_username",
        "account_email",
        "count_accounts",
        "app",
        "app_by_client_id",
        "token",
        "status",
        "statuses",
        "reblog_by",
        "reblogged_among",
        "interactions_among",
        "descendants",
        "account_statuses",
        "public_statuses",
        "tag_statuses",
        "statuses_by_authors",
        "recent_status_ids",
        "search_tags",
        "favourited_among",
        "favourited_by",
        "reblogged_by",
        "favourites",
        "accounts",
        "search_accounts",
        "count_follow_requests",
        "follow_requests",
        "relationships",
        "relations",
        "followers",
        "following",
        "follower_batch",
        "notified_followers",
        "notified_followers_before",
        "followers_among",
        "followees",
        "large_followees",
        "is_large",
        "blocks",
        "mutes",
        "hidden_among",
        "notifications",
        "notification",
        "count_notifications_after",
        "markers",
        "outbox_pending",
        "outbox_len",
        "media",
        "stale_media",
    ];

    /// Store methods that change something: called only from this file.
    /// (`migrate` and `repair` are the binary's, never the use cases'.)
    const STORE_WRITES: &[&str] = &[
        "repair",
        "migrate",
        "create_account",
        "update_profile",
        "create_app",
        "create_auth_code",
        "take_auth_code",
        "create_token",
        "revoke_token",
        "create_status",
        "delete_status",
        "favourite",
        "unfavourite",
        "follow",
        "unfollow",
        "authorize_follow_request",
        "reject_follow_request",
        "set_large",
        "block",
        "unblock",
        "mute",
        "unmute",
        "create_notifications",
        "dismiss_notification",
        "dismiss_notifications_from",
        "clear_notifications",
        "set_marker",
        "outbox_remove",
        "record_dead_letter",
        "create_media",
        "update_media",
        "delete_unattached_media",
        "discard_media",
    ];

    fn manifest_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The `async fn`s of the store's traits, read from its sources.
    fn store_methods() -> Vec<String> {
        let dir = manifest_dir().join("../starling-store/src");
        let mut out = Vec::new();
        for file in ["lib.rs", "social.rs", "media.rs"] {
            let src = std::fs::read_to_string(dir.join(file)).expect("store source");
            let mut rest = src.as_str();
            while let Some(at) = rest.find("pub trait ") {
                let body = &rest[at..];
                let open = body.find('{').expect("trait body");
                let mut depth = 0usize;
                let mut end = open;
                for (i, c) in body[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + i;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                for piece in body[open..end].split("async fn ").skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(name);
                }
                rest = &body[end..];
            }
        }
        out
    }

    /// Calls of store writes in `src` (tests cut off, comments and
    /// whitespace removed, so a call split over lines is still one). A call
    /// is `.name(` or `::name(` whose receiver is anything but `self` (the
    /// use cases of `Core` that share a name with a store write, like
    /// `self.follow(`) or this module (`writes::outbox_remove(`). Calling a
    /// use case so named on another `Core` (`self.core.follow(`) is taken
    /// for a bypass too: rename, or call it through `self`.
    fn bypasses(src: &str) -> Vec<String> {
        let code = src.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let mut found = Vec::new();
        for name in STORE_WRITES {
            for sep in [".", "::"] {
                let needle = format!("{sep}{name}(");
                for (at, _) in code.match_indices(&needle) {
                    let before = &code[..at];
                    let receiver: String = before
                        .chars()
                        .rev()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    let by_self = sep == "."
                        && receiver == "self"
                        && !before[..before.len() - receiver.len()].ends_with('.');
                    let by_writes = sep == "::" && receiver == "writes";
                    if !(by_self || by_writes) {
                        let from = at.saturating_sub(40);
                        let from = (0..=from)
                            .rev()
                            .find(|i| code.is_char_boundary(*i))
                            .unwrap_or(0);
                        found.push(format!("{}{needle}", &code[from..at]));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_store_method_is_a_read_or_a_write() {
        let methods = store_methods();
        assert!(methods.len() > 40, "the store's traits were not found");
        for m in &methods {
            let read = STORE_READS.contains(&m.as_str());
            let write = STORE_WRITES.contains(&m.as_str());
            assert!(
                read ^ write,
                "store method `{m}` must be listed in exactly one of STORE_READS and \
                 STORE_WRITES (crates/starling-core/src/writes.rs); a write gets a \
                 method in writes.rs that decides its effects"
            );
        }
    }

    #[test]
    fn no_store_write_bypasses_writes() {
        let dir = manifest_dir().join("src");
        let mut offenders = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("writes.rs") {
                continue;
            }
            files += 1;
            let src = std::fs::read_to_string(&path).expect("source");
            for call in bypasses(&src) {
                offenders.push(format!("{}: …{call}", path.display()));
            }
        }
        assert!(files > 5, "the crate's sources were not found");
        assert!(
            offenders.is_empty(),
            "store writes outside writes.rs (their cache invalidations and relay \
             poke would be remembered by hand); add a method to writes.rs:\n{}",
            offenders.join("\n")
        );
    }

    #[test]
    fn the_scan_sees_a_bypass() {
        // What a bypass looks like after rustfmt: caught.
        let bypass = "let o = self\n    .store\n    .follow(me, t, o, false, stamp)\n    .await?;";
        assert_eq!(bypasses(bypass).len(), 1);
        assert_eq!(bypasses("self.store.create_status(&new)").len(), 1);
        assert_eq!(bypasses("core.store().block(a, b, s)").len(), 1);
        assert_eq!(bypasses("let s = &*self.store; s.unmute(a, b)").len(), 1);
        assert_eq!(
            bypasses("GraphStore::mute(&*store, a, b, true, s)").len(),
            1
        );
        assert_eq!(bypasses("self.0.record_dead_letter(c, e, r)").len(), 1);
        assert_eq!(bypasses("self.core.follow(&caller, t, input)").len(), 1);
        // Use cases of `Core` named like store writes, reads, comments and
        // tests are not.
        assert!(bypasses("self.follow(&caller, t, input).await").is_empty());
        assert!(bypasses("self.store.relationships(me, &[t])").is_empty());
        assert!(bypasses("// self.store.follow(me, t)\nx").is_empty());
        assert!(bypasses("ok()\n#[cfg(test)]\nstore.follow(a, b)").is_empty());
        assert!(bypasses("self.write_follow(a, b, o, false, s, &r)").is_empty());
        assert!(bypasses("crate::writes::outbox_remove(&*self.store, &k)").is_empty());
    }

    #[test]
    fn effects_of_statuses() {
        let status = |reply: Option<i64>, boost: Option<i64>| Status {
            id: Id::from_i64(10 << 20),
            account_id: Id::from_i64(1 << 20),
            reblog_of_id: boost.map(Id::from_i64),
            in_reply_to_id: reply.map(Id::from_i64),
            in_reply_to_account_id: None,
            text: String::new(),
            content: String::new(),
            spoiler_text: String::new(),
            sensitive: false,
            visibility: starling_domain::Visibility::Public,
            language: None,
            app_id: None,
            mentions: vec![],
            tags: vec![],
            created_at_ms: 0,
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            media: Vec::new(),
        };
        let post = Effects::status_created(&status(None, None));
        assert!(post.outbox);
        assert_eq!(post.accounts, [Id::from_i64(1 << 20)]);
        assert!(post.statuses.is_empty() && post.viewers.is_empty());
        let reply = Effects::status_created(&status(Some(5 << 20), None));
        assert_eq!(reply.statuses, [Id::from_i64(5 << 20)]);
        let boost = Effects::status_created(&status(None, Some(6 << 20)));
        assert_eq!(boost.statuses, [Id::from_i64(6 << 20)]);
        assert_eq!(boost.viewers, [Id::from_i64(1 << 20)]);
        let unboost = Effects::status_deleted(&status(None, Some(6 << 20)));
        assert_eq!(
            unboost.statuses,
            [Id::from_i64(6 << 20), Id::from_i64(10 << 20)]
        );
        assert_eq!(unboost.viewers, [Id::from_i64(1 << 20)]);
        assert!(Effects::none().is_none());
        let rel = Effects::none().relation(Id::from_i64(1), Id::from_i64(2), false);
        assert!(rel.accounts.is_empty() && rel.viewers.len() == 2);
    }
}
