//! A private MariaDB server for tests: its own data directory in a temporary directory, a
//! Unix socket, a free TCP port on 127.0.0.1, ROW binary logs with GTIDs (as a backup daemon
//! expects to find them); killed and waited for when dropped.
//!
//! ```no_run
//! let db = conservator_cagen::mariadb::MariaDb::start();
//! assert_eq!(db.query("SELECT 1"), "1");
//! ```

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sql;

/// How long [`MariaDb::start`] waits for the server to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private MariaDB server.
pub struct MariaDb {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl MariaDb {
    /// Starts a server; panics with the reason (and the server log) if it cannot.
    pub fn start() -> MariaDb {
        // A port taken between probing and binding makes the server exit: try again.
        let mut last = None;
        for attempt in 1..=3 {
            match MariaDb::try_start() {
                Ok(db) => return db,
                Err(e) => {
                    eprintln!("harness: MariaDB start attempt {attempt} failed: {e:#}");
                    last = Some(e);
                }
            }
        }
        panic!("starting a private MariaDB server: {:#}", last.expect("an error"))
    }

    /// Starts a server: `mariadb-install-db` into a fresh data directory, then `mariadbd` on a
    /// free port, then waits until `SELECT 1` works.
    pub fn try_start() -> Result<MariaDb> {
        ensure_installed()?;
        let dir = tempfile::Builder::new().prefix("cagen-mariadb-").tempdir().context("creating a temporary directory")?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("binlog")).context("creating the binlog directory")?;
        // A tmpdir of its own: a starting server deletes every `#sql*` file in its tmpdir,
        // which in a shared /tmp are the temporary tables of the other servers running.
        std::fs::create_dir_all(d.join("tmp")).context("creating the tmp directory")?;
        let install = Command::new(binary("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg("--user=root")
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db")
            // passed on to the bootstrap server: its temporary tables too must stay out of a
            // shared /tmp, where another server starting meanwhile would delete them
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .stdin(Stdio::null())
            .output()
            .context("running mariadb-install-db")?;
        if !install.status.success() {
            bail!(
                "mariadb-install-db failed ({}): {}{}",
                install.status,
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            );
        }
        let port = free_port()?;
        let log = std::fs::File::create(d.join("mariadbd.log")).context("creating the server log")?;
        let log2 = log.try_clone().context("cloning the server log handle")?;
        let child = Command::new(binary("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--user=root")
            .arg("--server-id=1")
            .arg(format!("--log-bin={}", d.join("binlog").join("mysql-bin").display()))
            .arg("--binlog-format=ROW")
            .arg("--gtid-strict-mode=1")
            .arg("--binlog-checksum=CRC32")
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg("--default-time-zone=+00:00")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .context("starting mariadbd")?;
        let mut db = MariaDb { dir, child, port };
        let started = Instant::now();
        loop {
            if let Some(status) = db.child.try_wait().context("checking on mariadbd")? {
                bail!("mariadbd exited ({status}) during startup; its log:\n{}", db.log());
            }
            if sql::query(&db.client_args(), None, "SELECT 1").map(|o| o.trim() == "1").unwrap_or(false) {
                return Ok(db);
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("mariadbd did not answer within {START_TIMEOUT:?}; its log:\n{}", db.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client command line as root over the Unix socket:
    /// `["mariadb", "--no-defaults", "--socket=…", "-uroot"]`.
    pub fn client_args(&self) -> Vec<String> {
        vec![binary("mariadb").display().to_string(), "--no-defaults".into(), format!("--socket={}", self.socket().display()), "-uroot".into()]
    }

    /// The client command line for `user` over TCP (127.0.0.1 and [`MariaDb::port`]).
    pub fn tcp_client_args(&self, user: &str, password: &str) -> Vec<String> {
        vec![
            binary("mariadb").display().to_string(),
            "--no-defaults".into(),
            "--protocol=TCP".into(),
            "--host=127.0.0.1".into(),
            format!("--port={}", self.port),
            format!("--user={user}"),
            format!("--password={password}"),
        ]
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the binary logs (`mysql-bin.000001`, ...).
    pub fn binlog_dir(&self) -> PathBuf {
        self.dir.path().join("binlog")
    }

    /// The temporary directory everything of this server lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sql` as root (`mariadb -N -B -e`) and returns its output without the final
    /// newline; panics if the query fails.
    pub fn query(&self, sql: &str) -> String {
        match self.try_query(sql) {
            Ok(s) => s,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Like [`MariaDb::query`], returning errors.
    pub fn try_query(&self, sql: &str) -> Result<String> {
        let out = sql::query(&self.client_args(), None, sql)?;
        Ok(out.strip_suffix('\n').unwrap_or(&out).to_string())
    }

    /// Creates `name` with `password`, allowed from anywhere over TCP (and from localhost),
    /// with all privileges on `grants_on_db`.
    pub fn create_user(&self, name: &str, password: &str, grants_on_db: &str) -> Result<()> {
        let (u, p) = (sql::quote(name), sql::quote(password));
        let db = grants_on_db.replace('`', "``");
        self.try_query(&format!(
            "CREATE USER {u}@'%' IDENTIFIED BY {p}; CREATE USER {u}@'localhost' IDENTIFIED BY {p}; \
             GRANT ALL PRIVILEGES ON `{db}`.* TO {u}@'%'; GRANT ALL PRIVILEGES ON `{db}`.* TO {u}@'localhost'; FLUSH PRIVILEGES"
        ))?;
        Ok(())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mariadbd.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MariaDB program: from `PATH`, else from `/usr/sbin` or `/usr/bin`.
fn binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Installs the MariaDB packages with apt-get (once per process) if `mariadbd` is missing.
fn ensure_installed() -> Result<()> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if binary("mariadbd").is_file() {
            return;
        }
        eprintln!("harness: mariadbd not found, installing mariadb-server mariadb-client mariadb-backup");
        let _ = Command::new("apt-get").args(["update", "-q"]).stdin(Stdio::null()).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "mariadb-server", "mariadb-client", "mariadb-backup"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status();
    });
    if !binary("mariadbd").is_file() {
        bail!("mariadbd is not installed and `apt-get install -y mariadb-server mariadb-client mariadb-backup` did not install it");
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1, picked at random below the ephemeral range.
fn free_port() -> Result<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        let p: u16 = rng.gen_range(20_000..32_000);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free TCP port found on 127.0.0.1")
}
