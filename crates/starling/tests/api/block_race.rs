//! A follow racing a block (issue 14, item 3): B follows A while A blocks
//! B, both sent at once, many rounds. Whatever order the server takes them
//! in, B must not end up following A (nor with a pending request): after A
//! unblocks, B still cannot read A's followers-only posts, and the
//! relationship says so. On SQLite and on PostgreSQL (where the follow and
//! the block start on different shards and meet through the mirror log).

use crate::helpers::{Resp, TestApp, User};

const ROUNDS: usize = 16;

async fn relationship(app: &TestApp, viewer: &User, target: &User) -> serde_json::Value {
    let list = app
        .list(
            &format!("/api/v1/accounts/relationships?id[]={}", target.id),
            Some(viewer),
        )
        .await;
    assert_eq!(list.len(), 1, "one relationship");
    list[0].clone()
}

async fn follow_racing_a_block_never_survives_it(app: &TestApp) {
    let alice = app.user().await;
    let secret = app.post_visible(&alice, "followers only", "private").await;
    for round in 0..ROUNDS {
        // The second half with a locked account: the follow is a request.
        if round == ROUNDS / 2 {
            app.update_profile(&alice, serde_json::json!({ "locked": true }))
                .await;
        }
        let bobs = [
            app.user().await,
            app.user().await,
            app.user().await,
            app.user().await,
        ];
        // Four races at once: each bob follows while alice blocks him (the
        // block sent first for half of them).
        let race = |bob: &User, block_first: bool| {
            let (bob, alice) = (bob.clone(), &alice);
            async move {
                if block_first {
                    let (block, follow) = tokio::join!(
                        app.account_action(alice, &bob, "block"),
                        app.account_action(&bob, alice, "follow"),
                    );
                    (follow, block)
                } else {
                    tokio::join!(
                        app.account_action(&bob, alice, "follow"),
                        app.account_action(alice, &bob, "block"),
                    )
                }
            }
        };
        let answers = tokio::join!(
            race(&bobs[0], false),
            race(&bobs[1], true),
            race(&bobs[2], false),
            race(&bobs[3], true),
        );
        let answers = [answers.0, answers.1, answers.2, answers.3];
        for (bob, (follow, block)) in bobs.iter().zip(answers) {
            check(app, round, &alice, bob, &secret, follow, block).await;
        }
        assert_eq!(
            app.account(&alice).await["followers_count"],
            0,
            "round {round}: followers_count"
        );
    }
}

/// After a race of `bob`'s follow against `alice`'s block: no follow nor
/// request, before and after the unblock.
async fn check(
    app: &TestApp,
    round: usize,
    alice: &User,
    bob: &User,
    secret: &str,
    follow: Resp,
    block: Resp,
) {
    assert!(
        follow.status == 200 || follow.status == 403,
        "round {round}: the follow answers 200 or 403: {} {}",
        follow.status,
        follow.text
    );
    block.expect(200);
    let why = format!("round {round} (follow answered {})", follow.status);

    let rel = relationship(app, bob, alice).await;
    assert_eq!(rel["blocked_by"], true, "{why}: {rel}");
    assert_eq!(
        rel["following"], false,
        "{why}: not following while blocked: {rel}"
    );
    assert_eq!(
        rel["requested"], false,
        "{why}: no request while blocked: {rel}"
    );

    app.account_action(alice, bob, "unblock").await.expect(200);
    let rel = relationship(app, bob, alice).await;
    assert_eq!(
        rel["following"], false,
        "{why}: an unblock restores no follow: {rel}"
    );
    assert_eq!(
        rel["requested"], false,
        "{why}: an unblock restores no request: {rel}"
    );
    let back = relationship(app, alice, bob).await;
    assert_eq!(back["followed_by"], false, "{why}: {back}");
    assert_eq!(back["requested_by"], false, "{why}: {back}");
    assert_eq!(
        app.status(secret, Some(bob)).await.status,
        404,
        "{why}: after the unblock, the blocked one cannot read followers-only posts"
    );
    let followers = app
        .list(
            &format!("/api/v1/accounts/{}/followers", alice.id),
            Some(alice),
        )
        .await;
    assert!(
        followers.iter().all(|a| a["id"] != bob.id.as_str()),
        "{why}: not listed among the followers"
    );
}

#[tokio::test]
async fn follow_racing_a_block_never_survives_it_on_sqlite() {
    let app = TestApp::spawn().await;
    follow_racing_a_block_never_survives_it(&app).await;
}

#[tokio::test]
async fn follow_racing_a_block_never_survives_it_on_postgres() {
    let Some(app) = TestApp::spawn_postgres("follow_racing_a_block_on_postgres").await else {
        return;
    };
    follow_racing_a_block_never_survives_it(&app).await;
}
