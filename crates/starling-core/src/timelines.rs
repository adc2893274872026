//! Timelines: home (filled on write, large accounts merged at read time,
//! rebuilt for inactive users), public, hashtag and account timelines.
//!
//! A home read costs O(page size): one range read of the cached list, one
//! read of the reader's large followees (a short list, by an index on the
//! follow rows' large flag), a merge of those few authors' newest ids (kept
//! in each process's memory and shared by all its readers; a store query
//! bounded by the page only for pages that reach past them), then
//! hydration with batched multi-gets. Only a rebuild reads the reader's
//! whole follow list.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use starling_cache::TimelineEntry;
use starling_domain::status::belongs_in_home;
use starling_domain::text::normalize_tag;
use starling_domain::{FollowOptions, Id, Page, Status, Visibility};
use starling_store::AccountStatusFilter;

use crate::views::{Filter, StatusView};
use crate::{Core, CoreError, CoreResult, Principal};

/// Most followees read when rebuilding a home timeline.
const REBUILD_FOLLOWEES_MAX: usize = 10_000;
/// How many slices of ids one home page may read (the first, and top-ups
/// when hydration or a source's end left it short).
const HOME_SLICES_MAX: usize = 4;

/// Candidate ids of a home page, newest first, and where to go on from.
struct HomeSlice {
    ids: Vec<Id>,
    /// The `max_id` a top-up continues from; `None` when every source is
    /// exhausted.
    next: Option<Id>,
}

impl HomeSlice {
    /// Cuts merged candidates (newest first) to what every full source
    /// covers, then to the page. `sources` are `(full, newest, oldest)` of
    /// each source's rows.
    fn cut(ids: Vec<Id>, page: &Page, sources: &[(bool, Option<Id>, Option<Id>)]) -> Self {
        if page.ascending() {
            // Each source holds the rows just above the lower bound; a full
            // one knows nothing above its newest row.
            let ceiling = sources
                .iter()
                .filter(|(full, _, _)| *full)
                .filter_map(|(_, newest, _)| *newest)
                .min();
            let ids = ids
                .into_iter()
                .filter(|id| ceiling.is_none_or(|c| *id <= c))
                .collect();
            return Self {
                ids: page.select(ids, |id| *id),
                next: None,
            };
        }
        let floor = sources
            .iter()
            .filter(|(full, _, _)| *full)
            .filter_map(|(_, _, oldest)| *oldest)
            .max();
        let mut ids: Vec<Id> = ids
            .into_iter()
            .filter(|id| floor.is_none_or(|f| *id >= f))
            .collect();
        if ids.len() >= page.limit {
            ids.truncate(page.limit);
            let next = ids.last().copied();
            return Self { ids, next };
        }
        Self { ids, next: floor }
    }
}

/// What [`HomeSlice::cut`] needs of one source's ids (newest first): whether
/// it returned a full page, its newest and its oldest.
fn source_of(ids: &[Id], page: &Page) -> (bool, Option<Id>, Option<Id>) {
    (
        ids.len() == page.limit,
        ids.first().copied(),
        ids.last().copied(),
    )
}

/// Account-timeline options (`GET /api/v1/accounts/:id/statuses`).
#[derive(Clone, Debug, Default)]
pub struct AccountTimelineOptions {
    pub exclude_replies: bool,
    pub exclude_reblogs: bool,
    pub only_media: bool,
    pub pinned: bool,
    /// Only statuses with this hashtag (as the client sent it).
    pub tagged: Option<String>,
}

pub(crate) fn entry_of(s: &Status) -> TimelineEntry {
    TimelineEntry {
        id: s.id,
        author_id: s.account_id,
        reblog_of_id: s.reblog_of_id,
    }
}

impl Core {
    pub async fn home_timeline(
        &self,
        caller: &Principal,
        page: &Page,
    ) -> CoreResult<Vec<StatusView>> {
        let me = caller.user()?;
        let large = self.store.large_followees(me).await?;
        let want = page.limit;
        let mut page = *page;
        let mut out = Vec::with_capacity(want);
        // Hydration drops what the viewer may no longer see (a boost of a
        // deleted status, a muted author), and a slice may stop short where
        // one of its sources does: a short newest-first page is topped up
        // from where the slice ended, a bounded number of times, so hidden
        // entries do not end a client's paging early.
        for _ in 0..HOME_SLICES_MAX {
            let slice = self.home_slice(me, &page, &large).await?;
            out.extend(self.hydrate(Some(me), &slice.ids, Filter::Home).await?);
            match slice.next {
                Some(next) if out.len() < want && !page.ascending() => {
                    page.max_id = Some(next);
                    page.limit = want - out.len();
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// The ids of one home page: the cached list (rebuilt if missing, the
    /// store if the cache fails) merged with the recent posts of the large
    /// accounts the owner follows.
    ///
    /// Each source returns at most a page of rows inside the page's bounds,
    /// and a full one says nothing about what lies beyond its last row: the
    /// merge keeps only what every full source covers, so an entry can never
    /// be skipped between two pages.
    async fn home_slice(
        &self,
        me: Id,
        page: &Page,
        large: &[(Id, FollowOptions)],
    ) -> CoreResult<HomeSlice> {
        let cached: Vec<Id> = match self.cached_home(me, page).await? {
            Some(entries) => entries.iter().map(|e| e.id).collect(),
            // The cache is unusable: serve from the store (slower, correct).
            None => self
                .home_from_store(me, page, REBUILD_FOLLOWEES_MAX)
                .await?
                .iter()
                .map(|e| e.id)
                .collect(),
        };
        let mut sources = vec![source_of(&cached, page)];
        let mut ids = cached;
        if !large.is_empty() {
            // Some rows of large accounts do not belong (hidden boosts,
            // replies to strangers): read more than a page of them.
            let wide = Page {
                limit: page.limit * 2,
                ..*page
            };
            let authors: Vec<Id> = large.iter().map(|(id, _)| *id).collect();
            let (merged_rows, source) = self.large_rows(&authors, &wide).await?;
            let targets = self.reply_targets_followed(me, &merged_rows).await?;
            for s in &merged_rows {
                let options = large
                    .iter()
                    .find(|(a, _)| *a == s.account_id)
                    .map(|(_, o)| *o);
                let follows_target = s
                    .in_reply_to_account_id
                    .is_some_and(|t| targets.contains(&t));
                if belongs_in_home(s, me, options, follows_target) {
                    ids.push(s.id);
                }
            }
            sources.push(source);
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        Ok(HomeSlice::cut(ids, page, &sources))
    }

    /// What `Store::statuses_by_authors(authors, page)` answers (newest
    /// first), and that source's `(full, newest, oldest)` for
    /// [`HomeSlice::cut`].
    ///
    /// The answer is taken from each author's newest ids kept in memory
    /// ([`crate::objects::RecentIds`], shared by every reader of this
    /// process) whenever they hold it exactly: the page picked from the
    /// union of those ids is the store's if, for every author, every id
    /// that could be on it is known (its list is complete, or reaches below
    /// the page's oldest id, or below the lower bound when the page is
    /// short or ascending). The rows then come from the object cache. Else
    /// (deep pages) the store answers.
    async fn large_rows(
        &self,
        authors: &[Id],
        page: &Page,
    ) -> CoreResult<(Vec<Arc<Status>>, (bool, Option<Id>, Option<Id>))> {
        let store = &*self.store;
        let mut recent = Vec::with_capacity(authors.len());
        for author in authors {
            recent.push(self.objects.recent_ids(store, *author).await?);
        }
        let mut ids: Vec<Id> = recent.iter().flat_map(|r| r.ids.iter().copied()).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        let ids = page.select(ids, |id| *id);
        let known_from = if page.ascending() || ids.len() < page.limit {
            page.lower()
        } else {
            ids.last().copied()
        };
        if recent.iter().all(|r| r.covers_above(known_from)) {
            metrics::counter!("starling_home_large_merges_total", "from" => "memory").increment(1);
            let mut rows = self.objects.statuses(store, &ids).await?;
            rows.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
            return Ok((rows, source_of(&ids, page)));
        }
        metrics::counter!("starling_home_large_merges_total", "from" => "store").increment(1);
        let rows: Vec<Arc<Status>> = store
            .statuses_by_authors(authors, page)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        let ids: Vec<Id> = rows.iter().map(|s| s.id).collect();
        Ok((rows, source_of(&ids, page)))
    }

    /// The cached page, rebuilding the list first if it is missing; `None`
    /// if the cache itself fails.
    async fn cached_home(&self, me: Id, page: &Page) -> CoreResult<Option<Vec<TimelineEntry>>> {
        match self.timelines.range(me, page).await {
            Ok(Some(entries)) => return Ok(Some(entries)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "timeline cache failed; reading the store");
                metrics::counter!("starling_timeline_cache_errors_total").increment(1);
                return Ok(None);
            }
        }
        metrics::counter!("starling_home_rebuilds_total").increment(1);
        if let Err(e) = self.timelines.begin_rebuild(me).await {
            tracing::warn!(error = %e, "timeline cache failed; reading the store");
            return Ok(None);
        }
        // From the primary: a post fanned out before `begin_rebuild` must be
        // in this read, and a read replica may not have it yet.
        let entries = starling_store::with_primary_reads(self.home_from_store(
            me,
            &Page::first(self.timelines.cap()),
            REBUILD_FOLLOWEES_MAX,
        ))
        .await?;
        if let Err(e) = self.timelines.fill(me, &entries).await {
            tracing::warn!(error = %e, "timeline cache failed; reading the store");
            return Ok(None);
        }
        Ok(self.timelines.range(me, page).await.ok().flatten())
    }

    /// Home entries computed from the store: the owner's own statuses and
    /// those of the accounts they follow that are fanned out on write
    /// (large ones are merged at read time).
    async fn home_from_store(
        &self,
        me: Id,
        page: &Page,
        followees_max: usize,
    ) -> CoreResult<Vec<TimelineEntry>> {
        let followees = self.store.followees(me, followees_max).await?;
        let large: HashSet<Id> = self
            .store
            .large_followees(me)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut authors: Vec<Id> = followees
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !large.contains(id))
            .collect();
        authors.push(me);
        let following: HashSet<Id> = followees.iter().map(|(id, _)| *id).collect();
        let statuses = self.store.statuses_by_authors(&authors, page).await?;
        Ok(statuses
            .iter()
            .filter(|s| {
                let options = followees
                    .iter()
                    .find(|(a, _)| *a == s.account_id)
                    .map(|(_, o)| *o);
                let follows_target = s
                    .in_reply_to_account_id
                    .is_some_and(|t| following.contains(&t));
                belongs_in_home(s, me, options, follows_target)
            })
            .map(entry_of)
            .collect())
    }

    /// Which accounts replied to in `statuses` the viewer follows.
    pub(crate) async fn reply_targets_followed(
        &self,
        me: Id,
        statuses: &[impl std::borrow::Borrow<Status>],
    ) -> CoreResult<HashSet<Id>> {
        let mut targets: Vec<Id> = statuses
            .iter()
            .map(std::borrow::Borrow::borrow)
            .filter(|s: &&Status| s.is_reply_to_other())
            .filter_map(|s| s.in_reply_to_account_id)
            .filter(|t| *t != me)
            .collect();
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(self
            .store
            .relations(me, &targets)
            .await?
            .into_iter()
            .filter(|r| r.following)
            .map(|r| r.id)
            .collect())
    }

    /// Public statuses, newest first. Everything here is local; `remote`
    /// asks for federated statuses, of which there are none.
    pub async fn public_timeline(
        &self,
        viewer: Option<Id>,
        remote_only: bool,
        only_media: bool,
        page: &Page,
    ) -> CoreResult<Vec<StatusView>> {
        if remote_only || only_media {
            return Ok(vec![]);
        }
        let ids: Vec<Id> = self
            .store
            .public_statuses(page)
            .await?
            .iter()
            .map(|s| s.id)
            .collect();
        self.hydrate(viewer, &ids, Filter::Timeline).await
    }

    /// Public statuses tagged `#tag`; an unknown or malformed tag is an
    /// empty list (Mastodon's behaviour).
    pub async fn tag_timeline(
        &self,
        viewer: Option<Id>,
        tag: &str,
        remote_only: bool,
        only_media: bool,
        page: &Page,
    ) -> CoreResult<Vec<StatusView>> {
        let Some(tag) = normalize_tag(tag.trim_start_matches('#')) else {
            return Ok(vec![]);
        };
        if remote_only || only_media {
            return Ok(vec![]);
        }
        let ids: Vec<Id> = self
            .store
            .tag_statuses(&tag, page)
            .await?
            .iter()
            .map(|s| s.id)
            .collect();
        self.hydrate(viewer, &ids, Filter::Timeline).await
    }

    /// An account's statuses as `viewer` may see them.
    pub async fn account_timeline(
        &self,
        viewer: Option<Id>,
        account: Id,
        options: AccountTimelineOptions,
        page: &Page,
    ) -> CoreResult<Vec<StatusView>> {
        self.account(account).await?;
        // No pins yet: that list is empty, not an error.
        if options.pinned {
            return Ok(vec![]);
        }
        // Hydration asks for this relation again: the reader's relations
        // are kept in memory (`ObjectCache::relations`), so that is free.
        let up_to = match viewer {
            Some(v) if v == account => Visibility::Direct,
            Some(v) => {
                let rel = self.objects.relations(&*self.store, v, &[account]).await?;
                match rel.first() {
                    Some(r) if r.blocked => return Ok(vec![]),
                    Some(r) if r.following => Visibility::Private,
                    _ => Visibility::Unlisted,
                }
            }
            None => Visibility::Unlisted,
        };
        let tagged = match options
            .tagged
            .as_deref()
            .map(|t| t.trim().trim_start_matches('#'))
        {
            None | Some("") => None,
            Some(raw) => match normalize_tag(raw) {
                Some(tag) => Some(tag),
                // No status can carry a tag that cannot exist.
                None => return Ok(vec![]),
            },
        };
        let filter = AccountStatusFilter {
            only_media: options.only_media,
            exclude_replies: options.exclude_replies,
            exclude_reblogs: options.exclude_reblogs,
            up_to,
            // A viewer sees what mentions them, whatever its visibility.
            mentioning: viewer.filter(|v| *v != account),
            tagged,
        };
        let ids = match self
            .account_page_from_memory(account, &filter, page)
            .await?
        {
            Some(ids) => {
                metrics::counter!("starling_account_pages_total", "from" => "memory").increment(1);
                ids
            }
            None => {
                metrics::counter!("starling_account_pages_total", "from" => "store").increment(1);
                self.store
                    .account_statuses(account, &filter, page)
                    .await?
                    .iter()
                    .map(|s| s.id)
                    .collect()
            }
        };
        self.hydrate(viewer, &ids, Filter::Direct).await
    }

    /// What `Store::account_statuses(account, filter, page)` answers,
    /// computed from the author's newest ids ([`ObjectCache::recent_ids`])
    /// and the cached statuses, when those hold the whole answer: the page
    /// fills up before the ids run out, or no id of the author inside the
    /// page is missing from them. `None` (deep pages): ask the store.
    ///
    /// The statuses are filtered with [`AccountStatusFilter::admits`],
    /// which the conformance suite holds to the adapters' statements. What
    /// it reads (visibility, mentions, tags, reply and boost targets) never
    /// changes after a status is written, so cached rows answer it exactly.
    async fn account_page_from_memory(
        &self,
        account: Id,
        filter: &AccountStatusFilter,
        page: &Page,
    ) -> CoreResult<Option<Vec<Id>>> {
        let store = &*self.store;
        let recent = self.objects.recent_ids(store, account).await?;
        // A page by `min_id` wants the statuses just above its lower bound,
        // so every id above that bound must be known.
        if page.ascending() && !recent.covers_above(page.lower()) {
            return Ok(None);
        }
        let mut inside: Vec<Id> = recent
            .ids
            .iter()
            .copied()
            .filter(|id| page.contains(*id))
            .collect();
        if page.ascending() {
            inside.reverse();
        }
        // From the end the page keeps, a page's worth at a time, until
        // `limit` statuses pass the filter.
        let mut kept = Vec::with_capacity(page.limit);
        for chunk in inside.chunks(page.limit.max(1)) {
            let rows: HashMap<Id, Arc<Status>> = self
                .objects
                .statuses(store, chunk)
                .await?
                .into_iter()
                .map(|s| (s.id, s))
                .collect();
            kept.extend(
                chunk
                    .iter()
                    .filter(|id| rows.get(id).is_some_and(|s| filter.admits(s))),
            );
            if kept.len() >= page.limit {
                break;
            }
        }
        kept.truncate(page.limit);
        if page.ascending() {
            kept.reverse();
        } else if kept.len() < page.limit && !recent.covers_above(page.lower()) {
            // Short, and the author may have more below the known ids.
            return Ok(None);
        }
        Ok(Some(kept))
    }

    /// Pushes a followee's recent statuses into a follower's home timeline
    /// (after a follow), or every active follower's (when an account stops
    /// being large). Used by the fan-out consumer.
    pub(crate) async fn merge_author_into(
        &self,
        author: Id,
        owners: &[(Id, FollowOptions)],
    ) -> CoreResult<()> {
        let cap = self.timelines.cap();
        let recent = self
            .store
            .statuses_by_authors(&[author], &Page::first(cap))
            .await?;
        if recent.is_empty() {
            return Ok(());
        }
        let mut items = Vec::new();
        for (owner, options) in owners {
            let targets = self.reply_targets_followed(*owner, &recent).await?;
            for s in &recent {
                let follows_target = s
                    .in_reply_to_account_id
                    .is_some_and(|t| targets.contains(&t));
                if belongs_in_home(s, *owner, Some(*options), follows_target) {
                    items.push((*owner, entry_of(s)));
                }
            }
        }
        self.timelines
            .push(&items)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))
    }
}
