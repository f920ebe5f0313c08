//! The text `mcp-guard status` prints: per host config, each entry on a line saying whether it
//! runs guarded, then its command, pin and last session.

use std::path::PathBuf;

use super::status::{PinState, ServerStatus};
use crate::status::last_session::SessionSummary;

/// Per host config, per entry: a line saying whether it is guarded, then its details.
pub(super) fn render(servers: &[ServerStatus], log: Option<&PathBuf>) -> String {
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
            out += &format!("    command: {}\n", crate::shell::join(command));
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
