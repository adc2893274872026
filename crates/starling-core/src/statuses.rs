//! Posting, reading, deleting, boosting and favouriting statuses, and
//! threads.

use std::collections::HashMap;

use starling_domain::account::parse_language;
use starling_domain::status::can_boost;
use starling_domain::text::{self, MentionRef, ResolvedMention, MAX_STATUS_CHARS};
use starling_domain::validation::reject_nul;
use starling_domain::{
    Account, FieldError, Id, Page, Status, Username, ValidationErrors, Visibility,
};
use starling_store::{Created, IdempotencyKey, NewStatus};

use crate::views::{Filter, StatusView};
use crate::{Core, CoreError, CoreResult, Principal};

/// `POST /api/v1/statuses` input, as received.
#[derive(Clone, Debug, Default)]
pub struct PostInput {
    pub text: Option<String>,
    pub in_reply_to_id: Option<String>,
    pub visibility: Option<String>,
    pub sensitive: bool,
    pub spoiler_text: Option<String>,
    pub language: Option<String>,
    pub media_ids: Vec<String>,
    pub idempotency_key: Option<String>,
}

/// Longest `Idempotency-Key` kept (clients send UUIDs).
const IDEMPOTENCY_KEY_MAX: usize = 128;
/// Thread limits (Mastodon's for anonymous callers; applied to everyone).
const ANCESTORS_MAX: usize = 40;
const DESCENDANTS_MAX: usize = 60;

pub(crate) const NOT_ALLOWED: &str = "This action is not allowed";

/// Mastodon's limit on attachments per status.
pub const MAX_MEDIA_ATTACHMENTS: usize = 4;
const MEDIA_GONE: &str =
    "Cannot attach files that have not finished processing. Try again in a moment!";

/// A list of accounts with the row ids their page was cut on.
pub type AccountPage = Vec<(Id, std::sync::Arc<Account>)>;

impl Core {
    pub async fn post_status(
        &self,
        caller: &Principal,
        input: PostInput,
    ) -> CoreResult<StatusView> {
        let author_id = caller.user()?;
        let author = self.account(author_id).await?;
        let mut errors = ValidationErrors::default();
        let body = input.text.as_deref().unwrap_or("").trim_end().to_owned();
        let spoiler = input
            .spoiler_text
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_owned();
        let media = self.media_to_attach(author_id, &input.media_ids).await?;
        if let Err(e) = reject_nul("text", &body) {
            errors.push(e);
        } else if let Err(e) = reject_nul("spoiler_text", &spoiler) {
            errors.push(e);
        } else if media.is_empty() && body.trim().is_empty() {
            errors.push(FieldError::blank("text"));
        } else if text::status_length(&body, &spoiler) > MAX_STATUS_CHARS {
            errors.push(FieldError::too_long("text", MAX_STATUS_CHARS));
        }
        let visibility = match input.visibility.as_deref().map(str::trim) {
            None | Some("") => author.privacy.into(),
            Some(v) => match Visibility::parse(v) {
                Some(v) => v,
                None => {
                    errors.push(FieldError::invalid("visibility"));
                    Visibility::Public
                }
            },
        };
        // An unknown language falls back to the author's, as Mastodon does.
        let language = input
            .language
            .as_deref()
            .and_then(|l| parse_language(l).ok().flatten())
            .or_else(|| author.language.clone());
        let key = input
            .idempotency_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty());
        if key.is_some_and(|k| k.len() > IDEMPOTENCY_KEY_MAX) {
            errors.push(FieldError::too_long("idempotency_key", IDEMPOTENCY_KEY_MAX));
        }
        errors.into_result()?;

        let parent = match input.in_reply_to_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => {
                let id: Id = raw.parse().map_err(|_| CoreError::NotFound)?;
                let view = self.status_view(Some(author_id), id).await?;
                Some(view.status)
            }
        };

        let parsed = text::parse(&body);
        let mentioned = self.resolve_mentions(&parsed.mentions).await?;
        let base = self.settings.base_url.clone();
        let local = self.local_domain();
        let content = text::render(&body, &base, &|m: &MentionRef| {
            mentioned
                .get(&mention_key_local(m, &local)?)
                .map(|a| ResolvedMention {
                    username: a.username.clone(),
                    url: format!("{base}/@{}", a.username),
                })
        });
        let mut mentions: Vec<Id> = Vec::new();
        for m in &parsed.mentions {
            if let Some(a) = mention_key_local(m, &local).and_then(|k| mentioned.get(&k)) {
                if !mentions.contains(&a.id) {
                    mentions.push(a.id);
                }
            }
        }

        let now = self.clock.now_ms();
        let mut status = Status {
            id: self.id_for(author_id),
            account_id: author_id,
            reblog_of_id: None,
            in_reply_to_id: parent.as_ref().map(|p| p.id),
            in_reply_to_account_id: parent.as_ref().map(|p| p.account_id),
            text: body,
            content,
            spoiler_text: spoiler,
            sensitive: input.sensitive,
            visibility,
            language,
            app_id: Some(caller.app_id),
            mentions,
            tags: parsed.tags,
            created_at_ms: now,
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            media,
        };
        let status_id = status.id;
        for m in &mut status.media {
            m.status_id = Some(status_id);
        }
        let idempotency = key.map(|k| IdempotencyKey {
            key: k.to_owned(),
            expires_at_ms: now + self.settings.idempotency_ttl_ms,
        });
        self.create(author_id, status, idempotency).await
    }

    /// The uploads `media_ids` names, in that order, as Mastodon (4.3)
    /// checks them: at most four, each the author's unattached upload
    /// (else 422 naming the ids), each processed, and a video or GIF
    /// alone. The store checks again, atomically, when it attaches.
    async fn media_to_attach(
        &self,
        author: Id,
        media_ids: &[String],
    ) -> CoreResult<Vec<starling_domain::MediaAttachment>> {
        if media_ids.len() > MAX_MEDIA_ATTACHMENTS {
            return Err(CoreError::Unprocessable(format!(
                "Cannot attach more than {MAX_MEDIA_ATTACHMENTS} files"
            )));
        }
        let mut out: Vec<starling_domain::MediaAttachment> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        for raw in media_ids {
            let found = match raw.trim().parse::<Id>() {
                Ok(id) if out.iter().any(|m| m.id == id) => continue,
                Ok(id) => self.store.media(id).await?,
                Err(_) => None,
            };
            match found {
                Some(m) if m.account_id == author && m.status_id.is_none() => {
                    if !m.is_ready() {
                        return Err(CoreError::Unprocessable(MEDIA_GONE.into()));
                    }
                    out.push(m);
                }
                _ => missing.push(raw.trim()),
            }
        }
        if !missing.is_empty() {
            return Err(CoreError::Unprocessable(format!(
                "Media {} not found or already attached to another post",
                missing.join(", ")
            )));
        }
        let moving = out
            .iter()
            .any(|m| m.kind != starling_domain::MediaType::Image);
        if moving && out.len() > 1 {
            return Err(CoreError::Unprocessable(
                "Cannot attach a video to a post that already contains images".into(),
            ));
        }
        Ok(out)
    }

    /// Writes a status (post or boost), then shows it to its author.
    async fn create(
        &self,
        author_id: Id,
        status: Status,
        idempotency: Option<IdempotencyKey>,
    ) -> CoreResult<StatusView> {
        let id = match self
            .write_status(&NewStatus {
                status,
                idempotency,
            })
            .await?
        {
            Created::New(s) => {
                metrics::counter!("starling_statuses_created_total").increment(1);
                if s.reblog_of_id.is_none() {
                    return self.new_status_view(*s).await;
                }
                s.id
            }
            Created::Existing(id) => id,
            Created::MediaUnavailable(_) => {
                return Err(CoreError::Unprocessable(MEDIA_GONE.into()));
            }
        };
        self.status_view(Some(author_id), id).await
    }

    /// Local accounts named by mentions, keyed by lowercase username.
    async fn resolve_mentions(
        &self,
        mentions: &[MentionRef],
    ) -> CoreResult<HashMap<String, std::sync::Arc<Account>>> {
        let mut out = HashMap::new();
        for m in mentions.iter().take(20) {
            let Some(key) = mention_key_local(m, &self.local_domain()) else {
                continue;
            };
            if out.contains_key(&key) {
                continue;
            }
            if let Some(a) = self.store.account_by_username(&key).await? {
                out.insert(key, std::sync::Arc::new(a));
            }
        }
        Ok(out)
    }

    /// The host part of the base URL (`user@host` mentions of it are local).
    pub fn local_domain(&self) -> String {
        url::Url::parse(&self.settings.base_url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_default()
    }

    pub async fn status(&self, viewer: Option<Id>, id: Id) -> CoreResult<StatusView> {
        self.status_view(viewer, id).await
    }

    /// Deletes the caller's status (and its boosts); returns it with its
    /// source text, for delete-and-redraft. Its uploads are kept for a
    /// redraft (a fresh grace period), or with `delete_media` removed at
    /// once, files and rows (Mastodon 4.4).
    pub async fn delete_status(
        &self,
        caller: &Principal,
        id: Id,
        delete_media: bool,
    ) -> CoreResult<StatusView> {
        let me = caller.user()?;
        let view = self.status_view(Some(me), id).await?;
        if view.status.account_id != me {
            return Err(CoreError::NotFound);
        }
        let stamp = self.stamp(me.shard());
        let deleted = self
            .write_delete_status(me, id, stamp)
            .await?
            .ok_or(CoreError::NotFound)?;
        if delete_media {
            self.remove_media_now(&deleted.media).await;
        }
        Ok(view)
    }

    /// The status a boost or favourite acts on: the original of a boost.
    async fn target(&self, me: Id, id: Id) -> CoreResult<StatusView> {
        let view = self.status_view(Some(me), id).await?;
        Ok(match view.reblog {
            Some(inner) => *inner,
            None => view,
        })
    }

    /// Boosts a status (idempotent); returns the boost.
    pub async fn reblog(
        &self,
        caller: &Principal,
        id: Id,
        visibility: Option<&str>,
    ) -> CoreResult<StatusView> {
        let me = caller.user()?;
        let original = self.target(me, id).await?;
        if !can_boost(&original.status, me) {
            return Err(CoreError::Forbidden(NOT_ALLOWED));
        }
        let visibility = match visibility.map(str::trim) {
            None | Some("") => Visibility::Public,
            Some(v) => match Visibility::parse(v) {
                Some(v @ (Visibility::Public | Visibility::Unlisted | Visibility::Private)) => v,
                _ => {
                    return Err(CoreError::Validation(
                        FieldError::invalid("visibility").into(),
                    ))
                }
            },
        };
        // A boost is never more public than what it boosts.
        let visibility = if visibility.rank() < original.status.visibility.rank() {
            original.status.visibility
        } else {
            visibility
        };
        let status = Status {
            id: self.id_for(me),
            account_id: me,
            reblog_of_id: Some(original.status.id),
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            text: String::new(),
            content: String::new(),
            spoiler_text: String::new(),
            sensitive: false,
            visibility,
            language: None,
            app_id: Some(caller.app_id),
            mentions: vec![],
            tags: vec![],
            created_at_ms: self.clock.now_ms(),
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            media: Vec::new(),
        };
        self.create(me, status, None).await
    }

    /// Undoes a boost (idempotent); returns the original.
    pub async fn unreblog(&self, caller: &Principal, id: Id) -> CoreResult<StatusView> {
        let me = caller.user()?;
        let original = self.target(me, id).await?;
        if let Some(boost) = self.store.reblog_by(me, original.status.id).await? {
            let stamp = self.stamp(me.shard());
            self.write_delete_status(me, boost.id, stamp).await?;
        }
        self.status_view(Some(me), original.status.id).await
    }

    pub async fn favourite(&self, caller: &Principal, id: Id) -> CoreResult<StatusView> {
        let me = caller.user()?;
        let target = self.target(me, id).await?;
        let stamp = self.stamp(me.shard());
        self.write_favourite(me, target.status.id, stamp).await?;
        self.status_view(Some(me), target.status.id).await
    }

    pub async fn unfavourite(&self, caller: &Principal, id: Id) -> CoreResult<StatusView> {
        let me = caller.user()?;
        let target = self.target(me, id).await?;
        self.write_unfavourite(me, target.status.id).await?;
        self.status_view(Some(me), target.status.id).await
    }

    /// Ancestors (oldest first) and descendants (depth-first, by id among
    /// siblings) that the viewer may see.
    pub async fn context(
        &self,
        viewer: Option<Id>,
        id: Id,
    ) -> CoreResult<(Vec<StatusView>, Vec<StatusView>)> {
        let root = self.status_view(viewer, id).await?;
        let mut chain = Vec::new();
        let mut next = root.status.in_reply_to_id;
        while let Some(pid) = next {
            if chain.len() >= ANCESTORS_MAX || chain.contains(&pid) {
                break;
            }
            match self.store.status(pid).await? {
                Some(p) => {
                    next = p.in_reply_to_id;
                    chain.push(p.id);
                }
                None => break,
            }
        }
        chain.reverse();
        let ancestors = self.hydrate(viewer, &chain, Filter::Direct).await?;

        let below = self.store.descendants(id, DESCENDANTS_MAX).await?;
        let mut children: HashMap<Id, Vec<Id>> = HashMap::new();
        for s in &below {
            if let Some(p) = s.in_reply_to_id {
                children.entry(p).or_default().push(s.id);
            }
        }
        for list in children.values_mut() {
            list.sort_unstable();
        }
        let mut order = Vec::with_capacity(below.len());
        let mut stack: Vec<Id> = children.get(&id).cloned().unwrap_or_default();
        stack.reverse();
        while let Some(next) = stack.pop() {
            order.push(next);
            if let Some(kids) = children.get(&next) {
                stack.extend(kids.iter().rev());
            }
        }
        let descendants = self.hydrate(viewer, &order, Filter::Direct).await?;
        Ok((ancestors, descendants))
    }

    pub async fn reblogged_by(
        &self,
        viewer: Option<Id>,
        id: Id,
        page: &Page,
    ) -> CoreResult<AccountPage> {
        let view = self.status_view(viewer, id).await?;
        let rows = self.store.reblogged_by(view.status.id, page).await?;
        self.account_page(rows).await
    }

    pub async fn favourited_by(
        &self,
        viewer: Option<Id>,
        id: Id,
        page: &Page,
    ) -> CoreResult<AccountPage> {
        let view = self.status_view(viewer, id).await?;
        let rows = self.store.favourited_by(view.status.id, page).await?;
        self.account_page(rows).await
    }

    /// `(row id, account id)` rows into accounts, keeping the cursors.
    pub(crate) async fn account_page(&self, rows: Vec<(Id, Id)>) -> CoreResult<AccountPage> {
        let ids: Vec<Id> = rows.iter().map(|(_, a)| *a).collect();
        let accounts: HashMap<Id, std::sync::Arc<Account>> = self
            .accounts_in_order(&ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|(cursor, id)| accounts.get(&id).map(|a| (cursor, a.clone())))
            .collect())
    }

    /// The caller's favourites, with the favourite ids as cursors.
    pub async fn favourites(
        &self,
        caller: &Principal,
        page: &Page,
    ) -> CoreResult<Vec<(Id, StatusView)>> {
        let me = caller.user()?;
        let rows = self.store.favourites(me, page).await?;
        let ids: Vec<Id> = rows.iter().map(|(_, s)| *s).collect();
        let views = self.hydrate(Some(me), &ids, Filter::Direct).await?;
        Ok(with_cursors(rows, views))
    }
}

/// Pairs views with the cursors of their rows (rows whose status is gone
/// or hidden drop out).
pub(crate) fn with_cursors(rows: Vec<(Id, Id)>, views: Vec<StatusView>) -> Vec<(Id, StatusView)> {
    let mut by_id: HashMap<Id, StatusView> = views.into_iter().map(|v| (v.status.id, v)).collect();
    rows.into_iter()
        .filter_map(|(cursor, id)| by_id.remove(&id).map(|v| (cursor, v)))
        .collect()
}

fn mention_key(m: &MentionRef) -> Option<String> {
    Username::parse(&m.username).ok().map(|u| u.key())
}

/// The lowercase username of a mention of a local account.
fn mention_key_local(m: &MentionRef, local_domain: &str) -> Option<String> {
    match &m.domain {
        Some(d) if !d.eq_ignore_ascii_case(local_domain) => None,
        _ => mention_key(m),
    }
}
