//! The social graph: follows and follow requests, blocks and mutes, and the
//! relationship a viewer has to accounts.

use starling_domain::{FollowOptions, Id, NotificationType, Page, Relationship};
use starling_store::FollowOutcome;

use crate::statuses::{AccountPage, NOT_ALLOWED};
use crate::{Core, CoreError, CoreResult, Principal};

/// Options of `POST /api/v1/accounts/:id/follow` that were given.
#[derive(Clone, Copy, Debug, Default)]
pub struct FollowInput {
    pub reblogs: Option<bool>,
    pub notify: Option<bool>,
}

/// Most ids one relationships request may ask about.
pub const RELATIONSHIPS_MAX: usize = 80;

impl Core {
    /// Follows (or asks to follow a locked account); idempotent, and a
    /// repeat updates the options.
    pub async fn follow(
        &self,
        caller: &Principal,
        target: Id,
        input: FollowInput,
    ) -> CoreResult<Relationship> {
        let me = caller.user()?;
        if me == target {
            return Err(CoreError::NotFound);
        }
        let account = self.account(target).await?;
        let rel = self.relationship(me, target).await?;
        if rel.blocking || rel.blocked_by {
            return Err(CoreError::Forbidden(NOT_ALLOWED));
        }
        let defaults = FollowOptions::default();
        let options = FollowOptions {
            reblogs: input.reblogs.unwrap_or(if rel.following {
                rel.showing_reblogs
            } else {
                defaults.reblogs
            }),
            notify: input.notify.unwrap_or(if rel.following {
                rel.notifying
            } else {
                defaults.notify
            }),
        };
        let stamp = self.stamp(me.shard());
        // New or not, the options may have changed: the write's effects
        // (`write_follow`) drop both sides' relations and counters.
        let outcome: FollowOutcome = self
            .write_follow(me, target, options, account.locked, stamp, &rel)
            .await?;
        if outcome == FollowOutcome::Blocked {
            // A block committed after the check above.
            return Err(CoreError::Forbidden(NOT_ALLOWED));
        }
        self.relationship(me, target).await
    }

    pub async fn unfollow(&self, caller: &Principal, target: Id) -> CoreResult<Relationship> {
        let me = caller.user()?;
        self.account(target).await?;
        let stamp = self.stamp(me.shard());
        self.write_unfollow(me, target, stamp).await?;
        self.relationship(me, target).await
    }

    pub async fn relationship(&self, me: Id, target: Id) -> CoreResult<Relationship> {
        Ok(self
            .store
            .relationships(me, &[target])
            .await?
            .pop()
            .unwrap_or_else(|| Relationship::none(target)))
    }

    /// Relationships to the accounts that exist among `targets`, in order.
    pub async fn relationships(
        &self,
        caller: &Principal,
        targets: &[Id],
    ) -> CoreResult<Vec<Relationship>> {
        let me = caller.user()?;
        let mut unique: Vec<Id> = Vec::new();
        for t in targets.iter().take(RELATIONSHIPS_MAX) {
            if !unique.contains(t) {
                unique.push(*t);
            }
        }
        let existing: Vec<Id> = self
            .accounts_in_order(&unique)
            .await?
            .iter()
            .map(|a| a.id)
            .collect();
        if existing.is_empty() {
            return Ok(vec![]);
        }
        Ok(self.store.relationships(me, &existing).await?)
    }

    pub async fn followers(&self, account: Id, page: &Page) -> CoreResult<AccountPage> {
        self.account(account).await?;
        let rows = self.store.followers(account, page).await?;
        self.account_page(rows).await
    }

    pub async fn following(&self, account: Id, page: &Page) -> CoreResult<AccountPage> {
        self.account(account).await?;
        let rows = self.store.following(account, page).await?;
        self.account_page(rows).await
    }

    pub async fn block(&self, caller: &Principal, target: Id) -> CoreResult<Relationship> {
        let me = caller.user()?;
        if me == target {
            return Err(CoreError::NotFound);
        }
        self.account(target).await?;
        let stamp = self.stamp(me.shard());
        self.write_block(me, target, stamp).await?;
        self.relationship(me, target).await
    }

    pub async fn unblock(&self, caller: &Principal, target: Id) -> CoreResult<Relationship> {
        let me = caller.user()?;
        self.account(target).await?;
        self.write_unblock(me, target).await?;
        self.relationship(me, target).await
    }

    pub async fn mute(
        &self,
        caller: &Principal,
        target: Id,
        notifications: bool,
    ) -> CoreResult<Relationship> {
        let me = caller.user()?;
        if me == target {
            return Err(CoreError::NotFound);
        }
        self.account(target).await?;
        let stamp = self.stamp(me.shard());
        self.write_mute(me, target, notifications, stamp).await?;
        self.relationship(me, target).await
    }

    pub async fn unmute(&self, caller: &Principal, target: Id) -> CoreResult<Relationship> {
        let me = caller.user()?;
        self.account(target).await?;
        self.write_unmute(me, target).await?;
        self.relationship(me, target).await
    }

    pub async fn blocks(&self, caller: &Principal, page: &Page) -> CoreResult<AccountPage> {
        let rows = self.store.blocks(caller.user()?, page).await?;
        self.account_page(rows).await
    }

    pub async fn mutes(&self, caller: &Principal, page: &Page) -> CoreResult<AccountPage> {
        let rows = self.store.mutes(caller.user()?, page).await?;
        self.account_page(rows).await
    }

    pub async fn follow_requests(
        &self,
        caller: &Principal,
        page: &Page,
    ) -> CoreResult<AccountPage> {
        let rows = self.store.follow_requests(caller.user()?, page).await?;
        self.account_page(rows).await
    }

    /// How many follow requests wait for the caller's answer.
    pub async fn follow_requests_count(&self, caller: &Principal) -> CoreResult<u64> {
        Ok(self.store.count_follow_requests(caller.user()?).await?)
    }

    pub async fn authorize_follow_request(
        &self,
        caller: &Principal,
        requester: Id,
    ) -> CoreResult<Relationship> {
        let me = caller.user()?;
        self.account(requester).await?;
        let stamp = self.stamp(requester.shard());
        if !self
            .write_authorize_follow_request(me, requester, stamp)
            .await?
            && !self.relationship(me, requester).await?.followed_by
        {
            return Err(CoreError::NotFound);
        }
        self.write_dismiss_notifications_from(me, NotificationType::FollowRequest, requester)
            .await?;
        self.relationship(me, requester).await
    }

    pub async fn reject_follow_request(
        &self,
        caller: &Principal,
        requester: Id,
    ) -> CoreResult<Relationship> {
        let me = caller.user()?;
        self.account(requester).await?;
        self.write_reject_follow_request(me, requester).await?;
        self.write_dismiss_notifications_from(me, NotificationType::FollowRequest, requester)
            .await?;
        self.relationship(me, requester).await
    }
}
