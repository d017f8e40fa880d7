//! The backup engine end to end, through the `conservator repo` CLI, on a local directory and
//! on a real SeaweedFS S3 server: full cycle on a realistic media tree, streams, keys and
//! crypto-shredding, concurrency, and every failure the issue names.

use std::path::Path;

use conservator_e2e::SeaweedFs;
use conservator_e2e::cli::{Conservator, restored};
use conservator_e2e::tree::{self, TreeSpec};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_conservator");
const PW: &str = "correct horse battery staple";

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The integration cycle against one repository location.
fn full_cycle(c: &Conservator, work: &Path) {
    let src = work.join("media");
    let info = tree::media_tree(&src, &TreeSpec::realistic());
    assert!(info.files.len() > 3000 && info.bytes > 100 << 20, "{} files, {} bytes", info.files.len(), info.bytes);
    c.init();

    // 1. First backup: everything new, stored about as large as it is (incompressible media).
    let b1 = c.backup(&src);
    assert_eq!(b1["complete"], true, "{b1}");
    let s1 = &b1["summary"];
    assert_eq!(n(&s1["files_new"]), info.files.len() as u64, "{b1}");
    assert_eq!(n(&s1["total_bytes"]), info.bytes, "{b1}");
    assert_eq!(n(&s1["bytes_read"]), info.bytes, "{b1}");
    let stored1 = n(&s1["bytes_stored"]);
    assert!(stored1 <= info.bytes + info.bytes / 50, "stored {stored1} for {} bytes of media", info.bytes);
    assert!(stored1 >= info.bytes * 9 / 10, "stored {stored1} for {} bytes of incompressible media", info.bytes);
    let id1 = b1["snapshot_id"].as_str().unwrap().to_string();

    // 2. Restore: byte-identical with metadata.
    let t1 = work.join("restore1");
    let r1 = c.restore(&id1, &t1);
    assert_eq!(n(&r1["summary"]["total_bytes"]), info.bytes);
    tree::assert_same_tree(&src, &restored(&t1, &src));

    // 3. A 2 % change stores about that much, and unchanged files are not read.
    let written = tree::change_share(&src, &info, 0.02, 99);
    let b2 = c.backup(&src);
    let s2 = &b2["summary"];
    assert_eq!(b2["parent"].as_str(), Some(id1.as_str()), "{b2}");
    let total2 = n(&s2["total_bytes"]);
    let added = n(&s2["bytes_added"]);
    let stored2 = n(&s2["bytes_stored"]);
    eprintln!("2% change: wrote {written} bytes; backup added {added}, stored {stored2} of {total2} ({:.2}%)", stored2 as f64 * 100.0 / total2 as f64);
    assert!(added >= written * 95 / 100, "added {added} < changed {written}");
    assert!(stored2 <= total2 * 4 / 100, "a 2% change stored {stored2} of {total2} bytes (> 4%)");
    assert!(n(&s2["files_unchanged"]) > 2900, "{b2}");
    assert!(n(&s2["bytes_read"]) < total2 / 2, "unchanged files were read: {b2}");
    let id2 = b2["snapshot_id"].as_str().unwrap().to_string();

    // 4. Restore the new snapshot fresh, and onto the old restore (only differences rewritten).
    let t2 = work.join("restore2");
    c.restore(&id2, &t2);
    tree::assert_same_tree(&src, &restored(&t2, &src));
    let over = c.restore(&id2, &t1);
    let wrote = n(&over["summary"]["bytes_written"]);
    assert!(wrote < total2 / 10, "restoring onto the previous tree rewrote {wrote} of {total2} bytes: {over}");
    assert!(n(&over["summary"]["files_unchanged"]) > 2900, "{over}");
    let left: Vec<String> = tree::diff(&src, &restored(&t1, &src));
    assert!(
        left.iter().all(|p| p.starts_with("unexpected: ") && p.ends_with("_thumbnail.jpg")),
        "after restoring onto the old tree, only the files deleted since may remain extra: {left:#?}"
    );

    // 5. check --read-data is clean and read everything.
    let rep = c.check_clean();
    assert_eq!(n(&rep["snapshots"]), 2);
    assert_eq!(n(&rep["packs_read"]), n(&rep["packs"]));

    // 6. forget + prune, then the kept snapshot still restores identically.
    let plan = c.json(["forget", "--keep-last", "1", "--dry-run"]);
    let dec = plan["decisions"].as_array().unwrap();
    assert_eq!(dec.len(), 2);
    assert_eq!(c.json(["snapshots"]).as_array().unwrap().len(), 2, "a dry run changed something");
    let before = c.json(["stats"]);
    c.ok(["forget", "--keep-last", "1", "--prune", "--repack-unused", "0"]);
    let snaps = c.json(["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["id"].as_str(), Some(id2.as_str()));
    let after = c.json(["stats"]);
    assert!(
        n(&after["stored_bytes"]) < n(&before["stored_bytes"]),
        "prune freed nothing: before {before}, after {after}"
    );
    c.check_clean();
    let t3 = work.join("restore3");
    c.restore("latest", &t3);
    tree::assert_same_tree(&src, &restored(&t3, &src));
}

#[test]
fn full_cycle_local() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let c = Conservator::new(BIN, repo.to_str().unwrap(), PW);
    full_cycle(&c, work.path());
}

#[test]
fn full_cycle_s3_seaweedfs() {
    let sw = SeaweedFs::start();
    let work = tempfile::tempdir().unwrap();
    let c = Conservator::new(BIN, &format!("s3:{}/backups/tenants/ca-1a2b3c4d", sw.endpoint()), PW)
        .env("AWS_ACCESS_KEY_ID", sw.access_key())
        .env("AWS_SECRET_ACCESS_KEY", sw.secret_key());
    full_cycle(&c, work.path());
}

/// A stream from a child's stdout round-trips; a failing command makes an incomplete snapshot
/// (exit 3) that `latest` never picks.
#[test]
fn streams_complete_and_failed() {
    let work = tempfile::tempdir().unwrap();
    let c = Conservator::new(BIN, work.path().join("repo").to_str().unwrap(), PW);
    c.init();
    let dump = work.path().join("dump.sql");
    let mut sql = String::new();
    for i in 0..60_000 {
        sql.push_str(&format!("INSERT INTO `ca_objects` VALUES ({i},'2019.{i}','Untitled object {i}',NULL,0x{:08x});\n", i * 7919));
    }
    sql.push_str("-- Dump completed on 2026-12-03 10:00:00\n");
    std::fs::write(&dump, &sql).unwrap();
    let good = c.json(["backup", "--stream", "db.sql", "--tag", "tenant=ca-1a2b3c4d", "--", "cat", dump.to_str().unwrap()]);
    assert_eq!(good["complete"], true, "{good}");
    assert_eq!(n(&good["streams"][0]["size"]), sql.len() as u64);
    assert!(n(&good["summary"]["bytes_stored"]) < sql.len() as u64 / 3, "SQL text must compress: {good}");
    let good_id = good["snapshot_id"].as_str().unwrap().to_string();

    let bad = c.run([
        "--json",
        "backup",
        "--stream",
        "db.sql",
        "--tag",
        "tenant=ca-1a2b3c4d",
        "--",
        "sh",
        "-c",
        "head -c 100000 \"$0\"; echo 'mariadb-dump: Error 2013: Lost connection to server during query' >&2; exit 2",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 3, "a failed stream must exit 3: {bad}");
    let v = bad.json();
    assert_eq!(v["complete"], false);
    assert_eq!(v["streams"][0]["exit_code"], 2);
    assert!(bad.stderr.contains("Lost connection"), "the command's own error must be shown: {bad}");

    // latest is the good one; the stream restores byte for byte.
    let latest = c.run(["restore", "latest", "--stream", "db.sql"]);
    assert_eq!(latest.code, 0, "{latest}");
    assert!(latest.stdout == sql, "restored stream differs ({} vs {} bytes)", latest.stdout.len(), sql.len());
    assert!(latest.stderr.contains(&good_id[..8]), "{latest}");
    let snaps = c.json(["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().iter().filter(|s| s["complete"] == false).count(), 1);

    // Paths and a stream together: the stream starts first and the walk waits for its first
    // chunk, so a file the stream's command writes before any output is in the snapshot (a
    // dump's consistent point comes before the media walk: no row names a missing file).
    let media = work.path().join("media");
    std::fs::create_dir_all(media.join("images/0")).unwrap();
    std::fs::write(media.join("images/0/old.jpg"), vec![7u8; 10_000]).unwrap();
    let both = c.json([
        "backup",
        media.to_str().unwrap(),
        "--stream",
        "db.sql",
        "--",
        "sh",
        "-c",
        "sleep 0.5; echo new > \"$1/images/0/written-at-dump-start.jpg\"; cat \"$0\"",
        dump.to_str().unwrap(),
        media.to_str().unwrap(),
    ]);
    assert_eq!(both["complete"], true, "{both}");
    let t = work.path().join("both");
    let r = c.json(["restore", both["snapshot_id"].as_str().unwrap(), "--target", t.to_str().unwrap()]);
    assert!(n(&r["summary"]["files"]) == 2, "{r}");
    assert!(restored(&t, &media).join("images/0/written-at-dump-start.jpg").is_file(), "the walk ran before the stream started");

    // A command that cannot start is an error, not a snapshot.
    let r = c.run(["backup", "--stream", "db.sql", "--", "/nonexistent/mariadb-dump"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("/nonexistent/mariadb-dump"), "{r}");
}

/// Keys: several can open the repository; a repository's key never opens another tenant's;
/// removing the last key (crypto-shredding) leaves nothing readable by anyone.
#[test]
fn keys_and_crypto_shredding() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("media");
    tree::media_tree(&src, &TreeSpec { small_files: 50, large_files: vec![], seed: 3 });
    let repo_a = work.path().join("ca-aaaa");
    let repo_b = work.path().join("ca-bbbb");
    let a = Conservator::new(BIN, repo_a.to_str().unwrap(), "tenant A passphrase");
    let b = Conservator::new(BIN, repo_b.to_str().unwrap(), "tenant B passphrase");
    a.init();
    b.init();
    a.backup(&src);
    b.backup(&src);

    // A second key: a key file.
    let keygen = a.ok(["key", "generate"]);
    let keyfile = work.path().join("a.key");
    std::fs::write(&keyfile, &keygen.stdout).unwrap();
    assert!(keygen.stdout.starts_with("conservator-key-v1:"));
    let added = a.json(["key", "add", "--label", "ops", "--new-key-file", keyfile.to_str().unwrap()]);
    let key2 = added["key_id"].as_str().unwrap().to_string();
    let by_file = Conservator::new(BIN, repo_a.to_str().unwrap(), "unused").env_remove("CONSERVATOR_PASSWORD").env("CONSERVATOR_KEY", keygen.stdout.trim());
    assert_eq!(by_file.json(["snapshots"]).as_array().unwrap().len(), 1);
    let keys = a.json(["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");

    // Tenant A's secrets do not open tenant B's repository.
    let cross = Conservator::new(BIN, repo_b.to_str().unwrap(), "tenant A passphrase");
    let r = cross.run(["snapshots"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("wrong passphrase or key"), "{r}");

    // Removing one key keeps the other working; the last one needs --shred.
    let first = keys.as_array().unwrap().iter().find(|k| k["id"].as_str() != Some(&key2)).unwrap()["id"].as_str().unwrap().to_string();
    a.ok(["key", "remove", &first]);
    assert_ne!(a.run(["snapshots"]).code, 0, "the removed passphrase still opens the repository");
    let refuse = by_file.run(["key", "remove", &key2]);
    assert_ne!(refuse.code, 0, "removing the last key must need --shred: {refuse}");
    assert!(refuse.stderr.contains("--shred"), "{refuse}");
    by_file.ok(["key", "remove", &key2, "--shred"]);
    for who in [&a, &by_file] {
        let r = who.run(["snapshots"]);
        assert_ne!(r.code, 0, "after shredding, the repository must not open: {r}");
    }
    // No object left in the repository decrypts to anything readable: the data is still there
    // (packs, snapshots) but no key record remains to unwrap the master key.
    let keys_left = std::fs::read_dir(repo_a.join("keys")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(keys_left, 0, "key records remain after shredding");
    let packs = walk_files(&repo_a.join("data"));
    assert!(!packs.is_empty());
    for p in &packs {
        let bytes = std::fs::read(p).unwrap();
        assert!(!contains(&bytes, b"ca_object_representations") && !contains(&bytes, b"xmpmeta"), "plaintext in {}", p.display());
    }
    // Tenant B is untouched.
    assert_eq!(b.json(["snapshots"]).as_array().unwrap().len(), 1);
    b.check_clean();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk_files(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Two backups at once, and a prune while a backup runs: nothing lost.
#[test]
fn concurrent_backups_and_prune() {
    let work = tempfile::tempdir().unwrap();
    let c = Conservator::new(BIN, work.path().join("repo").to_str().unwrap(), PW);
    c.init();
    let s1 = work.path().join("one");
    let s2 = work.path().join("two");
    tree::media_tree(&s1, &TreeSpec::small(1));
    tree::media_tree(&s2, &TreeSpec::small(2));
    c.backup(&s1);
    c.backup(&s1); // a second snapshot of s1 to forget below
    // Start two backups together.
    let p1 = c.command([std::ffi::OsStr::new("--json"), "backup".as_ref(), s1.as_os_str()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let p2 = c.command([std::ffi::OsStr::new("--json"), "backup".as_ref(), s2.as_os_str()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let o1 = p1.wait_with_output().unwrap();
    let o2 = p2.wait_with_output().unwrap();
    assert!(o1.status.success() && o2.status.success(), "{o1:?} {o2:?}");
    // forget the older s1 snapshots, then prune while a new backup of s2 (changed) runs.
    c.ok(["forget", "--keep-last", "1"]);
    assert_eq!(c.json(["snapshots"]).as_array().unwrap().len(), 2, "one snapshot per source is kept");
    std::fs::write(s2.join("new-during-prune.bin"), vec![7u8; 3 << 20]).unwrap();
    let pb = c.command([std::ffi::OsStr::new("--json"), "backup".as_ref(), s2.as_os_str()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pp = c.command(["prune"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let ob = pb.wait_with_output().unwrap();
    let op = pp.wait_with_output().unwrap();
    assert!(ob.status.success(), "backup during prune failed: {ob:?}");
    assert!(op.status.success(), "prune during backup failed: {op:?}");
    c.check_clean();
    let t = work.path().join("t");
    c.restore("latest", &t);
    tree::assert_same_tree(&s2, &restored(&t, &s2));
}
