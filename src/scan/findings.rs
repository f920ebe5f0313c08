//! Findings and the rules they come from.

use serde::Serialize;

pub use crate::audit::Severity;

/// One rule of the scan: a stable id (for SARIF and CI suppressions) and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub severity: Severity,
}

macro_rules! rules {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $desc:literal;)*) => {
        $(pub const $konst: Rule = Rule { id: $id, name: $name, severity: Severity::$sev, description: $desc };)*
        pub const ALL: &[Rule] = &[$($konst),*];
    };
}

rules! {
    SANDBOX_REFUSAL = "MCPG001", "sandbox-refusal", Medium,
        "The server tried something the sandbox refused (denied path, syscall or network), or a sandbox layer could not be enforced.";
    LIMIT_HIT = "MCPG002", "limit-hit", Medium,
        "The server reached a resource limit or was killed by the sandbox.";
    STDOUT_GARBAGE = "MCPG003", "stdout-garbage", Medium,
        "The server wrote output on stdout that is not JSON-RPC (the guard dropped it).";
    INVALID_MESSAGE = "MCPG004", "invalid-message", Medium,
        "The server sent a message that breaks JSON-RPC or the MCP schema.";
    HIDDEN_CHARACTERS = "MCPG005", "hidden-characters", High,
        "A name, description or instructions contain invisible or control characters (ANSI escapes, zero-width, bidi overrides, Unicode tags) that can hide text from the user but not from the model.";
    INJECTION_PHRASE = "MCPG006", "injection-phrase", High,
        "A description or instructions contain a phrase typical of prompt injection (tool poisoning).";
    SHADOWING_NAME = "MCPG007", "shadowing-name", Medium,
        "A tool's description refers to other tools or servers (tool shadowing): it may change how the model uses them.";
    BROAD_SCHEMA = "MCPG008", "broad-schema", Low,
        "A tool's input schema accepts arbitrary input (no properties, untyped properties, or additional properties allowed).";
    SECRET_IN_OUTPUT = "MCPG009", "secret-in-output", High,
        "Output of the server (a result, resource or prompt) contains something that looks like a secret.";
    SERVER_FAILURE = "MCPG010", "server-failure", Medium,
        "The server failed while being scanned (exited, timed out, or refused a standard request).";
    GUARD_REFUSAL = "MCPG011", "guard-refusal", Medium,
        "The guard's firewall refused or flagged a message from the server.";
    NETWORK_ATTEMPT = "MCPG012", "network-attempt", Low,
        "The server opened (or tried to open) a network connection; the finding names the host, the tool call in flight and whether the policy allowed it. A refused attempt is rated medium.";
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    #[serde(skip)]
    pub rule_name: &'static str,
    pub severity: Severity,
    /// What it is about: `tool read_file`, `server`, `resource file:///x`…
    pub location: String,
    pub message: String,
}

impl Finding {
    pub fn new(rule: Rule, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.id,
            rule_name: rule.name,
            severity: rule.severity,
            location: location.into(),
            message: message.into(),
        }
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/ci-scan.md's table states each rule's severity; users set `--fail-on` by it.
    #[test]
    fn every_rule_is_rated_as_the_docs_say() {
        let docs = include_str!("../../docs/ci-scan.md");
        for rule in ALL {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| {} ", rule.id)))
                .unwrap_or_else(|| panic!("{} is not in docs/ci-scan.md", rule.id));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[2], rule.name, "{row}");
            assert!(
                cells[3].starts_with(rule.severity.as_str()),
                "{}: {:?} in the code, {:?} in the docs",
                rule.id,
                rule.severity.as_str(),
                cells[3]
            );
        }
    }
}
