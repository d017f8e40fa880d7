//! The daemon's one configuration file: versioned TOML, every field documented and
//! defaulted, unknown fields rejected, every problem reported at once.
//!
//! Loading is pure: [`load`] takes the file's text and an environment map and returns a
//! validated [`Config`] or the full list of problems. Secrets are never in the file: a
//! database password comes from `password_file` or the variable `password_env` names.
//! Environment overrides: `CONSERVATOR_<SECTION>_<FIELD>` for the `daemon`, `repository`
//! and `defaults` sections (e.g. `CONSERVATOR_DAEMON_LISTEN=0.0.0.0:9187`).
//!
//! ```toml
//! version = 1
//! [daemon]
//! state_dir = "/var/lib/conservator"          # catalog and tenant keys live here
//! listen = "127.0.0.1:9187"                   # /healthz and /metrics
//! max_concurrent_backups = 2
//! [repository]
//! location = "/var/lib/conservator/repositories"   # or s3:https://host/bucket/prefix
//! [defaults]
//! schedule = "0 3 * * *"
//! [[tenant]]
//! id = "ca-1a2b3c4d"
//! plan = "pro"
//! media = "/var/www/html/ca/media/tenant_1a2b3c4d"
//! extra_paths = ["/var/www/html/ca/setup.php", "/var/www/html/ca/app/conf/local"]
//! [tenant.database]
//! host = "mysql.ca-system"
//! user = "ca_1a2b3c4d"
//! password_file = "/run/secrets/ca-1a2b3c4d-db/password"
//! schema = "ca_1a2b3c4d"
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use conservator_backup_core::retention::RetentionPolicy;
use serde::Deserialize;

/// The config format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The daemon itself.
    pub daemon: DaemonConfig,
    /// Where tenant repositories live.
    pub repository: RepositoryConfig,
    /// The tenants, in file order.
    pub tenants: Vec<TenantConfig>,
}

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Directory for the catalog and the tenant key files.
    pub state_dir: PathBuf,
    /// The catalog database (sqlx URL); default `sqlite://<state_dir>/catalog.db`.
    pub catalog: Option<String>,
    /// Address of `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// Backups run at once, across tenants.
    pub max_concurrent_backups: usize,
    /// Each scheduled run starts up to this many seconds late (spreads tenants that share a schedule).
    pub jitter_secs: u64,
    /// On SIGTERM, running backups get this long to finish before they are cancelled.
    pub shutdown_grace_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: PathBuf::from("/var/lib/conservator"),
            catalog: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            max_concurrent_backups: 2,
            jitter_secs: 60,
            shutdown_grace_secs: 30,
        }
    }
}

impl DaemonConfig {
    /// The catalog URL.
    pub fn catalog_url(&self) -> String {
        self.catalog.clone().unwrap_or_else(|| format!("sqlite://{}", self.state_dir.join("catalog.db").display()))
    }
    /// Where tenant key files are kept.
    pub fn key_dir(&self) -> PathBuf {
        self.state_dir.join("keys")
    }
}

/// `[repository]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryConfig {
    /// Base location: a directory or `s3:http(s)://host[:port]/bucket[/prefix]`; each tenant's
    /// repository is `<location>/<tenant id>`. Default `<state_dir>/repositories`.
    pub location: Option<String>,
    /// Object Lock retention for S3 (`compliance:30`, `governance:7`), optional.
    pub object_lock: Option<String>,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        RepositoryConfig { location: None, object_lock: None }
    }
}

/// `[defaults]`: what a tenant gets unless it says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Cron expression (5 fields, or 6 with seconds first), UTC.
    pub schedule: String,
    /// Retention applied after each backup.
    pub retention: RetentionConfig,
    /// The dump tool.
    pub dump_tool: String,
    /// The client used to load dumps on restore.
    pub client_tool: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            schedule: "0 3 * * *".into(),
            retention: RetentionConfig::default(),
            dump_tool: "mariadb-dump".into(),
            client_tool: "mariadb".into(),
        }
    }
}

/// A retention policy (restic's `forget --keep-*`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Newest N.
    pub keep_last: u32,
    /// Newest per hour, for N hours.
    pub keep_hourly: u32,
    /// Newest per day, for N days.
    pub keep_daily: u32,
    /// Newest per week, for N weeks.
    pub keep_weekly: u32,
    /// Newest per month, for N months.
    pub keep_monthly: u32,
    /// Newest per year, for N years.
    pub keep_yearly: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { keep_last: 3, keep_hourly: 0, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_yearly: 0 }
    }
}

impl RetentionConfig {
    /// As the engine's policy.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
        }
    }
}

/// The plans of PLATFORM.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// 3 seats, 10 GB.
    Starter,
    /// 10 seats, 100 GB.
    Pro,
    /// Unlimited seats, 1 TB.
    Museum,
    /// Custom.
    Enterprise,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Plan::Starter => "starter",
            Plan::Pro => "pro",
            Plan::Museum => "museum",
            Plan::Enterprise => "enterprise",
        })
    }
}

/// One `[[tenant]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    id: String,
    plan: Plan,
    #[serde(default)]
    schedule: Option<String>,
    media: PathBuf,
    #[serde(default)]
    extra_paths: Vec<PathBuf>,
    database: DatabaseFile,
    #[serde(default)]
    retention: Option<RetentionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    socket: Option<PathBuf>,
    user: String,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    schema: String,
}

/// A database password; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How to reach a tenant's database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Host (TCP), when no socket is given.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Unix socket, preferred when set.
    pub socket: Option<PathBuf>,
    /// User.
    pub user: String,
    /// Password (empty: none, e.g. socket authentication).
    pub password: Password,
    /// Schema (database) name, e.g. `ca_1a2b3c4d`.
    pub schema: String,
}

impl DatabaseConfig {
    /// Connection arguments for the MariaDB client tools (no password: it goes in `MYSQL_PWD`).
    pub fn client_args(&self) -> Vec<String> {
        let mut a = vec!["--no-defaults".to_string()];
        match &self.socket {
            Some(s) => a.push(format!("--socket={}", s.display())),
            None => {
                a.push(format!("--host={}", self.host));
                a.push(format!("--port={}", self.port));
                a.push("--protocol=tcp".into());
            }
        }
        a.push(format!("--user={}", self.user));
        a
    }
    /// Where, for messages (no secret).
    pub fn describe(&self) -> String {
        match &self.socket {
            Some(s) => format!("{}@{} (socket {})", self.user, self.schema, s.display()),
            None => format!("{}@{}:{}/{}", self.user, self.host, self.port, self.schema),
        }
    }
}

/// A tenant, validated and with defaults applied.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// `<prefix>-<8 hex>`, e.g. `ca-1a2b3c4d`.
    pub id: String,
    /// Plan.
    pub plan: Plan,
    /// When to back up.
    pub schedule: Schedule,
    /// The media directory.
    pub media: PathBuf,
    /// Other paths kept (setup.php, app/conf/local/).
    pub extra_paths: Vec<PathBuf>,
    /// The database.
    pub database: DatabaseConfig,
    /// Retention.
    pub retention: RetentionConfig,
    /// Dump tool.
    pub dump_tool: String,
    /// Client tool (restore).
    pub client_tool: String,
}

/// A parsed cron schedule (UTC).
#[derive(Clone)]
pub struct Schedule {
    /// As written.
    pub text: String,
    cron: croner::Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl Schedule {
    /// Parse a 5-field cron expression, or 6 fields with seconds first.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| format!("{e}"))?;
        Ok(Schedule { text: text.to_string(), cron })
    }
    /// The first run strictly after `t`.
    pub fn next_after(&self, t: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Is `id` a tenant name of the platform (`<prefix>-<8 hex>`)?
pub fn valid_tenant_id(id: &str) -> bool {
    let Some((prefix, hex)) = id.rsplit_once('-') else { return false };
    !prefix.is_empty()
        && prefix.len() <= 40
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && hex.len() == 8
        && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const SECTIONS: [&str; 3] = ["daemon", "repository", "defaults"];

/// Parse and validate. `env` supplies overrides and `password_env` secrets; `read_file`
/// reads `password_file`s (injected so this stays pure and testable).
pub fn load(
    text: &str,
    env: &BTreeMap<String, String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Config, Problems> {
    let mut problems = Vec::new();
    let mut doc: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return Err(Problems(vec![format!("not valid TOML: {e}")])),
    };
    match doc.remove("version") {
        Some(toml::Value::Integer(v)) if v == CONFIG_VERSION as i64 => {}
        Some(v) => problems.push(format!(
            "version = {}: this conservator reads configuration version {CONFIG_VERSION}; upgrade conservator or rewrite the file",
            match &v { toml::Value::Integer(i) => i.to_string(), other => format!("{other:?}") }
        )),
        None => problems.push(format!("`version = {CONFIG_VERSION}` is missing at the top of the file")),
    }
    // Environment overrides.
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("CONSERVATOR_") else { continue };
        let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{}_", s.to_uppercase()))) else {
            continue;
        };
        let field = rest[section.len() + 1..].to_lowercase();
        let value = if let Ok(i) = v.parse::<i64>() { toml::Value::Integer(i) } else { toml::Value::String(v.clone()) };
        let entry = doc.entry(section.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(field, value);
            }
            _ => problems.push(format!("{k}: [{section}] is not a table in the file")),
        }
    }
    let tenants_v = doc.remove("tenant");
    let daemon: DaemonConfig = section(&mut doc, "daemon", &mut problems).unwrap_or_default();
    let repository: RepositoryConfig = section(&mut doc, "repository", &mut problems).unwrap_or_default();
    let defaults: Defaults = section(&mut doc, "defaults", &mut problems).unwrap_or_default();
    for k in doc.keys() {
        problems.push(format!("unknown top-level key `{k}` (known: version, daemon, repository, defaults, tenant)"));
    }
    if daemon.max_concurrent_backups == 0 {
        problems.push("[daemon] max_concurrent_backups must be at least 1".into());
    }
    if let Some(l) = &repository.object_lock {
        if let Err(e) = conservator_store::parse_object_lock(l) {
            problems.push(format!("[repository] object_lock: {e}"));
        }
        if !repository.location.as_deref().is_some_and(|loc| loc.starts_with("s3:")) {
            problems.push("[repository] object_lock applies to S3 repositories only: set an s3: location or remove it".into());
        }
    }
    let default_schedule = match Schedule::parse(&defaults.schedule) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(format!("[defaults] schedule {:?} is not a cron expression: {e}", defaults.schedule));
            None
        }
    };
    if defaults.retention.policy().validate().is_err() {
        problems.push("[defaults.retention] keeps nothing: set at least one keep_* above 0".into());
    }

    let mut tenants = Vec::new();
    let list = match tenants_v {
        None => vec![],
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            problems.push("`tenant` must be an array of tables: write each as [[tenant]]".into());
            vec![]
        }
    };
    let mut seen = HashSet::new();
    for (i, v) in list.into_iter().enumerate() {
        let label = match v.get("id").and_then(|x| x.as_str()) {
            Some(id) => format!("tenant {id}"),
            None => format!("tenant #{}", i + 1),
        };
        let t: TenantFile = match v.try_into() {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{label}: {}", one_line(&e.to_string())));
                continue;
            }
        };
        if !valid_tenant_id(&t.id) {
            problems.push(format!("{label}: id {:?} is not a tenant name `<prefix>-<8 lowercase hex>` such as ca-1a2b3c4d", t.id));
        }
        if !seen.insert(t.id.clone()) {
            problems.push(format!("{label}: the id appears twice"));
        }
        let schedule = match &t.schedule {
            Some(s) => match Schedule::parse(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("{label}: schedule {s:?} is not a cron expression: {e}"));
                    None
                }
            },
            None => default_schedule.clone(),
        };
        if !t.media.is_absolute() {
            problems.push(format!("{label}: media {:?} must be an absolute path", t.media));
        }
        for p in &t.extra_paths {
            if !p.is_absolute() {
                problems.push(format!("{label}: extra path {p:?} must be an absolute path"));
            }
        }
        let d = &t.database;
        if !valid_identifier(&d.schema) {
            problems.push(format!("{label}: database schema {:?} must be letters, digits and _", d.schema));
        }
        if d.socket.is_none() && d.host.is_none() {
            problems.push(format!("{label}: [tenant.database] needs `host` (and `port`) or `socket`"));
        }
        let password = match (&d.password_file, &d.password_env) {
            (Some(_), Some(_)) => {
                problems.push(format!("{label}: give the database password by password_file or password_env, not both"));
                None
            }
            (Some(f), None) => match read_file(f) {
                Ok(s) => Some(Password(s.trim_end_matches(['\n', '\r']).to_string())),
                Err(e) => {
                    problems.push(format!("{label}: missing secret: cannot read password_file {}: {e}", f.display()));
                    None
                }
            },
            (None, Some(var)) => match env.get(var) {
                Some(s) => Some(Password(s.clone())),
                None => {
                    problems.push(format!("{label}: missing secret: the environment variable {var} (password_env) is not set"));
                    None
                }
            },
            (None, None) if d.socket.is_some() => Some(Password::default()),
            (None, None) => {
                problems.push(format!(
                    "{label}: missing secret: the database password needs password_file or password_env (or use a socket)"
                ));
                None
            }
        };
        let retention = t.retention.unwrap_or(defaults.retention);
        if retention.policy().validate().is_err() {
            problems.push(format!("{label}: retention keeps nothing: set at least one keep_* above 0"));
        }
        if let (Some(schedule), Some(password)) = (schedule, password) {
            tenants.push(TenantConfig {
                id: t.id.clone(),
                plan: t.plan,
                schedule,
                media: t.media.clone(),
                extra_paths: t.extra_paths.clone(),
                database: DatabaseConfig {
                    host: d.host.clone().unwrap_or_else(|| "localhost".into()),
                    port: d.port.unwrap_or(3306),
                    socket: d.socket.clone(),
                    user: d.user.clone(),
                    password,
                    schema: d.schema.clone(),
                },
                retention,
                dump_tool: defaults.dump_tool.clone(),
                client_tool: defaults.client_tool.clone(),
            });
        }
    }
    if problems.is_empty() { Ok(Config { daemon, repository, tenants }) } else { Err(Problems(problems)) }
}

impl Config {
    /// Base location of the tenant repositories.
    pub fn repository_base(&self) -> String {
        self.repository
            .location
            .clone()
            .unwrap_or_else(|| self.daemon.state_dir.join("repositories").display().to_string())
    }
    /// A tenant's repository location.
    pub fn tenant_repository(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.repository_base().trim_end_matches('/'))
    }
    /// A tenant by id.
    pub fn tenant(&self, id: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

fn section<T: for<'de> Deserialize<'de>>(doc: &mut toml::Table, name: &str, problems: &mut Vec<String>) -> Option<T> {
    let v = doc.remove(name)?;
    match v.try_into() {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("[{name}]: {}", one_line(&e.to_string())));
            None
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read a config file from disk with the process environment.
pub fn load_file(path: &Path) -> Result<Config, Problems> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problems(vec![format!("cannot read the configuration file {}: {e}", path.display())]))?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load(&text, &env, &|p| std::fs::read_to_string(p))
}

impl FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Plan, String> {
        match s {
            "starter" => Ok(Plan::Starter),
            "pro" => Ok(Plan::Pro),
            "museum" => Ok(Plan::Museum),
            "enterprise" => Ok(Plan::Enterprise),
            _ => Err(format!("unknown plan {s:?} (starter, pro, museum, enterprise)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
[daemon]
state_dir = "/var/lib/conservator"
max_concurrent_backups = 3
[defaults.retention]
keep_daily = 7
[[tenant]]
id = "ca-1a2b3c4d"
plan = "pro"
media = "/srv/ca/media/tenant_1a2b3c4d"
extra_paths = ["/srv/ca/setup.php"]
[tenant.database]
host = "127.0.0.1"
port = 3307
user = "ca_1a2b3c4d"
password_env = "CA_1A2B3C4D_DB_PASSWORD"
schema = "ca_1a2b3c4d"
[[tenant]]
id = "ca-00ff00ff"
plan = "museum"
schedule = "*/5 * * * * *"
media = "/srv/ca/media/tenant_00ff00ff"
[tenant.database]
socket = "/run/mysqld/mysqld.sock"
user = "root"
schema = "ca_00ff00ff"
"#;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn no_files(p: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} not found", p.display())))
    }

    #[test]
    fn good_config_with_defaults_and_overrides() {
        let e = env(&[("CA_1A2B3C4D_DB_PASSWORD", "s3cret-pw"), ("CONSERVATOR_DAEMON_LISTEN", "0.0.0.0:9999")]);
        let c = load(GOOD, &e, &no_files).unwrap();
        assert_eq!(c.daemon.max_concurrent_backups, 3);
        assert_eq!(c.daemon.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(c.tenants.len(), 2);
        let a = &c.tenants[0];
        assert_eq!(a.plan, Plan::Pro);
        assert_eq!(a.schedule.text, "0 3 * * *");
        assert_eq!(a.database.password.expose(), "s3cret-pw");
        assert_eq!(a.retention.keep_daily, 7);
        assert!(!format!("{c:?}").contains("s3cret-pw"), "the password leaks through Debug");
        assert_eq!(c.tenant_repository("ca-1a2b3c4d"), "/var/lib/conservator/repositories/ca-1a2b3c4d");
        assert_eq!(c.daemon.catalog_url(), "sqlite:///var/lib/conservator/catalog.db");
        let b = &c.tenants[1];
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:02Z").unwrap().to_utc();
        assert_eq!(b.schedule.next_after(t0).unwrap().to_rfc3339(), "2026-12-04T10:00:05+00:00");
        assert_eq!(a.schedule.next_after(t0).unwrap().to_rfc3339(), "2026-12-05T03:00:00+00:00");
        assert_eq!(b.database.client_args(), vec!["--no-defaults", "--socket=/run/mysqld/mysqld.sock", "--user=root"]);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let bad = r#"
version = 1
colour = "blue"
[daemon]
max_concurent_backups = 2
[[tenant]]
id = "ca-1a2b3c4d"
plan = "pro"
media = "relative/media"
[tenant.database]
host = "db"
user = "u"
password_env = "NOT_SET_ANYWHERE"
schema = "ca_1a2b3c4d"
[[tenant]]
id = "Tenant One"
plan = "gold"
media = "/m"
[tenant.database]
host = "db"
user = "u"
schema = "x"
[[tenant]]
id = "ca-deadbeef"
plan = "starter"
schedule = "every day at noon"
medai = "/m"
media = "/m"
[tenant.database]
host = "db"
user = "u"
password_file = "/run/secrets/none"
schema = "ca_deadbeef"
"#;
        let p = load(bad, &BTreeMap::new(), &no_files).unwrap_err();
        let all = p.to_string();
        for needle in [
            "unknown top-level key `colour`",
            "[daemon]: unknown field `max_concurent_backups`",
            "tenant ca-1a2b3c4d: media \"relative/media\" must be an absolute path",
            "tenant ca-1a2b3c4d: missing secret: the environment variable NOT_SET_ANYWHERE",
            "tenant Tenant One: unknown variant `gold`",
            "tenant ca-deadbeef: unknown field `medai`",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(p.0.len(), 6, "{all}");
        // fixing the unknown field shows the next layer of problems for that tenant
        let fixed = bad.replace("medai = \"/m\"\n", "");
        let all = load(&fixed, &BTreeMap::new(), &no_files).unwrap_err().to_string();
        assert!(all.contains("schedule \"every day at noon\" is not a cron expression"), "{all}");
        assert!(all.contains("missing secret: cannot read password_file /run/secrets/none"), "{all}");
    }

    #[test]
    fn object_lock_needs_s3() {
        let p = load("version = 1\n[repository]\nobject_lock = \"compliance:30\"\n", &BTreeMap::new(), &no_files).unwrap_err();
        assert!(p.to_string().contains("object_lock applies to S3 repositories only"), "{p}");
        let c = load(
            "version = 1\n[repository]\nlocation = \"s3:https://s3.example.com/b/eu\"\nobject_lock = \"compliance:30\"\n",
            &BTreeMap::new(),
            &no_files,
        )
        .unwrap();
        assert_eq!(c.repository.object_lock.as_deref(), Some("compliance:30"));
    }

    #[test]
    fn version_is_required_and_checked() {
        let p = load("[daemon]\n", &BTreeMap::new(), &no_files).unwrap_err();
        assert!(p.0[0].contains("`version = 1` is missing"), "{p}");
        let p = load("version = 2\n", &BTreeMap::new(), &no_files).unwrap_err();
        assert!(p.0[0].contains("reads configuration version 1"), "{p}");
        let p = load("version = [", &BTreeMap::new(), &no_files).unwrap_err();
        assert!(p.0[0].contains("not valid TOML"), "{p}");
    }

    #[test]
    fn tenant_ids() {
        for ok in ["ca-1a2b3c4d", "museum-eu-00000000"] {
            assert!(valid_tenant_id(ok), "{ok}");
        }
        for bad in ["ca-1A2B3C4D", "ca-1a2b3c4", "-1a2b3c4d", "ca_1a2b3c4d", "1ca-1a2b3c4d", "ca-1a2b3c4dd"] {
            assert!(!valid_tenant_id(bad), "{bad}");
        }
    }
}
