//! Running the `conservator` binary as a user would, with a repository and a secret in its
//! environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A `conservator` binary bound to one repository location and secret.
#[derive(Debug, Clone)]
pub struct Conservator {
    bin: PathBuf,
    envs: Vec<(String, String)>,
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// The command line (for messages).
    pub cmd: String,
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON (panics with the whole run when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{self}: stdout is not JSON ({e})"))
    }

    /// Stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}", self.cmd, self.code, self.stdout, self.stderr)
    }
}

impl From<(String, Output)> for Run {
    fn from((cmd, o): (String, Output)) -> Run {
        Run {
            cmd,
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Conservator {
    /// `bin` with repository `repo` opened by `password`.
    pub fn new(bin: impl Into<PathBuf>, repo: &str, password: &str) -> Conservator {
        Conservator {
            bin: bin.into(),
            envs: vec![("CONSERVATOR_REPO".into(), repo.into()), ("CONSERVATOR_PASSWORD".into(), password.into())],
        }
    }

    /// The same with one more environment variable (replacing an earlier one of that name).
    pub fn env(mut self, k: &str, v: &str) -> Conservator {
        self.envs.retain(|(n, _)| n != k);
        self.envs.push((k.into(), v.into()));
        self
    }

    /// The same without an environment variable.
    pub fn env_remove(mut self, k: &str) -> Conservator {
        self.envs.retain(|(n, _)| n != k);
        self
    }

    /// A command ready to run with `args` (`repo` subcommand implied), no progress bars,
    /// fast key derivation for tests (the KDF parameters are stored per key).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(&self.bin);
        c.arg("repo").arg("--no-progress").args(args);
        c.env_remove("CONSERVATOR_KEY").env_remove("CONSERVATOR_KEY_FILE").env_remove("CONSERVATOR_PASSWORD_FILE");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Run and collect.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let cmd = format!("conservator repo {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        let out = self.command(&args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        Run::from((cmd, out))
    }

    /// Run, assert exit 0, and return the run.
    pub fn ok<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{r}");
        r
    }

    /// Run with `--json`, assert exit 0, parse stdout.
    pub fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut a: Vec<std::ffi::OsString> = vec!["--json".into()];
        a.extend(args.into_iter().map(|s| s.as_ref().to_owned()));
        self.ok(a).json()
    }

    /// `repo init`.
    pub fn init(&self) -> serde_json::Value {
        self.json(["init"])
    }

    /// `repo backup PATH` → the JSON result.
    pub fn backup(&self, path: &Path) -> serde_json::Value {
        self.json([OsStr::new("backup"), path.as_os_str()])
    }

    /// `repo restore SNAP --target DIR` → the JSON result.
    pub fn restore(&self, snap: &str, target: &Path) -> serde_json::Value {
        self.json([OsStr::new("restore"), OsStr::new(snap), OsStr::new("--target"), target.as_os_str()])
    }

    /// `repo check --read-data`, asserting it is clean; returns the report.
    pub fn check_clean(&self) -> serde_json::Value {
        let r = self.run(["--json", "check", "--read-data"]);
        assert_eq!(r.code, 0, "check --read-data is not clean: {r}");
        let v = r.json();
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "{r}");
        v
    }
}

/// Where `path` lands under a restore target (the engine restores by full path).
pub fn restored(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").unwrap_or(path))
}
