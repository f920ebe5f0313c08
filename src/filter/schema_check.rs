//! Every message against the official schema of the version in force (chosen per message by
//! [`super::Firewall`]). A method the version does not define gets the envelope check only.
//! Host → server failures are refused (-32602); server → host failures are forwarded and
//! recorded, or refused with `strict`.

use super::inspection::{Inspection, Kind, Step};
use super::reply::{codes, refuse};
use super::{Direction, Firewall};
use crate::protocol::schema::Check;

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    let (Some(schemas), Some(version), Some(method)) = (&fw.schemas, m.version.clone(), m.method)
    else {
        return Step::Next;
    };
    let Some(schema) = schemas.get(&version) else {
        return Step::Next;
    };
    if !schema.knows(method) {
        return Step::Next;
    }
    let check = match m.kind {
        Kind::Request | Kind::Notification => schema.check_params(method, m.body()),
        Kind::Result => match m.body() {
            Some(result) => schema.check_result(method, result),
            None => Check::Unchecked,
        },
        // The envelope parser checked the error object's shape.
        Kind::Error => Check::Unchecked,
    };
    let Check::Invalid(why) = check else {
        return Step::Next;
    };
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
