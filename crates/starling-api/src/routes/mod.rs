//! The route table: every path the server answers, in one place.

pub mod accounts;
pub mod graph;
pub mod health;
pub mod instance;
pub mod media;
pub mod notifications;
pub mod oauth;
pub mod probe;
pub mod search;
pub mod startup;
pub mod statuses;
pub mod streaming;
pub mod timelines;

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;
use starling_domain::Scope;
use starling_domain::Scope::*;

use crate::error::ApiError;
use crate::pages;
use crate::AppState;

/// Who may call an endpoint, as Mastodon's controllers say it
/// (`doorkeeper_authorize!`, `authorize_if_got_token!`, `require_user!`).
/// [`crate::access`] enforces it for every request, before the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token, if sent, is not looked at (OAuth, discovery,
    /// health, instance documents).
    Public,
    /// Anyone without a token; a token that is sent must hold one of these
    /// scopes (403 otherwise), and then the caller sees what it may see.
    Optional(&'static [Scope]),
    /// A valid token (401 without one) holding one of these scopes (403
    /// otherwise); an application token will do. Empty: any valid token.
    Token(&'static [Scope]),
    /// As [`Access::Token`], and the token must belong to a user (422 for an
    /// application token).
    User(&'static [Scope]),
}

impl Access {
    /// The scopes one of which the caller's token must hold, if any.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Access::Public => &[],
            Access::Optional(s) | Access::Token(s) | Access::User(s) => s,
        }
    }
}

/// One endpoint: method, path pattern (axum's syntax) and who may call it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// The route table. Each line names an endpoint, its handler and its
/// access; [`ENDPOINTS`] and the router are both generated from it, so no
/// route exists without a stated access (the scope test walks
/// [`ENDPOINTS`]).
macro_rules! route_table {
    ($( $method:ident $path:literal => $handler:expr, $access:expr; )*) => {
        /// Every endpoint the server answers, with its access.
        pub const ENDPOINTS: &[Endpoint] = &[
            $( Endpoint { method: stringify!($method), path: $path, access: $access }, )*
        ];

        fn table() -> Router<AppState> {
            Router::new()
                $( .route($path, on(MethodFilter::$method, $handler)) )*
        }
    };
}

const READ_ACCOUNTS: &[Scope] = &[ReadAccounts];
/// A profile update may carry a picture and a header (16 MiB each at most).
const PROFILE_BODY_LIMIT: usize = 40 * 1024 * 1024;
const READ_STATUSES: &[Scope] = &[ReadStatuses];
const STREAMING: &[Scope] = &[ReadStatuses, ReadNotifications];

route_table! {
    // Operations.
    GET "/" => health::front_page, Access::Public;
    GET "/livez" => health::livez, Access::Public;
    GET "/readyz" => health::readyz, Access::Public;
    GET "/metrics" => health::metrics, Access::Public;
    GET "/avatars/original/missing.png" => health::missing_image, Access::Public;
    GET "/headers/original/missing.png" => health::missing_image, Access::Public;
    // Discovery.
    GET "/api/v1/instance" => instance::v1, Access::Public;
    GET "/api/v2/instance" => instance::v2, Access::Public;
    GET "/.well-known/nodeinfo" => instance::nodeinfo_links, Access::Public;
    GET "/nodeinfo/2.0" => instance::nodeinfo, Access::Public;
    GET "/.well-known/oauth-authorization-server" => instance::oauth_metadata, Access::Public;
    // OAuth.
    POST "/api/v1/apps" => oauth::create_app, Access::Public;
    GET "/api/v1/apps/verify_credentials" => oauth::verify_app, Access::Token(&[]);
    GET "/oauth/authorize" => oauth::authorize_page, Access::Public;
    POST "/oauth/authorize" => oauth::authorize_submit, Access::Public;
    POST "/oauth/token" => oauth::token, Access::Public;
    POST "/oauth/revoke" => oauth::revoke, Access::Public;
    // Accounts.
    POST "/api/v1/accounts" => accounts::register, Access::Token(&[WriteAccounts]);
    GET "/api/v1/accounts/verify_credentials" => accounts::verify_credentials,
        Access::User(&[ReadAccounts, Profile]);
    PATCH "/api/v1/accounts/update_credentials" =>
        accounts::update_credentials.layer(DefaultBodyLimit::max(PROFILE_BODY_LIMIT)),
        Access::User(&[WriteAccounts]);
    PUT "/api/v1/accounts/update_credentials" => accounts::update_credentials,
        Access::User(&[WriteAccounts]);
    GET "/api/v1/accounts/lookup" => accounts::lookup, Access::Optional(READ_ACCOUNTS);
    GET "/api/v1/accounts/search" => search::accounts, Access::User(READ_ACCOUNTS);
    GET "/api/v1/accounts/relationships" => graph::relationships, Access::User(&[ReadFollows]);
    GET "/api/v1/accounts/{id}" => accounts::show, Access::Optional(READ_ACCOUNTS);
    GET "/api/v1/accounts/{id}/statuses" => timelines::account_statuses,
        Access::Optional(READ_STATUSES);
    GET "/api/v1/accounts/{id}/followers" => graph::followers, Access::Optional(READ_ACCOUNTS);
    GET "/api/v1/accounts/{id}/following" => graph::following, Access::Optional(READ_ACCOUNTS);
    POST "/api/v1/accounts/{id}/follow" => graph::follow, Access::User(&[WriteFollows]);
    POST "/api/v1/accounts/{id}/unfollow" => graph::unfollow, Access::User(&[WriteFollows]);
    POST "/api/v1/accounts/{id}/block" => graph::block, Access::User(&[WriteBlocks]);
    POST "/api/v1/accounts/{id}/unblock" => graph::unblock, Access::User(&[WriteBlocks]);
    POST "/api/v1/accounts/{id}/mute" => graph::mute, Access::User(&[WriteMutes]);
    POST "/api/v1/accounts/{id}/unmute" => graph::unmute, Access::User(&[WriteMutes]);
    GET "/api/v1/blocks" => graph::blocks, Access::User(&[ReadBlocks]);
    GET "/api/v1/mutes" => graph::mutes, Access::User(&[ReadMutes]);
    GET "/api/v1/follow_requests" => graph::follow_requests, Access::User(&[ReadFollows]);
    POST "/api/v1/follow_requests/{id}/authorize" => graph::authorize_follow_request,
        Access::User(&[WriteFollows]);
    POST "/api/v1/follow_requests/{id}/reject" => graph::reject_follow_request,
        Access::User(&[WriteFollows]);
    // Statuses.
    POST "/api/v1/statuses" => statuses::create, Access::User(&[WriteStatuses]);
    GET "/api/v1/statuses/{id}" => statuses::show, Access::Optional(READ_STATUSES);
    DELETE "/api/v1/statuses/{id}" => statuses::delete, Access::User(&[WriteStatuses]);
    GET "/api/v1/statuses/{id}/context" => statuses::context, Access::Optional(READ_STATUSES);
    POST "/api/v1/statuses/{id}/reblog" => statuses::reblog, Access::User(&[WriteStatuses]);
    POST "/api/v1/statuses/{id}/unreblog" => statuses::unreblog, Access::User(&[WriteStatuses]);
    POST "/api/v1/statuses/{id}/favourite" => statuses::favourite,
        Access::User(&[WriteFavourites]);
    POST "/api/v1/statuses/{id}/unfavourite" => statuses::unfavourite,
        Access::User(&[WriteFavourites]);
    GET "/api/v1/statuses/{id}/reblogged_by" => statuses::reblogged_by,
        Access::Optional(READ_ACCOUNTS);
    GET "/api/v1/statuses/{id}/favourited_by" => statuses::favourited_by,
        Access::Optional(READ_ACCOUNTS);
    GET "/api/v1/favourites" => statuses::favourites, Access::User(&[ReadFavourites]);
    // Timelines.
    GET "/api/v1/timelines/home" => timelines::home, Access::User(READ_STATUSES);
    GET "/api/v1/timelines/public" => timelines::public, Access::Optional(READ_STATUSES);
    GET "/api/v1/timelines/tag/{tag}" => timelines::tag, Access::Optional(READ_STATUSES);
    // Notifications and markers.
    GET "/api/v1/notifications" => notifications::list, Access::User(&[ReadNotifications]);
    POST "/api/v1/notifications/clear" => notifications::clear,
        Access::User(&[WriteNotifications]);
    GET "/api/v1/notifications/unread_count" => notifications::unread_count,
        Access::User(&[ReadNotifications]);
    GET "/api/v1/notifications/{id}" => notifications::show, Access::User(&[ReadNotifications]);
    POST "/api/v1/notifications/{id}/dismiss" => notifications::dismiss,
        Access::User(&[WriteNotifications]);
    GET "/api/v1/markers" => notifications::markers,
        Access::User(&[ReadStatuses, ReadNotifications]);
    POST "/api/v1/markers" => notifications::save_markers, Access::User(&[WriteStatuses]);
    // Search.
    GET "/api/v2/search" => search::v2, Access::Optional(&[ReadSearch]);
    GET "/api/v1/_bench/ceiling" => probe::ceiling, Access::Public;
    // Web-client start-up.
    GET "/api/v1/preferences" => startup::preferences, Access::User(READ_ACCOUNTS);
    GET "/api/v1/push/subscription" => startup::push_subscription, Access::User(&[Push]);
    GET "/api/v1/custom_emojis" => startup::empty_list, Access::Public;
    GET "/api/v1/instance/rules" => startup::empty_list, Access::Public;
    GET "/api/v1/announcements" => startup::empty_user_list, Access::User(&[Read]);
    GET "/api/v1/trends/tags" => startup::empty_list, Access::Public;
    GET "/api/v1/trends/statuses" => startup::empty_list, Access::Public;
    GET "/api/v1/trends/links" => startup::empty_list, Access::Public;
    GET "/api/v1/lists" => startup::empty_user_list, Access::User(&[ReadLists]);
    GET "/api/v1/followed_tags" => startup::empty_user_list, Access::User(&[ReadFollows]);
    GET "/api/v1/filters" => startup::empty_user_list, Access::User(&[ReadFilters]);
    GET "/api/v2/filters" => startup::empty_user_list, Access::User(&[ReadFilters]);
    GET "/api/v1/bookmarks" => startup::empty_user_list, Access::User(&[ReadBookmarks]);
    GET "/api/v1/conversations" => startup::empty_user_list, Access::User(READ_STATUSES);
    GET "/api/v1/scheduled_statuses" => startup::empty_user_list, Access::User(READ_STATUSES);
    GET "/api/v1/featured_tags" => startup::empty_user_list, Access::User(READ_ACCOUNTS);
    GET "/api/v1/domain_blocks" => startup::empty_user_list, Access::User(&[ReadBlocks]);
    // Media. Uploads read their body themselves, up to `max_upload_bytes`.
    POST "/api/v2/media" => media::create_v2.layer(DefaultBodyLimit::disable()),
        Access::User(&[WriteMedia]);
    POST "/api/v1/media" => media::create_v1.layer(DefaultBodyLimit::disable()),
        Access::User(&[WriteMedia]);
    GET "/api/v1/media/{id}" => media::show, Access::User(&[WriteMedia]);
    PUT "/api/v1/media/{id}" => media::update, Access::User(&[WriteMedia]);
    GET "/media/{id}/{file}" => media::file, Access::Public;
    // Streaming: which channel needs a user (and which scope) is checked
    // per subscription (a WebSocket subscribes after its handshake).
    GET "/api/v1/streaming" => streaming::socket, Access::Optional(STREAMING);
    GET "/api/v1/streaming/health" => streaming::health, Access::Public;
    GET "/api/v1/streaming/user" => streaming::user, Access::Optional(STREAMING);
    GET "/api/v1/streaming/user/notification" => streaming::user_notification,
        Access::Optional(STREAMING);
    GET "/api/v1/streaming/public" => streaming::public, Access::Optional(STREAMING);
    GET "/api/v1/streaming/public/local" => streaming::public_local, Access::Optional(STREAMING);
    GET "/api/v1/streaming/public/remote" => streaming::public_remote,
        Access::Optional(STREAMING);
    GET "/api/v1/streaming/hashtag" => streaming::hashtag, Access::Optional(STREAMING);
    GET "/api/v1/streaming/hashtag/local" => streaming::hashtag_local,
        Access::Optional(STREAMING);
    GET "/api/v1/streaming/list" => streaming::list, Access::Optional(STREAMING);
    GET "/api/v1/streaming/direct" => streaming::direct, Access::Optional(STREAMING);
    // Public pages (HTML for anonymous readers; `pages`): no token is
    // looked at, and outside `/api/` no API budget is counted.
    GET "/@{username}" => pages::profile, Access::Public;
    GET "/@{username}/{id}" => pages::status, Access::Public;
    GET "/users/{username}" => pages::user_uri, Access::Public;
    GET "/users/{username}/statuses/{id}" => pages::status_uri, Access::Public;
    GET "/tags/{tag}" => pages::tag, Access::Public;
    GET "/public/local" => pages::local, Access::Public;
    GET "/about" => pages::about, Access::Public;
    GET "/assets/{file}" => pages::assets::file, Access::Public;
    GET "/api/oembed" => pages::oembed, Access::Public;
}

/// The endpoint a routed request matched, by method and path pattern
/// (HEAD is answered by GET's handler, so it has GET's access).
pub fn endpoint(method: &str, path: &str) -> Option<&'static Endpoint> {
    static BY_ROUTE: LazyLock<HashMap<(&'static str, &'static str), &'static Endpoint>> =
        LazyLock::new(|| ENDPOINTS.iter().map(|e| ((e.method, e.path), e)).collect());
    let method = if method == "HEAD" { "GET" } else { method };
    BY_ROUTE.get(&(method, path)).copied()
}

pub fn all() -> Router<AppState> {
    table().fallback(|| async { ApiError::NotFound })
}
