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
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut super::Cli::command(),
        "mcp-guard",
        &mut script,
    );
    print(&script)
}

pub fn execute_man(_args: ManArgs) -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(super::Cli::command()).render(&mut page)?;
    print(&page)
}

/// Write to stdout; a reader that stops early (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
