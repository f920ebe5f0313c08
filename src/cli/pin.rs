//! `mcp-guard pin`: record what a server offers; `pin diff` shows what changed since.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::pin::collect::snapshot;
use crate::pin::diff::{diff, render};
use crate::pin::guard::shell_word;
use crate::pin::{Kind, Lockfile};
use crate::scan::client::Launch;

const DEFAULT_FILE: &str = "mcp-guard.pin.json";

const PIN_AFTER_HELP: &str = "\
Examples:
  mcp-guard pin -o everything.pin.json -- npx -y @modelcontextprotocol/server-everything
  mcp-guard pin diff everything.pin.json -- npx -y @modelcontextprotocol/server-everything
  mcp-guard run --pin everything.pin.json -- npx -y @modelcontextprotocol/server-everything

The server is started under `mcp-guard run` (sandboxed) to take the snapshot. `pin diff` exits 1
when something changed.";

#[derive(Debug, clap::Args)]
#[command(after_help = PIN_AFTER_HELP, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PinArgs {
    #[command(subcommand)]
    pub action: Option<PinAction>,

    /// The lockfile to write.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_FILE)]
    pub output: PathBuf,

    /// Replace an existing lockfile (after showing what changed).
    #[arg(long)]
    pub update: bool,

    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum PinAction {
    /// Show what the server offers now that differs from the lockfile.
    Diff {
        /// The lockfile written by `mcp-guard pin`.
        file: PathBuf,
        #[command(flatten)]
        launch: LaunchArgs,
    },
}

/// How `pin` and `scan` start the server: through `mcp-guard run` with these options.
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    /// Policy file for `mcp-guard run`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Shipped profile for `mcp-guard run`.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Run the server without the sandbox.
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// How long to wait for each answer.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::run::parse_duration)]
    pub answer_timeout: Duration,
    /// The server command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "SERVER_CMD")]
    pub command: Vec<OsString>,
}

impl LaunchArgs {
    /// The `mcp-guard run` invocation, plus any extra guard arguments.
    pub fn launch(&self, extra: &[OsString]) -> Launch {
        let mut guard_args: Vec<OsString> = Vec::new();
        if let Some(p) = &self.policy {
            guard_args.extend(["--policy".into(), p.clone().into_os_string()]);
        }
        if let Some(p) = &self.profile {
            guard_args.extend(["--profile".into(), p.into()]);
        }
        if self.allow_unsandboxed {
            guard_args.push("--allow-unsandboxed".into());
        }
        guard_args.extend(extra.iter().cloned());
        Launch {
            guard_args,
            command: self.command.clone(),
            timeout: self.answer_timeout,
        }
    }
}

pub fn execute(args: PinArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(PinAction::Diff { file, launch }) => pin_diff(&file, &launch),
        None => pin(&args.output, args.update, &args.launch),
    }
}

fn pin(output: &Path, update: bool, launch: &LaunchArgs) -> anyhow::Result<ExitCode> {
    let old = if output.exists() {
        if !update {
            anyhow::bail!(
                "{} exists; compare with `mcp-guard pin diff {} -- …` and pass --update to re-pin",
                output.display(),
                output.display()
            );
        }
        Some(Lockfile::load(output)?)
    } else {
        None
    };
    let lock = snapshot(&launch.launch(&["--no-audit".into()]))
        .context("cannot take a snapshot of the server")?;
    if let Some(old) = &old {
        print!("{}", render(&diff(old, &lock)));
    }
    lock.save(output)?;
    let counts: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{} {}s", lock.count(*k), k.noun()))
        .collect();
    println!(
        "pinned {} {} ({}) in {}",
        lock.server.name.as_deref().unwrap_or("(unnamed server)"),
        lock.server.version.as_deref().unwrap_or(""),
        counts.join(", "),
        output.display()
    );
    println!(
        "use it with: mcp-guard run --pin {} -- {}",
        shell_word(&output.display().to_string()),
        lock.command
            .iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(ExitCode::SUCCESS)
}

fn pin_diff(file: &Path, launch: &LaunchArgs) -> anyhow::Result<ExitCode> {
    let old = Lockfile::load(file)?;
    let now = snapshot(&launch.launch(&["--no-audit".into()]))
        .context("cannot take a snapshot of the server")?;
    let changes = diff(&old, &now);
    print!("{}", render(&changes));
    if changes.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "re-approve with: mcp-guard pin --update -o {} -- {}",
        shell_word(&file.display().to_string()),
        now.command
            .iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(ExitCode::from(1))
}
