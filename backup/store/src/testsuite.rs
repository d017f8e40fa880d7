//! The contract every [`ObjectStore`] must meet, as async checks that panic on a violation.
//!
//! [`run_all`] runs every check; each check can also run alone. Every check writes under a
//! fresh random prefix (`contract-<hex>/…`) and deletes what it wrote, so the suite can run
//! any number of times on one store, also concurrently.

use bytes::Bytes;
use rand::RngCore;

use crate::{Error, ObjectMeta, ObjectStore, PutOptions};

const MIB: usize = 1024 * 1024;

/// Run every check, in order.
pub async fn run_all(store: &dyn ObjectStore) {
    describe_is_set(store).await;
    probe(store).await;
    put_get_round_trip(store).await;
    overwrite(store).await;
    if_absent(store).await;
    if_absent_large(store).await;
    get_missing(store).await;
    get_range(store).await;
    get_range_past_end(store).await;
    head(store).await;
    list(store).await;
    delete(store).await;
    cleanup_incomplete_keeps_objects(store).await;
}

/// The sweep of interrupted writes never touches a finished object, and on a store with
/// nothing interrupted it removes nothing.
pub async fn cleanup_incomplete_keeps_objects(store: &dyn ObjectStore) {
    let p = run_prefix("sweep");
    let key = format!("{p}/kept");
    store.put(&key, Bytes::from_static(b"finished object")).await.unwrap();
    store.cleanup_incomplete(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(&store.get(&key).await.unwrap()[..], b"finished object", "the sweep removed a finished object");
    cleanup(store, &p).await;
}

/// A fresh key prefix for one check.
fn run_prefix(check: &str) -> String {
    format!("contract-{:016x}/{check}", rand::random::<u64>())
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Bytes {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    Bytes::from(v)
}

/// Compare contents without dumping megabytes into the panic message.
#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes, want {} bytes; first difference at {}",
        got.len(),
        want.len(),
        first.map_or_else(|| "the end of the shorter one".to_owned(), |i| format!("offset {i}")),
    );
}

async fn cleanup(store: &dyn ObjectStore, prefix: &str) {
    for m in store.list(prefix).await.unwrap_or_default() {
        store.delete(&m.key).await.unwrap_or_else(|e| panic!("cleanup: delete {}: {e}", m.key));
    }
    let left = store.list(prefix).await.unwrap_or_default();
    assert!(left.is_empty(), "after deleting everything under {prefix}, list still returns {left:?}");
}

/// `describe` names the store.
pub async fn describe_is_set(store: &dyn ObjectStore) {
    let d = store.describe();
    assert!(d.starts_with("local:") || d.starts_with("s3:"), "describe() = {d:?}");
}

/// `probe` succeeds on a working store and leaves nothing behind.
pub async fn probe(store: &dyn ObjectStore) {
    let before = store.list("locks/").await.unwrap_or_default();
    store.probe().await.unwrap_or_else(|e| panic!("probe on {}: {e}", store.describe()));
    let after = store.list("locks/").await.unwrap_or_default();
    let leftover: Vec<_> = after.iter().filter(|m| !before.contains(m) && m.key.contains("probe")).collect();
    assert!(leftover.is_empty(), "probe left objects behind: {leftover:?}");
}

/// Objects of 0 B, 1 B, 5 MiB and 40 MiB (multipart on S3) come back byte for byte.
pub async fn put_get_round_trip(store: &dyn ObjectStore) {
    let p = run_prefix("roundtrip");
    for (name, data) in [
        ("empty", Bytes::new()),
        ("one", Bytes::from_static(b"\x00")),
        ("small", Bytes::from_static(b"hello, object store")),
        ("5mib", random_bytes(5 * MIB)),
        ("40mib", random_bytes(40 * MIB)),
    ] {
        let key = format!("{p}/data/{name}");
        store.put(&key, data.clone()).await.unwrap_or_else(|e| panic!("put {key} ({} bytes): {e}", data.len()));
        let got = store.get(&key).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
        assert_bytes(&got, &data, &format!("get {key}"));
        assert_eq!(store.head(&key).await.unwrap(), Some(data.len() as u64), "head {key}");
    }
    cleanup(store, &p).await;
}

/// A put replaces the object (bigger by smaller and the other way round).
pub async fn overwrite(store: &dyn ObjectStore) {
    let p = run_prefix("overwrite");
    let key = format!("{p}/config");
    let versions = [Bytes::from_static(b"first version"), random_bytes(100_000), Bytes::from_static(b"3rd")];
    for data in versions {
        store.put(&key, data.clone()).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert_bytes(&store.get(&key).await.unwrap(), &data, "get after overwrite");
        assert_eq!(store.head(&key).await.unwrap(), Some(data.len() as u64), "head after overwrite");
    }
    let listed = store.list(&format!("{p}/")).await.unwrap();
    assert_eq!(listed, vec![ObjectMeta { key: key.clone(), size: 3 }], "one object after overwrites");
    cleanup(store, &p).await;
}

async fn check_if_absent(store: &dyn ObjectStore, key: &str, first: Bytes, second: Bytes) {
    let opts = PutOptions { if_absent: true };
    store.put_opts(key, first.clone(), opts).await.unwrap_or_else(|e| panic!("if_absent put of a new key {key}: {e}"));
    match store.put_opts(key, second, opts).await {
        Err(Error::AlreadyExists { key: k, .. }) => assert_eq!(k, key, "AlreadyExists names the key"),
        other => panic!("second if_absent put of {key}: expected AlreadyExists, got {other:?}"),
    }
    assert_bytes(&store.get(key).await.unwrap(), &first, "the first content survives a refused if_absent put");
    assert_eq!(store.head(key).await.unwrap(), Some(first.len() as u64));
}

/// `if_absent` creates a new key and refuses an existing one, keeping the first content.
pub async fn if_absent(store: &dyn ObjectStore) {
    let p = run_prefix("if-absent");
    check_if_absent(store, &format!("{p}/locks/a"), Bytes::from_static(b"first"), Bytes::from_static(b"second!")).await;
    // A plain put still overwrites.
    let key = format!("{p}/locks/a");
    store.put(&key, Bytes::from_static(b"plain")).await.unwrap();
    assert_bytes(&store.get(&key).await.unwrap(), b"plain", "a plain put overwrites");
    cleanup(store, &p).await;
}

/// `if_absent` on objects large enough for a multipart upload (S3).
pub async fn if_absent_large(store: &dyn ObjectStore) {
    let p = run_prefix("if-absent-large");
    check_if_absent(store, &format!("{p}/data/big"), random_bytes(40 * MIB), random_bytes(40 * MIB + 1)).await;
    cleanup(store, &p).await;
}

/// Reading a missing object is NotFound.
pub async fn get_missing(store: &dyn ObjectStore) {
    let p = run_prefix("missing");
    let key = format!("{p}/data/nope");
    match store.get(&key).await {
        Err(e) => assert!(e.is_not_found(), "get of a missing key: expected NotFound, got {e:?}"),
        Ok(b) => panic!("get of a missing key returned {} bytes", b.len()),
    }
    match store.get_range(&key, 0, 10).await {
        Err(e) => assert!(e.is_not_found(), "get_range of a missing key: expected NotFound, got {e:?}"),
        Ok(b) => panic!("get_range of a missing key returned {} bytes", b.len()),
    }
}

/// `get_range` returns exactly the asked bytes, first and last byte included.
pub async fn get_range(store: &dyn ObjectStore) {
    let p = run_prefix("range");
    let key = format!("{p}/data/obj");
    let data = random_bytes(1_000_003);
    store.put(&key, data.clone()).await.unwrap();
    let n = data.len() as u64;
    for (offset, len) in [(0, 1), (0, 4096), (1, 1), (12_345, 67_890), (n - 1, 1), (n - 4096, 4096), (0, n), (n, 0), (7, 0)] {
        let got = store
            .get_range(&key, offset, len)
            .await
            .unwrap_or_else(|e| panic!("get_range({key}, {offset}, {len}) of a {n}-byte object: {e}"));
        assert_bytes(&got, &data[offset as usize..(offset + len) as usize], &format!("get_range({offset}, {len})"));
    }
    cleanup(store, &p).await;
}

/// `get_range` past the end is Integrity with the real size.
pub async fn get_range_past_end(store: &dyn ObjectStore) {
    let p = run_prefix("range-end");
    let key = format!("{p}/data/obj");
    let data = random_bytes(1000);
    store.put(&key, data).await.unwrap();
    for (offset, len) in [(990, 20), (999, 2), (1000, 1), (5000, 10), (0, 1001), (1001, 0)] {
        match store.get_range(&key, offset, len).await {
            Err(Error::Integrity { key: k, offset: o, end, size, .. }) => {
                assert_eq!((k.as_str(), o, end, size), (key.as_str(), offset, offset + len, 1000), "Integrity fields");
            }
            other => panic!("get_range({offset}, {len}) of a 1000-byte object: expected Integrity, got {other:?}"),
        }
    }
    cleanup(store, &p).await;
}

/// `head` gives sizes, and None for a missing key.
pub async fn head(store: &dyn ObjectStore) {
    let p = run_prefix("head");
    for (name, size) in [("empty", 0usize), ("one", 1), ("some", 65_537)] {
        let key = format!("{p}/{name}");
        store.put(&key, random_bytes(size)).await.unwrap();
        assert_eq!(store.head(&key).await.unwrap(), Some(size as u64), "head {key}");
    }
    assert_eq!(store.head(&format!("{p}/missing")).await.unwrap(), None, "head of a missing key");
    assert_eq!(store.head(&format!("{p}/on")).await.unwrap(), None, "head of a key that is only a prefix of another");
    cleanup(store, &p).await;
}

fn sorted(mut v: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

/// `list` returns exactly the keys under a prefix with their sizes, nothing from siblings.
pub async fn list(store: &dyn ObjectStore) {
    let p = run_prefix("list");
    let objects = [
        ("data/00/aaa", 3usize),
        ("data/00/bbb", 0),
        ("data/01/ccc", 10),
        ("data/top", 5),
        ("datax/ddd", 7),
        ("datax/00/eee", 11),
        ("index/fff", 13),
        ("config", 17),
    ];
    for (k, size) in objects {
        store.put(&format!("{p}/{k}"), random_bytes(size)).await.unwrap();
    }
    let want = |filter: &dyn Fn(&str) -> bool| {
        sorted(
            objects
                .iter()
                .filter(|(k, _)| filter(k))
                .map(|(k, s)| ObjectMeta { key: format!("{p}/{k}"), size: *s as u64 })
                .collect(),
        )
    };
    let cases: [(String, Vec<ObjectMeta>); 7] = [
        (format!("{p}/data/"), want(&|k| k.starts_with("data/"))),
        (format!("{p}/datax/"), want(&|k| k.starts_with("datax/"))),
        (format!("{p}/data/00/"), want(&|k| k.starts_with("data/00/"))),
        (format!("{p}/index/"), want(&|k| k.starts_with("index/"))),
        (format!("{p}/"), want(&|_| true)),
        (format!("{p}/snapshots/"), vec![]),
        (format!("{p}/data/0"), want(&|k| k.starts_with("data/0"))),
    ];
    for (prefix, expected) in cases {
        let got = sorted(store.list(&prefix).await.unwrap_or_else(|e| panic!("list {prefix}: {e}")));
        assert_eq!(got, expected, "list {prefix:?}");
    }
    cleanup(store, &p).await;
}

/// `delete` removes an object; deleting a missing one is fine.
pub async fn delete(store: &dyn ObjectStore) {
    let p = run_prefix("delete");
    let key = format!("{p}/snapshots/s1");
    let other = format!("{p}/snapshots/s2");
    store.put(&key, Bytes::from_static(b"snapshot")).await.unwrap();
    store.put(&other, Bytes::from_static(b"other")).await.unwrap();
    store.delete(&key).await.unwrap_or_else(|e| panic!("delete {key}: {e}"));
    match store.get(&key).await {
        Err(e) => assert!(e.is_not_found(), "get after delete: expected NotFound, got {e:?}"),
        Ok(b) => panic!("get after delete returned {} bytes", b.len()),
    }
    assert_eq!(store.head(&key).await.unwrap(), None, "head after delete");
    assert_eq!(
        store.list(&format!("{p}/")).await.unwrap(),
        vec![ObjectMeta { key: other.clone(), size: 5 }],
        "list after delete"
    );
    assert_bytes(&store.get(&other).await.unwrap(), b"other", "a sibling survives a delete");
    store.delete(&key).await.unwrap_or_else(|e| panic!("second delete of {key}: {e}"));
    store.delete(&format!("{p}/never/existed")).await.unwrap_or_else(|e| panic!("delete of a missing key: {e}"));
    cleanup(store, &p).await;
}
