//! `mcp-guard scan` against a real server (no high findings) and against `shady-server`, which
//! has every problem the scan looks for; text, JSON and SARIF outputs, and `--fail-on`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn scan(args: &[&str], server: &[&str]) -> Output {
    Command::new(support::guard_bin())
        .arg("scan")
        .args(args)
        .arg("--")
        .args(server)
        .output()
        .unwrap()
}

fn shady() -> String {
    support::testkit_bin("shady-server").display().to_string()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn scan_shady_server_finds_everything() {
    let out = scan(&["--format", "json", "--call-tools"], &[&shady()]);
    assert_eq!(out.status.code(), Some(1), "high findings fail by default");
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let has = |rule: &str, location: &str| {
        findings
            .iter()
            .any(|f| f["rule"] == rule && f["location"].as_str().unwrap().contains(location))
    };
    assert!(
        has("MCPG001", "server stderr"),
        "sandbox refusal: {report:#}"
    );
    assert!(has("MCPG003", "server"), "stdout garbage: {report:#}");
    assert!(has("MCPG004", "server"), "invalid message: {report:#}");
    assert!(
        has("MCPG004", "tool no_schema"),
        "missing schema: {report:#}"
    );
    assert!(has("MCPG005", "tool bash"), "hidden characters: {report:#}");
    assert!(
        has("MCPG005", "server instructions"),
        "bidi override: {report:#}"
    );
    assert!(has("MCPG006", "tool read_file"), "injection: {report:#}");
    assert!(has("MCPG007", "tool bash"), "shadowing: {report:#}");
    assert!(has("MCPG008", "tool read_file"), "broad schema: {report:#}");
    assert!(
        has("MCPG009", "resource config://app"),
        "secret in resource: {report:#}"
    );
    assert!(
        has("MCPG009", "tool get_config"),
        "secret in tool output: {report:#}"
    );
    assert!(
        !has("MCPG008", "tool get_config"),
        "a closed empty schema is fine"
    );
    assert!(report["summary"]["high"].as_u64().unwrap() >= 5);
    for f in findings {
        assert!(["low", "medium", "high"].contains(&f["severity"].as_str().unwrap()));
    }
    // The secret itself is never printed.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[test]
fn scan_sarif_has_the_2_1_0_shape() {
    let out = scan(&["--format", "sarif", "--fail-on", "never"], &[&shady()]);
    assert_eq!(out.status.code(), Some(0));
    let sarif = json_of(&out);
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "mcp-guard");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(r["message"]["text"].as_str().is_some());
        assert!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .is_some()
        );
    }
    for rule in rules {
        assert!(rule["properties"]["security-severity"].as_str().is_some());
        assert!(rule["shortDescription"]["text"].as_str().is_some());
    }
}

#[test]
fn scan_text_table_and_fail_on() {
    let out = scan(&[], &[&shady()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("SEVERITY RULE"), "{text}");
    assert!(text.contains("findings:"), "{text}");
}

fn everything() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: run scripts/setup-peers to install server-everything");
        None
    }
}

#[test]
fn scan_server_everything_has_no_high_findings() {
    let Some(path) = everything() else { return };
    let out = scan(
        &["--format", "json", "--fail-on", "high"],
        &["node", &path.display().to_string()],
    );
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["high"], 0, "{report:#}");
    assert_eq!(report["server"]["name"], "mcp-servers/everything");
    assert!(
        report["listed"]["tools"].as_u64().unwrap() > 5,
        "{report:#}"
    );
}

/// The official filesystem server offers `read_file`, `write_file`, `search_files`…: its own
/// ordinary tools, which shadow nothing.
#[test]
fn scan_server_filesystem_is_not_shadowing() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    if !path.exists() {
        eprintln!("skipped: run scripts/setup-peers to install server-filesystem");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = scan(
        &["--format", "json", "--fail-on", "never"],
        &[
            "node",
            &path.display().to_string(),
            &dir.path().display().to_string(),
        ],
    );
    let report = json_of(&out);
    assert!(
        report["listed"]["tools"].as_u64().unwrap() > 5,
        "{report:#}"
    );
    let shadowing: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "MCPG007")
        .collect();
    assert!(shadowing.is_empty(), "{shadowing:#?}");
}

#[test]
fn scan_lists_the_hosts_a_server_tried_to_reach() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("hosts.toml");
    std::fs::write(
        &policy,
        "version = 1\nextends = [\"strict\"]\n[network]\nmode = \"hosts\"\nallow = [\"api.example.org\"]\n",
    )
    .unwrap();
    let out = scan(
        &[
            "--format",
            "json",
            "--call-tools",
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[&shady()],
    );
    let report = json_of(&out);
    let attempt = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "MCPG012")
        .unwrap_or_else(|| panic!("no network attempt reported: {report:#}"));
    assert!(
        attempt["location"].as_str().unwrap().starts_with("tool "),
        "the attempt names the tool call it came from: {attempt}"
    );
    let message = attempt["message"].as_str().unwrap();
    assert!(
        message.contains("exfil.example:443") && message.contains("refused"),
        "{message}"
    );
    assert_eq!(attempt["severity"], "medium");
}

#[test]
fn scan_hidden_characters_alone_fail_the_default_gate() {
    // The only fault: an instruction hidden in Unicode tag characters in a tool description.
    let out = scan(
        &["--format", "json"],
        &[&shady(), "--only=hidden-characters"],
    );
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let hidden: Vec<&Value> = findings.iter().filter(|f| f["rule"] == "MCPG005").collect();
    assert!(
        !hidden.is_empty(),
        "no hidden-characters finding: {report:#}"
    );
    for f in &hidden {
        assert_eq!(f["severity"], "high", "rated as docs/ci-scan.md says: {f}");
        assert_eq!(f["location"], "tool add", "{f}");
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "the default --fail-on high must stop this server: {report:#}"
    );
}
