//! Reading notifications and markers. Notifications are created by the
//! notifier consumer (see [`crate::workers`]), never inside a request.

use std::collections::HashMap;
use std::sync::Arc;

use starling_domain::{Account, Id, Notification, NotificationType, Page};
use starling_store::{Marker, NotificationFilter};

use crate::views::{Filter, StatusView};
use crate::{Core, CoreError, CoreResult, Principal};

/// A notification as its recipient sees it.
#[derive(Clone, Debug)]
pub struct NotificationView {
    pub notification: Notification,
    pub account: Arc<Account>,
    pub status: Option<StatusView>,
}

/// The timelines a marker may be saved for.
pub const MARKER_TIMELINES: [&str; 2] = ["home", "notifications"];

/// Most notifications `unread_count` counts.
const UNREAD_MAX: usize = 1000;

impl Core {
    pub async fn notifications(
        &self,
        caller: &Principal,
        filter: &NotificationFilter,
        page: &Page,
    ) -> CoreResult<Vec<NotificationView>> {
        let me = caller.user()?;
        let list = self.store.notifications(me, filter, page).await?;
        self.notification_views(me, list).await
    }

    pub async fn notification(&self, caller: &Principal, id: Id) -> CoreResult<NotificationView> {
        let me = caller.user()?;
        let n = self
            .store
            .notification(me, id)
            .await?
            .ok_or(CoreError::NotFound)?;
        self.notification_views(me, vec![n])
            .await?
            .pop()
            .ok_or(CoreError::NotFound)
    }

    /// Hydrates notifications, dropping those whose actor is gone, blocked
    /// or muted, and those whose status is gone or hidden.
    async fn notification_views(
        &self,
        me: Id,
        list: Vec<Notification>,
    ) -> CoreResult<Vec<NotificationView>> {
        if list.is_empty() {
            return Ok(vec![]);
        }
        let mut actors: Vec<Id> = list.iter().map(|n| n.from_account_id).collect();
        actors.sort_unstable();
        actors.dedup();
        let hidden = self.store.hidden_among(me, &actors).await?;
        let accounts: HashMap<Id, Arc<Account>> = self
            .accounts_in_order(&actors)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let status_ids: Vec<Id> = list.iter().filter_map(|n| n.status_id).collect();
        let statuses: HashMap<Id, StatusView> = self
            .hydrate(Some(me), &status_ids, Filter::Direct)
            .await?
            .into_iter()
            .map(|v| (v.status.id, v))
            .collect();
        Ok(list
            .into_iter()
            .filter(|n| {
                !hidden.blocked.contains(&n.from_account_id)
                    && !hidden.muted_notifications.contains(&n.from_account_id)
            })
            .filter_map(|n| {
                let account = accounts.get(&n.from_account_id)?.clone();
                let status = match n.status_id {
                    Some(id) => Some(statuses.get(&id)?.clone()),
                    None => None,
                };
                Some(NotificationView {
                    notification: n,
                    account,
                    status,
                })
            })
            .collect())
    }

    pub async fn dismiss_notification(&self, caller: &Principal, id: Id) -> CoreResult<()> {
        let me = caller.user()?;
        if self.write_dismiss_notification(me, id).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound)
        }
    }

    pub async fn clear_notifications(&self, caller: &Principal) -> CoreResult<()> {
        self.write_clear_notifications(caller.user()?).await
    }

    /// Notifications above the saved notifications marker.
    pub async fn unread_notifications(&self, caller: &Principal, limit: usize) -> CoreResult<u64> {
        let me = caller.user()?;
        let marker = self
            .store
            .markers(me)
            .await?
            .into_iter()
            .find(|m| m.timeline == "notifications")
            .map(|m| m.last_read_id);
        Ok(self
            .store
            .count_notifications_after(me, marker, limit.clamp(1, UNREAD_MAX))
            .await?)
    }

    pub async fn markers(
        &self,
        caller: &Principal,
        timelines: &[String],
    ) -> CoreResult<Vec<Marker>> {
        let me = caller.user()?;
        Ok(self
            .store
            .markers(me)
            .await?
            .into_iter()
            .filter(|m| timelines.is_empty() || timelines.contains(&m.timeline))
            .collect())
    }

    pub async fn set_markers(
        &self,
        caller: &Principal,
        positions: &[(String, Id)],
    ) -> CoreResult<Vec<Marker>> {
        let me = caller.user()?;
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for (timeline, id) in positions {
            if MARKER_TIMELINES.contains(&timeline.as_str()) {
                out.push(self.write_marker(me, timeline, *id, now).await?);
            }
        }
        Ok(out)
    }
}

/// Parses `types[]` / `exclude_types[]` values, ignoring unknown kinds (as
/// Mastodon does).
pub fn parse_types(values: &[String]) -> Vec<NotificationType> {
    values
        .iter()
        .filter_map(|v| NotificationType::parse(v.trim()))
        .collect()
}
