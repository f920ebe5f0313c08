//! `mcp-guard audit verify FILE`, and the audit trail (and pin stage) of `mcp-guard run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::output;
use super::run::RunArgs;
use crate::audit::verify::{verify, Broken, Report, VerifyError};
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
    /// Check an audit log's hash chain. Exit status: 0 intact, 1 tampered (the first bad line
    /// is named), 2 the file cannot be read, 3 the file is not an mcp-guard audit log.
    Verify {
        /// The audit log (JSON Lines).
        #[arg(value_parser = super::user_path::parse)]
        file: PathBuf,
        /// Print the verdict as one JSON object: `status` (intact, tampered, not_an_audit_log),
        /// `events`, `sessions`, `unfinished`, or `line` and `problem`.
        #[arg(long)]
        json: bool,
    },
}

/// `audit verify` found a file that is not an audit log at all.
const NOT_AN_AUDIT_LOG: u8 = 3;

pub fn execute(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { file, json } => {
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let name = file.display().to_string();
            let (verdict, status) = match verify(input) {
                Ok(report) => (Verdict::Intact(report), ExitCode::SUCCESS),
                Err(VerifyError::Broken(broken)) => (Verdict::Tampered(broken), ExitCode::from(1)),
                Err(VerifyError::NotAuditLog(why)) => {
                    (Verdict::NotAuditLog(why), ExitCode::from(NOT_AN_AUDIT_LOG))
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                output::println(&format!("{:#}", verdict.json(&name)))?;
            } else {
                output::print(&verdict.text(&name))?;
            }
            Ok(status)
        }
    }
}

/// What `audit verify` found.
enum Verdict {
    Intact(Report),
    Tampered(Broken),
    NotAuditLog(String),
}

impl Verdict {
    fn text(&self, file: &str) -> String {
        match self {
            Verdict::Intact(report) => {
                let mut text = format!(
                    "{file}: intact: {} events in {} sessions\n",
                    report.lines, report.sessions
                );
                for session in &report.unfinished {
                    text.push_str(&format!(
                        "note: session {session} has no session_end event (the guard was killed, it is still running, or the end of the log is missing)\n"
                    ));
                }
                text
            }
            Verdict::Tampered(broken) => format!("{file}: TAMPERED: {broken}\n"),
            Verdict::NotAuditLog(why) => format!(
                "{file}: not an mcp-guard audit log (line 1 {why}); `mcp-guard run` writes one to \
                 $XDG_STATE_HOME/mcp-guard/audit.jsonl unless --audit-log says where\n"
            ),
        }
    }

    fn json(&self, file: &str) -> serde_json::Value {
        match self {
            Verdict::Intact(report) => json!({
                "file": file,
                "status": "intact",
                "events": report.lines,
                "sessions": report.sessions,
                "unfinished": report.unfinished,
            }),
            Verdict::Tampered(broken) => json!({
                "file": file,
                "status": "tampered",
                "line": broken.line(),
                "problem": broken.to_string(),
            }),
            Verdict::NotAuditLog(why) => json!({
                "file": file,
                "status": "not_an_audit_log",
                "line": 1,
                "problem": format!("line 1 {why}"),
            }),
        }
    }
}

/// The audit trail for `run`: the policy's `[audit]`, then `--audit-log`, `--no-audit`,
/// `--metrics-file`; and the pin stage (`[pin]`, `--pin`, `--no-pin`), which names the audit
/// session in the pin file. `secrets` are redacted from the audit too.
pub fn open_for_run(
    args: &RunArgs,
    eff: &crate::policy::EffectivePolicy,
    secrets: &KnownSecrets,
) -> anyhow::Result<(Audit, Option<crate::pin::PinGuard>)> {
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
    let session = audit.session_id();
    let pin = pin.map(|pin| pin.into_guard(&command.argv, &session));
    Ok((audit, pin))
}

/// The OpenTelemetry export of the audit events and counters: `[audit] otlp_endpoint`, else the
/// guard's own `OTEL_EXPORTER_OTLP_ENDPOINT` (the server's environment is never read). A
/// collector that cannot be set up costs the telemetry, never the session.
pub fn start_telemetry(
    args: &RunArgs,
    eff: &crate::policy::EffectivePolicy,
    command: &[std::ffi::OsString],
) -> Option<crate::telemetry::Running> {
    if args.no_audit {
        return None;
    }
    let policy = eff.policy.audit.otlp_endpoint.as_ref();
    let endpoint = crate::telemetry::choose_endpoint(policy.map(|v| v.value.as_str()), |name| {
        std::env::var(name).ok()
    })?;
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match crate::telemetry::start(&endpoint, &argv) {
        Ok(running) => Some(running),
        Err(e) => {
            tracing::warn!("{e}; relaying without telemetry");
            None
        }
    }
}
