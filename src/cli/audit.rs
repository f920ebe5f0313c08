//! `mcp-guard audit verify FILE`, and the audit trail (and pin stage) of `mcp-guard run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::run::RunArgs;
use crate::audit::verify::{verify, VerifyError};
use crate::audit::{Audit, AuditConfig, Destination, SessionInfo};
use crate::filter::redact::KnownSecrets;
use crate::policy::resolve::ServerCommand;
use crate::policy::Vars;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check an audit log's hash chain: exit 0 when intact, 1 with the first bad line.
    Verify {
        /// The audit log (JSON Lines).
        file: PathBuf,
    },
}

pub fn execute(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { file } => {
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            match verify(input) {
                Ok(report) => {
                    println!(
                        "{}: intact: {} events in {} sessions",
                        file.display(),
                        report.lines,
                        report.sessions
                    );
                    for session in &report.unfinished {
                        println!(
                            "note: session {session} has no session_end event (the guard was killed, it is still running, or the end of the log is missing)"
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(VerifyError::Broken(broken)) => {
                    println!("{}: TAMPERED: {broken}", file.display());
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The audit trail for `run`: the policy's `[audit]`, then `--audit-log`, `--no-audit`,
/// `--metrics-file`, and the pin stage (`[pin]`, `--pin`, `--no-pin`); `secrets` are redacted from it too.
pub fn open_for_run(
    args: &RunArgs,
    eff: &crate::policy::EffectivePolicy,
    secrets: &KnownSecrets,
) -> anyhow::Result<Audit> {
    let vars = Vars::from_env(None);
    let mut config = AuditConfig::from_policy(&eff.policy.audit, &eff.policy.redaction, &vars)?;
    if eff
        .policy
        .redaction
        .enabled
        .as_ref()
        .is_none_or(|v| v.value)
    {
        config.redactor = config.redactor.with_known(secrets);
    }
    if args.no_audit {
        config.destination = None;
    } else if let Some(path) = &args.audit_log {
        config.destination = Some(if path.as_os_str() == "-" {
            Destination::Stderr
        } else {
            Destination::File(path.clone())
        });
    }
    config.metrics_file = args.metrics_file.clone();
    // `-v` turns on debug diagnostics, and with them the counters at exit.
    config.summary = tracing::enabled!(tracing::Level::DEBUG);
    let command = ServerCommand::new(&args.command);
    let policy_text = crate::policy::show::render(eff, &vars, Some(&command)).unwrap_or_default();
    let pin = super::pin::for_run(args, eff)?;
    let info = SessionInfo {
        command: command.argv.clone(),
        policy_digest: format!(
            "sha256:{}",
            crate::audit::chain::hex(&Sha256::digest(policy_text.as_bytes()))
        ),
        pin_file: pin.as_ref().map(|p| p.path.display().to_string()),
    };
    let audit = Audit::open(config, info)?;
    Ok(match pin {
        Some(pin) => {
            let session = audit.session_id();
            audit.with_pin(pin.into_guard(&command.argv, &session))
        }
        None => audit,
    })
}
