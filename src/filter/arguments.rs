//! Arguments of `tools/call` and `prompts/get`: against the tool's `inputSchema` as last listed
//! (a tool never listed is refused), the policy's per-argument rules (path under roots,
//! pattern, length), and no NUL bytes anywhere (refused, never stripped). From 2025-11-25 on,
//! arguments that fail the `inputSchema` get a tool result marked `isError`, not -32602.

use crate::conversation::target::{target_kind, TargetKind};
use std::collections::HashMap;

use serde_json::Value;

use super::config::ArgRule;
use super::inspection::{Inspection, Kind, Step};
use super::raw_scan::Member;
use super::reply::{codes, refuse, refuse_as_tool_error};
use super::tools::{broken_finding, violation, Lookup};
use super::{uris, Direction, Firewall};
use crate::protocol::version::tool_input_errors_are_results;

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if m.direction != Direction::HostToServer || m.kind != Kind::Request {
        return Step::Next;
    }
    let (rules, is_tool) = match m.method.and_then(target_kind) {
        Some(TargetKind::Tool) => (&fw.rules.tool_args, true),
        Some(TargetKind::Prompt) => (&fw.rules.prompt_args, false),
        Some(TargetKind::Uri) => return refuse_nul(m),
        None => return Step::Next,
    };
    if let Step::Stop(v) = refuse_nul(m) {
        return Step::Stop(v);
    }
    let Some(body) = m.body() else {
        return Step::Next;
    };
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let empty = Value::Object(Default::default());
    let args = body.get("arguments").unwrap_or(&empty);
    let mut refusal = None;
    let mut broken = Vec::new();
    let mut unlisted = false;
    // The arguments failed the listed tool's inputSchema (not a policy rule, not the name).
    let mut input_error = false;
    if is_tool {
        let lookup = fw.tools.lookup(name);
        unlisted = matches!(lookup, Lookup::NeverListed | Lookup::Stale);
        let found = matches!(lookup, Lookup::Found(_));
        refusal = check_listed(fw, lookup, name, args, &mut broken).err();
        input_error = found && refusal.is_some();
    }
    if refusal.is_none() {
        if let Some(item_rules) = rules.get(name) {
            refusal = check_rules(item_rules, args);
        }
    }
    // Said once per tool and listing, not on every call (a busy session would drown in it).
    let report_unlisted = unlisted && refusal.is_none() && fw.tools.first_unchecked_call(name);
    if !broken.is_empty() || report_unlisted {
        // Owned only when there is something to report (the findings need `m` back).
        let name = name.to_owned();
        for why in broken {
            m.find("schema", broken_finding(&name, &why));
        }
        if report_unlisted {
            m.find("unlisted", format!("tools/call of `{name}` without a current tools/list: arguments not checked against its inputSchema"));
        }
    }
    match refusal {
        None => Step::Next,
        Some(message) if input_error && tool_input_errors_are_results(m.version.as_deref()) => {
            Step::Stop(refuse_as_tool_error(m, &message))
        }
        Some(message) => Step::Stop(refuse(m, codes::INVALID_PARAMS, &message, None)),
    }
}

fn check_listed(
    fw: &Firewall,
    lookup: Lookup<'_>,
    name: &str,
    args: &Value,
    broken: &mut Vec<String>,
) -> Result<(), String> {
    match lookup {
        Lookup::Found(tool) => match tool.input(broken).and_then(|v| violation(v, args)) {
            None => Ok(()),
            Some(why) => Err(format!(
                "Invalid params: the arguments of `{name}` do not match its inputSchema ({why})"
            )),
        },
        // With `require_listing` (the default) the relay has the guard list the tools before
        // such a call (`own_listing.rs`), so this is reached only when that listing failed.
        // Without it, a call from a listing the host cached earlier passes unchecked.
        Lookup::NeverListed if !fw.rules.options.require_listing => Ok(()),
        Lookup::NeverListed => Err(match &fw.own_listing.failure {
            Some(why) => format!(
                "mcp-guard: cannot check the call of `{name}`: the server's tool listing is not available ({why})"
            ),
            None => format!(
                "mcp-guard: the server has not listed a tool named `{name}` in this session (call tools/list first)"
            ),
        }),
        Lookup::Unknown => Err(format!(
            "mcp-guard: the server did not list a tool named `{name}`"
        )),
        // The schemas may have changed: names are still checked, arguments wait for a listing.
        Lookup::Stale => Ok(()),
    }
}

fn check_rules(rules: &HashMap<String, ArgRule>, args: &Value) -> Option<String> {
    for (arg, rule) in rules {
        let Some(value) = args.get(arg) else { continue };
        let Some(text) = value.as_str() else {
            return Some(format!(
                "mcp-guard: argument `{arg}` must be a string (policy argument rule)"
            ));
        };
        if let Some(max) = rule.max_length {
            if text.chars().count() as u64 > max {
                return Some(format!(
                    "mcp-guard: argument `{arg}` is longer than {max} characters (policy max_length)"
                ));
            }
        }
        if let Some(re) = &rule.pattern {
            if !re.is_match(text) {
                return Some(format!(
                    "mcp-guard: argument `{arg}` does not match the policy pattern `{}`",
                    re.as_str()
                ));
            }
        }
        if !rule.under.is_empty() {
            if let Err(e) = uris::check_path_under(text, &rule.under) {
                return Some(format!(
                    "mcp-guard: argument `{arg}` is refused: {e} (policy `under`)"
                ));
            }
        }
    }
    None
}

/// A NUL can truncate a path or a string in the server's language: refuse it. In JSON text a
/// NUL is always written `\u0000`, so the raw text tells without parsing.
fn refuse_nul(m: &mut Inspection<'_>) -> Step {
    if !m.mentions(Member::Nul) {
        return Step::Next;
    }
    // `\\u0000` is an escaped backslash followed by text: look at the decoded strings.
    if !m.body().is_some_and(contains_nul) {
        return Step::Next;
    }
    Step::Stop(refuse(
        m,
        codes::INVALID_PARAMS,
        "Invalid params: a string contains a NUL byte (refused by mcp-guard)",
        None,
    ))
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}
