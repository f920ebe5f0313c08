//! Drive the server through the guard as a client, then read what the guard saw.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::checks::{check_output, check_text, check_tool};
use super::findings::{self, Finding, Severity};
use crate::audit::redact::{truncate, Redactor};
use crate::client::{Client, ClientError, Launch};
use crate::pin::Kind;

/// At most this many resources read, prompts got and tools called.
const MAX_EXERCISED: usize = 25;
/// At most this many stderr lines reported.
const MAX_STDERR_FINDINGS: usize = 5;

#[derive(Debug, Default)]
pub struct ScanResult {
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    pub findings: Vec<Finding>,
    /// How many items of each kind were listed.
    pub listed: Vec<(Kind, usize)>,
}

pub fn scan(
    launch: &Launch,
    audit_log: &Path,
    call_tools: bool,
) -> Result<ScanResult, ClientError> {
    let mut client = launch.start()?;
    let mut result = ScanResult::default();
    let redactor = Redactor::builtin();
    let outcome = exercise(&mut client, &mut result, &redactor, call_tools);
    if let Err(e) = outcome {
        result.findings.push(Finding::new(
            findings::SERVER_FAILURE,
            "server",
            e.to_string(),
        ));
    }
    let finished = client.finish(std::time::Duration::from_secs(10));
    for line in &finished.garbage {
        result.findings.push(
            Finding::new(
                findings::STDOUT_GARBAGE,
                "guard",
                format!(
                    "a non-JSON line reached the client: {:?}",
                    truncate(line, 120)
                ),
            )
            .with_severity(Severity::High),
        );
    }
    read_audit(audit_log, &mut result.findings);
    read_stderr(&finished.stderr, &mut result.findings);
    dedup(&mut result.findings);
    result
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    Ok(result)
}

fn exercise(
    client: &mut Client,
    result: &mut ScanResult,
    redactor: &Redactor,
    call_tools: bool,
) -> Result<(), ClientError> {
    let init = client.initialize("mcp-guard-scan")?;
    let text = |k: &str| {
        init.get("serverInfo")
            .and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    result.server_name = text("name");
    result.server_version = text("version");
    if let Some(instructions) = init.get("instructions") {
        check_text("server instructions", instructions, &mut result.findings);
    }
    let caps = init.get("capabilities").cloned().unwrap_or(Value::Null);
    for kind in Kind::ALL {
        let cap = match kind {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources | Kind::ResourceTemplates => "resources",
        };
        if caps.get(cap).is_none() {
            continue;
        }
        let items = match client.list_all(kind.list_method(), kind.result_member()) {
            Ok(items) => items,
            Err(ClientError::Rpc { .. }) if kind == Kind::ResourceTemplates => continue,
            Err(e @ ClientError::Rpc { .. }) => {
                result.findings.push(Finding::new(
                    findings::SERVER_FAILURE,
                    "server",
                    e.to_string(),
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        result.listed.push((kind, items.len()));
        let own: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
        for item in &items {
            let key = kind.key_of(item).unwrap_or_default();
            let location = format!("{} {key}", kind.noun());
            match kind {
                Kind::Tools => check_tool(item, &own, &mut result.findings),
                _ => check_text(&location, item, &mut result.findings),
            }
            if key.is_empty() {
                result.findings.push(Finding::new(
                    findings::INVALID_MESSAGE,
                    &location,
                    format!("a listed {} has no name or URI", kind.noun()),
                ));
            }
        }
        for item in items.iter().take(MAX_EXERCISED) {
            let key = kind.key_of(item).unwrap_or_default();
            let location = format!("{} {key}", kind.noun());
            let answer = match kind {
                Kind::Resources => client.request("resources/read", json!({ "uri": key })),
                Kind::Prompts => client.request(
                    "prompts/get",
                    json!({"name": key, "arguments": prompt_arguments(item)}),
                ),
                Kind::Tools if call_tools => client.call_tool(
                    &key,
                    sample(item.get("inputSchema").unwrap_or(&Value::Null), 0),
                ),
                _ => continue,
            };
            match answer {
                Ok(output) => check_output(&location, &output, redactor, &mut result.findings),
                // A refusal of our made-up arguments is the server doing its job.
                Err(ClientError::Rpc { .. }) => {}
                Err(e @ ClientError::Timeout { .. }) => result.findings.push(
                    Finding::new(findings::SERVER_FAILURE, &location, e.to_string())
                        .with_severity(Severity::Low),
                ),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Every required prompt argument, as a placeholder string.
fn prompt_arguments(prompt: &Value) -> Value {
    let mut args = Map::new();
    for arg in prompt
        .get("arguments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if arg.get("required").and_then(Value::as_bool) == Some(true) {
            if let Some(name) = arg.get("name").and_then(Value::as_str) {
                args.insert(name.to_owned(), json!("test"));
            }
        }
    }
    Value::Object(args)
}

/// A small value that satisfies `schema` (required members only).
pub fn sample(schema: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(d) = schema.get("default") {
        return d.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return sample(first, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().find_map(Value::as_str).unwrap_or("null"),
        Some(Value::String(t)) => t.as_str(),
        _ => "object",
    };
    match ty {
        "string" => json!("test"),
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "boolean" => json!(false),
        "array" => match schema.get("minItems").and_then(Value::as_u64) {
            Some(n) if n > 0 => Value::Array(
                (0..n)
                    .map(|_| sample(schema.get("items").unwrap_or(&Value::Null), depth + 1))
                    .collect(),
            ),
            _ => json!([]),
        },
        "null" => Value::Null,
        _ => {
            let mut out = Map::new();
            let props = schema.get("properties");
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str() {
                    let prop = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                    out.insert(name.to_owned(), sample(prop, depth + 1));
                }
            }
            Value::Object(out)
        }
    }
}

/// What the guard recorded: invalid output, refusals, findings, limits, the exit.
fn read_audit(path: &Path, findings: &mut Vec<Finding>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let s = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
        match s("event") {
            "invalid" if s("direction") == "server_to_host" => {
                let reason = s("reason");
                let rule = if reason.starts_with("Parse error") {
                    findings::STDOUT_GARBAGE
                } else {
                    findings::INVALID_MESSAGE
                };
                findings.push(Finding::new(
                    rule,
                    "server",
                    format!("dropped by the guard: {reason}"),
                ));
            }
            "message" if s("decision") == "refuse" && s("direction") == "server_to_host" => {
                findings.push(Finding::new(
                    findings::GUARD_REFUSAL,
                    "server",
                    format!("refused by the guard ({}): {}", s("method"), s("reason")),
                ));
            }
            "finding" => {
                // The firewall sanitises what the client sees, so its findings are the scan's
                // evidence of hidden characters, injection phrases and secrets. Each is rated
                // by the scan's rule (docs/ci-scan.md), not by the audit log's own severity.
                let rule = match s("kind") {
                    "sanitized" => findings::HIDDEN_CHARACTERS,
                    "injection" => findings::INJECTION_PHRASE,
                    "redacted" => findings::SECRET_IN_OUTPUT,
                    "schema" | "duplicates" => findings::INVALID_MESSAGE,
                    _ => findings::GUARD_REFUSAL,
                };
                findings.push(Finding::new(
                    rule,
                    finding_location(s("detail")),
                    s("detail").to_owned(),
                ));
            }
            "egress" => {
                // Which hosts the server reaches for, and from which tool: a reviewer's first
                // question about a server that wants the network.
                let tool = event["calls"]
                    .as_array()
                    .and_then(|calls| calls.iter().find_map(|c| c["tool"].as_str()))
                    .map_or_else(|| "server".to_owned(), |t| format!("tool {t}"));
                let port = event["port"]
                    .as_u64()
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                let target = format!("{}{port}", s("host"));
                let finding = if s("decision") == "deny" {
                    Finding::new(
                        findings::NETWORK_ATTEMPT,
                        tool,
                        format!("tried to reach {target}: refused ({})", s("reason")),
                    )
                    .with_severity(Severity::Medium)
                } else {
                    Finding::new(
                        findings::NETWORK_ATTEMPT,
                        tool,
                        format!("reached {target} (allowed by `{}`)", s("rule")),
                    )
                };
                findings.push(finding);
            }
            "limit" => findings.push(Finding::new(
                findings::LIMIT_HIT,
                "server",
                format!("the {} limit was reached", s("limit")),
            )),
            "server_exit" => {
                if let Some(limit) = event.get("limit").and_then(Value::as_str) {
                    findings.push(Finding::new(
                        findings::LIMIT_HIT,
                        "server",
                        format!("the server was stopped by the {limit} limit"),
                    ));
                }
                if event.get("signal").and_then(Value::as_i64) == Some(i64::from(libc::SIGSYS)) {
                    findings.push(
                        Finding::new(
                            findings::SANDBOX_REFUSAL,
                            "server",
                            "the server was killed for a forbidden system call (SIGSYS)",
                        )
                        .with_severity(Severity::High),
                    );
                }
            }
            "session_start" => {
                for entry in event["sandbox"]["not_enforced"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    findings.push(
                        Finding::new(
                            findings::SANDBOX_REFUSAL,
                            "sandbox",
                            format!("layer not enforced on this machine: {}", entry),
                        )
                        .with_severity(Severity::Low),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Refusals the server reported on stderr (the kernel's EACCES/EPERM reach it, not the guard).
fn read_stderr(stderr: &str, findings: &mut Vec<Finding>) {
    let markers = [
        "permission denied",
        "operation not permitted",
        "eacces",
        "eperm",
        "network is unreachable",
        "enetunreach",
        "eai_again",
        "read-only file system",
    ];
    let hits = stderr
        .lines()
        .filter(|l| !l.contains("mcp-guard") && !l.contains(" WARN ") && !l.contains(" INFO "))
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            markers.iter().any(|m| lower.contains(m))
        })
        .take(MAX_STDERR_FINDINGS);
    for line in hits {
        findings.push(Finding::new(
            findings::SANDBOX_REFUSAL,
            "server stderr",
            format!(
                "the server reports a refusal: {}",
                truncate(line.trim(), 200)
            ),
        ));
    }
}

fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.rule, f.location.clone(), f.message.clone())));
}

/// Where a firewall finding points: "tool `bash`: …" and "tool `bash` text looks like …" →
/// "tool bash", "resource template `x` …" → "resource template x", "server instructions: …" →
/// "server instructions", anything else → "server".
fn finding_location(detail: &str) -> String {
    for family in [
        "resource template",
        "tool",
        "prompt",
        "resource",
        "template",
    ] {
        let name = detail
            .strip_prefix(family)
            .and_then(|rest| rest.strip_prefix(" `"))
            .and_then(|rest| rest.split('`').next());
        if let Some(name) = name {
            return format!("{family} {name}");
        }
    }
    if detail.starts_with("server instructions") {
        return "server instructions".to_owned();
    }
    "server".to_owned()
}

#[cfg(test)]
mod tests {
    use super::finding_location;

    #[test]
    fn firewall_findings_point_at_their_item() {
        let cases = [
            ("tool `bash`: hidden characters stripped", "tool bash"),
            (
                "tool `read_file` text looks like prompt injection (hidden-tag)",
                "tool read_file",
            ),
            (
                "resource template `docs`: hidden characters stripped",
                "resource template docs",
            ),
            (
                "server instructions look like prompt injection",
                "server instructions",
            ),
            ("tools/call message: secrets replaced: jwt", "server"),
        ];
        for (detail, location) in cases {
            assert_eq!(finding_location(detail), location, "{detail}");
        }
    }
}
