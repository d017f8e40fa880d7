//! The store contract (conservator_store::testsuite) against a local directory and against a
//! real SeaweedFS S3 server started by the harness, plus S3 failure modes: unreachable
//! endpoint, wrong secret, missing bucket, cancelled multipart upload, Object Lock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conservator_e2e::{SeaweedFs, free_port};
use conservator_store::testsuite::{self, random_bytes};
use conservator_store::{Bytes, Error, LocalStore, LockMode, ObjectStore, S3Config, S3Store};

/// A store on `bucket/prefix` of `sw`, bucket created.
async fn s3_store(sw: &SeaweedFs, bucket: &str, prefix: &str, object_lock: Option<(LockMode, u32)>) -> S3Store {
    let mut cfg = S3Config::from_url(&format!("{}/{bucket}/{prefix}", sw.endpoint()))
        .unwrap()
        .with_credentials(sw.access_key(), sw.secret_key());
    cfg.object_lock = object_lock;
    let store = S3Store::new(cfg).unwrap();
    store.create_bucket_if_missing(object_lock.is_some()).await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn local_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("repo"));
    let t = Instant::now();
    testsuite::run_all(&store).await;
    testsuite::run_all(&store).await;
    eprintln!("local contract (twice): {:?}", t.elapsed());
}

/// A temp file left by a write that died before its rename is swept, once old enough;
/// finished objects are not.
#[tokio::test(flavor = "multi_thread")]
async fn local_sweeps_interrupted_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let store = LocalStore::new(&root);
    store.put("data/ab/abcd", Bytes::from_static(b"pack")).await.unwrap();
    let leftover = root.join("data/ab/.tmp-00000000deadbeef");
    std::fs::write(&leftover, b"half a pack").unwrap();
    assert_eq!(store.cleanup_incomplete(Duration::from_secs(3600)).await.unwrap(), 0, "a fresh temp file may belong to a running write");
    assert!(leftover.exists());
    assert_eq!(store.cleanup_incomplete(Duration::ZERO).await.unwrap(), 1);
    assert!(!leftover.exists());
    assert_eq!(&store.get("data/ab/abcd").await.unwrap()[..], b"pack");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_seaweedfs_contract() {
    let t = Instant::now();
    let sw = SeaweedFs::start();
    eprintln!("SeaweedFS up in {:?} at {}", t.elapsed(), sw.endpoint());
    // With a key prefix, twice on the same store.
    let store = s3_store(&sw, "contract", "repos/one", None).await;
    assert_eq!(store.describe(), format!("s3:{}/contract/repos/one", sw.endpoint()));
    for what in [store.describe(), format!("{store:?}")] {
        assert!(!what.contains(sw.secret_key()), "the secret leaks: {what}");
    }
    let t = Instant::now();
    testsuite::run_all(&store).await;
    eprintln!("S3 contract, run 1: {:?}", t.elapsed());
    let t = Instant::now();
    testsuite::run_all(&store).await;
    eprintln!("S3 contract, run 2: {:?}", t.elapsed());
    // And at the bucket root.
    let root = s3_store(&sw, "contract-root", "", None).await;
    let t = Instant::now();
    testsuite::run_all(&root).await;
    eprintln!("S3 contract, no prefix: {:?}", t.elapsed());
}

/// Keys land under the prefix; only objects above the threshold are multipart uploads.
#[tokio::test(flavor = "multi_thread")]
async fn s3_seaweedfs_prefix_and_multipart() {
    let sw = SeaweedFs::start();
    let store = s3_store(&sw, "layout", "tenant/repo", None).await;
    let client = store.client();
    let small = random_bytes(16 * 1024 * 1024); // exactly the threshold: one PutObject
    let big = random_bytes(40 * 1024 * 1024 + 3); // 6 parts of 8 MiB (the last 3 bytes)
    store.put("data/small", small.clone()).await.unwrap();
    store.put("data/big", big.clone()).await.unwrap();
    // A sibling outside the prefix must not show up in the store's listings.
    client
        .put_object()
        .bucket("layout")
        .key("tenant/repox/data/stray")
        .body(Bytes::from_static(b"x").into())
        .send()
        .await
        .unwrap();

    let raw = client.list_objects_v2().bucket("layout").send().await.unwrap();
    let mut keys: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert_eq!(keys, ["tenant/repo/data/big", "tenant/repo/data/small", "tenant/repox/data/stray"]);
    let mut listed = store.list("").await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let listed: Vec<(&str, u64)> = listed.iter().map(|m| (m.key.as_str(), m.size)).collect();
    assert_eq!(listed, [("data/big", big.len() as u64), ("data/small", small.len() as u64)]);

    let etag = |key: &'static str| async move {
        let h = client.head_object().bucket("layout").key(key).send().await.unwrap();
        h.e_tag().unwrap_or_default().trim_matches('"').to_owned()
    };
    let (small_tag, big_tag) = (etag("tenant/repo/data/small").await, etag("tenant/repo/data/big").await);
    assert!(!small_tag.contains('-'), "16 MiB is a single PutObject, ETag {small_tag}");
    assert!(big_tag.ends_with("-6"), "40 MiB + 3 is a 6-part multipart upload, ETag {big_tag}");
    testsuite_bytes_eq(&store.get("data/big").await.unwrap(), &big);
    testsuite_bytes_eq(&store.get_range("data/big", 8 * 1024 * 1024 - 2, 5).await.unwrap(), &big[8 * 1024 * 1024 - 2..][..5]);
}

fn testsuite_bytes_eq(got: &[u8], want: &[u8]) {
    assert!(got == want, "content differs: got {} bytes, want {}", got.len(), want.len());
}

/// Dropping a `put` in the middle of a multipart upload leaves neither an object nor an
/// unfinished upload behind.
#[tokio::test(flavor = "multi_thread")]
async fn s3_seaweedfs_cancelled_multipart_leaves_nothing() {
    let sw = SeaweedFs::start();
    let store = s3_store(&sw, "cancel", "r", None).await;
    let client = store.client().clone();
    let data = random_bytes(96 * 1024 * 1024);
    let mut caught = false;
    for attempt in 0..3 {
        let key = format!("data/big-{attempt}");
        let put = store.put(&key, data.clone());
        tokio::pin!(put);
        let finished = loop {
            tokio::select! {
                r = &mut put => { r.unwrap(); break true; }
                _ = tokio::time::sleep(Duration::from_millis(10)) => {
                    let ups = client.list_multipart_uploads().bucket("cancel").send().await.unwrap();
                    if ups.uploads().iter().any(|u| u.key() == Some(&format!("r/{key}"))) {
                        break false;
                    }
                }
            }
        };
        if finished {
            eprintln!("attempt {attempt}: the put finished before an upload was seen; again");
            continue;
        }
        drop(put); // cancel mid-upload
        caught = true;
        // The guard aborts the upload in the background; whatever a racing part brought
        // back, the sweep prune runs removes it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.cleanup_incomplete(Duration::ZERO).await.unwrap();
        let ups = client.list_multipart_uploads().bucket("cancel").send().await.unwrap();
        assert!(ups.uploads().is_empty(), "an unfinished upload is left behind: {:?}", ups.uploads());
        assert_eq!(store.head(&key).await.unwrap(), None, "a cancelled put leaves no object");
        break;
    }
    assert!(caught, "never caught a multipart upload in flight");
}

/// An endpoint where nothing listens fails fast with Unreachable (after the retries).
#[tokio::test(flavor = "multi_thread")]
async fn s3_closed_port_is_unreachable() {
    let port = free_port();
    let cfg = S3Config::from_url(&format!("http://127.0.0.1:{port}/bucket/p"))
        .unwrap()
        .with_credentials("AKIDNOBODY", "nobody-secret");
    let store = S3Store::new(cfg).unwrap();
    let t = Instant::now();
    let err = store.probe().await.expect_err("probe of a closed port");
    let took = t.elapsed();
    eprintln!("closed port: {err} after {took:?}");
    assert!(matches!(err, Error::Unreachable { .. }), "expected Unreachable, got {err:?}");
    assert!(!err.is_permanent(), "Unreachable is transient");
    assert!(!err.to_string().contains("nobody-secret"));
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// Wrong secret → Denied on every operation; a missing bucket → a message saying to create it.
#[tokio::test(flavor = "multi_thread")]
async fn s3_seaweedfs_wrong_secret_and_missing_bucket() {
    let sw = SeaweedFs::start();
    let good = s3_store(&sw, "guarded", "", None).await;
    good.put("config", Bytes::from_static(b"cfg")).await.unwrap();

    let wrong = "wrong-secret-0123456789";
    let cfg = S3Config::from_url(&format!("{}/guarded", sw.endpoint())).unwrap().with_credentials(sw.access_key(), wrong);
    let bad = S3Store::new(cfg).unwrap();
    let t = Instant::now();
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("probe", bad.probe().await),
        ("put", bad.put("x", Bytes::from_static(b"x")).await),
        ("get", bad.get("config").await.map(drop)),
        ("get_range", bad.get_range("config", 0, 1).await.map(drop)),
        ("head", bad.head("config").await.map(drop)),
        ("list", bad.list("").await.map(drop)),
        ("delete", bad.delete("config").await),
    ];
    for (op, r) in results {
        match r {
            Err(e @ Error::Denied { .. }) => {
                assert!(e.is_permanent(), "{op}: Denied is permanent");
                let msg = e.to_string();
                assert!(!msg.contains(wrong) && !msg.contains(sw.secret_key()), "{op}: secret in {msg}");
                eprintln!("{op}: {msg}");
            }
            other => panic!("{op} with a wrong secret: expected Denied, got {other:?}"),
        }
    }
    assert!(t.elapsed() < Duration::from_secs(10), "Denied is not retried: {:?}", t.elapsed());
    // The object is still there for the right key.
    assert_eq!(good.get("config").await.unwrap(), Bytes::from_static(b"cfg"));

    // A bucket that does not exist (reads do not auto-create it).
    let cfg = S3Config::from_url(&format!("{}/no-such-bucket/p", sw.endpoint()))
        .unwrap()
        .with_credentials(sw.access_key(), sw.secret_key());
    let missing = S3Store::new(cfg).unwrap();
    match missing.get("config").await {
        Err(e @ Error::BadLocation { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("no-such-bucket") && msg.contains("create it"), "{msg}");
            eprintln!("missing bucket: {msg}");
        }
        other => panic!("get from a missing bucket: expected BadLocation, got {other:?}"),
    }
    match missing.list("data/").await {
        Err(Error::BadLocation { .. }) => {}
        other => panic!("list of a missing bucket: expected BadLocation, got {other:?}"),
    }
}

/// Object Lock COMPLIANCE for one day: the written version cannot be deleted, by anyone.
#[tokio::test(flavor = "multi_thread")]
async fn s3_seaweedfs_object_lock_compliance() {
    let sw = SeaweedFs::start();
    let store = s3_store(&sw, "locked", "repo", Some((LockMode::Compliance, 1))).await;
    let client = store.client();
    store.probe().await.unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let objects = [("snapshots/s1", random_bytes(1000)), ("data/big", random_bytes(20 * 1024 * 1024))];
    for (key, data) in &objects {
        store.put(key, data.clone()).await.unwrap();
        let full = store.object_key(key);
        let h = client.head_object().bucket("locked").key(&full).send().await.unwrap();
        let version = h.version_id().expect("a versioned bucket gives version ids").to_owned();
        let mode = h.object_lock_mode().map(|m| m.as_str().to_owned());
        let until = h.object_lock_retain_until_date().map(|d| d.secs());
        eprintln!("{key}: version {version}, lock {mode:?} until {until:?}");
        assert_eq!(mode.as_deref(), Some("COMPLIANCE"), "{key}: lock mode");
        let until = until.expect("a retain-until date");
        assert!((until - (now + 86_400)).abs() < 3600, "{key}: retain until {until}, now {now}");

        // The raw SDK: deleting the locked version fails…
        let del = client.delete_object().bucket("locked").key(&full).version_id(&version).send().await;
        match &del {
            Ok(out) => panic!("{key}: DeleteObject of locked version {version} succeeded: {out:?}"),
            Err(e) => eprintln!(
                "{key}: DeleteObject(version) refused: HTTP {:?} {:?}",
                e.raw_response().map(|r| r.status().as_u16()),
                e.as_service_error().map(|s| s.meta().code().unwrap_or_default().to_owned())
            ),
        }
        // …even with the governance bypass, this is COMPLIANCE.
        let del = client
            .delete_object()
            .bucket("locked")
            .key(&full)
            .version_id(&version)
            .bypass_governance_retention(true)
            .send()
            .await;
        assert!(del.is_err(), "{key}: DeleteObject with governance bypass deleted a COMPLIANCE version");

        // The store's delete only hides it behind a delete marker; the version stays readable.
        store.delete(key).await.unwrap();
        assert!(store.get(key).await.unwrap_err().is_not_found(), "{key}: hidden after delete");
        let got = client.get_object().bucket("locked").key(&full).version_id(&version).send().await.unwrap();
        let got = got.body.collect().await.unwrap().into_bytes();
        testsuite_bytes_eq(&got, data);
    }
}
