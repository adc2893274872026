//! Media: uploads (`/api/v{1,2}/media`), their description and focus,
//! attaching them to statuses, and serving the files (`/media/...`), on
//! SQLite and PostgreSQL.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Resp, TestApp, User};

/// A small PNG made here (a gradient, so it has a blurhash worth having).
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A PNG too large to be processed on the request path (noise compresses
/// badly: ~4.3 MB).
fn big_png() -> Vec<u8> {
    let mut seed: u32 = 0x9e37_79b9;
    let img = image::RgbImage::from_fn(1300, 1100, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let b = seed.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

fn file_part(bytes: Vec<u8>, name: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .expect("mime")
}

async fn upload(app: &TestApp, path: &str, token: &str, form: Form) -> Resp {
    app.send(
        app.request(Method::POST, path)
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

async fn upload_png(app: &TestApp, user: &User) -> Value {
    let form = Form::new()
        .part("file", file_part(png(64, 48), "cat.png", "image/png"))
        .text("description", "A gradient, like a sunset")
        .text("focus", "0.5,-0.25");
    let r = upload(app, "/api/v2/media", &user.token, form).await;
    r.expect(200).clone()
}

/// Fetches a file the server named, without the JSON rules of `send`.
async fn fetch(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.request(Method::GET, &app.local_path(url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("fetch")
}

async fn small_images_are_ready_at_once_and_served_for_caching(app: &TestApp) {
    let user = app.user().await;
    let media = upload_png(app, &user).await;
    assert_eq!(media["type"], "image");
    assert_eq!(media["description"], "A gradient, like a sunset");
    assert_eq!(media["meta"]["original"]["width"], 64);
    assert_eq!(media["meta"]["original"]["height"], 48);
    assert_eq!(media["meta"]["original"]["size"], "64x48");
    assert_eq!(media["meta"]["focus"], json!({"x": 0.5, "y": -0.25}));
    assert!(media["blurhash"].as_str().is_some_and(|b| b.len() >= 6));
    assert!(media["remote_url"].is_null());
    let url = media["url"].as_str().expect("url");
    let preview = media["preview_url"].as_str().expect("preview_url");

    let original = fetch(app, url, &[]).await;
    assert_eq!(original.status(), 200);
    let h = original.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    let etag = h["etag"].to_str().unwrap().to_owned();
    let bytes = original.bytes().await.unwrap();
    let decoded = image::load_from_memory(&bytes).expect("a real image");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    assert_eq!(fetch(app, preview, &[]).await.status(), 200);

    // Conditional and partial requests, as a CDN and a video player make.
    let again = fetch(app, url, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    let part = fetch(app, url, &[("range", "bytes=0-7")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-7/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(0..8));
    let past = fetch(app, url, &[("range", "bytes=999999-")]).await;
    assert_eq!(past.status(), 416);

    // The owner may read it back; nobody else may.
    let id = media["id"].as_str().unwrap();
    let shown = app
        .get(&format!("/api/v1/media/{id}"), Some(&user.token))
        .await;
    assert_eq!(shown.expect(200)["url"], url);
    let other = app.user().await;
    app.get(&format!("/api/v1/media/{id}"), Some(&other.token))
        .await
        .expect(404);
    // The upload as it came is never served, nor anything outside media.
    for path in [
        format!("/media/{id}/upload"),
        format!("/media/{id}/original"),
        format!("/media/{id}/..%2F..%2Fstarling.db"),
        "/media/nope/original.png".to_owned(),
    ] {
        let r = app.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

async fn the_v1_route_answers_when_processed(app: &TestApp) {
    let user = app.user().await;
    let form = Form::new().part("file", file_part(png(20, 20), "a.png", "image/png"));
    let r = upload(app, "/api/v1/media", &user.token, form).await;
    let media = r.expect(200);
    assert!(media["url"].as_str().is_some());
    assert!(media["description"].is_null());
}

async fn bad_uploads_are_refused_clearly(app: &TestApp) {
    let user = app.user().await;
    // No file at all.
    let r = upload(
        app,
        "/api/v2/media",
        &user.token,
        Form::new().text("description", "x"),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Not multipart.
    let r = app
        .post_form("/api/v2/media", Some(&user.token), &[("file", "x")])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Text that says it is a PNG; HTML that says it is a JPEG.
    for (bytes, mime) in [
        (b"not an image at all".to_vec(), "image/png"),
        (
            b"<html><script>alert(1)</script></html>".to_vec(),
            "image/jpeg",
        ),
    ] {
        let form = Form::new().part("file", file_part(bytes, "x.png", mime));
        let r = upload(app, "/api/v2/media", &user.token, form).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.error().starts_with("Validation failed"), "{}", r.text);
    }
    // A PNG cut short.
    let mut cut = png(64, 64);
    cut.truncate(cut.len() / 2);
    let form = Form::new().part("file", file_part(cut, "cut.png", "image/png"));
    let r = upload(app, "/api/v2/media", &user.token, form).await;
    assert_eq!(r.status, 422, "{}", r.text);
    // A bad focus or an overlong description.
    let form = Form::new()
        .part("file", file_part(png(8, 8), "a.png", "image/png"))
        .text("focus", "2,0");
    assert_eq!(
        upload(app, "/api/v2/media", &user.token, form).await.status,
        422
    );
    let form = Form::new()
        .part("file", file_part(png(8, 8), "a.png", "image/png"))
        .text("description", "d".repeat(1501));
    assert_eq!(
        upload(app, "/api/v2/media", &user.token, form).await.status,
        422
    );
    // No token; a token without write:media.
    let form = Form::new().part("file", file_part(png(8, 8), "a.png", "image/png"));
    let r = app
        .send(app.request(Method::POST, "/api/v2/media").multipart(form))
        .await;
    assert_eq!(r.status, 401);
    let reader = app.token_for(&user, "read").await;
    let form = Form::new().part("file", file_part(png(8, 8), "a.png", "image/png"));
    assert_eq!(
        upload(app, "/api/v2/media", &reader, form).await.status,
        403
    );
}

async fn description_and_focus_change_until_attached(app: &TestApp) {
    let user = app.user().await;
    let media = upload_png(app, &user).await;
    let id = media["id"].as_str().unwrap();
    let path = format!("/api/v1/media/{id}");
    let r = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&user.token)
                .json(&json!({"description": "Now described", "focus": "-1,1"})),
        )
        .await;
    let updated = r.expect(200);
    assert_eq!(updated["description"], "Now described");
    assert_eq!(updated["meta"]["focus"], json!({"x": -1.0, "y": 1.0}));
    let r = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&user.token)
                .form(&[("focus", "left")]),
        )
        .await;
    assert_eq!(r.status, 422);
    let other = app.user().await;
    let r = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&other.token)
                .form(&[("description", "mine")]),
        )
        .await;
    assert_eq!(r.status, 404);

    // Attached, it shows in the status and can no longer be changed here.
    let status = app
        .post_status_with(&user, json!({"status": "", "media_ids": [id]}))
        .await;
    let attached = &status["media_attachments"][0];
    assert_eq!(attached["id"], id);
    assert_eq!(attached["description"], "Now described");
    assert_eq!(attached["url"], media["url"]);
    let r = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&user.token)
                .form(&[("description", "late")]),
        )
        .await;
    assert_eq!(r.status, 404);
}

async fn statuses_carry_their_attachments(app: &TestApp) {
    let alice = app.user().await;
    let bob = app.user().await;
    let ids: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..2 {
            out.push(
                upload_png(app, &alice).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        out
    };
    let bobs = upload_png(app, &bob).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob's upload is not Alice's to attach: refused, naming it, and
    // nothing is attached or posted.
    let r = app
        .create_status(
            Some(&alice.token),
            &json!({"status": "two pictures", "media_ids": [ids[0], bobs, ids[1]]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.error(),
        format!("Media {bobs} not found or already attached to another post")
    );
    let status = app
        .post_status_with(
            &alice,
            json!({"status": "two pictures", "media_ids": [ids[0], ids[1]]}),
        )
        .await;
    let shown: Vec<&str> = status["media_attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, vec![ids[0].as_str(), ids[1].as_str()]);
    let sid = status["id"].as_str().unwrap();
    // Everyone who may see the status sees them, from every read path.
    let seen = app
        .get(&format!("/api/v1/statuses/{sid}"), Some(&bob.token))
        .await;
    assert_eq!(
        seen.expect(200)["media_attachments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let listed = app
        .get(&format!("/api/v1/accounts/{}/statuses", alice.id), None)
        .await;
    assert_eq!(
        listed.list()[0]["media_attachments"][1]["id"],
        ids[1].as_str()
    );
    // The profile's media tab (`only_media`) lists only statuses with some.
    app.post_status(&alice, "words only").await;
    let media_tab = app
        .get(
            &format!("/api/v1/accounts/{}/statuses?only_media=true", alice.id),
            Some(&bob.token),
        )
        .await;
    let listed: Vec<String> = media_tab
        .list()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, vec![sid.to_owned()]);

    // An upload goes on one status only.
    let r = app
        .create_status(
            Some(&alice.token),
            &json!({"status": "", "media_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Five are too many.
    let r = app
        .create_status(
            Some(&alice.token),
            &json!({"status": "x", "media_ids": ["1", "2", "3", "4", "5"]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error(), "Cannot attach more than 4 files");

    // Deleted, its uploads are free again (delete and redraft).
    app.delete(&format!("/api/v1/statuses/{sid}"), Some(&alice.token))
        .await
        .expect(200);
    let again = app
        .post_status_with(
            &alice,
            json!({"status": "redrafted", "media_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(again["media_attachments"][0]["id"], ids[1].as_str());
}

/// The files of a status's attachments (original and preview of each).
fn files_of(status: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for m in status["media_attachments"].as_array().expect("attachments") {
        for k in ["url", "preview_url"] {
            out.push(m[k].as_str().expect("a file").to_owned());
        }
    }
    out
}

/// `DELETE /api/v1/statuses/:id` with `delete_media` (Mastodon 4.4): the
/// uploads go at once, files and rows, instead of waiting for a redraft.
async fn deleting_a_status_may_delete_its_media(app: &TestApp) {
    let alice = app.user().await;
    let ids: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..2 {
            let m = upload_png(app, &alice).await;
            out.push(m["id"].as_str().unwrap().to_owned());
        }
        out
    };
    let status = app
        .post_status_with(
            &alice,
            json!({"status": "gone for good", "media_ids": ids.clone()}),
        )
        .await;
    let sid = status["id"].as_str().unwrap().to_owned();
    let files = files_of(&status);
    assert_eq!(files.len(), 4);
    for f in &files {
        assert_eq!(fetch(app, f, &[]).await.status(), 200, "{f}");
    }

    // A value that is not a boolean is refused (a 422 naming it), and
    // nothing is deleted.
    for bad in ["notabool", "yes", "2"] {
        let r = app
            .delete(
                &format!("/api/v1/statuses/{sid}?delete_media={bad}"),
                Some(&alice.token),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert!(r.error().contains("delete_media"), "{}", r.text);
    }
    let r = app
        .send(
            app.request(Method::DELETE, &format!("/api/v1/statuses/{sid}"))
                .bearer_auth(&alice.token)
                .json(&json!({"delete_media": {"no": "thanks"}})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    app.status(&sid, Some(&alice)).await.expect(200);
    assert_eq!(fetch(app, &files[0], &[]).await.status(), 200);

    // Deleted with its media: answered like any delete (the source text,
    // the attachments as they were), and the files and uploads are gone.
    let r = app
        .delete(
            &format!("/api/v1/statuses/{sid}?delete_media=true"),
            Some(&alice.token),
        )
        .await;
    let deleted = r.expect(200);
    assert_eq!(deleted["text"], "gone for good");
    assert_eq!(files_of(deleted), files);
    for f in &files {
        assert_eq!(fetch(app, f, &[]).await.status(), 404, "{f}");
    }
    for id in &ids {
        app.get(&format!("/api/v1/media/{id}"), Some(&alice.token))
            .await
            .expect(404);
    }
    let r = app
        .create_status(
            Some(&alice.token),
            &json!({"status": "redraft", "media_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.error().starts_with("Media "), "{}", r.text);
    app.status(&sid, Some(&alice)).await.expect(404);

    // As a form body (Mastodon.py sends `delete_media=1` so).
    let media = upload_png(app, &alice).await;
    let status = app
        .post_status_with(
            &alice,
            json!({"status": "form", "media_ids": [media["id"]]}),
        )
        .await;
    let r = app
        .send(
            app.request(
                Method::DELETE,
                &format!("/api/v1/statuses/{}", status["id"].as_str().unwrap()),
            )
            .bearer_auth(&alice.token)
            .form(&[("delete_media", "1")]),
        )
        .await;
    r.expect(200);
    for f in files_of(&status) {
        assert_eq!(fetch(app, &f, &[]).await.status(), 404, "{f}");
    }

    // Without it (or with `false`), the uploads stay for a redraft.
    for keep in ["", "?delete_media=false"] {
        let media = upload_png(app, &alice).await;
        let status = app
            .post_status_with(
                &alice,
                json!({"status": "kept", "media_ids": [media["id"]]}),
            )
            .await;
        let sid = status["id"].as_str().unwrap();
        app.delete(&format!("/api/v1/statuses/{sid}{keep}"), Some(&alice.token))
            .await
            .expect(200);
        for f in files_of(&status) {
            assert_eq!(fetch(app, &f, &[]).await.status(), 200, "{keep}: {f}");
        }
        let again = app
            .post_status_with(
                &alice,
                json!({"status": "redrafted", "media_ids": [media["id"]]}),
            )
            .await;
        assert_eq!(again["media_attachments"][0]["id"], media["id"]);
    }
}

async fn large_uploads_are_processed_by_a_worker(app: &TestApp) {
    let user = app.user().await;
    let form = Form::new().part("file", file_part(big_png(), "noise.png", "image/png"));
    let r = upload(app, "/api/v2/media", &user.token, form).await;
    let media = r.expect(202).clone();
    assert!(media["url"].is_null(), "{media}");
    let id = media["id"].as_str().unwrap();
    // Not attachable while processing.
    let r = app
        .create_status(
            Some(&user.token),
            &json!({"status": "x", "media_ids": [id]}),
        )
        .await;
    if r.status == 422 {
        assert!(r.error().starts_with("Cannot attach files"), "{}", r.text);
    }
    app.settle().await;
    let done = app
        .get(&format!("/api/v1/media/{id}"), Some(&user.token))
        .await;
    let done = done.expect(200);
    assert_eq!(done["meta"]["original"]["width"], 1300);
    assert!(done["url"].as_str().is_some());
    assert!(done["meta"]["small"]["width"].as_u64().unwrap() < 1300);
}

async fn profile_pictures_and_headers(app: &TestApp) {
    let user = app.user().await;
    let patch = |form: Form| {
        app.request(Method::PATCH, "/api/v1/accounts/update_credentials")
            .bearer_auth(&user.token)
            .multipart(form)
    };
    let form = Form::new()
        .text("display_name", "Pictured")
        .part("avatar", file_part(png(600, 600), "me.png", "image/png"))
        .part("header", file_part(png(1500, 500), "wide.png", "image/png"));
    let me = app.send(patch(form)).await.expect(200).clone();
    assert_eq!(me["display_name"], "Pictured");
    let avatar = me["avatar"].as_str().unwrap().to_owned();
    assert!(!avatar.contains("missing.png"), "{avatar}");
    assert_eq!(me["avatar_static"], avatar.as_str());
    let got = fetch(app, &avatar, &[]).await;
    assert_eq!(got.status(), 200);
    let img = image::load_from_memory(&got.bytes().await.unwrap()).unwrap();
    assert!(
        img.width() <= 480 && img.width() == img.height(),
        "{}",
        img.width()
    );
    let header = me["header"].as_str().unwrap();
    let wide =
        image::load_from_memory(&fetch(app, header, &[]).await.bytes().await.unwrap()).unwrap();
    assert_eq!((wide.width(), wide.height()), (1500, 500));
    // Everyone sees it, on the account and on its statuses.
    let shown = app
        .get(&format!("/api/v1/accounts/{}", user.id), None)
        .await;
    assert_eq!(shown.expect(200)["avatar"], avatar.as_str());

    // A new picture replaces the old, whose file goes; other fields stay.
    let form = Form::new().part("avatar", file_part(png(100, 80), "new.png", "image/png"));
    let again = app.send(patch(form)).await.expect(200).clone();
    assert_ne!(again["avatar"], avatar.as_str());
    assert_eq!(again["display_name"], "Pictured");
    assert_eq!(again["header"], header);
    assert_eq!(fetch(app, &avatar, &[]).await.status(), 404);

    // Not an image: 422 naming the field, nothing changed.
    let form = Form::new().part(
        "avatar",
        file_part(b"GIF89a nope".to_vec(), "x.gif", "image/gif"),
    );
    let r = app.send(patch(form)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.error().contains("Avatar"), "{}", r.text);
    let after = app
        .get("/api/v1/accounts/verify_credentials", Some(&user.token))
        .await;
    assert_eq!(after.expect(200)["avatar"], again["avatar"]);
}

#[tokio::test]
async fn media_on_sqlite() {
    let app = TestApp::spawn().await;
    small_images_are_ready_at_once_and_served_for_caching(&app).await;
    the_v1_route_answers_when_processed(&app).await;
    bad_uploads_are_refused_clearly(&app).await;
    description_and_focus_change_until_attached(&app).await;
    statuses_carry_their_attachments(&app).await;
    deleting_a_status_may_delete_its_media(&app).await;
    large_uploads_are_processed_by_a_worker(&app).await;
    profile_pictures_and_headers(&app).await;
}

#[tokio::test]
async fn media_on_postgres() {
    let Some(app) = TestApp::spawn_postgres("media_on_postgres").await else {
        return;
    };
    small_images_are_ready_at_once_and_served_for_caching(&app).await;
    description_and_focus_change_until_attached(&app).await;
    statuses_carry_their_attachments(&app).await;
    deleting_a_status_may_delete_its_media(&app).await;
    large_uploads_are_processed_by_a_worker(&app).await;
    profile_pictures_and_headers(&app).await;
}

/// A one-second MP4 made by ffmpeg; `None` (said so) without ffmpeg, unless
/// services are required.
fn mp4(test: &str) -> Option<Vec<u8>> {
    if !starling_media::ffmpeg_available() {
        assert!(
            !starling_testkit::services_required(),
            "{test}: ffmpeg not found (scripts/services.sh ensure installs it)"
        );
        eprintln!("SKIPPED {test}: ffmpeg not found");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=1:size=160x120:rate=10")
        .args(["-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make a clip");
    Some(std::fs::read(out).expect("clip"))
}

#[tokio::test]
async fn videos_are_processed_by_a_worker() {
    let Some(clip) = mp4("videos_are_processed_by_a_worker") else {
        return;
    };
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // v2: accepted at once, processed by the media worker.
    let form = Form::new().part("file", file_part(clip.clone(), "clip.mp4", "video/mp4"));
    let r = upload(&app, "/api/v2/media", &user.token, form).await;
    let id = r.expect(202)["id"].as_str().unwrap().to_owned();
    app.settle().await;
    let done = app
        .get(&format!("/api/v1/media/{id}"), Some(&user.token))
        .await;
    let done = done.expect(200);
    assert_eq!(done["type"], "video");
    assert_eq!(done["meta"]["original"]["width"], 160);
    assert!(done["meta"]["duration"].as_f64().is_some_and(|d| d > 0.5));
    let poster = fetch(&app, done["preview_url"].as_str().unwrap(), &[]).await;
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    let video = fetch(
        &app,
        done["url"].as_str().unwrap(),
        &[("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(video.status(), 206);
    assert_eq!(video.headers()["content-type"], "video/mp4");

    // v1 (Elk): answered once the worker is done.
    let form = Form::new().part("file", file_part(clip, "clip.mp4", "video/mp4"));
    let r = upload(&app, "/api/v1/media", &user.token, form).await;
    assert_eq!(r.expect(200)["type"], "video");

    // A video goes alone.
    let picture = upload_png(&app, &user).await;
    let r = app
        .create_status(
            Some(&user.token),
            &json!({"status": "x", "media_ids": [id, picture["id"]]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
}
