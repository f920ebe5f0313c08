//! Every message against the official schema of the version in force (chosen per message by
//! [`super::Firewall`]). A method the version does not define gets the envelope check only.
//! Host → server failures are refused (-32602); server → host failures are forwarded and
//! recorded, or refused with `strict`, unless every fault is one the policy tolerates.

use serde_json::Value;

use super::inspection::{Inspection, Kind, Step};
use super::reply::{codes, refuse};
use super::{Direction, Firewall};
use crate::protocol::schema::{Check, Faults, MethodSchema};

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    let (Some(schemas), Some(version), Some(method)) = (&fw.schemas, m.version.clone(), m.method)
    else {
        return Step::Next;
    };
    let Some(schema) = schemas.get(&version) else {
        return Step::Next;
    };
    let Some(parts) = schema.method(method) else {
        return Step::Next;
    };
    let kind = m.kind;
    let check = match kind {
        Kind::Request | Kind::Notification => parts.check_params(m.body()),
        Kind::Result => match m.body() {
            Some(result) => parts.check_result(result),
            None => Check::Unchecked,
        },
        // The envelope parser checked the error object's shape.
        Kind::Error => Check::Unchecked,
    };
    let Check::Invalid(mut why) = check else {
        return Step::Next;
    };
    // Only a message that failed pays for the tolerances.
    let tolerate = fw.rules.options.tolerate;
    if m.direction == Direction::ServerToHost && !tolerate.is_empty() {
        match recheck(parts, kind, m.body(), tolerate) {
            Check::Valid => {
                tracing::debug!(method, "schema faults tolerated by the policy: {why}");
                return Step::Next;
            }
            // What is left once the tolerated faults are repaired.
            Check::Invalid(rest) => why = rest,
            Check::Unchecked => {}
        }
    }
    let what = if m.kind == Kind::Result {
        "result"
    } else {
        "message"
    };
    match m.direction {
        Direction::HostToServer => {
            let message = format!(
                "Invalid params: this {method} {what} does not conform to the MCP {version} schema ({why})"
            );
            Step::Stop(refuse(m, codes::INVALID_PARAMS, &message, None))
        }
        Direction::ServerToHost if fw.rules.options.strict => {
            let message = format!(
                "mcp-guard refused the MCP server's {method} {what}: it does not conform to the MCP {version} schema ({why})"
            );
            Step::Stop(refuse(m, codes::INTERNAL_ERROR, &message, None))
        }
        Direction::ServerToHost => {
            m.find(
                "schema",
                format!("{method} {what} does not conform to the MCP {version} schema: {why}"),
            );
            Step::Next
        }
    }
}

/// Check a copy of `body` with the `tolerate`d faults repaired; `Unchecked` when there was
/// nothing to repair (the first check stands).
fn recheck(parts: MethodSchema<'_>, kind: Kind, body: Option<&Value>, tolerate: Faults) -> Check {
    let Some(mut copy) = body.cloned() else {
        return Check::Unchecked;
    };
    if !tolerate.repair(&mut copy) {
        return Check::Unchecked;
    }
    match kind {
        Kind::Result => parts.check_result(&copy),
        _ => parts.check_params(Some(&copy)),
    }
}
