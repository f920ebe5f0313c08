//! What the server may ask of the host: `sampling/createMessage`, `elicitation/create`,
//! `roots/list`, as requests or (2026-07-28) as `inputRequests` inside a result. A request the
//! policy denies, or that the host never declared a capability for, is answered by the guard
//! with an error; the host never sees it.

use serde_json::Value;

use super::inspection::{Inspection, Kind, Step};
use super::raw_scan::Member;
use super::reply::{codes, refuse};
use super::{Direction, Firewall};
use crate::policy::firewall::Permission;

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if m.direction != Direction::ServerToHost {
        return Step::Next;
    }
    match m.kind {
        Kind::Request => {
            let Some(method) = m.method else {
                return Step::Next;
            };
            match refusal(fw, method) {
                Some(why) => Step::Stop(refuse(m, codes::METHOD_NOT_FOUND, &why, None)),
                None => Step::Next,
            }
        }
        Kind::Result => input_requests(fw, m),
        _ => Step::Next,
    }
}

/// Why `method` from the server is refused, if it is.
fn refusal(fw: &Firewall, method: &str) -> Option<String> {
    // The policy key and the host capability share one name.
    let (permission, key) = match method {
        "sampling/createMessage" => (fw.rules.sampling, "sampling"),
        "elicitation/create" => (fw.rules.elicitation, "elicitation"),
        "roots/list" => (fw.rules.roots, "roots"),
        _ => return None,
    };
    let capability = key;
    if permission == Some(Permission::Deny) {
        return Some(format!(
            "mcp-guard: the policy does not let this server use {method} ([server_requests] {key} = \"deny\")"
        ));
    }
    // Only what the host offered: a host without `roots` may still answer `roots/list` with
    // the directories it has open, which the user never agreed to share with this server.
    // (No `initialize` seen, as in a 2026-07-28 session: nothing was declared or withheld.)
    let declared = fw
        .host_capabilities
        .as_ref()
        .is_none_or(|caps| caps.iter().any(|c| c == capability));
    if !declared {
        return Some(format!(
            "mcp-guard: the client did not declare the `{capability}` capability, so {method} is not available"
        ));
    }
    None
}

/// 2026-07-28: a result may ask the host for input (`inputRequests`): same rules.
fn input_requests(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if !m.mentions(Member::InputRequests) {
        return Step::Next;
    }
    let methods: Vec<String> = match m.body().and_then(|b| b.get("inputRequests")) {
        Some(Value::Object(map)) => map.values().filter_map(method_of).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(method_of).collect(),
        _ => Vec::new(),
    };
    for method in methods {
        if let Some(why) = refusal(fw, &method) {
            return Step::Stop(refuse(m, codes::INTERNAL_ERROR, &why, None));
        }
    }
    Step::Next
}

fn method_of(request: &Value) -> Option<String> {
    request
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned)
}
