//! `starling-bench`: seed, run, sweep (see `starling-bench --help`).

use std::process::ExitCode;

use clap::Parser;
use starling_bench::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match starling_bench::execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("starling-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
