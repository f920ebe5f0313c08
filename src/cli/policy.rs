//! `mcp-guard policy check|show|list`: validate, inspect and discover policies.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::profiles::PROFILES;
use crate::policy::resolve::ServerCommand;
use crate::policy::{check_file, show, Vars};

const POLICY_AFTER_HELP: &str = "\
Examples:
  mcp-guard policy list
  mcp-guard policy check my-policy.toml
  mcp-guard policy show --profile node --allow-read ./data -- npx -y @modelcontextprotocol/server-everything

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
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the effective policy (variables expanded, layers merged) as TOML, each value
    /// annotated with the layer it came from.
    Show(Box<ShowArgs>),
    /// List the shipped profiles.
    List,
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
        PolicyCommand::Check { files } => Ok(check(&files)),
        PolicyCommand::Show(show_args) => {
            let eff = show_args.policy.effective()?;
            let command =
                (!show_args.command.is_empty()).then(|| ServerCommand::new(&show_args.command));
            print!(
                "{}",
                show::render(&eff, &Vars::from_env(None), command.as_ref())?
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::List => {
            let width = PROFILES.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in PROFILES {
                println!("{:<width$}  {}", p.name, p.description());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match check_file(file) {
            Ok(()) => println!("{}: ok", file.display()),
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
