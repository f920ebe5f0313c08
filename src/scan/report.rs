//! Scan reports: a readable table, JSON, and SARIF 2.1.0 (for code-scanning dashboards).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::exercise::ScanResult;
use super::findings::{self, Severity};

pub fn counts(result: &ScanResult) -> (usize, usize, usize) {
    let n = |s| result.findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::High), n(Severity::Medium), n(Severity::Low))
}

pub fn text(result: &ScanResult, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcp-guard scan: {} {} ({command})",
        result.server_name.as_deref().unwrap_or("(unnamed server)"),
        result.server_version.as_deref().unwrap_or("")
    );
    let listed: Vec<String> = result
        .listed
        .iter()
        .map(|(k, n)| format!("{n} {}s", k.noun()))
        .collect();
    if !listed.is_empty() {
        let _ = writeln!(out, "listed: {}", listed.join(", "));
    }
    let (high, medium, low) = counts(result);
    if result.findings.is_empty() {
        let _ = writeln!(out, "no findings");
        return out;
    }
    let loc_width = result
        .findings
        .iter()
        .map(|f| f.location.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 32);
    let _ = writeln!(
        out,
        "\n{:<8} {:<8} {:<loc_width$} FINDING",
        "SEVERITY", "RULE", "WHERE"
    );
    for f in &result.findings {
        let location: String = f.location.chars().take(loc_width).collect();
        let _ = writeln!(
            out,
            "{:<8} {:<8} {location:<loc_width$} {}",
            f.severity.as_str(),
            f.rule,
            f.message
        );
    }
    let _ = writeln!(
        out,
        "\n{} findings: {high} high, {medium} medium, {low} low",
        result.findings.len()
    );
    out
}

pub fn json(result: &ScanResult, command: &[String]) -> Value {
    let (high, medium, low) = counts(result);
    json!({
        "tool": "mcp-guard",
        "version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "server": {"name": result.server_name, "version": result.server_version},
        "listed": result.listed.iter().map(|(k, n)| (k.result_member().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "findings": result.findings.iter().map(|f| json!({
            "rule": f.rule,
            "name": f.rule_name,
            "severity": f.severity,
            "location": f.location,
            "message": f.message,
        })).collect::<Vec<_>>(),
        "summary": {"high": high, "medium": medium, "low": low},
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning maps this 0–10 score to its own severities.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

/// SARIF 2.1.0. `artifact` is the file the results are attached to (the server's script or
/// command), since a server's tools have no source location of their own.
pub fn sarif(result: &ScanResult, artifact: &str) -> Value {
    let rules: Vec<Value> = findings::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.name},
                "fullDescription": {"text": r.description},
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {"security-severity": security_severity(r.severity), "tags": ["security", "mcp"]},
            })
        })
        .collect();
    let results: Vec<Value> = result
        .findings
        .iter()
        .map(|f| {
            let index = findings::ALL
                .iter()
                .position(|r| r.id == f.rule)
                .unwrap_or(0);
            json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": format!("{}: {}", f.location, f.message)},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": artifact}},
                    "logicalLocations": [{"name": f.location, "kind": "member"}],
                }],
                "properties": {"severity": f.severity},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mcp-guard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/mcp-guard/mcp-guard",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
