//! Public pages: HTML profiles, statuses with their threads, hashtags, the
//! local timeline and the about page; RSS feeds; oEmbed; caching,
//! negotiation and security headers; bad input.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{enc, Resp, TestApp};

/// An anonymous GET with extra headers.
async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = app.request(Method::GET, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(req).await
}

async fn page(app: &TestApp, path: &str) -> Resp {
    get_with(app, path, &[]).await
}

#[track_caller]
fn html_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text.starts_with("<!DOCTYPE html><html lang="),
        "{}",
        r.text
    );
}

#[track_caller]
fn html_404(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text.contains("<h1>Not found</h1>"), "{}", r.text);
}

#[tokio::test]
async fn profile_shows_public_and_unlisted_posts_never_private_or_direct() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    app.update_profile(
        &alice,
        json!({"display_name": "Alice Liddell", "note": "Curious\nand curiouser",
               "fields_attributes": {"0": {"name": "Home", "value": "Wonderland"}}}),
    )
    .await;
    let public = app.post_visible(&alice, "public words", "public").await;
    let unlisted = app.post_visible(&alice, "unlisted words", "unlisted").await;
    let private = app.post_visible(&alice, "private words", "private").await;
    let direct = app.post_visible(&alice, "direct words", "direct").await;

    let r = page(&app, &format!("/@{}", alice.username)).await;
    html_ok(&r);
    let t = &r.text;
    assert!(t.contains("Alice Liddell"));
    assert!(t.contains("Curious<br />and curiouser"), "{t}");
    assert!(t.contains("<meta name=\"description\" content=\"Curious and curiouser\">"));
    assert!(t.contains("<dt>Home</dt><dd>Wonderland</dd>"), "{t}");
    // Direct posts are not counted (as Mastodon).
    assert!(t.contains("<strong>3</strong> posts"), "{t}");
    assert!(t.contains("public words") && t.contains(&public));
    assert!(t.contains("unlisted words") && t.contains(&unlisted));
    assert!(!t.contains("private words") && !t.contains(&private));
    assert!(!t.contains("direct words") && !t.contains(&direct));
    // Newest first.
    assert!(t.find("unlisted words") < t.find("public words"));
    // Meta and alternates.
    assert!(t.contains("<meta property=\"og:title\""));
    assert!(t.contains("<meta name=\"twitter:card\" content=\"summary\">"));
    assert!(t.contains(&format!(
        "<link rel=\"alternate\" type=\"application/rss+xml\" href=\"{}/@{}.rss\">",
        app.url(""),
        alice.username
    )));
    assert!(t.contains(&format!(
        "type=\"application/json\" href=\"{}/api/v1/accounts/{}\"",
        app.url(""),
        alice.id
    )));
    assert!(t.contains("<meta name=\"viewport\""));
    assert!(t.contains("<main id=\"main\">"));

    // The stylesheet it links is served, cacheable for ever.
    let css = t
        .split("<link rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        css.starts_with("/assets/site-") && css.ends_with(".css"),
        "{css}"
    );
    let r = page(&app, &css).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(page(&app, "/assets/site-0000.css").await.status, 404);

    // Private and direct statuses have no page: 404, as unknown ones.
    for id in [&private, &direct] {
        html_404(&page(&app, &format!("/@{}/{id}", alice.username)).await);
    }
    let r = page(&app, &format!("/@{}/{unlisted}", alice.username)).await;
    html_ok(&r);
    assert!(r.text.contains("unlisted words"));
}

#[tokio::test]
async fn profile_pages_by_max_id() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut ids = vec![];
    for i in 0..22 {
        ids.push(
            app.post_visible(&alice, &format!("post number {i}."), "public")
                .await,
        );
    }
    let r = page(&app, &format!("/@{}", alice.username)).await;
    html_ok(&r);
    assert!(r.text.contains("post number 21."));
    assert!(!r.text.contains("post number 1."));
    let next = format!("/@{}?max_id={}", alice.username, ids[2]);
    assert!(
        r.text.contains(&format!("rel=\"next\" href=\"{next}\"")),
        "{}",
        r.text
    );
    let r = page(&app, &next).await;
    html_ok(&r);
    assert!(r.text.contains("post number 1.") && r.text.contains("post number 0."));
    assert!(!r.text.contains("post number 2."));
    assert!(!r.text.contains("rel=\"next\""));
}

#[tokio::test]
async fn status_page_shows_its_public_thread() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let root = app.post_visible(&alice, "the root post", "public").await;
    let reply = app.reply(&bob, &root, "a public reply").await;
    let reply = reply["id"].as_str().unwrap().to_owned();
    app.post_status_with(
        &bob,
        json!({"status": "a secret reply", "in_reply_to_id": root, "visibility": "private"}),
    )
    .await;
    let deeper = app.reply(&alice, &reply, "a deeper reply").await;

    let r = page(&app, &format!("/@{}/{root}", alice.username)).await;
    html_ok(&r);
    assert!(r.text.contains("the root post"));
    assert!(r.text.contains("a public reply") && r.text.contains("a deeper reply"));
    assert!(!r.text.contains("a secret reply"));
    assert!(r.text.contains("og:type\" content=\"article\""));
    assert!(r.text.contains("type=\"application/json+oembed\""));

    // From the middle: the ancestor above, the descendant below.
    let r = page(&app, &format!("/@{}/{reply}", bob.username)).await;
    html_ok(&r);
    let main = r.text.split("<main").nth(1).unwrap();
    let (root_at, reply_at, deeper_at) = (
        main.find("the root post").unwrap(),
        main.find("a public reply").unwrap(),
        main.find("a deeper reply").unwrap(),
    );
    assert!(root_at < reply_at && reply_at < deeper_at);

    // The status under someone else's name is not found.
    html_404(&page(&app, &format!("/@{}/{root}", bob.username)).await);
    let _ = deeper;
}

#[tokio::test]
async fn api_urls_and_uris_resolve_to_the_pages() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let status = app.post_status(&alice, "hello #Pages world").await;
    let account = app.account(&alice).await;

    let r = page(&app, &app.local_path(account["url"].as_str().unwrap())).await;
    html_ok(&r);
    assert!(r.text.contains("hello"));
    let r = page(&app, &app.local_path(status["url"].as_str().unwrap())).await;
    html_ok(&r);
    assert!(r.text.contains("hello"));
    let r = page(
        &app,
        &app.local_path(status["tags"][0]["url"].as_str().unwrap()),
    )
    .await;
    html_ok(&r);
    assert!(r.text.contains("hello"));
    // The `uri`s redirect to the pages.
    let r = page(&app, &app.local_path(account["uri"].as_str().unwrap())).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("/@{}", alice.username).as_str())
    );
    let r = page(&app, &app.local_path(status["uri"].as_str().unwrap())).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("/@{}/{}", alice.username, status["id"].as_str().unwrap()).as_str())
    );
}

#[tokio::test]
async fn unknown_and_malformed_answer_html_4xx_never_5xx() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let id = app.post_visible(&alice, "here", "public").await;
    html_404(&page(&app, "/@nobody_at_all").await);
    html_404(&page(&app, "/@nobody_at_all/1").await);
    html_404(&page(&app, "/@nobody_at_all.rss").await);
    html_404(&page(&app, &format!("/@{}/999999999999", alice.username)).await);
    html_404(&page(&app, &format!("/@{}/not-a-number", alice.username)).await);
    html_404(
        &page(
            &app,
            &format!("/@{}/99999999999999999999999", alice.username),
        )
        .await,
    );
    html_404(&page(&app, "/@a%00b").await);
    html_404(&page(&app, &format!("/@{}/{id}%00", alice.username)).await);
    html_404(&page(&app, "/users/nobody_at_all").await);
    html_404(&page(&app, "/tags/%00").await);
    for q in [
        "max_id=99999999999999999999999",
        "max_id=abc",
        "max_id=%00",
        "max_id=-5",
    ] {
        let r = page(&app, &format!("/@{}?{q}", alice.username)).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let r = page(&app, &format!("/public/local?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
    }
    // A huge but valid id is just an empty page.
    let r = page(&app, &format!("/tags/nothing?max_id={}", i64::MAX)).await;
    html_ok(&r);
    assert!(r.text.contains("Nothing here yet."));
}

#[tokio::test]
async fn display_names_and_bios_are_escaped() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    app.update_profile(
        &alice,
        json!({"display_name": "<script>alert(1)</script>", "note": "<img src=x onerror=alert(2)>",
               "fields_attributes": {"0": {"name": "<b>n</b>", "value": "\"><script>v</script>"}}}),
    )
    .await;
    let id = app
        .post_visible(&alice, "<script>alert(3)</script> & more", "public")
        .await;
    for path in [
        format!("/@{}", alice.username),
        format!("/@{}/{id}", alice.username),
        "/public/local".to_owned(),
    ] {
        let r = page(&app, &path).await;
        html_ok(&r);
        assert!(!r.text.contains("<script>"), "{path}: {}", r.text);
        assert!(!r.text.contains("<img src=x"), "{path}");
        assert!(r.text.contains("&lt;script&gt;alert("), "{path}");
    }
    let r = page(&app, &format!("/@{}.rss", alice.username)).await;
    assert!(!r.text.contains("<script>"));
}

#[tokio::test]
async fn etag_cache_control_vary_and_security_headers() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    app.post_visible(&alice, "cache me", "public").await;
    let path = format!("/@{}", alice.username);
    let r = page(&app, &path).await;
    html_ok(&r);
    let etag = r.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("referrer-policy").is_some());
    // No inline script or style at all.
    assert!(
        !r.text.contains("<script") && !r.text.contains("<style") && !r.text.contains("style=\"")
    );

    let r = get_with(&app, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.text.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get_with(&app, &path, &[("if-none-match", "W/\"other\"")]).await;
    assert_eq!(r.status, 200);

    // A new post changes the page and its tag.
    app.post_visible(&alice, "fresh post", "public").await;
    let r = get_with(&app, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));

    for p in ["/about", "/public/local", "/tags/x", "/@nobody_here"] {
        let r = page(&app, p).await;
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{p}");
        assert!(r.header("content-security-policy").is_some(), "{p}");
    }
}

#[tokio::test]
async fn activity_json_is_not_acceptable_yet() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let id = app.post_visible(&alice, "x", "public").await;
    for path in [
        format!("/@{}", alice.username),
        format!("/@{}/{id}", alice.username),
        format!("/users/{}", alice.username),
        "/tags/x".to_owned(),
    ] {
        for accept in [
            "application/activity+json",
            "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
        ] {
            let r = get_with(&app, &path, &[("accept", accept)]).await;
            assert_eq!(r.status, 406, "{path}");
            assert!(r.json["error"].as_str().unwrap().contains("ActivityPub"));
        }
    }
}

#[tokio::test]
async fn tag_local_and_about_pages() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    app.post_visible(&alice, "loving #Rust today", "public")
        .await;
    app.post_visible(&alice, "quiet #rust note", "unlisted")
        .await;
    app.post_visible(&alice, "secret #rust", "private").await;
    app.post_visible(&alice, "elsewhere", "public").await;

    let r = page(&app, "/tags/rust").await;
    html_ok(&r);
    assert!(r.text.contains("<h1>#rust</h1>"));
    assert!(r.text.contains("loving"));
    assert!(
        !r.text.contains("quiet") && !r.text.contains("secret") && !r.text.contains("elsewhere")
    );
    assert!(
        r.text.contains("class=\"mention hashtag\""),
        "links to the tag"
    );

    let r = page(&app, "/public/local").await;
    html_ok(&r);
    assert!(r.text.contains("loving") && r.text.contains("elsewhere"));
    assert!(!r.text.contains("quiet") && !r.text.contains("secret"));

    let r = page(&app, "/about").await;
    html_ok(&r);
    assert!(r.text.contains("<h1>About Starling</h1>"), "{}", r.text);
    assert!(r.text.contains("<dt>Users</dt><dd>1</dd>"), "{}", r.text);
    assert!(r.text.contains("mailto:"));
}

#[tokio::test]
async fn rss_feeds_of_accounts_and_tags() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let first = app
        .post_visible(&alice, "first #feeds post", "public")
        .await;
    app.post_visible(&alice, "second & last", "public").await;
    app.post_visible(&alice, "hidden #feeds", "private").await;

    let r = page(&app, &format!("/@{}.rss", alice.username)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert!(r
        .text
        .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(r.text.contains("<rss version=\"2.0\"><channel>"));
    assert!(r.text.trim_end().ends_with("</channel></rss>"));
    assert_eq!(r.text.matches("<item>").count(), 2, "{}", r.text);
    assert!(r.text.contains(&format!(
        "<guid isPermaLink=\"true\">{}/@{}/{first}</guid>",
        app.url(""),
        alice.username
    )));
    assert!(r.text.contains("second &amp;amp; last"), "{}", r.text);
    assert!(!r.text.contains("hidden"));
    assert!(r.text.contains("<pubDate>"));
    assert!(r.header("etag").is_some());

    let r = page(&app, "/tags/feeds.rss").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text.matches("<item>").count(), 1, "{}", r.text);
    assert!(r.text.contains("<title>#feeds</title>"));
}

#[tokio::test]
async fn oembed_for_status_urls() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let status = app.post_status(&alice, "embed me").await;
    let private = app.post_visible(&alice, "not me", "private").await;
    let url = status["url"].as_str().unwrap();
    let r = app
        .get(&format!("/api/oembed?url={}", enc(url)), None)
        .await;
    let v = r.expect(200);
    assert_eq!(v["type"], "rich");
    assert_eq!(v["version"], "1.0");
    assert!(v["html"].as_str().unwrap().contains("embed me"));
    assert_eq!(v["author_url"], app.url(&format!("/@{}", alice.username)));
    // The uri form too.
    let uri = status["uri"].as_str().unwrap();
    app.get(&format!("/api/oembed?url={}", enc(uri)), None)
        .await
        .expect(200);
    let bad = [
        format!(
            "/api/oembed?url={}",
            enc(&app.url(&format!("/@{}/{private}", alice.username)))
        ),
        format!("/api/oembed?url={}", enc("https://elsewhere.example/@a/1")),
        format!("/api/oembed?url={}", enc("not a url")),
    ];
    for path in bad {
        assert_eq!(app.get(&path, None).await.status, 404, "{path}");
    }
    assert_eq!(app.get("/api/oembed", None).await.status, 400);
}

#[tokio::test]
async fn pages_on_postgres() {
    let Some(app) = TestApp::spawn_postgres("pages_on_postgres").await else {
        return;
    };
    let alice = app.user().await;
    let root = app.post_visible(&alice, "on postgres", "public").await;
    let reply = app.reply(&alice, &root, "a reply there").await;
    app.post_visible(&alice, "not shown", "private").await;
    let r = page(&app, &format!("/@{}", alice.username)).await;
    html_ok(&r);
    assert!(r.text.contains("on postgres") && !r.text.contains("not shown"));
    let r = page(&app, &format!("/@{}/{root}", alice.username)).await;
    html_ok(&r);
    assert!(r.text.contains(reply["content"].as_str().unwrap()));
}
