//! `mcp-guard check`: what this kernel offers and what `run` would enforce.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn execute(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    println!("mcp-guard check: sandbox probe not implemented yet");
    Ok(ExitCode::SUCCESS)
}
