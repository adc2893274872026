//! The route table: every path the server answers, in one place.

pub mod accounts;
pub mod graph;
pub mod health;
pub mod instance;
pub mod notifications;
pub mod oauth;
pub mod probe;
pub mod search;
pub mod startup;
pub mod statuses;
pub mod timelines;

use axum::routing::{get, patch, post};
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

pub fn all() -> Router<AppState> {
    Router::new()
        // Operations.
        .route("/", get(health::front_page))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/avatars/original/missing.png", get(health::missing_image))
        .route("/headers/original/missing.png", get(health::missing_image))
        // Discovery.
        .route("/api/v1/instance", get(instance::v1))
        .route("/api/v2/instance", get(instance::v2))
        .route("/.well-known/nodeinfo", get(instance::nodeinfo_links))
        .route("/nodeinfo/2.0", get(instance::nodeinfo))
        .route(
            "/.well-known/oauth-authorization-server",
            get(instance::oauth_metadata),
        )
        // OAuth.
        .route("/api/v1/apps", post(oauth::create_app))
        .route("/api/v1/apps/verify_credentials", get(oauth::verify_app))
        .route(
            "/oauth/authorize",
            get(oauth::authorize_page).post(oauth::authorize_submit),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        // Accounts.
        .route("/api/v1/accounts", post(accounts::register))
        .route(
            "/api/v1/accounts/verify_credentials",
            get(accounts::verify_credentials),
        )
        .route(
            "/api/v1/accounts/update_credentials",
            patch(accounts::update_credentials).put(accounts::update_credentials),
        )
        .route("/api/v1/accounts/lookup", get(accounts::lookup))
        .route("/api/v1/accounts/search", get(search::accounts))
        .route("/api/v1/accounts/relationships", get(graph::relationships))
        .route("/api/v1/accounts/{id}", get(accounts::show))
        .route(
            "/api/v1/accounts/{id}/statuses",
            get(timelines::account_statuses),
        )
        .route("/api/v1/accounts/{id}/followers", get(graph::followers))
        .route("/api/v1/accounts/{id}/following", get(graph::following))
        .route("/api/v1/accounts/{id}/follow", post(graph::follow))
        .route("/api/v1/accounts/{id}/unfollow", post(graph::unfollow))
        .route("/api/v1/accounts/{id}/block", post(graph::block))
        .route("/api/v1/accounts/{id}/unblock", post(graph::unblock))
        .route("/api/v1/accounts/{id}/mute", post(graph::mute))
        .route("/api/v1/accounts/{id}/unmute", post(graph::unmute))
        .route("/api/v1/blocks", get(graph::blocks))
        .route("/api/v1/mutes", get(graph::mutes))
        .route("/api/v1/follow_requests", get(graph::follow_requests))
        .route(
            "/api/v1/follow_requests/{id}/authorize",
            post(graph::authorize_follow_request),
        )
        .route(
            "/api/v1/follow_requests/{id}/reject",
            post(graph::reject_follow_request),
        )
        // Statuses.
        .route("/api/v1/statuses", post(statuses::create))
        .route(
            "/api/v1/statuses/{id}",
            get(statuses::show).delete(statuses::delete),
        )
        .route("/api/v1/statuses/{id}/context", get(statuses::context))
        .route("/api/v1/statuses/{id}/reblog", post(statuses::reblog))
        .route("/api/v1/statuses/{id}/unreblog", post(statuses::unreblog))
        .route("/api/v1/statuses/{id}/favourite", post(statuses::favourite))
        .route(
            "/api/v1/statuses/{id}/unfavourite",
            post(statuses::unfavourite),
        )
        .route(
            "/api/v1/statuses/{id}/reblogged_by",
            get(statuses::reblogged_by),
        )
        .route(
            "/api/v1/statuses/{id}/favourited_by",
            get(statuses::favourited_by),
        )
        .route("/api/v1/favourites", get(statuses::favourites))
        // Timelines.
        .route("/api/v1/timelines/home", get(timelines::home))
        .route("/api/v1/timelines/public", get(timelines::public))
        .route("/api/v1/timelines/tag/{tag}", get(timelines::tag))
        // Notifications and markers.
        .route("/api/v1/notifications", get(notifications::list))
        .route("/api/v1/notifications/clear", post(notifications::clear))
        .route(
            "/api/v1/notifications/unread_count",
            get(notifications::unread_count),
        )
        .route("/api/v1/notifications/{id}", get(notifications::show))
        .route(
            "/api/v1/notifications/{id}/dismiss",
            post(notifications::dismiss),
        )
        .route(
            "/api/v1/markers",
            get(notifications::markers).post(notifications::save_markers),
        )
        // Search.
        .route("/api/v2/search", get(search::v2))
        .route("/api/v1/_bench/ceiling", get(probe::ceiling))
        // Web-client start-up.
        .route("/api/v1/preferences", get(startup::preferences))
        .route("/api/v1/push/subscription", get(startup::push_subscription))
        .route("/api/v1/custom_emojis", get(startup::empty_list))
        .route("/api/v1/instance/rules", get(startup::empty_list))
        .route("/api/v1/announcements", get(startup::empty_user_list))
        .route("/api/v1/trends/tags", get(startup::empty_list))
        .route("/api/v1/trends/statuses", get(startup::empty_list))
        .route("/api/v1/trends/links", get(startup::empty_list))
        .route("/api/v1/lists", get(startup::empty_user_list))
        .route("/api/v1/followed_tags", get(startup::empty_user_list))
        .route("/api/v1/filters", get(startup::empty_user_list))
        .route("/api/v2/filters", get(startup::empty_user_list))
        .route("/api/v1/bookmarks", get(startup::empty_user_list))
        .route("/api/v1/conversations", get(startup::empty_user_list))
        .route("/api/v1/scheduled_statuses", get(startup::empty_user_list))
        .route("/api/v1/featured_tags", get(startup::empty_user_list))
        .route("/api/v1/domain_blocks", get(startup::empty_user_list))
        .fallback(|| async { ApiError::NotFound })
}
