//! Search: accounts by username or display-name prefix (and the `@user`,
//! `user@host` and profile-URL forms), hashtags by prefix, statuses by URL.

use std::sync::Arc;

use starling_domain::text::normalize_tag;
use starling_domain::validation::reject_nul;
use starling_domain::{Account, Id};

use crate::views::StatusView;
use crate::{Core, CoreResult};

/// What to search for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchKinds {
    pub accounts: bool,
    pub hashtags: bool,
    pub statuses: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SearchResults {
    pub accounts: Vec<Arc<Account>>,
    pub hashtags: Vec<String>,
    pub statuses: Vec<StatusView>,
}

impl Core {
    pub async fn search(
        &self,
        viewer: Option<Id>,
        q: &str,
        kinds: SearchKinds,
        limit: usize,
        offset: usize,
    ) -> CoreResult<SearchResults> {
        reject_nul("q", q)?;
        let q = q.trim();
        let mut out = SearchResults::default();
        if q.is_empty() {
            return Ok(out);
        }
        if q.starts_with("https://") || q.starts_with("http://") {
            // A URL: a local status or profile.
            if kinds.statuses {
                if let Some(id) = self.status_id_in_url(q) {
                    if let Ok(v) = self.status_view(viewer, id).await {
                        out.statuses.push(v);
                    }
                }
            }
            if kinds.accounts {
                if let Some(name) = self.username_in_url(q) {
                    if let Ok(a) = self.lookup(&name, &self.local_domain()).await {
                        out.accounts.push(Arc::new(a));
                    }
                }
            }
            return Ok(out);
        }
        if kinds.accounts {
            out.accounts = self.search_accounts(q, limit, offset).await?;
        }
        if kinds.hashtags {
            if let Some(tag) = normalize_tag(q.trim_start_matches('#')) {
                out.hashtags = self.store.search_tags(&tag, limit, offset).await?;
            }
        }
        Ok(out)
    }

    /// Accounts matching `q`: `@user`, `user@<local host>` or a prefix of a
    /// username or display name. Remote accounts are not known.
    pub async fn search_accounts(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
    ) -> CoreResult<Vec<Arc<Account>>> {
        reject_nul("q", q)?;
        let q = q.trim().trim_start_matches('@');
        let prefix = match q.split_once('@') {
            Some((user, host)) if host.eq_ignore_ascii_case(&self.local_domain()) => user,
            Some(_) => return Ok(vec![]),
            None => q,
        };
        let prefix = prefix.trim().to_lowercase();
        if prefix.is_empty() {
            return Ok(vec![]);
        }
        Ok(self
            .store
            .search_accounts(&prefix, limit, offset)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    /// `https://host/@user/<id>` or `https://host/users/user/statuses/<id>`.
    fn status_id_in_url(&self, q: &str) -> Option<Id> {
        let rest = self.local_path(q)?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [user, id] if user.starts_with('@') => id.parse().ok(),
            ["users", _, "statuses", id] => id.parse().ok(),
            _ => None,
        }
    }

    /// `https://host/@user` or `https://host/users/user`.
    fn username_in_url(&self, q: &str) -> Option<String> {
        let rest = self.local_path(q)?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [user] if user.starts_with('@') => Some(user.trim_start_matches('@').to_owned()),
            ["users", user] => Some((*user).to_owned()),
            _ => None,
        }
    }

    /// The path of a URL on this server.
    fn local_path(&self, q: &str) -> Option<String> {
        let url = url::Url::parse(q).ok()?;
        let base = url::Url::parse(&self.settings.base_url).ok()?;
        (url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default())
        .then(|| url.path().to_owned())
    }
}
