//! Makes tenants in a private MariaDB server and checks them: schema, users, representations
//! against the files on disk, determinism, and what a day changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use conservator_cagen::mariadb::MariaDb;
use conservator_cagen::{Target, TenantSpec, create, day, decode_media_column};
use md5::{Digest, Md5};

const DB: &str = "ca_1a2b3c4d";

fn q(db: &MariaDb, sql: &str) -> String {
    db.query(&format!("USE {DB}; {sql}"))
}

/// Every file under `dir`, relative, with its size.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), e.metadata().unwrap().len());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Checks every representation's media column against the files; returns the listed paths.
fn check_media(db: &MariaDb, media_root: &Path) -> BTreeSet<String> {
    let out = q(db, "SELECT representation_id, md5, HEX(media) FROM ca_object_representations ORDER BY representation_id");
    let mut listed = BTreeSet::new();
    let mut reps = 0;
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "{line}");
        let media = hex::decode(cols[2]).unwrap();
        let versions = decode_media_column(&media).unwrap_or_else(|e| panic!("representation {}: {e:#}", cols[0]));
        assert!(versions.len() >= 14, "representation {} lists {} versions", cols[0], versions.len());
        let original = versions.iter().find(|v| v.version == "original").expect("an original");
        assert_eq!(original.md5, cols[1], "md5 column of representation {}", cols[0]);
        for v in &versions {
            let data = std::fs::read(media_root.join(&v.path)).unwrap_or_else(|e| panic!("{}: {e}", v.path));
            assert_eq!(data.len() as u64, v.filesize, "size of {}", v.path);
            assert_eq!(hex::encode(Md5::digest(&data)), v.md5, "md5 of {}", v.path);
            assert!(listed.insert(v.path.clone()), "{} listed twice", v.path);
        }
        reps += 1;
    }
    assert!(reps > 0, "no representations");
    listed
}

#[test]
fn small_tenant_has_schema_users_and_media_that_match_the_rows() {
    let db = MariaDb::start();
    let root = tempfile::tempdir().unwrap();
    let client = db.client_args();
    let t = Target { mariadb: &client, database: DB, ca_root: root.path() };
    let spec = TenantSpec::small();
    let report = create(&spec, &t).unwrap();
    eprintln!("create (small): {:.1} s, {} rows, {} media files, {} bytes", report.seconds, report.rows, report.media_files, report.media_bytes);

    // Schema as the fixture leaves it.
    assert_eq!(q(&db, &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{DB}'")), "235");
    assert_eq!(report.tables, 235);
    assert_eq!(q(&db, "SELECT MAX(version_num) FROM ca_schema_updates"), "212");
    assert_eq!(q(&db, &format!("SELECT DEFAULT_COLLATION_NAME FROM information_schema.schemata WHERE schema_name = '{DB}'")), "utf8mb4_general_ci");

    // Users of every class, seats in use.
    let classes = q(&db, "SELECT CONCAT(userclass, '/', active) FROM ca_users GROUP BY userclass, active ORDER BY userclass, active");
    for c in ["0/0", "0/1"] {
        assert!(classes.lines().any(|l| l == c), "no users {c}: {classes}");
    }
    for c in ["1/", "255/"] {
        assert!(classes.lines().any(|l| l.starts_with(c)), "no users of class {c}: {classes}");
    }
    assert_eq!(q(&db, "SELECT COUNT(*) FROM ca_users WHERE password NOT LIKE '$2y$10$%' OR email NOT LIKE '%@%'"), "0");

    // Objects, labels, attributes, logins, sessions.
    assert_eq!(q(&db, "SELECT COUNT(*) FROM ca_objects"), spec.objects.to_string());
    let deleted: u64 = q(&db, "SELECT COUNT(*) FROM ca_objects WHERE deleted = 1").parse().unwrap();
    assert!((1..10).contains(&deleted), "{deleted} deleted objects");
    assert_eq!(q(&db, "SELECT COUNT(*) FROM ca_objects o LEFT JOIN ca_object_labels l ON l.object_id = o.object_id AND l.is_preferred = 1 WHERE l.label_id IS NULL"), "0");
    assert!(q(&db, "SELECT MIN(idno) FROM ca_objects").contains('.'));
    let values: u64 = q(&db, "SELECT COUNT(*) FROM ca_attribute_values").parse().unwrap();
    assert!(values > spec.objects as u64 * 4, "{values} attribute values");
    assert!(q(&db, "SELECT COUNT(*) FROM ca_eventlog WHERE code = 'LOGN'").parse::<u64>().unwrap() > 100);
    assert!(q(&db, "SELECT COUNT(*) FROM ca_persistent_cache WHERE namespace = 'SessionVars'").parse::<u64>().unwrap() > 10);
    assert!(q(&db, "SELECT COUNT(*) FROM ca_change_log").parse::<u64>().unwrap() > spec.objects as u64);

    // Every listed file exists with its size and md5, and nothing else is in the volumes.
    let media_root = root.path().join("media").join(&spec.app_name);
    let listed = check_media(&db, &media_root);
    let on_disk = files(&media_root);
    assert_eq!(on_disk.keys().cloned().collect::<BTreeSet<_>>(), listed);
    assert_eq!(report.media_files, listed.len());
    assert_eq!(report.media_bytes, on_disk.values().sum::<u64>());
    assert!(report.media_bytes > 3_000_000 && report.media_bytes < 8_000_000, "{} media bytes", report.media_bytes);
    for ext in [".tiff", ".jpg", ".png", ".pdf", ".tpc"] {
        assert!(listed.iter().any(|p| p.ends_with(ext)), "no {ext} file");
    }
    assert!(listed.iter().all(|p| p.starts_with("images/0/") || p.starts_with("tilepics/0/")), "ids < 100 live in folder 0");

    // Configuration and scratch files.
    let setup = std::fs::read_to_string(root.path().join("setup.php")).unwrap();
    assert!(setup.contains("define(\"__CA_APP_NAME__\", \"tenant_1a2b3c4d\")") && setup.contains("__CA_DB_DATABASE__"));
    assert!(root.path().join("app/conf/local/app.conf").is_file());
    assert!(files(&root.path().join("app/tmp")).len() > 10);
    assert!(!files(&root.path().join("app/log")).is_empty());
}

#[test]
fn the_same_seed_makes_the_same_tenant() {
    let db = MariaDb::start();
    let client = db.client_args();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut spec = TenantSpec::small();
    spec.objects = 25;
    spec.media_bytes = 1_500_000;
    create(&spec, &Target { mariadb: &client, database: "ca_aaaaaaaa", ca_root: a.path() }).unwrap();
    create(&spec, &Target { mariadb: &client, database: "ca_bbbbbbbb", ca_root: b.path() }).unwrap();
    let tables = "ca_objects, ca_object_labels, ca_attributes, ca_attribute_values, ca_object_representations, ca_users, ca_eventlog, ca_persistent_cache, ca_change_log_snapshots";
    let sums = |d: &str| -> Vec<String> {
        db.query(&format!("USE {d}; CHECKSUM TABLE {tables}")).lines().map(|l| l.split('\t').nth(1).unwrap_or("").to_string()).collect()
    };
    assert_eq!(sums("ca_aaaaaaaa"), sums("ca_bbbbbbbb"));
    let media = |p: &Path| {
        let root = p.join("media").join(&spec.app_name);
        files(&root).into_keys().map(|f| (hex::encode(Md5::digest(std::fs::read(root.join(&f)).unwrap())), f)).collect::<Vec<_>>()
    };
    assert_eq!(media(a.path()), media(b.path()));

    // Refuses to overwrite.
    let again = create(&spec, &Target { mariadb: &client, database: "ca_cccccccc", ca_root: a.path() });
    assert!(format!("{:#}", again.unwrap_err()).contains("already has files"));
}

/// `table`'s rows as primary key → md5 of all columns.
fn row_hashes(db: &MariaDb, table: &str, pk: &str) -> BTreeMap<String, String> {
    let cols = db.query(&format!(
        "SELECT GROUP_CONCAT(CONCAT('`', column_name, '`') ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = '{DB}' AND table_name = '{table}'"
    ));
    q(db, &format!("SELECT {pk}, MD5(CONCAT_WS(0x1f, {cols})) FROM {table}"))
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn a_day_changes_about_one_percent_and_adds_media() {
    let db = MariaDb::start();
    let root = tempfile::tempdir().unwrap();
    let client = db.client_args();
    let t = Target { mariadb: &client, database: DB, ca_root: root.path() };
    let mut spec = TenantSpec::small();
    spec.objects = 200;
    create(&spec, &t).unwrap();
    let media_root = root.path().join("media").join(&spec.app_name);
    let tables = [("ca_objects", "object_id"), ("ca_object_labels", "label_id"), ("ca_attribute_values", "value_id")];
    let before: Vec<_> = tables.iter().map(|(t, pk)| row_hashes(&db, t, pk)).collect();
    let files_before = files(&media_root);
    let reps_before: u64 = q(&db, "SELECT COUNT(*) FROM ca_object_representations").parse().unwrap();
    let logins_before: u64 = q(&db, "SELECT COUNT(*) FROM ca_eventlog WHERE code = 'LOGN'").parse().unwrap();

    let report = day(&spec, &t, 1).unwrap();
    eprintln!("day 1: {:.1} s, {} inserted, {} updated, {} deleted, {} media files", report.seconds, report.rows_inserted, report.rows_updated, report.rows_deleted, report.media_files);

    for ((table, pk), before) in tables.iter().zip(&before) {
        let after = row_hashes(&db, table, pk);
        assert_eq!(after.len(), before.len(), "{table}: rows were added or removed");
        let changed = after.iter().filter(|(k, v)| before.get(*k) != Some(v)).count();
        let share = changed as f64 / before.len() as f64;
        eprintln!("{table}: {changed} of {} rows changed ({:.2} %)", before.len(), share * 100.0);
        assert!((0.005..=0.02).contains(&share), "{table}: {changed} of {} rows changed", before.len());
        assert_eq!(changed as u64, report.rows_by_table[*table].updated, "{table}");
    }
    let reps_after: u64 = q(&db, "SELECT COUNT(*) FROM ca_object_representations").parse().unwrap();
    assert_eq!(reps_after, reps_before + spec.new_media_per_day as u64);
    assert_eq!(report.representations, spec.new_media_per_day);
    let logins_after: u64 = q(&db, "SELECT COUNT(*) FROM ca_eventlog WHERE code = 'LOGN'").parse().unwrap();
    assert!(logins_after > logins_before, "no logins on day 1");
    let day_start = spec.now;
    assert!(q(&db, &format!("SELECT COUNT(*) FROM ca_persistent_cache WHERE updated_on > {day_start}")).parse::<u64>().unwrap() > 0);

    // The new files: all listed by the rows, none of the old ones touched.
    let listed = check_media(&db, &media_root);
    let files_after = files(&media_root);
    assert_eq!(files_after.keys().cloned().collect::<BTreeSet<_>>(), listed);
    let new: Vec<_> = files_after.keys().filter(|k| !files_before.contains_key(*k)).collect();
    assert_eq!(new.len(), report.media_files);
    assert!(new.len() >= spec.new_media_per_day * 14);
    for (k, size) in &files_before {
        assert_eq!(files_after.get(k), Some(size), "{k} changed");
    }
    // A second day goes on from there.
    let d2 = day(&spec, &t, 2).unwrap();
    assert_eq!(d2.representations, spec.new_media_per_day);
}
