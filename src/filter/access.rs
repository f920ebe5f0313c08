//! Allow/deny on use: `tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe` of an
//! item the policy does not allow are refused with an error the host can show.

use crate::conversation::target::{target_kind, TargetKind};
use serde_json::Value;

use super::inspection::{Inspection, Kind, Step};
use super::names::{NameFilter, Refusal};
use super::reply::{codes, refuse};
use super::{uris, Direction, Firewall};

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if m.direction != Direction::HostToServer || m.kind != Kind::Request {
        return Step::Next;
    }
    let rules = &fw.rules;
    let (filter, section, what) = match m.method.and_then(target_kind) {
        Some(TargetKind::Tool) => (&rules.tools, "tools", "tool"),
        Some(TargetKind::Prompt) => (&rules.prompts, "prompts", "prompt"),
        Some(TargetKind::Uri) => return check_uri(fw, m),
        None => return Step::Next,
    };
    if filter.is_open() {
        return Step::Next;
    }
    let name = m
        .body()
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match filter.check(&name) {
        Ok(()) => Step::Next,
        Err(refusal) => {
            let message = format!(
                "mcp-guard: the {what} `{name}` is {} by the policy ([{section}] {})",
                refusal_words(refusal).0,
                refusal_words(refusal).1
            );
            Step::Stop(refuse(m, codes::INVALID_PARAMS, &message, None))
        }
    }
}

fn refusal_words(r: Refusal) -> (&'static str, &'static str) {
    match r {
        Refusal::Denied => ("denied", "deny"),
        Refusal::NotAllowed => ("not allowed", "allow"),
    }
}

fn check_uri(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    let uri = m
        .body()
        .and_then(|b| b.get("uri"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match check_resource(&fw.rules.resources, &fw.rules.file_roots, &uri) {
        Ok(()) => Step::Next,
        Err(why) => {
            let message = format!("mcp-guard refused the resource `{uri}`: {why}");
            Step::Stop(refuse(m, codes::INVALID_PARAMS, &message, None))
        }
    }
}

/// Normalise `uri` and check it against the URI patterns and the `file://` roots.
pub fn check_resource(
    filter: &NameFilter,
    file_roots: &[std::path::PathBuf],
    uri: &str,
) -> Result<(), String> {
    let normalized = uris::normalize(uri).map_err(|e| e.to_string())?;
    if let Some(path) = uris::file_path(&normalized) {
        let path = path.map_err(|e| e.to_string())?;
        if !file_roots.is_empty() {
            let shown = path.display().to_string();
            uris::check_path_under(&shown, file_roots)
                .map_err(|e| format!("{e} ([resources] file_roots)"))?;
        }
    }
    filter.check(&normalized).map_err(|r| {
        let (word, key) = refusal_words(r);
        format!("it is {word} by the policy ([resources] {key})")
    })
}
