//! `mcp-guard scan -- SERVER_CMD …`: findings with severity, as text, JSON or SARIF.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;

use super::output;
use super::pin::LaunchArgs;
use crate::scan::report;
use crate::scan::Severity;

const SCAN_AFTER_HELP: &str = "\
Examples:
  mcp-guard scan -- npx -y @modelcontextprotocol/server-everything
  mcp-guard scan --format sarif --fail-on medium -- node dist/index.js > mcp-scan.sarif

Without --policy or --profile the server runs under the `strict` profile. Exit status: 0 when no
finding reaches --fail-on, 1 when one does, 2 when the scan itself could not run.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Never,
}

#[derive(Debug, clap::Args)]
#[command(after_help = SCAN_AFTER_HELP)]
pub struct ScanArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit 1 when a finding of this severity or higher is found.
    #[arg(long, value_enum, default_value = "high")]
    pub fail_on: FailOn,
    /// Also call every tool, with arguments generated from its input schema.
    #[arg(long)]
    pub call_tools: bool,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

pub fn execute(args: ScanArgs) -> anyhow::Result<ExitCode> {
    // A private (0700) directory for the scan's audit log, removed on return.
    let dir = tempfile::Builder::new()
        .prefix("mcp-guard-scan-")
        .tempdir()
        .context("cannot create a temporary directory for the scan's audit log")?;
    let audit_log = dir.path().join("audit.jsonl");
    let mut launch_args = args.launch.clone();
    let options = &mut launch_args.options;
    if options.policy.is_none() && options.profile.is_none() {
        options.profile = Some("strict".into());
    }
    // Faults are reported, not refused: a profile's strict validation would hide from the
    // scan the listing (and its descriptions) of a server with one broken tool.
    let extra: Vec<OsString> = vec![
        "--audit-log".into(),
        audit_log.clone().into_os_string(),
        "--lenient-validation".into(),
    ];
    let launch = launch_args.launch(&extra);
    let result = crate::scan::scan(&launch, &audit_log, args.call_tools);
    drop(dir);
    let result = result.context("cannot scan the server")?;
    let command: Vec<String> = args
        .launch
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.format {
        Format::Text => output::print(&report::text(&result, &command.join(" ")))?,
        Format::Json => output::println(&format!("{:#}", report::json(&result, &command)))?,
        Format::Sarif => {
            // Attach results to the server's script when there is one, else to its command.
            let artifact = command
                .iter()
                .skip(1)
                .find(|a| std::path::Path::new(a).is_file())
                .or(command.first())
                .cloned()
                .unwrap_or_default();
            output::println(&format!("{:#}", report::sarif(&result, &artifact)))?;
        }
    }
    let threshold = match args.fail_on {
        FailOn::Low => Some(Severity::Low),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::High => Some(Severity::High),
        FailOn::Never => None,
    };
    let failed = threshold.is_some_and(|t| result.findings.iter().any(|f| f.severity >= t));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
