//! Sandbox flags of `mcp-guard run` (flattened into `RunArgs`).

use crate::sandbox::SandboxConfig;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SandboxArgs {}

impl SandboxArgs {
    /// Layer these flags on top of `config`.
    pub fn apply_to(&self, config: &mut SandboxConfig) {
        let _ = config;
    }
}
