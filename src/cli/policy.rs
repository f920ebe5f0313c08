//! `mcp-guard policy check|show|list|init`: validate, inspect, discover and start policies.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use super::output;
use crate::policy::profiles::PROFILES;
use crate::policy::resolve::ServerCommand;
use crate::policy::{check_file, show, Vars};

const POLICY_AFTER_HELP: &str = "\
Examples:
  mcp-guard policy list
  mcp-guard policy check my-policy.toml
  mcp-guard policy show --profile node --allow-read ./data -- npx -y @modelcontextprotocol/server-everything
  mcp-guard policy init -o my-server.toml -- node /srv/my-server/index.js

Every field is documented in policies/README.md.";

#[derive(Debug, clap::Args)]
#[command(after_help = POLICY_AFTER_HELP)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files (and what they extend). Exit status 0 when all are valid, 1 if not.
    Check {
        #[arg(required = true, value_name = "FILE", value_parser = super::user_path::parse)]
        files: Vec<PathBuf>,
    },
    /// Print the effective policy (variables expanded, layers merged) as TOML, each value
    /// annotated with the layer it came from.
    Show(Box<ShowArgs>),
    /// List the shipped profiles.
    List {
        /// Print them as a JSON array of `{"name", "description"}`.
        #[arg(long)]
        json: bool,
    },
    /// Start a server once under the guard, list its tools, prompts, resources and templates,
    /// and write a least-privilege starter policy that allows exactly those (commented, to edit).
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Write the policy here (refuses to overwrite an existing file) instead of stdout.
    #[arg(short, long, value_name = "FILE", value_parser = super::user_path::parse)]
    pub output: Option<PathBuf>,

    /// The server command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "SERVER_CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub policy: super::policy_args::PolicyArgs,

    /// The server command, to resolve `${SERVER_DIR}`, `arg_paths` and the launch check.
    #[arg(last = true, value_name = "SERVER_CMD")]
    pub command: Vec<OsString>,
}

pub fn execute(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check { files } => check(&files),
        PolicyCommand::Show(show_args) => {
            let eff = show_args.policy.effective()?;
            let command =
                (!show_args.command.is_empty()).then(|| ServerCommand::new(&show_args.command));
            output::print(&show::render(
                &eff,
                &Vars::from_env(None),
                command.as_ref(),
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Init(init_args) => init(init_args),
        PolicyCommand::List { json: true } => {
            let list: Vec<serde_json::Value> = PROFILES
                .iter()
                .map(|p| serde_json::json!({"name": p.name, "description": p.description()}))
                .collect();
            output::println(&format!("{:#}", serde_json::Value::from(list)))?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::List { json: false } => {
            let width = PROFILES.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in PROFILES {
                output::println(&format!("{:<width$}  {}", p.name, p.description()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    use crate::policy::init::{discover, render, Starter, TempPolicy};
    use anyhow::Context;
    if let Some(out) = &args.output {
        if out.exists() {
            anyhow::bail!(
                "{} exists; choose another file with -o, or remove it first",
                out.display()
            );
        }
    }
    let starter = Starter::for_command(&ServerCommand::new(&args.command));
    // Start the server with the very policy the file will hold (minus the item lists), so the
    // written file is known to start it.
    let first = TempPolicy::write(&render(&starter, None))
        .context("cannot write the starter policy to a temporary file")?;
    let guard = std::env::current_exe().context("cannot find the mcp-guard executable")?;
    let quiet = !tracing::enabled!(tracing::Level::DEBUG);
    let inventory = discover(&guard, first.path(), &args.command, quiet).with_context(|| {
        format!(
            "cannot inspect the server under the starter policy (base profile `{}`); if it needs \
             more to start, run it with `mcp-guard run --profile {} [--allow-read ...] -- ...` to \
             see what it is refused",
            starter.base, starter.base
        )
    })?;
    let text = render(&starter, Some(&inventory));
    match &args.output {
        Some(out) => {
            std::fs::write(out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "mcp-guard: wrote {} ({} tools, {} prompts, {} resources and templates)",
                out.display(),
                inventory.tools.as_ref().map_or(0, Vec::len),
                inventory.prompts.as_ref().map_or(0, Vec::len),
                inventory.resources.as_ref().map_or(0, Vec::len)
                    + inventory.templates.as_ref().map_or(0, Vec::len),
            );
        }
        None => output::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn check(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for file in files {
        match check_file(file) {
            Ok(None) => output::println(&format!("{}: ok", file.display()))?,
            Ok(Some(advice)) => output::println(&format!("{}: ok, but {advice}", file.display()))?,
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
