//! `conservator`: the guardian daemon and CLI of a hosted Collective Access platform.
//!
//! This binary is the composition root: it parses the command line, opens stores
//! and repositories, wires progress bars, and maps outcomes to exit codes:
//! 0 success, 1 failure, 3 a backup saved as an *incomplete* snapshot (a stream
//! failed or files could not be read: it is not a restore point).

mod catalog;
mod cli;
mod config;
mod daemon;
mod output;
mod tenant;
mod tenant_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONSERVATOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let json = args.json();
    match rt.block_on(cli::run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}");
            if json {
                println!("{}", serde_json::json!({ "error": msg }));
            }
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
