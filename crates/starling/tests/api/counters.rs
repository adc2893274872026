//! Counters stay exact under concurrency: many users favourite, boost,
//! reply to and follow at the same moment (each action sent twice at once,
//! then once more), while others read the same status and accounts; then
//! half of them undo it all at once. Every counter must match the rows it
//! counts, and the rows must match what was done.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{Resp, TestApp, User};

/// How many users act at once.
const USERS: usize = 20;

/// Runs every future of `jobs` concurrently; returns their responses.
async fn all(jobs: Vec<Job>) {
    let mut set = JoinSet::new();
    for job in jobs {
        set.spawn(job);
    }
    while let Some(done) = set.join_next().await {
        // The universal checks (no 5xx, JSON) ran in `TestApp::send`.
        let r = done.expect("request task");
        assert!(
            r.status == 200,
            "a concurrent request answered {}: {}",
            r.status,
            r.text
        );
    }
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send>>;

/// A POST to `path` as `user`, as a job.
fn post(app: &Arc<TestApp>, user: &User, path: String) -> Job {
    let (app, token) = (app.clone(), user.token.clone());
    Box::pin(async move { app.post_empty(&path, Some(&token)).await })
}

/// A reply to `parent` as `user`, as a job.
fn reply(app: &Arc<TestApp>, user: &User, parent: &str) -> Job {
    let (app, token) = (app.clone(), user.token.clone());
    let body =
        json!({ "status": format!("reply from {}", user.username), "in_reply_to_id": parent });
    Box::pin(async move { app.create_status(Some(&token), &body).await })
}

/// A GET as `user`, as a job: readers that race the writers (and fill the
/// server's caches while the counters move).
fn read(app: &Arc<TestApp>, user: &User, path: String) -> Job {
    let (app, token) = (app.clone(), user.token.clone());
    Box::pin(async move { app.get(&path, Some(&token)).await })
}

/// Every account id of a paged account list (`favourited_by`, `followers`...).
async fn account_list(app: &TestApp, path: &str, viewer: &User) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(format!("{path}?limit=80"));
    while let Some(p) = next {
        let r = app.get(&p, Some(&viewer.token)).await;
        let list = r.list();
        assert!(out.len() < 1000, "{path}: runaway paging");
        out.extend(list.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        next = if list.is_empty() {
            None
        } else {
            r.links().next.map(|u| app.local_path(&u))
        };
    }
    out.sort();
    out
}

/// What the API shows of the status and the accounts, checked against the
/// lists of rows behind each counter and against what the test did.
#[track_caller]
fn counter(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is an integer: {v}"))
}

async fn check(
    app: &TestApp,
    when: &str,
    author: &User,
    status_id: &str,
    target: &User,
    engaged: &[User],
    idle: &[User],
) {
    app.settle().await;
    let n = engaged.len() as i64;
    let mut want: Vec<String> = engaged.iter().map(|u| u.id.clone()).collect();
    want.sort();

    let s = app.status(status_id, Some(author)).await;
    let s = s.expect(200);
    let favourited_by = account_list(
        app,
        &format!("/api/v1/statuses/{status_id}/favourited_by"),
        author,
    )
    .await;
    let reblogged_by = account_list(
        app,
        &format!("/api/v1/statuses/{status_id}/reblogged_by"),
        author,
    )
    .await;
    let context = app
        .get(
            &format!("/api/v1/statuses/{status_id}/context"),
            Some(&author.token),
        )
        .await;
    let mut repliers: Vec<String> = context.expect(200)["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["account"]["id"].as_str().unwrap().to_owned())
        .collect();
    repliers.sort();
    let followers = account_list(
        app,
        &format!("/api/v1/accounts/{}/followers", target.id),
        author,
    )
    .await;
    let t = app.account(target).await;
    let a = app.account(author).await;
    println!(
        "{when}: favourites {} (rows {}), reblogs {} (rows {}), replies {} (rows {}), \
         followers {} (rows {}); expected {n} each",
        counter(s, "favourites_count"),
        favourited_by.len(),
        counter(s, "reblogs_count"),
        reblogged_by.len(),
        counter(s, "replies_count"),
        repliers.len(),
        counter(&t, "followers_count"),
        followers.len(),
    );

    // The rows are what was done...
    assert_eq!(favourited_by, want, "{when}: who favourited");
    assert_eq!(reblogged_by, want, "{when}: who boosted");
    assert_eq!(repliers, want, "{when}: who replied (one reply each)");
    assert_eq!(followers, want, "{when}: who follows the target");
    // ...and the counters count them.
    assert_eq!(
        counter(s, "favourites_count"),
        n,
        "{when}: favourites_count"
    );
    assert_eq!(counter(s, "reblogs_count"), n, "{when}: reblogs_count");
    assert_eq!(counter(s, "replies_count"), n, "{when}: replies_count");
    assert_eq!(counter(&t, "followers_count"), n, "{when}: followers_count");
    assert_eq!(
        counter(&t, "following_count"),
        0,
        "{when}: target following_count"
    );
    assert_eq!(
        counter(&t, "statuses_count"),
        0,
        "{when}: target statuses_count"
    );
    assert_eq!(
        counter(&a, "statuses_count"),
        1,
        "{when}: author statuses_count"
    );
    assert_eq!(
        counter(&a, "followers_count"),
        0,
        "{when}: author followers_count"
    );

    // Each user: a reply and a boost while engaged, nothing after undoing.
    for (users, statuses, following) in [(engaged, 2, 1), (idle, 0, 0)] {
        for u in users {
            let v = app.account(u).await;
            assert_eq!(
                counter(&v, "statuses_count"),
                statuses,
                "{when}: statuses_count of {}",
                u.username
            );
            assert_eq!(
                counter(&v, "following_count"),
                following,
                "{when}: following_count of {}",
                u.username
            );
            assert_eq!(counter(&v, "followers_count"), 0, "{when}: {}", u.username);
        }
    }
    // The viewer flags agree with the rows.
    for (users, flag) in [(engaged, true), (idle, false)] {
        for u in users {
            let v = app.status(status_id, Some(u)).await;
            let v = v.expect(200);
            assert_eq!(
                v["favourited"], flag,
                "{when}: favourited for {}",
                u.username
            );
            assert_eq!(v["reblogged"], flag, "{when}: reblogged for {}", u.username);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stay_exact_under_concurrent_writes_and_undos() {
    let started = std::time::Instant::now();
    let app = Arc::new(TestApp::spawn().await);
    let author = app.user().await;
    let target = app.user().await;
    let mut set = JoinSet::new();
    for _ in 0..USERS {
        let app = app.clone();
        set.spawn(async move { app.user().await });
    }
    let mut users = Vec::new();
    while let Some(u) = set.join_next().await {
        users.push(u.expect("registration task"));
    }
    let registered = started.elapsed();
    let status = app.post_status(&author, "count me").await;
    let sid = status["id"].as_str().unwrap().to_owned();

    // Everyone at once: each action twice concurrently (a double tap),
    // with readers of the same status and accounts in between.
    let mut jobs: Vec<Job> = Vec::new();
    for u in &users {
        for _ in 0..2 {
            jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/favourite")));
            jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/reblog")));
            jobs.push(post(
                &app,
                u,
                format!("/api/v1/accounts/{}/follow", target.id),
            ));
        }
        jobs.push(reply(&app, u, &sid));
        jobs.push(read(&app, u, format!("/api/v1/statuses/{sid}")));
        jobs.push(read(&app, u, format!("/api/v1/accounts/{}", target.id)));
        jobs.push(read(&app, u, format!("/api/v1/accounts/{}", u.id)));
    }
    all(jobs).await;
    check(
        &app,
        "after everyone acted",
        &author,
        &sid,
        &target,
        &users,
        &[],
    )
    .await;

    // The same actions again, one after the other: still nothing new.
    let mut jobs: Vec<Job> = Vec::new();
    for u in &users {
        jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/favourite")));
        jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/reblog")));
        jobs.push(post(
            &app,
            u,
            format!("/api/v1/accounts/{}/follow", target.id),
        ));
    }
    for job in jobs {
        assert_eq!(job.await.status, 200);
    }
    check(&app, "after repeating", &author, &sid, &target, &users, &[]).await;

    // Half undo everything at once (each undo twice), while the other half
    // repeat their actions and everyone reads.
    let (stay, leave) = users.split_at(USERS / 2);
    let mut jobs: Vec<Job> = Vec::new();
    for u in leave {
        for _ in 0..2 {
            jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/unfavourite")));
            jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/unreblog")));
            jobs.push(post(
                &app,
                u,
                format!("/api/v1/accounts/{}/unfollow", target.id),
            ));
        }
        jobs.push(read(&app, u, format!("/api/v1/statuses/{sid}")));
        jobs.push(read(&app, u, format!("/api/v1/accounts/{}", target.id)));
    }
    for u in stay {
        jobs.push(post(&app, u, format!("/api/v1/statuses/{sid}/favourite")));
        jobs.push(post(
            &app,
            u,
            format!("/api/v1/accounts/{}/follow", target.id),
        ));
        jobs.push(read(&app, u, format!("/api/v1/statuses/{sid}")));
        jobs.push(read(&app, u, format!("/api/v1/accounts/{}", u.id)));
    }
    // The replies of those who leave are deleted too (found through the thread).
    let context = app
        .get(
            &format!("/api/v1/statuses/{sid}/context"),
            Some(&author.token),
        )
        .await;
    for d in context.expect(200)["descendants"].as_array().unwrap() {
        let owner = d["account"]["id"].as_str().unwrap();
        if let Some(u) = leave.iter().find(|u| u.id == owner) {
            let (app, token, id) = (
                app.clone(),
                u.token.clone(),
                d["id"].as_str().unwrap().to_owned(),
            );
            jobs.push(Box::pin(async move {
                app.delete(&format!("/api/v1/statuses/{id}"), Some(&token))
                    .await
            }));
        }
    }
    all(jobs).await;
    check(
        &app,
        "after half undid",
        &author,
        &sid,
        &target,
        stay,
        leave,
    )
    .await;

    println!(
        "counters: {USERS} users registered in {:.1} s; whole test {:.1} s",
        registered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Counters and listings reveal nothing a reader could not see (issue 14,
/// item 7), as Mastodon: `statuses_count` leaves out direct posts,
/// `replies_count` counts public and unlisted replies only, and
/// `reblogged_by` lists public and unlisted boosts only.
async fn counters_hide_what_readers_cannot_see(app: &TestApp) {
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let dave = app.user().await;
    let parent = app.post_visible(&alice, "ask me", "public").await;
    for visibility in ["public", "unlisted", "private", "direct"] {
        app.post_status_with(
            &bob,
            json!({
                "status": format!("@{} an answer", alice.username),
                "in_reply_to_id": parent,
                "visibility": visibility,
            }),
        )
        .await;
    }
    app.post_visible(&bob, "psst", "direct").await;
    for (booster, visibility) in [(&carol, "public"), (&dave, "private")] {
        let r = app
            .post_json(
                &format!("/api/v1/statuses/{parent}/reblog"),
                Some(&booster.token),
                &json!({ "visibility": visibility }),
            )
            .await;
        r.expect(200);
    }
    app.settle().await;

    let bob_account = app.account(&bob).await;
    assert_eq!(
        bob_account["statuses_count"], 3,
        "four replies and a DM: the two direct posts are not counted"
    );
    let status = app.status(&parent, None).await;
    let status = status.expect(200);
    assert_eq!(
        status["replies_count"], 2,
        "only the public and unlisted replies count"
    );
    assert_eq!(status["reblogs_count"], 2, "every boost counts");
    let boosters = account_list(
        app,
        &format!("/api/v1/statuses/{parent}/reblogged_by"),
        &alice,
    )
    .await;
    assert_eq!(
        boosters,
        vec![carol.id.clone()],
        "the followers-only boost is not listed"
    );
    assert_eq!(
        app.account(&dave).await["statuses_count"],
        1,
        "a followers-only boost counts for its booster"
    );
}

#[tokio::test]
async fn counters_hide_what_readers_cannot_see_on_sqlite() {
    let app = TestApp::spawn().await;
    counters_hide_what_readers_cannot_see(&app).await;
}

#[tokio::test]
async fn counters_hide_what_readers_cannot_see_on_postgres() {
    let Some(app) = TestApp::spawn_postgres("counters_hide_on_postgres").await else {
        return;
    };
    counters_hide_what_readers_cannot_see(&app).await;
}
