//! The main job, end to end: real Collective Access tenants (the real CA schema, rows and
//! media made by `conservator-cagen`) in private MariaDB servers, backed up by
//! `conservator tenant backup` / `conservator daemon` into local and SeaweedFS S3
//! repositories, and restored under new names, proven by `CHECKSUM TABLE` and file
//! comparison.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conservator_cagen::mariadb::MariaDb;
use conservator_cagen::{Target, TenantSpec, create, day};
use conservator_e2e::SeaweedFs;
use conservator_e2e::tree;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_conservator");

/// One tenant made in a server: its spec, database and CA root.
struct Tenant {
    id: String,
    spec: TenantSpec,
    database: String,
    ca_root: PathBuf,
}

impl Tenant {
    fn make(db: &MariaDb, dir: &Path, hex: &str, seed: u64) -> Tenant {
        Tenant::make_with(db, dir, hex, TenantSpec { seed, ..TenantSpec::small() })
    }
    /// A tenant of ~60 MB (200 objects, 50 MB of media) whose day brings ~4 uploads (~60 files).
    fn make_medium(db: &MariaDb, dir: &Path, hex: &str, seed: u64) -> Tenant {
        Tenant::make_with(db, dir, hex, TenantSpec { seed, objects: 200, media_bytes: 50_000_000, new_media_per_day: 4, ..TenantSpec::small() })
    }
    fn make_with(db: &MariaDb, dir: &Path, hex: &str, spec: TenantSpec) -> Tenant {
        let spec = TenantSpec { app_name: format!("tenant_{hex}"), ..spec };
        let database = format!("ca_{hex}");
        let ca_root = dir.join(format!("ca-{hex}"));
        let client = db.client_args();
        let t = Target { mariadb: &client, database: &database, ca_root: &ca_root };
        let made = create(&spec, &t).unwrap();
        assert_eq!(made.tables, 235);
        assert!(made.media_files > 50, "{} media files", made.media_files);
        Tenant { id: format!("ca-{hex}"), spec, database, ca_root }
    }
    fn media(&self) -> PathBuf {
        self.ca_root.join("media").join(&self.spec.app_name)
    }
    fn day(&self, db: &MariaDb, n: u32) -> conservator_cagen::Report {
        let client = db.client_args();
        day(&self.spec, &Target { mariadb: &client, database: &self.database, ca_root: &self.ca_root }, n).unwrap()
    }
    /// Its `[[tenant]]` block, connecting as root over the server's socket.
    fn toml(&self, db: &MariaDb, extra: &str) -> String {
        format!(
            "[[tenant]]\nid = \"{}\"\nplan = \"pro\"\nmedia = \"{}\"\nextra_paths = [\"{}\", \"{}\"]\n{extra}\n\
             [tenant.database]\nsocket = \"{}\"\nuser = \"root\"\nschema = \"{}\"\n",
            self.id,
            self.media().display(),
            self.ca_root.join("setup.php").display(),
            self.ca_root.join("app/conf/local").display(),
            db.socket().display(),
            self.database
        )
    }
}

/// A config file and the `conservator` commands that use it.
struct Daemon {
    config: PathBuf,
    env: Vec<(String, String)>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl Daemon {
    fn new(dir: &Path, body: &str) -> Daemon {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let config = dir.join(format!("conservator-{}.toml", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        std::fs::write(&config, format!("version = 1\n{body}")).unwrap();
        Daemon { config, env: Vec::new() }
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).arg("--config").arg(&self.config).arg("--no-progress");
        c.envs(self.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Out {
        let o = self.command(args).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.run(&a);
        assert_eq!(o.code, 0, "conservator {}: {o}", args.join(" "));
        o.json()
    }
    fn backup(&self, tenant: &str) -> Value {
        let v = self.json(&["tenant", "backup", tenant]);
        assert_eq!(v["status"], "succeeded", "{v}");
        v
    }
}

/// `CHECKSUM TABLE` of every table of `database`, by table name.
fn checksums(db: &MariaDb, database: &str) -> BTreeMap<String, String> {
    let tables = db.query(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}' AND table_type = 'BASE TABLE' ORDER BY 1"
    ));
    let list: Vec<String> = tables.lines().map(|t| format!("`{database}`.`{t}`")).collect();
    let out = db.query(&format!("CHECKSUM TABLE {}", list.join(", ")));
    out.lines()
        .map(|l| {
            let (name, sum) = l.split_once('\t').unwrap();
            (name.rsplit('.').next().unwrap().to_string(), sum.to_string())
        })
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Back up a tenant, restore it under a new name, prove it equal; then a realistic day and a
/// second backup that stores less than 5 % of the first.
fn backup_restore_day(d: &Daemon, db: &MariaDb, t: &Tenant, work: &Path) {
    let b1 = d.backup(&t.id);
    assert_eq!(n(&b1["schema_revision"]), 212, "{b1}");
    let gtid = b1["gtid"].as_str().unwrap_or_else(|| panic!("no GTID recorded: {b1}"));
    assert!(gtid.starts_with("0-1-"), "{b1}");
    assert!(b1["binlog_file"].as_str().unwrap().starts_with("mysql-bin."), "{b1}");
    assert!(n(&b1["db_bytes"]) > 500_000, "{b1}");
    let media_bytes: u64 = tree::listing(&t.media()).values().map(|e| if let tree::Entry::File { size, .. } = e { *size } else { 0 }).sum();
    assert!(n(&b1["media_bytes"]) >= media_bytes, "{b1}: media is {media_bytes} bytes");

    // Restore under a new database name and a new media directory.
    let media2 = work.join("restored-media");
    let r = d.json(&["tenant", "restore", &t.id, "--database", "ca_restored", "--media-dir", media2.to_str().unwrap()]);
    assert_eq!(r["database"], "ca_restored");
    let a = checksums(db, &t.database);
    let b = checksums(db, "ca_restored");
    assert_eq!(a.len(), 235, "{a:?}");
    assert_eq!(a, b, "table checksums differ after restore");
    tree::assert_same_tree(&t.media(), &media2);
    // The configuration came back too.
    let extra = PathBuf::from(r["extra_paths_dir"].as_str().unwrap());
    let setup = std::fs::read(t.ca_root.join("setup.php")).unwrap();
    assert_eq!(std::fs::read(extra.join(t.ca_root.join("setup.php").strip_prefix("/").unwrap())).unwrap(), setup);

    // A realistic day: ~1 % of rows changed, new uploads; the next backup stores < 5 %.
    let day1 = t.day(db, 1);
    assert!(day1.rows_updated > 0 && day1.media_files >= 50, "{day1:?}");
    let b2 = d.backup(&t.id);
    let (s1, s2) = (n(&b1["bytes_stored"]), n(&b2["bytes_stored"]));
    eprintln!(
        "first backup stored {s1} bytes; after a day ({} rows updated, {} new media files, {} bytes) the second stored {s2} ({:.2} %)",
        day1.rows_updated,
        day1.media_files,
        day1.media_bytes,
        s2 as f64 * 100.0 / s1 as f64
    );
    assert!(s2 * 20 < s1, "the daily backup stored {s2} bytes, not under 5 % of the first's {s1}");
    assert!(s2 >= day1.media_bytes / 2, "the day's {} new media bytes were not stored ({s2})", day1.media_bytes);
    let runs = d.json(&["tenant", "runs", &t.id]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.iter().filter(|r| r["kind"] == "backup" && r["status"] == "succeeded").count(), 2, "{runs:?}");
}

#[test]
fn tenant_backup_restore_under_new_name_and_daily_backup_local() {
    let work = tempfile::tempdir().unwrap();
    let db = MariaDb::start();
    let t = Tenant::make_medium(&db, work.path(), "1a2b3c4d", 1);
    let d = Daemon::new(work.path(), &format!("[daemon]\nstate_dir = \"{}\"\n{}", work.path().join("state").display(), t.toml(&db, "")));
    backup_restore_day(&d, &db, &t, work.path());
    // The key file is private to the daemon.
    use std::os::unix::fs::PermissionsExt;
    let key = work.path().join("state/keys").join(format!("{}.key", t.id));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn tenant_backup_restore_under_new_name_and_daily_backup_s3_seaweedfs() {
    let work = tempfile::tempdir().unwrap();
    let sw = SeaweedFs::start();
    let db = MariaDb::start();
    let t = Tenant::make_medium(&db, work.path(), "00ff00ff", 2);
    let mut d = Daemon::new(
        work.path(),
        &format!(
            "[daemon]\nstate_dir = \"{}\"\n[repository]\nlocation = \"s3:{}/tenants/eu\"\n{}",
            work.path().join("state").display(),
            sw.endpoint(),
            t.toml(&db, "")
        ),
    );
    d.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), sw.access_key().into()),
        ("AWS_SECRET_ACCESS_KEY".into(), sw.secret_key().into()),
    ];
    // As on the platform: over TCP, as a user with a password (from a file), not root.
    let password = "pw-7Hq2-never-printed";
    db.create_user("conservator", password, "*").unwrap();
    db.query("GRANT ALL PRIVILEGES ON *.* TO 'conservator'@'%'; GRANT ALL PRIVILEGES ON *.* TO 'conservator'@'localhost'");
    std::fs::write(work.path().join("db-password"), format!("{password}\n")).unwrap();
    let tcp = format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"conservator\"\npassword_file = \"{}\"\n",
        db.port(),
        work.path().join("db-password").display()
    );
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replace(&format!("socket = \"{}\"\nuser = \"root\"\n", db.socket().display()), &tcp);
    assert!(text.contains("password_file"), "{text}");
    std::fs::write(&d.config, text).unwrap();
    backup_restore_day(&d, &db, &t, work.path());
    assert!(!work.path().join("state/repositories").exists(), "nothing is written locally when the repository is S3");
    // Neither the database password nor the S3 secret shows anywhere.
    for args in [&["tenant", "runs", "--json"][..], &["tenant", "snapshots", &t.id, "--json"], &["tenant", "list", "--json"]] {
        let o = d.run(args);
        assert_eq!(o.code, 0, "{o}");
        for secret in [password, sw.secret_key()] {
            assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret), "a secret leaked in {args:?}: {o}");
        }
    }
    let catalog = std::fs::read(work.path().join("state/catalog.db")).unwrap();
    assert!(!catalog.windows(password.len()).any(|w| w == password.as_bytes()), "the password is in the catalog");
}

/// In place, after confirmation: a safety backup of the live state first, then the live
/// database and media replaced by the snapshot's; the live media kept aside.
#[test]
fn restore_in_place_needs_confirmation_and_keeps_a_safety_backup() {
    let work = tempfile::tempdir().unwrap();
    let db = MariaDb::start();
    let t = Tenant::make(&db, work.path(), "abcdef01", 5);
    // keep_last = 1: were retention applied after the safety backup, it would forget and prune
    // the very snapshot being restored.
    let retention = "[tenant.retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n";
    let block = t.toml(&db, "").replacen("[tenant.database]", &format!("{retention}[tenant.database]"), 1);
    let d = Daemon::new(work.path(), &format!("[daemon]\nstate_dir = \"{}\"\n{block}", work.path().join("state").display()));
    let b1 = d.backup(&t.id);
    let id1 = b1["snapshot_id"].as_str().unwrap().to_string();
    let sums1 = checksums(&db, &t.database);
    let media1 = tree::listing(&t.media());
    // A day of use changes both.
    t.day(&db, 1);
    let sums2 = checksums(&db, &t.database);
    assert_ne!(sums1, sums2);
    // Without confirmation nothing happens.
    let o = d.run(&["tenant", "restore", &t.id, "--snapshot", &id1[..10], "--in-place"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains(&format!("--confirm {}", t.id)), "{o}");
    let o = d.run(&["tenant", "restore", &t.id, "--snapshot", &id1[..10], "--in-place", "--confirm", "ca-00000000"]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(checksums(&db, &t.database), sums2, "an unconfirmed restore changed the database");
    // Confirmed.
    let r = d.json(&["tenant", "restore", &t.id, "--snapshot", &id1[..10], "--in-place", "--confirm", &t.id]);
    assert_eq!(r["database"], t.database.as_str());
    assert_eq!(checksums(&db, &t.database), sums1, "the live database is not the snapshot's");
    assert_eq!(tree::listing(&t.media()), media1, "the live media is not the snapshot's");
    // The state just before is kept: as a snapshot, and the media moved aside.
    let safety = r["safety_snapshot"].as_str().unwrap();
    let aside = PathBuf::from(r["previous_media"].as_str().unwrap());
    assert!(aside.is_dir() && tree::listing(&aside).len() > media1.len(), "{r}");
    let snaps = d.json(&["tenant", "snapshots", &t.id]);
    assert!(snaps.as_array().unwrap().iter().any(|s| s["id"] == safety && s["complete"] == true), "{snaps}");
    // ... and it restores: the day's state comes back under a new name.
    let r2 = d.json(&["tenant", "restore", &t.id, "--snapshot", &safety[..10], "--database", "ca_day1", "--media-dir", work.path().join("m-day1").to_str().unwrap()]);
    assert_eq!(r2["snapshot_id"], safety);
    assert_eq!(checksums(&db, "ca_day1"), sums2);
}

/// Views, triggers, routines and events whose bodies and definers name the old database still
/// work when the tenant is restored under a new name.
#[test]
fn restore_under_new_name_rewrites_views_triggers_routines_events_and_definers() {
    let work = tempfile::tempdir().unwrap();
    let db = MariaDb::start();
    let t = Tenant::make(&db, work.path(), "0badcafe", 3);
    let old = &t.database;
    db.query(&format!(
        "CREATE USER 'ca_admin'@'localhost'; GRANT ALL ON `{old}`.* TO 'ca_admin'@'localhost';
         USE `{old}`;
         CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, object_id INT, note VARCHAR(255));
         CREATE DEFINER='ca_admin'@'localhost' VIEW live_objects AS SELECT o.object_id, o.idno FROM `{old}`.ca_objects o WHERE o.deleted = 0;
         CREATE DEFINER='ca_admin'@'localhost' TRIGGER objects_audit AFTER UPDATE ON ca_objects FOR EACH ROW
             INSERT INTO `{old}`.audit_log (object_id, note) VALUES (NEW.object_id, CONCAT('{old}: ', NEW.idno));
         CREATE DEFINER='ca_admin'@'localhost' FUNCTION live_count() RETURNS INT READS SQL DATA
             RETURN (SELECT COUNT(*) FROM `{old}`.ca_objects WHERE deleted = 0);
         CREATE DEFINER='ca_admin'@'localhost' PROCEDURE touch_object(IN oid INT)
             UPDATE {old}.ca_objects SET idno = CONCAT(idno, '') WHERE object_id = oid;
         CREATE DEFINER='ca_admin'@'localhost' EVENT purge_audit ON SCHEDULE EVERY 1 DAY DISABLE
             DO DELETE FROM `{old}`.audit_log WHERE id < 0;
         INSERT INTO audit_log (object_id, note) VALUES (0, 'a row that names {old}.ca_objects and `{old}` stays as it was');"
    ));
    let d = Daemon::new(work.path(), &format!("[daemon]\nstate_dir = \"{}\"\n{}", work.path().join("state").display(), t.toml(&db, "")));
    d.backup(&t.id);
    // The old database is dropped (as if lost): nothing may lean on it.
    db.query(&format!("DROP DATABASE `{old}`"));
    let media2 = work.path().join("m2");
    let r = d.json(&["tenant", "restore", &t.id, "--database", "ca_newname", "--media-dir", media2.to_str().unwrap()]);
    assert!(n(&r["renamed"]["references_rewritten"]) >= 4, "{r}");
    assert!(n(&r["renamed"]["definers_rewritten"]) >= 5, "{r}");
    let q = |sql: &str| db.query(&format!("USE ca_newname; {sql}"));
    let live: u64 = q("SELECT COUNT(*) FROM ca_objects WHERE deleted = 0").parse().unwrap();
    assert!(live > 0);
    assert_eq!(q("SELECT COUNT(*) FROM live_objects").parse::<u64>().unwrap(), live, "the view works");
    assert_eq!(q("SELECT live_count()").parse::<u64>().unwrap(), live, "the function works");
    let oid = q("SELECT MIN(object_id) FROM ca_objects");
    q(&format!("CALL touch_object({oid})"));
    assert_eq!(q(&format!("SELECT COUNT(*) FROM audit_log WHERE object_id = {oid}")), "1", "the procedure and the trigger work");
    assert_eq!(q("SELECT COUNT(*) FROM information_schema.events WHERE event_schema = 'ca_newname'"), "1");
    for (what, sql) in [
        ("view", "SHOW CREATE VIEW live_objects"),
        ("trigger", "SHOW CREATE TRIGGER objects_audit"),
        ("function", "SHOW CREATE FUNCTION live_count"),
        ("procedure", "SHOW CREATE PROCEDURE touch_object"),
        ("event", "SHOW CREATE EVENT purge_audit"),
    ] {
        let def = q(sql);
        // As an identifier (a string literal that happens to hold the name stays as it was).
        assert!(!def.contains(&format!("`{old}`")) && !def.contains(&format!("{old}.")), "the {what} still names {old}: {def}");
        assert!(!def.contains("ca_admin"), "the {what} keeps the old definer: {def}");
    }
    assert_eq!(
        q("SELECT note FROM audit_log WHERE object_id = 0"),
        format!("a row that names {old}.ca_objects and `{old}` stays as it was"),
        "row data is never rewritten"
    );
}

/// A `dump_tool` wrapper around the real `mariadb-dump`.
fn wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\nset -o pipefail\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Each way a dump fails is a failed backup with its cause; the previous good snapshot stays
/// latest; the incomplete one is never restored.
#[test]
fn failing_dumps_are_failed_backups_with_their_cause() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let db = MariaDb::start();
    let t = Tenant::make(&db, w, "feedf00d", 4);
    let state = w.join("state");
    let cfg = |dump_tool: &str, user: &str, extra_db: &str| {
        let block = t.toml(&db, "").replace("user = \"root\"", &format!("user = \"{user}\"{extra_db}"));
        format!("[daemon]\nstate_dir = \"{}\"\n[defaults]\ndump_tool = \"{dump_tool}\"\n{block}", state.display())
    };
    let good = Daemon::new(w, &cfg("mariadb-dump", "root", ""));
    let first = good.backup(&t.id);
    let good_id = first["snapshot_id"].as_str().unwrap().to_string();

    let check_failed = |d: &Daemon, cause: &[&str]| -> String {
        let o = d.run(&["tenant", "backup", &t.id, "--json"]);
        assert_ne!(o.code, 0, "a failed dump must not exit 0: {o}");
        let v = o.json();
        assert_eq!(v["status"], "failed", "{o}");
        let err = v["error"].as_str().unwrap().to_string();
        for c in cause {
            assert!(err.contains(c), "the error does not name the cause {c:?}: {err}");
        }
        // The catalog says so too, and `latest` is still the good snapshot.
        let runs = good.json(&["tenant", "runs", &t.id, "--limit", "1"]);
        assert_eq!(runs[0]["status"], "failed", "{runs}");
        assert_eq!(runs[0]["error"].as_str().unwrap(), err);
        let snaps = good.json(&["tenant", "snapshots", &t.id]);
        let last_complete = snaps.as_array().unwrap().iter().rev().find(|s| s["complete"] == true).unwrap();
        assert_eq!(last_complete["id"], good_id.as_str());
        // The incomplete snapshot, when one was written, is refused as a restore point.
        if let Some(bad) = v["snapshot_id"].as_str() {
            let o = good.run(&["tenant", "restore", &t.id, "--snapshot", &bad[..12], "--database", "ca_never"]);
            assert_ne!(o.code, 0, "{o}");
            assert!(o.stderr.contains("incomplete"), "{o}");
            assert_eq!(db.query("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'ca_never'"), "0");
        }
        err
    };

    // 1. A missing privilege: a user that may only SELECT cannot dump the events.
    db.query(&format!(
        "CREATE USER 'reader'@'localhost'; GRANT SELECT ON `{}`.* TO 'reader'@'localhost'",
        t.database
    ));
    check_failed(&Daemon::new(w, &cfg("mariadb-dump", "reader", "")), &["Access denied", "show events"]);

    // 2. A row over max_allowed_packet.
    db.query(&format!(
        "SET GLOBAL max_allowed_packet = 67108864; CREATE TABLE `{0}`.big_blob (id INT PRIMARY KEY, b LONGBLOB);",
        t.database
    ));
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} --no-defaults --socket={} -uroot --max-allowed-packet=64M -e \"INSERT INTO {}.big_blob VALUES (1, REPEAT('x', 30*1024*1024))\"",
            "mariadb",
            db.socket().display(),
            t.database
        ))
        .status()
        .unwrap();
    check_failed(&good, &["Lost connection", "big_blob", "max_allowed_packet"]);
    db.query(&format!("DROP TABLE `{}`.big_blob", t.database));

    // 3. A dump killed halfway (SIGKILL).
    let killed = wrapper(w, "killed-dump", "mariadb-dump \"$@\" | head -c 300000\nkill -KILL $$");
    check_failed(&Daemon::new(w, &cfg(killed.to_str().unwrap(), "root", "")), &["SIGKILL"]);

    // 4. A stream cut short although the tool says 0: no completion trailer.
    let cut = wrapper(w, "cut-dump", "mariadb-dump \"$@\" | head -c 300000\nexit 0");
    check_failed(&Daemon::new(w, &cfg(cut.to_str().unwrap(), "root", "")), &["no completion trailer"]);

    // 5. The server goes away in the middle of the dump.
    let mark = w.join("dump-started");
    let go = w.join("server-gone");
    let pausing = wrapper(
        w,
        "pausing-dump",
        &format!(
            "mariadb-dump \"$@\" | {{ head -c 65536; touch {}; while [ ! -e {} ]; do sleep 0.05; done; cat; }}",
            mark.display(),
            go.display()
        ),
    );
    // A table large enough that the dump is still reading it when the server dies.
    db.query(&format!(
        "CREATE TABLE `{0}`.zz_filler (id INT PRIMARY KEY, t TEXT); INSERT INTO `{0}`.zz_filler SELECT seq, REPEAT(MD5(seq), 60) FROM `{0}`.seq_1_to_40000",
        t.database
    ));
    let d = Daemon::new(w, &cfg(pausing.to_str().unwrap(), "root", ""));
    let mut child = d.command(&["tenant", "backup", &t.id, "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the dump never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let socket = db.socket();
    drop(db); // kills the server
    std::fs::write(&go, b"").unwrap();
    let out = wait_output(&mut child);
    assert_ne!(out.code, 0, "{out}");
    let v = out.json();
    assert_eq!(v["status"], "failed", "{out}");
    let err = v["error"].as_str().unwrap();
    // mariadb-dump names the lost connection when the server dies during a query; once (in
    // 5 runs here) it exited 2 without a word when the server died between two statements:
    // then its exit status is the cause given. Never a success, never a restore point.
    assert!(
        err.contains("Lost connection") || err.contains("server has gone away") || err.contains("exited with exit status: 2"),
        "{err}"
    );
    assert!(v["snapshot_id"].is_null() || err.contains("kept as incomplete"), "{err}");
    assert!(!socket.exists() || std::os::unix::net::UnixStream::connect(&socket).is_err());
}

fn wait_output(child: &mut Child) -> Out {
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    Out { code: status.code().unwrap_or(-1), stdout, stderr }
}

/// Bad configuration stops the daemon at start, every problem listed.
#[test]
fn bad_configuration_stops_the_daemon_with_every_problem() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("media")).unwrap();
    // All four at once: an unknown field, a missing secret, an unreachable database and an
    // unwritable repository, every one listed by one start.
    let blocker = w.join("not-a-dir");
    std::fs::write(&blocker, b"a file").unwrap();
    let dead_port = conservator_e2e::free_port();
    let d = Daemon::new(
        w,
        &format!(
            "[daemon]\nstate_dir = \"{0}/state\"\nlisten_adress = \"127.0.0.1:1\"\n[repository]\nlocation = \"{1}/repos\"\n\
             [[tenant]]\nid = \"ca-1a2b3c4d\"\nplan = \"pro\"\nmedia = \"{0}/media\"\n\
             [tenant.database]\nhost = \"127.0.0.1\"\nport = {dead_port}\nuser = \"ca_1a2b3c4d\"\npassword_env = \"CA_1A2B3C4D_DB_PASSWORD\"\nschema = \"ca_1a2b3c4d\"\n",
            w.display(),
            blocker.display()
        ),
    );
    let o = d.run(&["daemon"]);
    assert_eq!(o.code, 1, "{o}");
    for needle in [
        "unknown field `listen_adress`",
        "missing secret",
        "CA_1A2B3C4D_DB_PASSWORD",
        &format!("database unreachable at 127.0.0.1:{dead_port}"),
        "not-a-dir/repos",
        "4 problem(s)",
    ] {
        assert!(o.stderr.contains(needle), "{needle:?} not in: {o}");
    }
    let o = d.run(&["config", "check"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("4 problem(s)"), "{o}");
    // A valid file: the start-time problems, with the login checked too.
    let port = conservator_e2e::free_port();
    let mut d = Daemon::new(
        w,
        &format!(
            "[daemon]\nstate_dir = \"{0}/state\"\nlisten = \"127.0.0.1:{1}\"\n[repository]\nlocation = \"{2}/repos\"\n\
             [[tenant]]\nid = \"ca-1a2b3c4d\"\nplan = \"pro\"\nmedia = \"{0}/media\"\n\
             [tenant.database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ca_1a2b3c4d\"\npassword_env = \"CA_1A2B3C4D_DB_PASSWORD\"\nschema = \"ca_1a2b3c4d\"\n",
            w.display(),
            conservator_e2e::free_port(),
            blocker.display()
        ),
    );
    d.env.push(("CA_1A2B3C4D_DB_PASSWORD".into(), "pw-that-must-not-leak".into()));
    let o = d.run(&["daemon"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("2 problem(s)"), "{o}");
    assert!(o.stderr.contains("repository") && o.stderr.contains("not-a-dir"), "{o}");
    assert!(o.stderr.contains("database unreachable") && o.stderr.contains(&format!("{port}")), "{o}");
    assert!(!o.stderr.contains("pw-that-must-not-leak"), "a secret leaked: {o}");
    assert!(!std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let code = body.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default()))
}

fn metric(text: &str, name: &str, tenant: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("tenant=\"{tenant}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `repo check --read-data` of every tenant's repository (under the daemon's state dir) is clean.
fn check_repos(w: &Path, tenants: &[Tenant]) {
    for t in tenants {
        let check = Command::new(BIN)
            .args(["repo", "--json", "--no-progress", "check", "--read-data"])
            .env("CONSERVATOR_REPO", w.join("state/repositories").join(&t.id))
            .env("CONSERVATOR_KEY_FILE", w.join("state/keys").join(format!("{}.key", t.id)))
            .output()
            .unwrap();
        assert!(check.status.success(), "tenant {} repository check: {}", t.id, String::from_utf8_lossy(&check.stdout));
    }
}

fn sigterm(child: &Child) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with plain integers.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Three tenants on fast schedules: the concurrency limit holds, retention is applied,
/// SIGTERM during a backup leaves catalog and repositories consistent, the next start resumes.
#[test]
fn daemon_runs_three_tenants_on_schedule_and_stops_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let db = MariaDb::start();
    let tenants: Vec<Tenant> =
        ["11111111", "22222222", "33333333"].iter().enumerate().map(|(i, h)| Tenant::make(&db, w, h, 10 + i as u64)).collect();
    let port = conservator_e2e::free_port();
    let addr = format!("127.0.0.1:{port}");
    let blocks: String = tenants.iter().map(|t| t.toml(&db, "schedule = \"*/3 * * * * *\"")).collect();
    let d = Daemon::new(
        w,
        &format!(
            "[daemon]\nstate_dir = \"{}\"\nlisten = \"{addr}\"\nmax_concurrent_backups = 2\njitter_secs = 0\nshutdown_grace_secs = 20\n\
             [defaults.retention]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n{blocks}",
            w.join("state").display()
        ),
    );
    let start = || d.command(&["daemon"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut child = start();
    let deadline = Instant::now() + Duration::from_secs(240);
    // Run until every tenant has at least 3 successful backups (so retention had work).
    loop {
        if Instant::now() > deadline {
            sigterm(&child);
            panic!("the daemon did not make 3 backups per tenant in time: {}", wait_output(&mut child));
        }
        let runs = d.json(&["tenant", "runs", "--limit", "1000"]);
        let ok = |t: &Tenant| runs.as_array().unwrap().iter().filter(|r| r["tenant"] == t.id.as_str() && r["status"] == "succeeded").count();
        if tenants.iter().all(|t| ok(t) >= 3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, health) = http_get(&addr, "/healthz").unwrap();
    assert_eq!((code, health.trim()), (200, "ok"));
    let (_, text) = http_get(&addr, "/metrics").unwrap();
    for t in &tenants {
        let ts = metric(&text, "conservator_backup_last_success_timestamp_seconds", &t.id).unwrap();
        assert!(ts > 1.7e9, "{text}");
        assert!(metric(&text, "conservator_backup_last_duration_seconds", &t.id).unwrap() > 0.0);
        assert!(metric(&text, "conservator_backup_last_stored_bytes", &t.id).is_some());
    }
    assert!(text.contains("conservator_tenants 3"), "{text}");

    // SIGTERM while a backup runs: wait for one to be running, then stop.
    let t0 = Instant::now();
    loop {
        let (_, text) = http_get(&addr, "/metrics").unwrap();
        if text.lines().any(|l| l.starts_with("conservator_backups_running ") && !l.ends_with(" 0")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no backup was seen running");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    let stopped = Instant::now();
    let out = wait_output(&mut child);
    assert_eq!(out.code, 0, "{out}");
    assert!(stopped.elapsed() < Duration::from_secs(90), "shutdown took {:?}", stopped.elapsed());
    assert!(out.stderr.contains("stopped"), "{out}");

    // The catalog: no run left `running`, and never more than 2 backups at once.
    let runs = d.json(&["tenant", "runs", "--limit", "1000"]);
    let runs = runs.as_array().unwrap();
    assert!(runs.iter().all(|r| r["status"] != "running" && r["status"] != "interrupted"), "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] != "failed"), "{runs:#?}");
    let mut edges: Vec<(String, i32)> = Vec::new();
    for r in runs {
        edges.push((r["started_at"].as_str().unwrap().to_string(), 1));
        edges.push((r["finished_at"].as_str().unwrap().to_string(), -1));
    }
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0, 0);
    for (_, e) in &edges {
        now += e;
        max = max.max(now);
    }
    assert!(max <= 2, "{max} backups ran at once with max_concurrent_backups = 2");
    assert_eq!(max, 2, "the limit was never reached: the test proves nothing about it");

    // Retention: at most keep_last = 2 complete snapshots per tenant (plus incomplete ones).
    for t in &tenants {
        let snaps = d.json(&["tenant", "snapshots", &t.id]);
        let complete = snaps.as_array().unwrap().iter().filter(|s| s["complete"] == true).count();
        assert!((1..=2).contains(&complete), "tenant {}: {complete} snapshots kept with keep_last = 2", t.id);
    }
    check_repos(w, &tenants);

    // The next start resumes: new successful runs for every tenant. This time with no grace
    // (an environment override of the file): SIGTERM cancels the running backups at once.
    for round in 0..2 {
        let before = d.json(&["tenant", "runs", "--limit", "1000"]).as_array().unwrap().len();
        let mut child = d
            .command(&["daemon"])
            .env("CONSERVATOR_DAEMON_SHUTDOWN_GRACE_SECS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            let runs = d.json(&["tenant", "runs", "--limit", "1000"]);
            let all = runs.as_array().unwrap();
            let new = &all[..all.len() - before];
            let running = new.iter().any(|r| r["status"] == "running");
            if running && tenants.iter().all(|t| new.iter().any(|r| r["tenant"] == t.id.as_str() && r["status"] == "succeeded")) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(90), "round {round}: the restarted daemon made no new backups: {new:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        sigterm(&child);
        let stopped = Instant::now();
        let out = wait_output(&mut child);
        assert_eq!(out.code, 0, "{out}");
        assert!(stopped.elapsed() < Duration::from_secs(30), "cancelling took {:?}", stopped.elapsed());
        let runs = d.json(&["tenant", "runs", "--limit", "1000"]);
        let all = runs.as_array().unwrap();
        let new = &all[..all.len() - before];
        assert!(
            new.iter().all(|r| r["status"] == "succeeded" || r["status"] == "cancelled"),
            "round {round}: every run ends succeeded or cancelled: {new:#?}"
        );
        if let Some(c) = new.iter().find(|r| r["status"] == "cancelled") {
            assert!(c["error"].as_str().unwrap().contains("cancelled"), "{c}");
        }
        check_repos(w, &tenants);
    }
}
