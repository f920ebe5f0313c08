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
its rotated files; ~/.local/state when XDG_STATE_HOME is unset). A server's last session is the latest one whose command is the entry's
command after `--`; a policy that writes its log elsewhere ([audit] path) is not read.

Examples:
  mcp-guard status
  mcp-guard status --json | jq '.[] | select(.pin.awaiting_approval | length > 0)'";

#[derive(Debug, clap::Args)]
#[command(after_help = STATUS_AFTER_HELP)]
pub struct StatusArgs {
    /// Print a JSON array, one object per server entry.
    #[arg(long)]
    pub json: bool,
}

/// One server entry of one host config.
#[derive(Debug, Serialize)]
pub(super) struct ServerStatus {
    pub(super) host: &'static str,
    pub(super) config: PathBuf,
    /// Where in the config (`mcpServers`, `project /path`, `mcp_servers`).
    pub(super) scope: String,
    pub(super) name: String,
    pub(super) guarded: bool,
    /// Why an entry is not guarded, and what to do.
    pub(super) note: Option<String>,
    pub(super) profile: Option<String>,
    /// The server command the guard starts (after `--`).
    pub(super) command: Option<Vec<String>>,
    pub(super) pin: Option<PinState>,
    pub(super) last_session: Option<SessionSummary>,
}

#[derive(Debug, Serialize)]
pub(super) struct PinState {
    /// The id `mcp-guard pin status` shows; `None` when it cannot be worked out.
    pub(super) id: Option<String>,
    pub(super) pinned: bool,
    pub(super) awaiting_approval: Vec<String>,
    pub(super) error: Option<String>,
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
        super::output::print(&super::status_text::render(&servers, log.as_ref()))?;
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
