//! A generator of realistic Collective Access (CA) tenants, for conservator's integration
//! tests, demo and benchmarks.
//!
//! A tenant is what the platform hosts for one customer (see `shared/PLATFORM.md`):
//!
//! * a MariaDB database with the real Providence 2.0.12 schema (revision 212, 235 tables,
//!   loaded from [`schema_path`]) and rows that satisfy every foreign key: locales, lists,
//!   metadata elements, users of every class, catalogued objects with labels and attribute
//!   values, representations whose `media` column lists their files, the login event log, web
//!   sessions, the change log and GUIDs;
//! * the media volume `<ca root>/media/<app name>/` with real TIFF, JPEG, PNG and PDF originals,
//!   CA's derivatives (`icon` … `page`) and tile pyramids, laid out as CA lays them out;
//! * `setup.php` and `app/conf/local/*.conf`, and scratch files in `app/tmp` and `app/log`
//!   (which a backup should leave out).
//!
//! [`create`] makes a tenant, [`day`] simulates a day of use (about 1 % of objects, labels and
//! attribute values updated, new logins and sessions, new uploads). Everything random comes
//! from the spec's seed: the same spec gives the same rows and the same file bytes.
//!
//! ```no_run
//! use conservator_cagen::{TenantSpec, Target, create, day, mariadb::MariaDb};
//! let db = MariaDb::start();
//! let root = tempfile::tempdir().unwrap();
//! let client = db.client_args();
//! let t = Target { mariadb: &client, database: "ca_1a2b3c4d", ca_root: root.path() };
//! let spec = TenantSpec::small();
//! let made = create(&spec, &t).unwrap();
//! let day1 = day(&spec, &t, 1).unwrap();
//! println!("{} rows, {} media files; day 1 updated {} rows", made.rows, made.media_files, day1.rows_updated);
//! ```

pub mod config;
pub mod mariadb;
pub mod media;
pub mod php;
pub mod rows;
pub mod sql;
pub mod text;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::seq::SliceRandom;

pub use media::{MediaVersion, decode_media_column};

use media::{OriginalKind, Upload, UploadPlan};
use php::Php;
use rows::{Catalog, NextIds, RepPlan, User, element, rng_for, table_num};
use sql::{Row, SqlWriter};

/// The default "now" of a tenant: 2026-11-01 00:00:00 UTC. History is generated before it and
/// day `n` happens in the 24 hours before `now + n` days.
pub const DEFAULT_NOW: u64 = 1_793_491_200;

/// Target size of one upload (original plus derivatives) in large tenants.
const AVG_UPLOAD_BYTES: u64 = 8 << 20;
/// Database bytes (data and indexes, as `information_schema` counts them; on disk about 1.4×)
/// per object, its share of the event log, sessions and change log included (measured: 12 kB,
/// of which 5 kB are SQL text).
const DB_BYTES_PER_OBJECT: u64 = 12_000;
/// Data and index bytes of the empty CA schema (`information_schema`; 46 MB on disk).
const DB_EMPTY_BYTES: u64 = 23_000_000;
/// How far back a tenant's history goes.
const HISTORY_SECS: u64 = 4 * 365 * 86_400;

/// What tenant to make.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TenantSpec {
    /// CA app name, `tenant_<8 hex>`: the media subdirectory.
    pub app_name: String,
    /// Number of catalogued objects (the database grows with it: about 12 kB on disk per object).
    pub objects: usize,
    /// Target total size of the media volume in bytes (approximate).
    pub media_bytes: u64,
    /// Number of CA user accounts (every class appears from 4 on).
    pub users: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// The tenant's "now" in unix seconds (see [`DEFAULT_NOW`]).
    pub now: u64,
    /// Uploads (new representations, each with its ~15 files) made by each [`day`].
    pub new_media_per_day: usize,
    /// Threads that make media files (0: one per CPU).
    pub threads: usize,
}

impl TenantSpec {
    /// A small tenant for tests: 40 objects, ~5 MB of media in 8 uploads, 8 users, 5 uploads a
    /// day. Made in a few seconds plus the schema load.
    pub fn small() -> Self {
        TenantSpec {
            app_name: "tenant_1a2b3c4d".into(),
            objects: 40,
            media_bytes: 5_000_000,
            users: 8,
            seed: 1,
            now: DEFAULT_NOW,
            new_media_per_day: 5,
            threads: 0,
        }
    }

    /// A tenant of about `total_bytes`: 20 % database (data and indexes: the empty schema's
    /// 23 MB plus about 12 kB per object), 80 % media (uploads of about 8 MiB); 50 uploads a
    /// day.
    pub fn sized(total_bytes: u64) -> Self {
        let db = total_bytes / 5;
        let objects = ((db.saturating_sub(DB_EMPTY_BYTES) / DB_BYTES_PER_OBJECT) as usize).max(40);
        TenantSpec {
            app_name: "tenant_1a2b3c4d".into(),
            objects,
            media_bytes: total_bytes - db,
            users: (objects / 1500 + 6).min(300),
            seed: 1,
            now: DEFAULT_NOW,
            new_media_per_day: 50,
            threads: 0,
        }
    }

    fn threads(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) }
    }
}

/// Where to put a tenant.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The client command line, e.g. `["mariadb", "--no-defaults", "--socket=/x/sock", "-uroot"]`;
    /// the database name is appended when needed.
    pub mariadb: &'a [String],
    /// The database (schema) name, e.g. `ca_1a2b3c4d`.
    pub database: &'a str,
    /// The CA root directory (`setup.php`, `app/`, `media/` inside).
    pub ca_root: &'a Path,
}

impl Target<'_> {
    /// `<ca root>/media/<app name>`.
    pub fn media_root(&self, spec: &TenantSpec) -> PathBuf {
        self.ca_root.join("media").join(&spec.app_name)
    }
}

/// Rows written to one table.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TableCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// What [`create`] or [`day`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// `create` or `day`.
    pub command: String,
    pub database: String,
    pub app_name: String,
    /// The day number (for `day`).
    pub day: Option<u32>,
    /// Tables in the database afterwards (235 for CA 2.0.12).
    pub tables: usize,
    /// Rows inserted, updated and deleted, all together.
    pub rows: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    /// Per table.
    pub rows_by_table: BTreeMap<String, TableCounts>,
    /// Bytes of SQL sent to the server (rows only, not the schema).
    pub sql_bytes: u64,
    /// Data and index bytes of the database afterwards, as `information_schema` estimates them.
    pub database_bytes: u64,
    /// Objects in the database afterwards.
    pub objects: usize,
    /// Representations (uploads) made by this call.
    pub representations: usize,
    /// Users in the database afterwards.
    pub users: usize,
    /// Media files written by this call and their bytes.
    pub media_files: usize,
    pub media_bytes: u64,
    /// `setup.php` and `app/conf/local/*` files written.
    pub config_files: usize,
    /// Scratch files written into `app/tmp` and `app/log` (not to be backed up).
    pub scratch_files: usize,
    pub scratch_bytes: u64,
    /// `<ca root>/media/<app name>`.
    pub media_root: PathBuf,
    /// Wall time of the call.
    pub seconds: f64,
}

impl Report {
    fn add_counts(&mut self, c: &sql::Counts) {
        for (t, n) in &c.inserted {
            self.rows_by_table.entry(t.clone()).or_default().inserted += n;
            self.rows_inserted += n;
        }
        for (t, n) in &c.updated {
            self.rows_by_table.entry(t.clone()).or_default().updated += n;
            self.rows_updated += n;
        }
        for (t, n) in &c.deleted {
            self.rows_by_table.entry(t.clone()).or_default().deleted += n;
            self.rows_deleted += n;
        }
        self.rows = self.rows_inserted + self.rows_updated + self.rows_deleted;
        self.sql_bytes += c.bytes;
    }

    fn add_uploads(&mut self, uploads: &[Upload]) {
        self.representations += uploads.len();
        for u in uploads {
            self.media_files += u.files.len();
            self.media_bytes += u.bytes();
        }
    }
}

/// The CA schema file: `$CA_SCHEMA`, else `shared/fixtures/collectiveaccess/schema_mysql.sql`
/// beside the workspace.
pub fn schema_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CA_SCHEMA") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/collectiveaccess/schema_mysql.sql");
    p.canonicalize().unwrap_or(p)
}

fn check_name(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{what} {s:?} must be 1 to 64 letters, digits or underscores");
    }
    Ok(())
}

/// Makes a tenant: creates the database (`utf8mb4_general_ci`; it must not exist yet), loads
/// the schema, inserts the rows, writes the media volume (which must be empty or absent), the
/// configuration and the scratch files.
pub fn create(spec: &TenantSpec, t: &Target) -> Result<Report> {
    let started = Instant::now();
    check_name("app name", &spec.app_name)?;
    check_name("database name", t.database)?;
    let schema = schema_path();
    if !schema.is_file() {
        bail!("the CA schema {} is missing (set CA_SCHEMA to its path)", schema.display());
    }
    let media_root = t.media_root(spec);
    if media_root.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
        bail!("{} already has files: a tenant is made into an empty media directory", media_root.display());
    }
    std::fs::create_dir_all(&media_root).with_context(|| format!("creating {}", media_root.display()))?;
    for v in [media::VOLUME_IMAGES, media::VOLUME_TILEPICS, "workspace"] {
        std::fs::create_dir_all(media_root.join(v)).with_context(|| format!("creating {}", media_root.join(v).display()))?;
    }

    // Plan everything up front, from the seed.
    let now = spec.now;
    let cat = Catalog::standard();
    let users = rows::plan_users(&mut rng_for(spec.seed, 2), spec.users, &spec.app_name);
    let user_list: Vec<User> = users.iter().map(|u| u.0.clone()).collect();
    let staff: Vec<u32> = user_list.iter().filter(|u| u.userclass == 0).map(|u| u.id).collect();
    let objects = rows::plan_objects(&mut rng_for(spec.seed, 3), spec.objects.max(1), now, HISTORY_SECS);
    let reps = plan_representations(spec, &cat, &objects, &mut rng_for(spec.seed, 4), now);
    let upload_plans: Vec<UploadPlan> = reps.iter().map(|r| r.upload.clone()).collect();

    let mut report = Report {
        command: "create".into(),
        database: t.database.to_string(),
        app_name: spec.app_name.clone(),
        media_root: media_root.clone(),
        ..Report::default()
    };

    sql::query(t.mariadb, None, &format!("CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", t.database))
        .with_context(|| format!("creating database {}", t.database))?;

    // Media files are made on worker threads while the server loads the schema and the rows.
    let abort = AtomicBool::new(false);
    let threads = spec.threads();
    let mut counts = None;
    let mut uploads_made: Option<Vec<Upload>> = None;
    let loaded: Result<()> = std::thread::scope(|s| {
        let mut handle = Some(s.spawn(|| media::make_uploads(&upload_plans, &media_root, threads, &abort)));
        let r = (|| -> Result<()> {
            load_schema(t, &schema)?;
            sql::run_script(t.mariadb, Some(t.database), "inserting the tenant's rows", |client| {
                let mut w = SqlWriter::begin(client)?;
                let mut ids = NextIds::default();
                rows::write_reference(&mut w, &cat)?;
                rows::write_users(&mut w, &mut rng_for(spec.seed, 5), &users, now, HISTORY_SECS)?;
                rows::write_objects(&mut w, &mut rng_for(spec.seed, 6), &cat, &objects, &staff, &mut ids)?;
                let events = spec.objects * 3 / 2 + spec.users * 40;
                rows::write_eventlog(&mut w, &mut rng_for(spec.seed, 7), &user_list, events, now - HISTORY_SECS, now)?;
                let sessions = spec.objects / 8 + spec.users * 3;
                rows::write_sessions(&mut w, &mut rng_for(spec.seed, 8), &user_list, sessions, now, 14 * 86_400, objects.len() as u32)?;
                rows::write_app_vars(&mut w, now)?;
                let uploads = match handle.take().map(|h| h.join()) {
                    Some(Ok(r)) => r?,
                    Some(Err(_)) => bail!("a media thread panicked"),
                    None => bail!("internal error: media joined twice"),
                };
                rows::write_representations(&mut w, &mut rng_for(spec.seed, 9), &reps, &uploads, &staff, &mut ids)?;
                uploads_made = Some(uploads);
                let (_, c) = w.commit()?;
                counts = Some(c);
                Ok(())
            })
        })();
        if let Some(h) = handle.take() {
            abort.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        r
    });
    loaded?;
    if let Some(c) = &counts {
        report.add_counts(c);
    }
    if let Some(u) = &uploads_made {
        report.add_uploads(u);
    }

    let display = format!("{} Collections", text::pick(&mut rng_for(spec.seed, 10), text::PLACES));
    let conf = config::write_config(t.ca_root, &spec.app_name, t.database, &display)?;
    report.config_files = conf.files;
    let scratch_budget = (spec.media_bytes / 100).clamp(200_000, 32 << 20);
    let junk = config::write_junk(t.ca_root, &mut rng_for(spec.seed, 11), scratch_budget, now)?;
    report.scratch_files = junk.files;
    report.scratch_bytes = junk.bytes;

    fill_totals(&mut report, t)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn load_schema(t: &Target, schema: &Path) -> Result<()> {
    sql::run_script(t.mariadb, Some(t.database), "loading the CA schema", |client| {
        client.write_all(b"SET NAMES utf8mb4;\n")?;
        let mut f = std::fs::File::open(schema).with_context(|| format!("opening {}", schema.display()))?;
        std::io::copy(&mut f, client).context("sending the schema to the mariadb client")?;
        Ok(())
    })
    .with_context(|| format!("loading {}", schema.display()))
}

fn fill_totals(report: &mut Report, t: &Target) -> Result<()> {
    // Fresh statistics, so that information_schema's sizes are current (not binlogged).
    sql::query(
        t.mariadb,
        Some(t.database),
        "ANALYZE NO_WRITE_TO_BINLOG TABLE ca_attribute_values, ca_attributes, ca_objects, ca_object_labels, ca_persistent_cache, \
         ca_change_log, ca_change_log_subjects, ca_change_log_snapshots, ca_eventlog, ca_guids, ca_object_representations",
    )?;
    let db = sql::quote(t.database);
    let out = sql::query(
        t.mariadb,
        Some(t.database),
        &format!(
            "SELECT COUNT(*), COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = {db}; \
             SELECT COUNT(*) FROM ca_objects; SELECT COUNT(*) FROM ca_users"
        ),
    )?;
    let vals: Vec<u64> = out.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    if vals.len() == 4 {
        report.tables = vals[0] as usize;
        report.database_bytes = vals[1];
        report.objects = vals[2] as usize;
        report.users = vals[3] as usize;
    }
    Ok(())
}

/// Number of uploads of a tenant.
fn representation_count(spec: &TenantSpec) -> usize {
    let by_size = (spec.media_bytes / AVG_UPLOAD_BYTES) as usize;
    by_size.max(8.min(spec.objects)).min(spec.objects * 2).max(1)
}

/// Size of an original for an upload of `total` bytes (original, derivatives, tiles).
fn original_for_upload(kind: OriginalKind, total: u64, seed: u64) -> u64 {
    let mut orig = total.saturating_mul(2) / 3;
    for _ in 0..4 {
        orig = total.saturating_sub(media::overhead_estimate(kind, orig, seed)).max(30_000);
    }
    orig
}

fn plan_representations(spec: &TenantSpec, cat: &Catalog, objects: &[rows::Object], rng: &mut rand::rngs::StdRng, now: u64) -> Vec<RepPlan> {
    let n = representation_count(spec);
    // Most uploads go to distinct objects; the rest add back views and details.
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.shuffle(rng);
    let distinct = n.min((objects.len() * 4 / 5).max(1));
    let mut targets: Vec<usize> = order[..distinct].to_vec();
    while targets.len() < n {
        let extra = targets[rng.gen_range(0..distinct)];
        targets.push(extra);
    }
    targets.sort_unstable();
    let weights: Vec<f64> = (0..n).map(|_| 0.3 + rng.r#gen::<f64>() * 1.4).collect();
    let wsum: f64 = weights.iter().sum();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    for (i, (&oi, w)) in targets.iter().zip(&weights).enumerate() {
        let o = &objects[oi];
        let kind = rows::pick_kind(rng, i);
        let total = (spec.media_bytes as f64 * w / wsum) as u64;
        let seed: u64 = rng.r#gen();
        let uploaded_at = (o.created + rng.gen_range(60..30 * 86_400)).min(now - 60);
        let first = seen.insert(o.id);
        out.push(RepPlan {
            object_id: o.id,
            is_primary: first,
            deleted: o.deleted,
            type_id: if first { cat.representation_types()[0] } else { *cat.representation_types().choose(rng).unwrap_or(&1) },
            upload: UploadPlan {
                representation_id: i as u32 + 1,
                kind,
                original_bytes: original_for_upload(kind, total, seed),
                seed,
                uploaded_at,
                idno: o.idno.clone(),
            },
        });
    }
    out
}

/// A `query` result as rows of numbers (non-numbers become 0).
fn numbers(out: &str) -> Vec<Vec<u64>> {
    sql::rows(out).map(|r| r.iter().map(|v| v.parse().unwrap_or(0)).collect()).collect()
}

fn sample<T: Clone>(rng: &mut rand::rngs::StdRng, items: &[T], n: usize) -> Vec<T> {
    rand::seq::index::sample(rng, items.len(), n.min(items.len())).into_iter().map(|i| items[i].clone()).collect()
}

/// One percent of `n`, at least one (when there is anything).
fn one_percent(n: usize) -> usize {
    if n == 0 { 0 } else { ((n as f64 / 100.0).round() as usize).max(1) }
}

/// Simulates day `day` (1, 2, ...) of a tenant made by [`create`] with the same spec: about
/// 1 % of the rows of `ca_objects`, `ca_object_labels` and `ca_attribute_values` are updated
/// (objects' status and view counts, preferred titles, free-text values; with change log
/// entries), staff log in (event log rows, new sessions, touched sessions, sessions older than
/// 30 days removed) and [`TenantSpec::new_media_per_day`] uploads arrive with their files and
/// rows.
pub fn day(spec: &TenantSpec, t: &Target, day: u32) -> Result<Report> {
    let started = Instant::now();
    check_name("app name", &spec.app_name)?;
    check_name("database name", t.database)?;
    let media_root = t.media_root(spec);
    let end = spec.now + u64::from(day) * 86_400;
    let start = end - 86_400;
    let mut rng = rng_for(spec.seed, 1_000 + u64::from(day));
    let q = |sql: &str| sql::query(t.mariadb, Some(t.database), sql).with_context(|| format!("reading the tenant's state from {}", t.database));

    // Current state.
    let objects: Vec<(u32, bool, String)> = sql::rows(&q("SELECT object_id, deleted, idno FROM ca_objects ORDER BY object_id")?)
        .filter(|r| r.len() == 3)
        .map(|r| (r[0].parse().unwrap_or(0), r[1] == "1", r[2].to_string()))
        .collect();
    if objects.is_empty() {
        bail!("{} has no objects: make the tenant with create() first", t.database);
    }
    let labels: Vec<(u32, u32)> = numbers(&q("SELECT label_id, object_id FROM ca_object_labels WHERE type_id IS NULL ORDER BY label_id")?)
        .into_iter()
        .filter(|r| r.len() == 2)
        .map(|r| (r[0] as u32, r[1] as u32))
        .collect();
    let text_elements = element::TEXT.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(",");
    let values: Vec<(u32, u16, u32)> = numbers(&q(&format!(
        "SELECT v.value_id, v.element_id, a.row_id FROM ca_attribute_values v JOIN ca_attributes a ON a.attribute_id = v.attribute_id \
         WHERE a.table_num = {} AND v.element_id IN ({text_elements}) ORDER BY v.value_id",
        table_num::OBJECTS
    ))?)
    .into_iter()
    .filter(|r| r.len() == 3)
    .map(|r| (r[0] as u32, r[1] as u16, r[2] as u32))
    .collect();
    let users: Vec<User> = sql::rows(&q("SELECT user_id, user_name, userclass, active FROM ca_users ORDER BY user_id")?)
        .filter(|r| r.len() == 4)
        .map(|r| User { id: r[0].parse().unwrap_or(0), user_name: r[1].to_string(), userclass: r[2].parse().unwrap_or(0), active: r[3] == "1" })
        .collect();
    let staff: Vec<u32> = users.iter().filter(|u| u.userclass == 0 && u.active).map(|u| u.id).collect();
    let totals = numbers(&q("SELECT (SELECT COUNT(*) FROM ca_object_labels), (SELECT COUNT(*) FROM ca_attribute_values)")?);
    let (all_labels, all_values) = match totals.first().map(|r| r.as_slice()) {
        Some([l, v]) => (*l as usize, *v as usize),
        _ => bail!("could not count the rows of {}", t.database),
    };
    let maxes = numbers(&q(
        "SELECT (SELECT COALESCE(MAX(representation_id), 0) FROM ca_object_representations), \
                (SELECT COALESCE(MAX(relation_id), 0) FROM ca_objects_x_object_representations), \
                (SELECT COALESCE(MAX(label_id), 0) FROM ca_object_representation_labels), \
                (SELECT COALESCE(MAX(log_id), 0) FROM ca_change_log), \
                (SELECT COALESCE(MAX(guid_id), 0) FROM ca_guids)",
    )?);
    let m = maxes.first().cloned().unwrap_or_default();
    if m.len() != 5 {
        bail!("could not read the id counters of {}", t.database);
    }
    let mut ids = NextIds { rep_label: m[2] as u32, relation: m[1] as u32, log: m[3], guid: m[4] as u32, ..NextIds::default() };
    let with_media: HashSet<u32> =
        numbers(&q("SELECT DISTINCT object_id FROM ca_objects_x_object_representations")?).into_iter().filter_map(|r| r.first().map(|&v| v as u32)).collect();
    let sessions: Vec<(String, u64)> = sql::rows(&q("SELECT cache_key, updated_on FROM ca_persistent_cache WHERE namespace = 'SessionVars' ORDER BY cache_key")?)
        .filter(|r| r.len() == 2)
        .map(|r| (r[0].to_string(), r[1].parse().unwrap_or(0)))
        .collect();

    // New uploads: made first, on worker threads.
    let cat = Catalog::standard();
    let live: Vec<&(u32, bool, String)> = objects.iter().filter(|o| !o.1).collect();
    let n_new = spec.new_media_per_day;
    let per_upload = ((spec.media_bytes as f64 * 0.02) / n_new.max(1) as f64).clamp(60_000.0, AVG_UPLOAD_BYTES as f64) as u64;
    let mut reps = Vec::with_capacity(n_new);
    let mut primaries = with_media.clone();
    for i in 0..n_new {
        let Some(o) = live.choose(&mut rng).copied() else { break };
        let kind = rows::pick_kind(&mut rng, 4 + i);
        let seed: u64 = rng.r#gen();
        let first = primaries.insert(o.0);
        let total = (per_upload as f64 * rng.gen_range(0.5..1.5)) as u64;
        reps.push(RepPlan {
            object_id: o.0,
            is_primary: first,
            deleted: false,
            type_id: *cat.representation_types().choose(&mut rng).unwrap_or(&1),
            upload: UploadPlan {
                representation_id: m[0] as u32 + i as u32 + 1,
                kind,
                original_bytes: original_for_upload(kind, total, seed),
                seed,
                uploaded_at: start + 8 * 3600 + rng.gen_range(0..10 * 3600),
                idno: o.2.clone(),
            },
        });
    }
    let plans: Vec<UploadPlan> = reps.iter().map(|r| r.upload.clone()).collect();
    let uploads = media::make_uploads(&plans, &media_root, spec.threads(), &AtomicBool::new(false))?;

    let mut report = Report {
        command: "day".into(),
        database: t.database.to_string(),
        app_name: spec.app_name.clone(),
        day: Some(day),
        media_root: media_root.clone(),
        ..Report::default()
    };
    report.add_uploads(&uploads);

    let mut counts = None;
    sql::run_script(t.mariadb, Some(t.database), "applying a day of changes", |client| {
        let mut w = SqlWriter::begin(client)?;
        let mut logs: Vec<(u64, u32, u8, u32, u32, Php)> = Vec::new();
        let when = |rng: &mut rand::rngs::StdRng| start + 7 * 3600 + rng.gen_range(0..12 * 3600);
        let who = |rng: &mut rand::rngs::StdRng| staff.choose(rng).copied().unwrap_or(1);
        let statuses = cat.statuses();

        for (id, _, _) in sample(&mut rng, &objects, one_percent(objects.len())) {
            let status = rng.gen_range(0..4u8);
            let access = rng.gen_bool(0.6) as u8;
            let item_status = statuses[rng.gen_range(0..statuses.len() - 1)];
            let views = rng.gen_range(1..40u32);
            w.update(
                "ca_objects",
                1,
                &format!("UPDATE ca_objects SET status = {status}, access = {access}, item_status_id = {item_status}, view_count = view_count + {views} WHERE object_id = {id};"),
            )?;
            logs.push((when(&mut rng), who(&mut rng), table_num::OBJECTS, id, id, Php::assoc([("status", Php::Int(status.into())), ("access", Php::Int(access.into()))])));
        }
        for (label_id, object_id) in sample(&mut rng, &labels, one_percent(all_labels)) {
            let y = text::year(&mut rng);
            let title = text::title(&mut rng, y);
            w.update(
                "ca_object_labels",
                1,
                &format!("UPDATE ca_object_labels SET name = {}, name_sort = {} WHERE label_id = {label_id};", sql::quote(&title), sql::quote(&text::sort_key(&title))),
            )?;
            logs.push((when(&mut rng), who(&mut rng), table_num::OBJECT_LABELS, label_id, object_id, Php::assoc([("name", title.into())])));
        }
        for (value_id, element_id, object_id) in sample(&mut rng, &values, one_percent(all_values)) {
            let y = text::year(&mut rng);
            let s = match element_id {
                element::DESCRIPTION => {
                    let n = rng.gen_range(3..16);
                    text::description(&mut rng, y, n)
                }
                element::INSCRIPTION => text::inscription(&mut rng, y),
                element::CREDIT_LINE => text::credit_line(&mut rng),
                element::PROVENANCE => text::provenance(&mut rng, y),
                _ => text::condition(&mut rng) + " Checked again during the annual inventory.",
            };
            let sortable: String = s.to_lowercase().chars().take(100).collect();
            w.update(
                "ca_attribute_values",
                1,
                &format!("UPDATE ca_attribute_values SET value_longtext1 = {}, value_sortable = {} WHERE value_id = {value_id};", sql::quote(&s), sql::quote(&sortable)),
            )?;
            logs.push((when(&mut rng), who(&mut rng), table_num::ATTRIBUTE_VALUES, value_id, object_id, Php::assoc([("value_longtext1", s.into())])));
        }
        logs.sort_by_key(|l| l.0);
        rows::write_update_logs(&mut w, &mut rng, &mut ids, &logs)?;

        rows::write_representations(&mut w, &mut rng, &reps, &uploads, &staff, &mut ids)?;

        // Logins and their sessions.
        let mut logins: Vec<(u64, &User, bool)> = Vec::new();
        for u in users.iter().filter(|u| u.active && u.userclass != 255) {
            let p = if u.userclass == 0 { 0.85 } else { 0.2 };
            if rng.gen_bool(p) {
                for _ in 0..rng.gen_range(1..=4) {
                    logins.push((when(&mut rng), u, rng.gen_bool(0.05)));
                }
            }
        }
        logins.sort_by_key(|l| l.0);
        let mut ev = w.insert("ca_eventlog", &["date_time", "code", "message", "source"]);
        for (time, u, failed) in &logins {
            let (code, verb) = if *failed { ("LOGF", "Failed login") } else { ("LOGN", "Successful login") };
            let msg = format!("{verb} for '{}'; IP={}; user agent='{}'", u.user_name, text::ip(&mut rng), text::user_agent(&mut rng));
            ev.row(Row::new().int(*time).str(code).str(&msg).str("Auth"))?;
        }
        ev.finish()?;
        let max_object = objects.last().map(|o| o.0).unwrap_or(1);
        let mut ins = w.insert("ca_persistent_cache", &["cache_key", "cache_value", "created_on", "updated_on", "namespace"]);
        for (time, u, failed) in &logins {
            if *failed {
                continue;
            }
            let updated = time + rng.gen_range(60..4 * 3600);
            let value = rows::session_value(&mut rng, u, *time, updated, max_object);
            ins.row(Row::new().str(&text::hex32(&mut rng)).bin(&value).int(*time).int(updated.min(end)).str("SessionVars"))?;
        }
        ins.finish()?;
        // Every request rewrites its session: touch some of the recent ones.
        let recent: Vec<&(String, u64)> = sessions.iter().filter(|s| s.1 + 3 * 86_400 >= start).collect();
        let toucher = users.iter().find(|u| u.userclass == 0 && u.active).or(users.first());
        for (key, _) in sample(&mut rng, &recent, recent.len().div_ceil(3)) {
            let Some(u) = toucher else { break };
            let t = when(&mut rng);
            let value = rows::session_value(&mut rng, u, t - 3600, t, max_object);
            let mut s = String::from("UPDATE ca_persistent_cache SET cache_value = ");
            sql::push_bin(&mut s, &value);
            s.push_str(&format!(", updated_on = {t} WHERE cache_key = {};", sql::quote(key)));
            w.update("ca_persistent_cache", 1, &s)?;
        }
        // Session garbage collection.
        let expired = sessions.iter().filter(|s| s.1 + 30 * 86_400 < start).count() as u64;
        if expired > 0 {
            w.delete(
                "ca_persistent_cache",
                expired,
                &format!("DELETE FROM ca_persistent_cache WHERE namespace = 'SessionVars' AND updated_on < {};", start - 30 * 86_400),
            )?;
        }
        let (_, c) = w.commit()?;
        counts = Some(c);
        Ok(())
    })?;
    if let Some(c) = &counts {
        report.add_counts(c);
    }
    fill_totals(&mut report, t)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Drops the tenant's database (if it exists) and removes its media directory, `setup.php`,
/// `app/conf/local`, `app/tmp` and `app/log` under the CA root: undoes [`create`].
pub fn destroy(spec: &TenantSpec, t: &Target) -> Result<()> {
    check_name("app name", &spec.app_name)?;
    check_name("database name", t.database)?;
    sql::query(t.mariadb, None, &format!("DROP DATABASE IF EXISTS `{}`", t.database)).with_context(|| format!("dropping database {}", t.database))?;
    for p in [t.media_root(spec), t.ca_root.join("app/conf/local"), t.ca_root.join("app/tmp"), t.ca_root.join("app/log")] {
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let setup = t.ca_root.join("setup.php");
    if setup.exists() {
        std::fs::remove_file(&setup).with_context(|| format!("removing {}", setup.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let s = TenantSpec::sized(1 << 30);
        assert_eq!(s.media_bytes, (1u64 << 30) - (1u64 << 30) / 5);
        assert!(s.objects > 10_000 && s.objects < 20_000, "{}", s.objects);
        assert_eq!(representation_count(&TenantSpec::small()), 8);
        assert_eq!(one_percent(40), 1);
        assert_eq!(one_percent(1000), 10);
        assert!(schema_path().ends_with("schema_mysql.sql"));
    }

    #[test]
    fn plans_are_deterministic() {
        let spec = TenantSpec::small();
        let cat = Catalog::standard();
        let objs = rows::plan_objects(&mut rng_for(1, 3), 40, DEFAULT_NOW, HISTORY_SECS);
        let a = plan_representations(&spec, &cat, &objs, &mut rng_for(1, 4), DEFAULT_NOW);
        let b = plan_representations(&spec, &cat, &objs, &mut rng_for(1, 4), DEFAULT_NOW);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let total: u64 = a.iter().map(|r| r.upload.original_bytes).sum();
        assert!(total < spec.media_bytes, "{total}");
        assert!(a.iter().any(|r| r.upload.kind == OriginalKind::Pdf));
    }
}
