//! Rows to domain types and back, and the query pieces every file shares:
//! column lists, paging, key helpers. Storage rows never leave the adapter.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use starling_domain::account::{Privacy, ProfileField};
use starling_domain::oauth::App;
use starling_domain::{
    Account, FollowOptions, Id, Notification, NotificationType, Page, ScopeSet, SecretHash, Status,
    Visibility,
};

use super::corrupt;
use crate::StoreResult;

pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, username, display_name, note, fields, locked, bot, discoverable, privacy, sensitive, \
     language, created_at, statuses_count, followers_count, following_count, last_status_at, \
     avatar, header";

pub(crate) const STATUS_COLUMNS: &str = "s.id, s.account_id, s.reblog_of_id, s.in_reply_to_id, \
     s.in_reply_to_account_id, s.text, s.content, s.spoiler_text, s.sensitive, s.visibility, \
     s.language, s.app_id, s.mentions, s.tags, s.created_at, s.replies_count, s.reblogs_count, \
     s.favourites_count, s.media";

pub(crate) const NOTIFICATION_COLUMNS: &str =
    "id, account_id, kind, from_account_id, status_id, created_at, event_id";

/// The lowercase form of a display name that account search matches
/// prefixes against (the caller lowercases the prefix the same way).
pub(crate) fn display_key(name: &str) -> String {
    name.to_lowercase()
}

pub(crate) fn id(row: &PgRow, col: &str) -> Id {
    Id::from_i64(row.get(col))
}

pub(crate) fn opt_id(row: &PgRow, col: &str) -> Option<Id> {
    row.get::<Option<i64>, _>(col).map(Id::from_i64)
}

pub(crate) fn ids(values: Vec<i64>) -> Vec<Id> {
    values.into_iter().map(Id::from_i64).collect()
}

pub(crate) fn raw(ids: &[Id]) -> Vec<i64> {
    ids.iter().map(|i| i.as_i64()).collect()
}

pub(crate) fn fields_json(fields: &[ProfileField]) -> String {
    serde_json::Value::Array(
        fields
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "value": f.value}))
            .collect(),
    )
    .to_string()
}

pub(crate) fn account_from_row(row: &PgRow) -> StoreResult<Account> {
    let fields_json: String = row.get("fields");
    let fields: Vec<serde_json::Value> =
        serde_json::from_str(&fields_json).map_err(|_| corrupt("accounts.fields"))?;
    let fields = fields
        .iter()
        .map(|f| ProfileField {
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            value: f["value"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let privacy: String = row.get("privacy");
    Ok(Account {
        id: id(row, "id"),
        username: row.get("username"),
        display_name: row.get("display_name"),
        note: row.get("note"),
        fields,
        locked: row.get("locked"),
        bot: row.get("bot"),
        discoverable: row.get("discoverable"),
        privacy: Privacy::parse(&privacy).ok_or_else(|| corrupt("accounts.privacy"))?,
        sensitive: row.get("sensitive"),
        language: row.get("language"),
        created_at_ms: row.get("created_at"),
        statuses_count: row.get("statuses_count"),
        followers_count: row.get("followers_count"),
        following_count: row.get("following_count"),
        last_status_at_ms: row.get("last_status_at"),
        avatar: row.get("avatar"),
        header: row.get("header"),
    })
}

pub(crate) fn accounts_from_rows(rows: &[PgRow]) -> StoreResult<Vec<Account>> {
    rows.iter().map(account_from_row).collect()
}

pub(crate) fn visibility_code(v: Visibility) -> i16 {
    i16::from(v.rank())
}

fn visibility_from(code: i16) -> StoreResult<Visibility> {
    match code {
        0 => Ok(Visibility::Public),
        1 => Ok(Visibility::Unlisted),
        2 => Ok(Visibility::Private),
        3 => Ok(Visibility::Direct),
        _ => Err(corrupt("statuses.visibility")),
    }
}

pub(crate) fn status_from_row(row: &PgRow) -> StoreResult<Status> {
    let mentions: Vec<i64> = row.get("mentions");
    Ok(Status {
        id: id(row, "id"),
        account_id: id(row, "account_id"),
        reblog_of_id: opt_id(row, "reblog_of_id"),
        in_reply_to_id: opt_id(row, "in_reply_to_id"),
        in_reply_to_account_id: opt_id(row, "in_reply_to_account_id"),
        text: row.get("text"),
        content: row.get("content"),
        spoiler_text: row.get("spoiler_text"),
        sensitive: row.get("sensitive"),
        visibility: visibility_from(row.get("visibility"))?,
        language: row.get("language"),
        app_id: opt_id(row, "app_id"),
        mentions: ids(mentions),
        tags: row.get("tags"),
        created_at_ms: row.get("created_at"),
        replies_count: row.get("replies_count"),
        reblogs_count: row.get("reblogs_count"),
        favourites_count: row.get("favourites_count"),
        media: crate::media::attachments_from_column(row.get("media"))?,
    })
}

pub(crate) fn statuses_from_rows(rows: &[PgRow]) -> StoreResult<Vec<Status>> {
    rows.iter().map(status_from_row).collect()
}

pub(crate) fn notification_from_row(row: &PgRow) -> StoreResult<Notification> {
    let kind: String = row.get("kind");
    Ok(Notification {
        id: id(row, "id"),
        account_id: id(row, "account_id"),
        kind: NotificationType::parse(&kind).ok_or_else(|| corrupt("notifications.kind"))?,
        from_account_id: id(row, "from_account_id"),
        status_id: opt_id(row, "status_id"),
        created_at_ms: row.get("created_at"),
        event_id: id(row, "event_id"),
    })
}

pub(crate) fn options_from_row(row: &PgRow) -> FollowOptions {
    FollowOptions {
        reblogs: row.get("reblogs"),
        notify: row.get("notify"),
    }
}

pub(crate) fn scopes_from(text: &str) -> StoreResult<ScopeSet> {
    ScopeSet::parse(text).map_err(|_| corrupt("scopes"))
}

pub(crate) fn hash_from(bytes: &[u8]) -> StoreResult<SecretHash> {
    SecretHash::from_slice(bytes).ok_or_else(|| corrupt("hash"))
}

pub(crate) fn app_from_row(row: &PgRow) -> StoreResult<App> {
    let uris: String = row.get("redirect_uris");
    let secret: Vec<u8> = row.get("client_secret_hash");
    Ok(App {
        id: id(row, "id"),
        client_id: row.get("client_id"),
        client_secret_hash: hash_from(&secret)?,
        name: row.get("name"),
        website: row.get("website"),
        redirect_uris: uris.lines().map(str::to_owned).collect(),
        scopes: scopes_from(row.get("scopes"))?,
        created_at_ms: row.get("created_at"),
    })
}

/// Appends `AND col < max AND col > lower ORDER BY col LIMIT n` for `page`.
/// With `min_id` the order is ascending (the items just above it); callers
/// reverse those rows with [`newest_first`].
pub(crate) fn push_page(qb: &mut QueryBuilder<'_, Postgres>, col: &str, page: &Page) {
    if let Some(max) = page.max_id {
        qb.push(format_args!(" AND {col} < "))
            .push_bind(max.as_i64());
    }
    if let Some(lower) = page.lower() {
        qb.push(format_args!(" AND {col} > "))
            .push_bind(lower.as_i64());
    }
    let order = if page.ascending() { "ASC" } else { "DESC" };
    qb.push(format_args!(" ORDER BY {col} {order} LIMIT "))
        .push_bind(page.limit as i64);
}

pub(crate) fn newest_first<T>(mut items: Vec<T>, page: &Page) -> Vec<T> {
    if page.ascending() {
        items.reverse();
    }
    items
}

/// Wall-clock time for bookkeeping rows (dead letters); domain times come
/// from the caller's clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
