//! `mcp-guard update [PACKAGE]`: fetch locked packages again and lock the new versions.

use std::process::ExitCode;

const UPDATE_AFTER_HELP: &str = "\
`npx -y PKG`, `pnpm dlx PKG`, `bunx PKG`, `uvx PKG` and `pipx run PKG` run from mcp-guard's
package store: the first start fetches the
package under the sandbox (network: the registry only; writes: the store only) into
$XDG_CACHE_HOME/mcp-guard/store/, and records its version and a SHA-256 of its files in
$XDG_STATE_HOME/mcp-guard/packages.lock. Later starts use that version, offline, and refuse to
start if the files changed. `update` fetches again (an unversioned spec gets the newest
version), replaces the lock entry and removes the old store entry.

Examples:
  mcp-guard update                                         # every locked package
  mcp-guard update @modelcontextprotocol/server-everything
  mcp-guard update mcp-server-time";

#[derive(Debug, clap::Args)]
#[command(after_help = UPDATE_AFTER_HELP)]
pub struct UpdateArgs {
    /// The package to update (its registry name, as in the lock); all of them without one.
    #[arg(value_name = "PACKAGE")]
    pub package: Option<String>,
}

pub fn execute(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    for line in crate::launchers::package::update(args.package.as_deref())? {
        super::output::println(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}
