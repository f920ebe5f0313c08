//! `mcp-guard secret set|check|delete SERVICE/ACCOUNT`: keep a server's token in the OS keychain
//! and give it with `--env NAME=keyring:SERVICE/ACCOUNT`, so no host config holds it in plain
//! text. The value is read from stdin, never from the command line (which `ps` shows to all).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;

use crate::secrets::{store, SecretError, SecretRef};

const SECRET_AFTER_HELP: &str = "\
Examples:
  mcp-guard secret set github/me                  # asks for the value (not echoed)
  printf %s \"$GITHUB_TOKEN\" | mcp-guard secret set github/me
  mcp-guard secret check github/me
  mcp-guard run --env GITHUB_PERSONAL_ACCESS_TOKEN=keyring:github/me -- npx -y @modelcontextprotocol/server-github

The guard reads the secret itself just before it starts the server, outside the sandbox; a
missing secret stops the launch with this command in the message. On Linux the store is the
kernel's keyring of the user running the command (no daemon needed; emptied at reboot: store
the secret again after one), on macOS the login Keychain. Store it as the user the host runs
the guard as.";

#[derive(Debug, clap::Args)]
#[command(after_help = SECRET_AFTER_HELP)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretAction {
    /// Store the value read from stdin (a terminal is asked, without echo) as SERVICE/ACCOUNT;
    /// one trailing newline is dropped.
    Set {
        #[arg(value_name = "SERVICE/ACCOUNT", value_parser = parse_reference)]
        reference: SecretRef,
    },
    /// Say whether SERVICE/ACCOUNT is stored (never its value); exit status 1 when it is not.
    Check {
        #[arg(value_name = "SERVICE/ACCOUNT", value_parser = parse_reference)]
        reference: SecretRef,
    },
    /// Remove SERVICE/ACCOUNT from the keychain; exit status 1 when it was not there.
    Delete {
        #[arg(value_name = "SERVICE/ACCOUNT", value_parser = parse_reference)]
        reference: SecretRef,
    },
}

fn parse_reference(text: &str) -> Result<SecretRef, String> {
    SecretRef::parse(text).map_err(|e| e.to_string())
}

pub fn execute(args: SecretArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        SecretAction::Set { reference } => {
            let value = read_value(&reference)?;
            store::write(&reference, &value)?;
            eprintln!(
                "mcp-guard: stored `{reference}` ({} characters) in {}, {}; give it to a server \
                 with `--env NAME=keyring:{reference}`",
                value.chars().count(),
                store::describe(),
                store::lifetime()
            );
            Ok(ExitCode::SUCCESS)
        }
        SecretAction::Check { reference } => match store::read(&reference) {
            Ok(value) => {
                println!(
                    "`{reference}` is stored ({} characters) in {}",
                    value.chars().count(),
                    store::describe()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err @ SecretError::Missing { .. }) => {
                println!("{err}");
                Ok(ExitCode::FAILURE)
            }
            Err(err) => Err(err.into()),
        },
        SecretAction::Delete { reference } => match store::delete(&reference) {
            Ok(()) => {
                eprintln!(
                    "mcp-guard: removed `{reference}` from {}",
                    store::describe()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(SecretError::Missing { .. }) => {
                eprintln!(
                    "mcp-guard: `{reference}` is not in {}: nothing to remove",
                    store::describe()
                );
                Ok(ExitCode::FAILURE)
            }
            Err(err) => Err(err.into()),
        },
    }
}

/// The secret from stdin: asked for without echo on a terminal, else read whole (a pipe, a
/// file); one trailing newline (`echo`, a text file) is not part of it.
fn read_value(reference: &SecretRef) -> anyhow::Result<String> {
    let mut value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value for {reference} (not shown): "))
            .context("cannot read the value from the terminal")?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin (it must be UTF-8 text)")?;
        text
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(SecretError::Empty(reference.clone()).into());
    }
    Ok(value)
}
