//! `mcp-guard __supervise`: internal mode, started by `run`, never by users.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {}

pub fn execute(_args: SuperviseArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(crate::launch::supervisor::main()))
}
