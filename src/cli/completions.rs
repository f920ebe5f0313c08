//! `mcp-guard completions SHELL` and `mcp-guard man`: generated from the CLI definition, so they
//! never fall behind the options.

use std::process::ExitCode;

use clap::CommandFactory;

const COMPLETIONS_AFTER_HELP: &str = "\
Install, e.g.:
  bash: mcp-guard completions bash > ~/.local/share/bash-completion/completions/mcp-guard
  zsh:  mcp-guard completions zsh > ~/.zfunc/_mcp-guard   (with fpath+=~/.zfunc before compinit)
  fish: mcp-guard completions fish > ~/.config/fish/completions/mcp-guard.fish
Or for this shell only: source <(mcp-guard completions bash)";

#[derive(Debug, clap::Args)]
#[command(after_help = COMPLETIONS_AFTER_HELP)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Read it: mcp-guard man | man -l -\n\
Install: mcp-guard man > ~/.local/share/man/man1/mcp-guard.1")]
pub struct ManArgs {}

pub fn execute_completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "mcp-guard",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}

pub fn execute_man(_args: ManArgs) -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(super::Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
