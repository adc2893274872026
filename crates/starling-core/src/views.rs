//! Hydration: from status ids to everything a client is shown about them.
//!
//! A page of statuses is hydrated with a fixed number of batched calls,
//! whatever its size: the statuses (and the boosted ones) from the object
//! cache, their authors and mentioned accounts from the object cache, the
//! viewer's relationships to those authors, and the viewer's favourites and
//! boosts among them. Deleted statuses, statuses the viewer may not see and
//! (in timelines) blocked or muted authors drop out here.

use std::collections::HashMap;
use std::sync::Arc;

use starling_domain::status::{can_view, Relation};
use starling_domain::{Account, Id, Status};
use starling_store::RelationFlags;

use crate::{Core, CoreResult};

/// A status as a viewer sees it.
#[derive(Clone, Debug)]
pub struct StatusView {
    pub status: Arc<Status>,
    pub account: Arc<Account>,
    /// The mentioned accounts that still exist, in order.
    pub mentions: Vec<Arc<Account>>,
    /// For a boost, the boosted status.
    pub reblog: Option<Box<StatusView>>,
    /// Relative to the viewer; `None` for anonymous callers.
    pub viewer: Option<ViewerFlags>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewerFlags {
    pub favourited: bool,
    pub reblogged: bool,
    pub muted: bool,
    /// The viewer wrote it.
    pub own: bool,
}

/// What to drop besides what the viewer may not see at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// A direct read: blocked authors are hidden, muted ones shown.
    Direct,
    /// A timeline or list: muted authors are hidden too.
    Timeline,
    /// The viewer's home: as `Timeline`, and boosts by followees whose
    /// boosts the viewer hid (decided at read time, so changing the follow's
    /// `reblogs` option applies to what is already in the timeline).
    Home,
}

impl Core {
    /// Hydrates statuses by id, in the order given, dropping what the viewer
    /// may not see.
    pub async fn hydrate(
        &self,
        viewer: Option<Id>,
        ids: &[Id],
        filter: Filter,
    ) -> CoreResult<Vec<StatusView>> {
        let store = &*self.store;
        let mut statuses: HashMap<Id, Arc<Status>> = self
            .objects
            .statuses(store, ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let inner: Vec<Id> = statuses.values().filter_map(|s| s.reblog_of_id).collect();
        if !inner.is_empty() {
            for s in self.objects.statuses(store, &inner).await? {
                statuses.insert(s.id, s);
            }
        }

        let mut account_ids: Vec<Id> = Vec::new();
        for s in statuses.values() {
            account_ids.push(s.account_id);
            account_ids.extend(s.mentions.iter().copied());
        }
        dedup(&mut account_ids);
        let accounts: HashMap<Id, Arc<Account>> = self
            .objects
            .accounts(store, &account_ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();

        // The viewer's relations to the authors, and flags on the statuses:
        // one call each (nothing to ask about their own statuses).
        let (relations, interactions) = match viewer {
            None => (HashMap::new(), HashMap::new()),
            Some(v) => {
                let mut authors: Vec<Id> = statuses
                    .values()
                    .map(|s| s.account_id)
                    .filter(|a| *a != v)
                    .collect();
                dedup(&mut authors);
                let rels: HashMap<Id, RelationFlags> = if authors.is_empty() {
                    HashMap::new()
                } else {
                    self.objects
                        .relations(store, v, &authors)
                        .await?
                        .into_iter()
                        .map(|r| (r.id, r))
                        .collect()
                };
                let shown: Vec<Id> = statuses
                    .values()
                    .filter(|s| !s.is_reblog())
                    .map(|s| s.id)
                    .collect();
                let flags = if shown.is_empty() {
                    HashMap::new()
                } else {
                    self.objects.interactions(store, v, &shown).await?
                };
                (rels, flags)
            }
        };

        let build = |s: &Arc<Status>| -> Option<StatusView> {
            let account = accounts.get(&s.account_id)?.clone();
            let rel = relations.get(&s.account_id);
            let relation = Relation {
                following: rel.is_some_and(|r| r.following),
                blocked: rel.is_some_and(|r| r.blocked),
            };
            if !can_view(s, viewer, relation) {
                return None;
            }
            if filter != Filter::Direct && rel.is_some_and(|r| r.muting) {
                return None;
            }
            if filter == Filter::Home
                && s.is_reblog()
                && rel.is_some_and(|r| r.following && !r.showing_reblogs)
            {
                return None;
            }
            Some(StatusView {
                status: s.clone(),
                account,
                mentions: s
                    .mentions
                    .iter()
                    .filter_map(|m| accounts.get(m).cloned())
                    .collect(),
                reblog: None,
                viewer: viewer.map(|v| ViewerFlags {
                    favourited: interactions.get(&s.id).is_some_and(|f| f.favourited),
                    reblogged: interactions.get(&s.id).is_some_and(|f| f.reblogged),
                    muted: false,
                    own: s.account_id == v,
                }),
            })
        };

        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(s) = statuses.get(id) else { continue };
            let Some(mut view) = build(s) else { continue };
            if let Some(inner_id) = s.reblog_of_id {
                let Some(inner) = statuses.get(&inner_id).and_then(&build) else {
                    continue;
                };
                view.reblog = Some(Box::new(inner));
            }
            out.push(view);
        }
        Ok(out)
    }

    /// A post its author has just written, as they see it: built from the
    /// row as written (nobody can have favourited or boosted it yet, and
    /// its author may see it), with the author's and mentioned accounts
    /// read in one call. Hydrating it again would read back the row just
    /// written and ask for the author's interactions with it: a tenth of a
    /// post's CPU.
    pub(crate) async fn new_status_view(&self, status: Status) -> CoreResult<StatusView> {
        let mut ids = status.mentions.clone();
        ids.push(status.account_id);
        dedup(&mut ids);
        let accounts: HashMap<Id, Arc<Account>> = self
            .objects
            .accounts(&*self.store, &ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let account = accounts
            .get(&status.account_id)
            .cloned()
            .ok_or(crate::CoreError::NotFound)?;
        Ok(StatusView {
            mentions: status
                .mentions
                .iter()
                .filter_map(|m| accounts.get(m).cloned())
                .collect(),
            status: Arc::new(status),
            account,
            reblog: None,
            viewer: Some(ViewerFlags {
                own: true,
                ..ViewerFlags::default()
            }),
        })
    }

    /// One status as `viewer` sees it, or not found.
    pub async fn status_view(&self, viewer: Option<Id>, id: Id) -> CoreResult<StatusView> {
        self.hydrate(viewer, &[id], Filter::Direct)
            .await?
            .pop()
            .ok_or(crate::CoreError::NotFound)
    }

    /// Accounts by id in the order given (missing ones dropped).
    pub async fn accounts_in_order(&self, ids: &[Id]) -> CoreResult<Vec<Arc<Account>>> {
        let found: HashMap<Id, Arc<Account>> = self
            .objects
            .accounts(&*self.store, ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }
}

fn dedup(ids: &mut Vec<Id>) {
    ids.sort_unstable();
    ids.dedup();
}
