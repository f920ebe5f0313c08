//! `mcp-guard status`: every server of every host config, whether it runs under the guard, with
//! which profile, its pin, and how its last session went.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::hosts::launch_args::{original_launch, wrapped_profile};
use crate::hosts::{self, ConfiguredEntry, Dirs, Outcome};
use crate::pin::identity::identify;
use crate::pin::store;
use crate::status::last_session::{self, SessionSummary};

const STATUS_AFTER_HELP: &str = "\
Reads the configs `mcp-guard wrap` knows (see `mcp-guard wrap --help` for where), the pins in
$XDG_STATE_HOME/mcp-guard/pins/ and the audit log $XDG_STATE_HOME/mcp-guard/audit.jsonl (with
its rotated files). A server's last session is the latest one whose command is the entry's
command after `--`; a policy that writes its log elsewhere ([audit] path) is not read.

Examples:
  mcp-guard status
  mcp-guard status --json | jq '.[] | select(.pin.awaiting_approval != [])'";

#[derive(Debug, clap::Args)]
#[command(after_help = STATUS_AFTER_HELP)]
pub struct StatusArgs {
    /// Print a JSON array, one object per server entry.
    #[arg(long)]
    pub json: bool,
}

/// One server entry of one host config.
#[derive(Debug, Serialize)]
struct ServerStatus {
    host: &'static str,
    config: PathBuf,
    /// Where in the config (`mcpServers`, `project /path`, `mcp_servers`).
    scope: String,
    name: String,
    guarded: bool,
    /// Why an entry is not guarded, and what to do.
    note: Option<String>,
    profile: Option<String>,
    /// The server command the guard starts (after `--`).
    command: Option<Vec<String>>,
    pin: Option<PinState>,
    last_session: Option<SessionSummary>,
}

#[derive(Debug, Serialize)]
struct PinState {
    /// The id `mcp-guard pin status` shows; `None` when it cannot be worked out.
    id: Option<String>,
    pinned: bool,
    awaiting_approval: Vec<String>,
    error: Option<String>,
}

pub fn execute(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::from_env();
    let configs = hosts::existing_configs(&dirs);
    if configs.is_empty() {
        eprintln!(
            "no MCP host config found; looked at {}. Once a host has servers, \
             `mcp-guard wrap` puts them behind the guard",
            hosts::locations::looked_at(&dirs)
        );
        if args.json {
            super::output::println("[]")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut servers = Vec::new();
    for (host, path) in configs {
        // One unreadable config must not hide the others.
        match hosts::configured_entries(&path) {
            Ok(entries) => servers.extend(
                entries
                    .into_iter()
                    .map(|e| server_status(host.name(), &path, e)),
            ),
            Err(err) => eprintln!("mcp-guard: warning: {err}"),
        }
    }
    let log = add_last_sessions(&mut servers);
    if args.json {
        super::output::println(&serde_json::to_string_pretty(&servers)?)?;
    } else {
        super::output::print(&render(&servers, log.as_ref()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn server_status(
    host: &'static str,
    config: &std::path::Path,
    entry: ConfiguredEntry,
) -> ServerStatus {
    let mut status = ServerStatus {
        host,
        config: config.to_owned(),
        scope: entry.scope,
        name: entry.name,
        guarded: false,
        note: None,
        profile: None,
        command: None,
        pin: None,
        last_session: None,
    };
    let (command, args) = match entry.launch {
        Ok(launch) => launch,
        Err(Outcome::Remote) => {
            status.note = Some("remote (url): not started locally, nothing to guard".into());
            return status;
        }
        Err(outcome) => {
            status.note = Some(outcome.describe());
            return status;
        }
    };
    let Some((original, original_args)) = original_launch(&command, &args) else {
        status.note = Some("not guarded (run `mcp-guard wrap`)".into());
        return status;
    };
    status.guarded = true;
    status.profile = wrapped_profile(&args).map(str::to_owned);
    let launch: Vec<String> = std::iter::once(original).chain(original_args).collect();
    status.pin = Some(pin_state(&launch));
    status.command = Some(launch);
    status
}

/// The pin the guard would use for `command`, and what in it awaits approval.
fn pin_state(command: &[String]) -> PinState {
    let mut state = PinState {
        id: None,
        pinned: false,
        awaiting_approval: Vec::new(),
        error: None,
    };
    let words: Vec<OsString> = command.iter().map(OsString::from).collect();
    let found = identify(&words).map_err(|e| e.to_string()).and_then(|id| {
        state.id = Some(id.id.clone());
        let dir = store::pins_dir().map_err(|e| e.to_string())?;
        store::load(&store::pin_path(&dir, &id.id)).map_err(|e| e.to_string())
    });
    match found {
        Ok(Some(lock)) => {
            state.pinned = true;
            state.awaiting_approval = super::pin::pending_lines(&lock);
        }
        Ok(None) => {}
        Err(e) => state.error = Some(e),
    }
    state
}

/// Fill in each guarded server's last session; the log read, when there is one.
fn add_last_sessions(servers: &mut [ServerStatus]) -> Option<PathBuf> {
    let vars = crate::policy::Vars::from_env(None);
    let log = crate::audit::config::default_path(&vars).ok()?;
    let wanted: HashSet<Vec<String>> = servers.iter().filter_map(|s| s.command.clone()).collect();
    let last: HashMap<Vec<String>, SessionSummary> =
        match last_session::last_sessions(&last_session::log_files(&log), &wanted) {
            Ok(last) => last,
            Err(err) => {
                eprintln!("mcp-guard: warning: {err}; last sessions are not shown");
                return Some(log);
            }
        };
    for server in servers {
        if let Some(command) = &server.command {
            // Entries with the same command share the one last session.
            server.last_session = last.get(command).cloned();
        }
    }
    Some(log)
}

/// Per host config, per entry: a line saying whether it is guarded, then its details.
fn render(servers: &[ServerStatus], log: Option<&PathBuf>) -> String {
    let mut out = String::new();
    let mut config: Option<&PathBuf> = None;
    for s in servers {
        if config != Some(&s.config) {
            config = Some(&s.config);
            out += &format!("{} ({})\n", s.host, s.config.display());
        }
        let scope = match s.scope.as_str() {
            "mcpServers" | "servers" | "mcp_servers" => String::new(),
            other => format!(" [{other}]"),
        };
        if !s.guarded {
            let note = s.note.as_deref().unwrap_or_default();
            out += &format!("  {}{scope}: {note}\n", s.name);
            continue;
        }
        let profile = s.profile.as_deref().unwrap_or("from its policy");
        out += &format!("  {}{scope}: guarded, profile {profile}\n", s.name);
        if let Some(command) = &s.command {
            out += &format!("    command: {}\n", command.join(" "));
        }
        if let Some(pin) = &s.pin {
            out += &format!("    pin: {}\n", describe_pin(pin));
        }
        let session = match &s.last_session {
            Some(session) => describe_session(session),
            None => match log {
                Some(log) => format!("none in {}", log.display()),
                None => "none (no audit log location: XDG_STATE_HOME and HOME unset)".into(),
            },
        };
        out += &format!("    last session: {session}\n");
    }
    if servers.iter().any(|s| {
        s.pin
            .as_ref()
            .is_some_and(|p| !p.awaiting_approval.is_empty())
    }) {
        out += "review with `mcp-guard pin diff ID`, approve with `mcp-guard pin approve ID [ITEM…]`\n";
    }
    out
}

fn describe_pin(pin: &PinState) -> String {
    let id = pin.id.as_deref().unwrap_or("?");
    if let Some(error) = &pin.error {
        return format!("{id} (cannot read: {error})");
    }
    if !pin.pinned {
        return format!("{id} not pinned yet (pinned on its first session)");
    }
    if pin.awaiting_approval.is_empty() {
        return format!("{id} pinned, nothing awaits approval");
    }
    format!(
        "{id} pinned; awaiting approval: {}",
        pin.awaiting_approval.join(", ")
    )
}

/// `2026-12-07T04:40:00.123Z, exited with code 0; 1 refusal; findings: 1 high; limits hit: memory`
fn describe_session(s: &SessionSummary) -> String {
    let ending = match &s.exit {
        Some(exit) => match (&exit.limit, exit.signal, exit.code) {
            (Some(limit), _, _) => format!("stopped by the {limit} limit"),
            (None, Some(signal), _) => format!("killed by signal {signal}"),
            (None, None, Some(code)) => format!("exited with code {code}"),
            (None, None, None) => exit
                .description
                .clone()
                .unwrap_or_else(|| "ended".to_owned()),
        },
        None if s.ended.is_some() => "ended".to_owned(),
        None => "no end recorded (still running, or the guard was killed)".to_owned(),
    };
    let refusals = match s.refusals {
        1 => "1 refusal".to_owned(),
        n => format!("{n} refusals"),
    };
    let findings = if s.findings.is_empty() {
        "none".to_owned()
    } else {
        s.findings
            .iter()
            .map(|(severity, n)| format!("{n} {severity}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limits = if s.limits.is_empty() {
        "none".to_owned()
    } else {
        s.limits.join(", ")
    };
    format!(
        "{}, {ending}; {refusals}; findings: {findings}; limits hit: {limits}",
        s.started
    )
}
