//! `ca-tenant-gen`: makes a realistic Collective Access tenant (database + media volume +
//! configuration) or applies a simulated day of use to one, and prints a JSON report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use conservator_cagen::{Target, TenantSpec};

#[derive(Parser)]
#[command(name = "ca-tenant-gen", version, about = "Generate a realistic Collective Access tenant (MariaDB rows + media files)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the database (which must not exist), load the CA schema and rows, write the media
    /// volume, setup.php, app/conf/local and scratch files.
    Create {
        #[command(flatten)]
        common: Common,
        /// Total size, e.g. 1GB, 300MB, 5MiB (20 % database, 80 % media); default: the small test tenant.
        #[arg(long)]
        size: Option<String>,
        /// Number of objects (overrides what --size implies).
        #[arg(long)]
        objects: Option<usize>,
        /// Number of users (overrides what --size implies).
        #[arg(long)]
        users: Option<usize>,
        /// Drop the database and remove the tenant's files first.
        #[arg(long)]
        replace: bool,
    },
    /// Apply day N of simulated use: ~1 % of objects, labels and text values updated, logins,
    /// sessions, and new uploads.
    Day {
        #[command(flatten)]
        common: Common,
        /// The day number (1, 2, ...): seeds the day's changes and dates them.
        #[arg(long)]
        day: u32,
        /// Uploads (new representations with their ~15 files each).
        #[arg(long, default_value_t = 50)]
        new_media: usize,
        /// The --size the tenant was created with (sizes the new uploads).
        #[arg(long)]
        size: Option<String>,
    },
}

#[derive(Args)]
struct Common {
    /// The server's Unix socket (the client connects as root, or --user).
    #[arg(long)]
    socket: PathBuf,
    /// The database user.
    #[arg(long, default_value = "root")]
    user: String,
    /// The database, e.g. ca_1a2b3c4d.
    #[arg(long)]
    database: String,
    /// The CA root directory (setup.php, app/, media/ inside).
    #[arg(long)]
    ca_root: PathBuf,
    /// The CA app name, e.g. tenant_1a2b3c4d.
    #[arg(long)]
    app_name: String,
    /// Seed of everything random.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The tenant's "now" (unix seconds).
    #[arg(long, default_value_t = conservator_cagen::DEFAULT_NOW)]
    now: u64,
    /// Threads making media files (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The mariadb client program.
    #[arg(long, default_value = "mariadb")]
    client: String,
}

/// Parses `1GB`, `1.5 GB`, `300MB`, `5MiB`, `1000000` (decimal units, binary with `i`).
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        u => bail!("unknown size unit {u:?} in {s:?}"),
    };
    Ok((n * mult) as u64)
}

fn spec(common: &Common, size: Option<&str>) -> Result<TenantSpec> {
    let mut spec = match size {
        Some(s) => TenantSpec::sized(parse_size(s)?),
        None => TenantSpec::small(),
    };
    spec.app_name = common.app_name.clone();
    spec.seed = common.seed;
    spec.now = common.now;
    spec.threads = common.threads;
    Ok(spec)
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let (common, report) = match &cli.command {
        Cmd::Create { common, size, objects, users, replace } => {
            let mut spec = spec(common, size.as_deref())?;
            if let Some(n) = objects {
                spec.objects = *n;
            }
            if let Some(n) = users {
                spec.users = *n;
            }
            let client = client_args(common);
            let t = Target { mariadb: &client, database: &common.database, ca_root: &common.ca_root };
            if *replace {
                conservator_cagen::destroy(&spec, &t)?;
            }
            (common, conservator_cagen::create(&spec, &t)?)
        }
        Cmd::Day { common, day, new_media, size } => {
            let mut spec = spec(common, size.as_deref())?;
            spec.new_media_per_day = *new_media;
            let client = client_args(common);
            let t = Target { mariadb: &client, database: &common.database, ca_root: &common.ca_root };
            (common, conservator_cagen::day(&spec, &t, *day)?)
        }
    };
    let _ = common;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn client_args(c: &Common) -> Vec<String> {
    vec![c.client.clone(), "--no-defaults".into(), format!("--socket={}", c.socket.display()), format!("-u{}", c.user)]
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ca-tenant-gen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("1XB").is_err());
    }
}
