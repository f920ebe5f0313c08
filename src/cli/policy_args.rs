//! Policy flags of `mcp-guard run` (flattened into `RunArgs`): `--policy`, `--profile` and the
//! flags that layer on top of them.

use crate::sandbox::SandboxConfig;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {}

impl PolicyArgs {
    /// The sandbox configuration these flags resolve to (built-in default ← profile ← policy
    /// file ← flags).
    pub fn resolve_sandbox_config(&self) -> anyhow::Result<SandboxConfig> {
        Ok(SandboxConfig::default())
    }
}
