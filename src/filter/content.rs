//! Results that carry content: content types the protocol version allows, size caps on text
//! and on image/audio/blob data, and `structuredContent` against the tool's `outputSchema`.

use serde_json::Value;

use super::inspection::{Inspection, Kind, Step};
use super::reply::{codes, refuse};
use super::tools::{broken_finding, violation};
use super::{Direction, Firewall};

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if m.direction != Direction::ServerToHost || m.kind != Kind::Result {
        return Step::Next;
    }
    let method = match m.method {
        Some(method @ ("tools/call" | "prompts/get" | "resources/read")) => method,
        _ => return Step::Next,
    };
    let tool = m.request.and_then(crate::conversation::Entry::tool);
    check(fw, m, method, tool)
}

fn check(fw: &Firewall, m: &mut Inspection<'_>, method: &str, tool: Option<&str>) -> Step {
    let allowed = allowed_types(m.version.as_deref());
    let options = &fw.rules.options;
    let Some(body) = m.body() else {
        return Step::Next;
    };
    let mut problem = None;
    let mut broken = Vec::new();
    match method {
        "tools/call" => {
            if let Some(items) = body.get("content").and_then(Value::as_array) {
                problem = items.iter().find_map(|c| check_item(c, allowed, options));
            }
            if problem.is_none() {
                problem = check_structured(fw, tool, body, &mut broken);
            }
        }
        "prompts/get" => {
            if let Some(messages) = body.get("messages").and_then(Value::as_array) {
                problem = messages
                    .iter()
                    .filter_map(|msg| msg.get("content"))
                    .find_map(|c| check_item(c, allowed, options));
            }
        }
        _ => {
            if let Some(contents) = body.get("contents").and_then(Value::as_array) {
                problem = contents.iter().find_map(|c| check_sizes(c, options));
            }
        }
    }
    if let Some(tool) = tool {
        for why in broken {
            m.find("schema", broken_finding(tool, &why));
        }
    }
    match problem {
        None => Step::Next,
        Some(why) => {
            let message = format!("mcp-guard refused the MCP server's {method} result: {why}");
            Step::Stop(refuse(m, codes::INTERNAL_ERROR, &message, None))
        }
    }
}

/// The content types each version defines.
fn allowed_types(version: Option<&str>) -> &'static [&'static str] {
    match version {
        Some("2024-11-05") => &["text", "image", "resource"],
        Some("2025-03-26") => &["text", "image", "audio", "resource"],
        _ => &["text", "image", "audio", "resource", "resource_link"],
    }
}

fn check_item(item: &Value, allowed: &[&str], options: &super::Options) -> Option<String> {
    // A missing `type` is a schema fault, left to the schema stage (forwarded unless strict).
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("text");
    if !allowed.contains(&kind) {
        return Some(format!(
            "content of type `{kind}` is not allowed in this protocol version"
        ));
    }
    if kind == "resource" {
        if let Some(resource) = item.get("resource") {
            return check_sizes(resource, options);
        }
    }
    check_sizes(item, options)
}

fn check_sizes(item: &Value, options: &super::Options) -> Option<String> {
    if let Some(text) = item.get("text").and_then(Value::as_str) {
        if text.len() > options.max_text_bytes {
            return Some(format!(
                "a text item of {} bytes exceeds the cap of {} bytes",
                text.len(),
                options.max_text_bytes
            ));
        }
    }
    for key in ["data", "blob"] {
        if let Some(data) = item.get(key).and_then(Value::as_str) {
            if data.len() > options.max_blob_bytes {
                return Some(format!(
                    "a {key} item of {} bytes exceeds the cap of {} bytes",
                    data.len(),
                    options.max_blob_bytes
                ));
            }
        }
    }
    None
}

/// A tool that declares an `outputSchema` must return conforming `structuredContent`.
fn check_structured(
    fw: &Firewall,
    tool: Option<&str>,
    body: &Value,
    broken: &mut Vec<String>,
) -> Option<String> {
    let validator = fw.tools.get(tool?)?.output(broken)?;
    if body.get("isError").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    match body.get("structuredContent") {
        None => Some("the tool declares an outputSchema but returned no structuredContent".into()),
        Some(structured) => violation(validator, structured)
            .map(|why| format!("structuredContent does not match the tool's outputSchema ({why})")),
    }
}
