//! The `normlake` binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use normlake::cli::{self, Cli};
use normlake::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
    cli::main(cli).await
}
