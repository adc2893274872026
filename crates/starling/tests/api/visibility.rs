//! Who sees and may act on what: for each visibility (public, unlisted,
//! private, direct) and each relation of the viewer to the author, one
//! table row says who can GET the status, boost, reply to and favourite it,
//! and which timelines show it. The expectations follow Mastodon
//! (StatusPolicy, the feeds and AccountStatusesFilter).
//!
//! Every status mentions the "mentioned" viewer and carries `#matrix`.
//! All mismatches are collected and reported together.

use crate::helpers::{ids, shown, TestApp, User};

const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    /// The author.
    Author,
    /// Follows the author; home list existed before the posts (fan-out).
    Follower,
    /// Follows the author; reads home for the first time after (rebuild).
    LateFollower,
    /// No relation.
    Stranger,
    /// Mentioned in every status, does not follow.
    Mentioned,
    /// Followed the author, then the author blocked them.
    Blocked,
    /// No token.
    Anonymous,
}

/// Expected outcomes, one entry per visibility in [`VISIBILITIES`] order.
struct Row {
    rel: Rel,
    /// HTTP status of GET /api/v1/statuses/:id.
    get: [u16; 4],
    /// HTTP status of POST …/reblog.
    reblog: [u16; 4],
    /// HTTP status of POST /api/v1/statuses with in_reply_to_id.
    reply: [u16; 4],
    /// HTTP status of POST …/favourite.
    favourite: [u16; 4],
    /// Shown in the viewer's home timeline (after settling).
    home: [bool; 4],
    /// Shown in the public timeline as this viewer reads it.
    public: [bool; 4],
    /// Shown in the #matrix timeline as this viewer reads it.
    tag: [bool; 4],
    /// Shown in the author's account statuses as this viewer reads them.
    account: [bool; 4],
}

const Y: bool = true;
const N: bool = false;

fn table() -> Vec<Row> {
    vec![
        Row {
            rel: Rel::Author,
            get: [200, 200, 200, 200],
            // Mastodon lets authors boost their own followers-only posts.
            reblog: [200, 200, 200, 403],
            reply: [200, 200, 200, 200],
            favourite: [200, 200, 200, 200],
            home: [Y, Y, Y, Y],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            account: [Y, Y, Y, Y],
        },
        Row {
            rel: Rel::Follower,
            get: [200, 200, 200, 404],
            reblog: [200, 200, 403, 404],
            reply: [200, 200, 200, 404],
            favourite: [200, 200, 200, 404],
            home: [Y, Y, Y, N],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            account: [Y, Y, Y, N],
        },
        Row {
            rel: Rel::LateFollower,
            get: [200, 200, 200, 404],
            reblog: [200, 200, 403, 404],
            reply: [200, 200, 200, 404],
            favourite: [200, 200, 200, 404],
            home: [Y, Y, Y, N],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            account: [Y, Y, Y, N],
        },
        Row {
            rel: Rel::Stranger,
            get: [200, 200, 404, 404],
            reblog: [200, 200, 404, 404],
            reply: [200, 200, 404, 404],
            favourite: [200, 200, 404, 404],
            home: [N, N, N, N],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            account: [Y, Y, N, N],
        },
        Row {
            rel: Rel::Mentioned,
            get: [200, 200, 200, 200],
            reblog: [200, 200, 403, 403],
            reply: [200, 200, 200, 200],
            favourite: [200, 200, 200, 200],
            // Direct messages reach the home of mentioned followers only.
            home: [N, N, N, N],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            // Mastodon's AccountStatusesFilter adds statuses mentioning the viewer.
            account: [Y, Y, Y, Y],
        },
        Row {
            rel: Rel::Blocked,
            get: [404, 404, 404, 404],
            reblog: [404, 404, 404, 404],
            reply: [404, 404, 404, 404],
            favourite: [404, 404, 404, 404],
            home: [N, N, N, N],
            public: [N, N, N, N],
            tag: [N, N, N, N],
            account: [N, N, N, N],
        },
        Row {
            rel: Rel::Anonymous,
            get: [200, 200, 404, 404],
            reblog: [401, 401, 401, 401],
            reply: [401, 401, 401, 401],
            favourite: [401, 401, 401, 401],
            home: [N, N, N, N],
            public: [Y, N, N, N],
            tag: [Y, N, N, N],
            account: [Y, Y, N, N],
        },
    ]
}

struct Cast {
    author: User,
    follower: User,
    late: User,
    stranger: User,
    mentioned: User,
    blocked: User,
}

impl Cast {
    fn viewer(&self, rel: Rel) -> Option<&User> {
        match rel {
            Rel::Author => Some(&self.author),
            Rel::Follower => Some(&self.follower),
            Rel::LateFollower => Some(&self.late),
            Rel::Stranger => Some(&self.stranger),
            Rel::Mentioned => Some(&self.mentioned),
            Rel::Blocked => Some(&self.blocked),
            Rel::Anonymous => None,
        }
    }
}

#[tokio::test]
async fn visibility_and_authorization_matrix() {
    let app = TestApp::spawn().await;
    let cast = Cast {
        author: app.user().await,
        follower: app.user().await,
        late: app.user().await,
        stranger: app.user().await,
        mentioned: app.user().await,
        blocked: app.user().await,
    };
    app.follow(&cast.follower, &cast.author).await;
    app.follow(&cast.late, &cast.author).await;
    app.follow(&cast.blocked, &cast.author).await;
    app.block(&cast.author, &cast.blocked).await;
    // Active readers: their home lists exist before the posts.
    for u in [
        &cast.follower,
        &cast.stranger,
        &cast.mentioned,
        &cast.blocked,
    ] {
        app.home(u).await;
    }
    app.settle().await;
    let mut statuses = Vec::new();
    for vis in VISIBILITIES {
        let text = format!("@{} #matrix {vis}", cast.mentioned.username);
        statuses.push(app.post_visible(&cast.author, &text, vis).await);
    }
    app.settle().await;

    let mut broken: Vec<String> = Vec::new();
    let table = table();
    // Reads first, then actions (which create statuses of their own).
    for row in &table {
        let viewer = cast.viewer(row.rel);
        let token = viewer.map(|u| u.token.as_str());
        let home = match viewer {
            Some(u) => shown(&app.home(u).await),
            None => vec![],
        };
        let public = ids(&app.list("/api/v1/timelines/public?limit=40", viewer).await);
        let tag = ids(&app
            .list("/api/v1/timelines/tag/matrix?limit=40", viewer)
            .await);
        let account = ids(&app
            .list(
                &format!("/api/v1/accounts/{}/statuses?limit=40", cast.author.id),
                viewer,
            )
            .await);
        for (i, vis) in VISIBILITIES.iter().enumerate() {
            let id = &statuses[i];
            let got = app
                .get(&format!("/api/v1/statuses/{id}"), token)
                .await
                .status;
            if got != row.get[i] {
                broken.push(format!(
                    "{vis} status, {:?} viewer: GET expected {} got {got}",
                    row.rel, row.get[i]
                ));
            }
            for (name, list, expected) in [
                ("home", &home, row.home[i]),
                ("public timeline", &public, row.public[i]),
                ("tag timeline", &tag, row.tag[i]),
                ("account statuses", &account, row.account[i]),
            ] {
                if list.contains(id) != expected {
                    broken.push(format!(
                        "{vis} status, {:?} viewer: {name} should {}show it",
                        row.rel,
                        if expected { "" } else { "not " }
                    ));
                }
            }
        }
    }
    for row in &table {
        let viewer = cast.viewer(row.rel);
        let token = viewer.map(|u| u.token.as_str());
        for (i, vis) in VISIBILITIES.iter().enumerate() {
            let id = &statuses[i];
            for (action, expected) in [("reblog", row.reblog[i]), ("favourite", row.favourite[i])] {
                let r = app
                    .post_empty(&format!("/api/v1/statuses/{id}/{action}"), token)
                    .await;
                if r.status != expected {
                    broken.push(format!(
                        "{vis} status, {:?} viewer: {action} expected {expected} got {}: {}",
                        row.rel, r.status, r.text
                    ));
                }
            }
            let r = app
                .create_status(
                    token,
                    &serde_json::json!({"status": "a reply", "in_reply_to_id": id}),
                )
                .await;
            if r.status != row.reply[i] {
                broken.push(format!(
                    "{vis} status, {:?} viewer: reply expected {} got {}: {}",
                    row.rel, row.reply[i], r.status, r.text
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "visibility rules broken:\n  {}",
        broken.join("\n  ")
    );
}
