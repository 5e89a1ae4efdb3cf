//! The `normlake` binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use normlake::cli::{self, Cli};
use normlake::telemetry;

// jemalloc returns freed memory to the system (glibc's malloc keeps per-thread arenas and
// fragments under churn), which keeps RSS near what the memory budget accounts for.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Give freed pages back within a second (jemalloc's default keeps them for ten), so that
/// evicting state under the memory budget lowers RSS promptly.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
    cli::main(cli).await
}
