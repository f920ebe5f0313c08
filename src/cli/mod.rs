//! Command-line interface: argument parsing (clap derive) and dispatch. Each subcommand lives in
//! its own file with its arguments and the glue that calls the library.

mod audit;
mod check;
mod completions;
mod errors;
mod launch_failure;
mod output;
mod pin;
mod policy;
mod policy_args;
mod run;
mod scan;
mod secret;
mod status;
mod status_text;
mod supervise;
mod update;
mod user_path;
mod wrap;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use run::RunArgs;

const AFTER_HELP: &str = "\
Put every stdio server of your MCP hosts (Claude Desktop, Claude Code, VS Code, Cursor, ...)
behind the guard at once: `mcp-guard wrap` shows the change, `mcp-guard wrap --write` makes it
(with a backup; `mcp-guard unwrap` restores); `mcp-guard status` shows what runs guarded, with
its pin and last session. Or use it by hand in place of the server command,
e.g. in Claude Desktop:

  \"mcpServers\": {
    \"everything\": {
      \"command\": \"mcp-guard\",
      \"args\": [\"run\", \"--profile\", \"everything\", \"--\",
               \"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"]
    }
  }

The first start fetches the package into mcp-guard's store (under a sandbox that reaches only
the registry); later starts are offline. Without a profile or policy the server gets no network
and none of your files (`mcp-guard policy list` shows the shipped profiles). What a server
lists is pinned on first use; `mcp-guard pin status` shows what awaits your approval. Run
`mcp-guard run --help` for the options, `mcp-guard check` to see what this kernel can enforce,
`mcp-guard scan -- CMD` to vet a server.";

/// Sandbox launcher and JSON-RPC firewall for local stdio MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colour the diagnostics on stderr: auto (only on a terminal, and not when NO_COLOR is
    /// set), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether stderr gets ANSI colours; `auto` follows https://no-color.org.
    fn ansi(self, no_color: Option<std::ffi::OsString>, terminal: bool) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a stdio MCP server under the sandbox and relay its JSON-RPC through the firewall.
    Run(run::RunArgs),
    /// Show what this kernel can enforce and what `run` would enforce.
    Check(check::CheckArgs),
    /// Validate, show and list policies.
    Policy(policy::PolicyArgs),
    /// Verify an audit log's hash chain.
    Audit(audit::AuditArgs),
    /// Rug-pull pinning: `pin status` / `pin diff` / `pin approve` for the pins taken on first
    /// use; `pin -o FILE` records a lockfile for `run --pin FILE`.
    Pin(pin::PinArgs),
    /// Run a server under the guard as a client would and report what looks wrong.
    Scan(scan::ScanArgs),
    /// Keep servers' tokens in the OS keychain: `secret set SERVICE/ACCOUNT` (value on stdin),
    /// then `run --env NAME=keyring:SERVICE/ACCOUNT`.
    Secret(secret::SecretArgs),
    /// Fetch the packages `npx -y` / `uvx` servers run from again, and lock the new versions.
    Update(update::UpdateArgs),
    /// Put every stdio server of a host's config (Claude, VS Code, Cursor, …) behind the guard.
    Wrap(wrap::WrapArgs),
    /// Every server of every host config: guarded or not, its profile, pin and last session.
    Status(status::StatusArgs),
    /// Give the servers `wrap` put behind the guard their original commands back.
    Unwrap(wrap::UnwrapArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff).
    Man(completions::ManArgs),
    /// Internal: the supervisor process that confines and execs the server.
    #[command(name = "__supervise", hide = true)]
    Supervise(supervise::SuperviseArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ansi = cli.color.ansi(
        std::env::var_os("NO_COLOR"),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    init_tracing(cli.verbose, cli.quiet, ansi);
    let result = match cli.command {
        Command::Run(args) => run::execute(args),
        Command::Check(args) => check::execute(args),
        Command::Policy(args) => policy::execute(args),
        Command::Audit(args) => audit::execute(args),
        Command::Pin(args) => pin::execute(args),
        Command::Scan(args) => scan::execute(args),
        Command::Secret(args) => secret::execute(args),
        Command::Update(args) => update::execute(args),
        Command::Wrap(args) => wrap::execute_wrap(args),
        Command::Unwrap(args) => wrap::execute_unwrap(args),
        Command::Status(args) => status::execute(args),
        Command::Completions(args) => completions::execute_completions(args),
        Command::Man(args) => completions::execute_man(args),
        Command::Supervise(args) => supervise::execute(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mcp-guard: error: {}", errors::describe(err.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool, ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Diagnostics go to stderr only: stdout carries nothing but relayed JSON-RPC.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(ansi)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::Color;

    #[test]
    fn no_color_turns_auto_off_but_not_always() {
        let set = || Some("1".into());
        assert!(Color::Auto.ansi(None, true));
        assert!(Color::Auto.ansi(Some("".into()), true));
        assert!(!Color::Auto.ansi(set(), true));
        assert!(!Color::Auto.ansi(None, false));
        assert!(Color::Always.ansi(set(), false));
        assert!(!Color::Never.ansi(None, true));
    }
}
