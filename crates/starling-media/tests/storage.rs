//! The storage seam's conformance suite: every adapter passes the same
//! checks. The filesystem adapter runs against a temporary directory; the
//! S3 adapter against the real S3 server from `scripts/services.sh`
//! (s3s-fs on 127.0.0.1:9000, `STARLING_TEST_S3_URL`), each test under its
//! own key prefix, removed at the end; skipped (or failed, with
//! `STARLING_TEST_REQUIRE_SERVICES=1`) when the server is not there.

use std::sync::Arc;

use bytes::Bytes;
use starling_media::{
    original_key, small_key, FsStorage, MediaError, MediaStorage, S3Config, S3Storage,
};
use starling_testkit::{Service, S3_TEST_ACCESS_KEY, S3_TEST_BUCKET, S3_TEST_SECRET_KEY};

/// Every key a test may write, for cleaning up.
fn keys_used() -> Vec<String> {
    let mut keys = vec![
        "conformance/a.bin".to_owned(),
        "conformance/large.bin".to_owned(),
        "conformance/concurrent.bin".to_owned(),
        original_key(7, "jpg"),
        small_key(7, "jpg"),
    ];
    keys.extend((0..8).map(|i| format!("conformance/many-{i}.bin")));
    keys.extend(
        ["text/plain; charset=utf-8", "image/png", "video/mp4"]
            .iter()
            .enumerate()
            .map(|(i, _)| format!("conformance/type-{i}")),
    );
    keys
}

async fn conformance(storage: Arc<dyn MediaStorage>) {
    // Absent.
    assert_eq!(storage.get("conformance/a.bin").await.ok(), Some(None));
    storage
        .delete("conformance/a.bin")
        .await
        .expect("deleting an absent key");

    // Put, get.
    storage
        .put(
            "conformance/a.bin",
            Bytes::from_static(b"first"),
            "application/octet-stream",
        )
        .await
        .expect("put");
    let got = storage
        .get("conformance/a.bin")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(&got.bytes[..], b"first");
    assert_eq!(got.content_type, "application/octet-stream");

    // Overwrite, with another type.
    storage
        .put(
            "conformance/a.bin",
            Bytes::from_static(b"second, longer"),
            "image/jpeg",
        )
        .await
        .expect("overwrite");
    let got = storage
        .get("conformance/a.bin")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(&got.bytes[..], b"second, longer");
    assert_eq!(got.content_type, "image/jpeg");

    // Empty object.
    storage
        .put("conformance/a.bin", Bytes::new(), "image/png")
        .await
        .expect("empty put");
    let got = storage
        .get("conformance/a.bin")
        .await
        .expect("get")
        .expect("present");
    assert!(got.bytes.is_empty());

    // Delete, twice.
    storage.delete("conformance/a.bin").await.expect("delete");
    assert_eq!(storage.get("conformance/a.bin").await.ok(), Some(None));
    storage
        .delete("conformance/a.bin")
        .await
        .expect("delete again");

    // Content types round-trip.
    for (i, ct) in ["text/plain; charset=utf-8", "image/png", "video/mp4"]
        .iter()
        .enumerate()
    {
        let key = format!("conformance/type-{i}");
        storage
            .put(&key, Bytes::from_static(b"x"), ct)
            .await
            .expect("put");
        let got = storage.get(&key).await.expect("get").expect("present");
        assert_eq!(&got.content_type, ct);
    }

    // The media keys.
    let key = original_key(7, "jpg");
    storage
        .put(&key, Bytes::from_static(b"\xFF\xD8"), "image/jpeg")
        .await
        .expect("put");
    assert!(storage.get(&key).await.expect("get").is_some());
    assert_eq!(storage.get(&small_key(7, "jpg")).await.ok(), Some(None));

    // A large object (the image limit, 16 MiB), byte for byte.
    let large: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let large = Bytes::from(large);
    storage
        .put("conformance/large.bin", large.clone(), "video/mp4")
        .await
        .expect("large put");
    let got = storage
        .get("conformance/large.bin")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.bytes.len(), large.len());
    assert!(got.bytes == large, "large object differs");

    // Concurrent puts: distinct keys all land; one key ends as one whole put.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = storage.clone();
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(vec![i; 64 * 1024]);
            s.put(
                &format!("conformance/many-{i}.bin"),
                body.clone(),
                "application/octet-stream",
            )
            .await?;
            s.put(
                "conformance/concurrent.bin",
                body,
                "application/octet-stream",
            )
            .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("concurrent put");
    }
    for i in 0..8u8 {
        let got = storage
            .get(&format!("conformance/many-{i}.bin"))
            .await
            .expect("get")
            .expect("present");
        assert!(got.bytes.len() == 64 * 1024 && got.bytes.iter().all(|&b| b == i));
    }
    let got = storage
        .get("conformance/concurrent.bin")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.bytes.len(), 64 * 1024);
    assert!(got.bytes.iter().all(|&b| b == got.bytes[0]), "a torn write");

    // Keys that escape or are malformed are refused, never touched.
    for bad in [
        "../etc/passwd",
        "/abs",
        "a/../../b",
        "",
        "a//b",
        ".hidden/x",
    ] {
        assert!(
            matches!(
                storage
                    .put(bad, Bytes::from_static(b"x"), "text/plain")
                    .await,
                Err(MediaError::Storage(_))
            ),
            "{bad:?}"
        );
        assert!(storage.get(bad).await.is_err(), "{bad:?}");
        assert!(storage.delete(bad).await.is_err(), "{bad:?}");
    }

    for key in keys_used() {
        storage.delete(&key).await.expect("cleanup");
        assert_eq!(storage.get(&key).await.ok(), Some(None));
    }
}

#[tokio::test]
async fn fs_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("media");
    conformance(Arc::new(FsStorage::new(root.clone()))).await;
    // Nothing escaped the root, and nothing is left but bookkeeping.
    assert!(!dir.path().join("etc").exists());
    let leftovers: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| {
            !p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[tokio::test]
async fn fs_objects_are_plain_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FsStorage::new(dir.path().to_path_buf());
    let key = original_key(1, "png");
    storage
        .put(&key, Bytes::from_static(b"png"), "image/png")
        .await
        .expect("put");
    assert_eq!(
        std::fs::read(dir.path().join("media/1/original.png")).expect("file"),
        b"png"
    );
    assert_eq!(
        storage.object_path(&key),
        dir.path().join("media/1/original.png")
    );
    // No temporary file left over.
    let tmp = std::fs::read_dir(dir.path().join(".tmp"))
        .expect("tmp dir")
        .count();
    assert_eq!(tmp, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn s3_config(url: String) -> S3Config {
    S3Config {
        endpoint: url,
        bucket: starling_testkit::s3_setting("STARLING_TEST_S3_BUCKET", S3_TEST_BUCKET),
        region: "us-east-1".into(),
        access_key: starling_testkit::s3_setting("STARLING_TEST_S3_ACCESS_KEY", S3_TEST_ACCESS_KEY),
        secret_key: starling_testkit::s3_setting("STARLING_TEST_S3_SECRET_KEY", S3_TEST_SECRET_KEY),
        allow_http: true,
    }
}

#[tokio::test]
async fn s3_conformance() {
    let Some(url) = starling_testkit::require(Service::S3, "s3_conformance") else {
        return;
    };
    let prefix = starling_testkit::unique_name("conformance");
    let storage = S3Storage::new(&s3_config(url))
        .expect("config")
        .with_prefix(&prefix)
        .expect("prefix");
    conformance(Arc::new(storage)).await;
}

#[tokio::test]
async fn s3_wrong_credentials_are_a_storage_error() {
    let Some(url) = starling_testkit::require(Service::S3, "s3_wrong_credentials") else {
        return;
    };
    let mut cfg = s3_config(url);
    cfg.secret_key = "not-the-secret".into();
    let storage = S3Storage::new(&cfg).expect("config");
    let err = storage
        .put(
            "conformance/denied.bin",
            Bytes::from_static(b"x"),
            "text/plain",
        )
        .await
        .expect_err("a bad signature must be refused");
    assert!(matches!(err, MediaError::Storage(_)), "{err:?}");
    assert!(!err.is_client_error());
    // The secret never shows in the config's Debug output.
    assert!(!format!("{cfg:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn fs_puts_survive_deletes_of_sibling_keys() {
    // A delete removes its key's now-empty directory; a put into that
    // directory at the same moment must still land.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(FsStorage::new(dir.path().to_path_buf()));
    for round in 0..50u32 {
        let a = format!("media/{round}/small.jpg");
        let b = format!("media/{round}/original.jpg");
        storage
            .put(&a, Bytes::from_static(b"a"), "image/jpeg")
            .await
            .expect("put a");
        let (s1, s2) = (storage.clone(), storage.clone());
        let (ka, kb) = (a.clone(), b.clone());
        let del = tokio::spawn(async move { s1.delete(&ka).await });
        let put =
            tokio::spawn(async move { s2.put(&kb, Bytes::from_static(b"b"), "image/jpeg").await });
        del.await.expect("task").expect("delete");
        put.await.expect("task").expect("put beside a delete");
        let got = storage.get(&b).await.expect("get").expect("present");
        assert_eq!(&got.bytes[..], b"b");
        assert_eq!(got.content_type, "image/jpeg");
    }
}
