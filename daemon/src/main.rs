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

/// Keep the resident size close to what is live (glibc). Backup and restore move megabyte
/// buffers between threads (reader → compressors → packer → uploader). With an arena per thread,
/// glibc keeps freed buffers cached in every arena, and its dynamic mmap threshold soon puts
/// 16 MiB pack buffers on the heap where they fragment it: the resident size was 2.3x what is
/// live (188 MiB against 80 MiB on the 1.5 GB benchmark corpus). One arena, and pack-sized
/// buffers always mapped (so freeing one returns it to the system), fix both; chunk-sized
/// buffers stay on the heap, so the cost in page faults is small (bench/README.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in main,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 12 << 20);
        // Setting the mmap threshold also fixes the trim threshold at 128 KiB, and the heap
        // would then shrink and regrow on every megabyte freed: keep 32 MiB of free top.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
