//! Issue 19 item 2: `mcp-guard status` through the real binary with a private HOME and
//! XDG_STATE_HOME: a host config wrapped with `mcp-guard wrap --write`, its entry started as the
//! host would start it (command and args read back from the file), then status shows it guarded
//! with its profile, its pin and what awaits approval, and its last session from the audit log;
//! an entry of another config that was not wrapped shows as not guarded.

mod relay_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use relay_common::Guard;
use serde_json::{json, Value};

/// A HOME with its own state directory, and a project directory to run in.
struct Machine {
    home: tempfile::TempDir,
    project: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let machine = Machine {
            home: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(machine.state()).unwrap();
        machine
    }

    fn state(&self) -> PathBuf {
        self.home.path().join("state")
    }

    fn put(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `mcp-guard ARGS…` as this machine's user; it must exit 0.
    fn guard(&self, args: &[&str]) -> Output {
        let out = Command::new(support::guard_bin())
            .args(args)
            .current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env("XDG_STATE_HOME", self.state())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CODEX_HOME")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mcp-guard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start the wrapped entry `name` of `config` exactly as written there (plus
    /// --allow-unsandboxed: the test server lives in the build tree), the server's mode given in
    /// RUGPULL_MODE, which the entry passes on with `--env`.
    fn start_entry(&self, config: &Path, name: &str, mode: &str) -> Guard {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
        let entry = &doc["mcpServers"][name];
        assert_eq!(
            Path::new(entry["command"].as_str().unwrap()),
            support::guard_bin().canonicalize().unwrap()
        );
        let args: Vec<&str> = entry["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let separator = args.iter().position(|a| *a == "--").unwrap();
        assert_eq!(args[0], "run");
        let mut run_args = vec!["--allow-unsandboxed"];
        run_args.extend_from_slice(&args[1..separator]);
        let state = self.state();
        let env = [
            ("HOME", self.home.path().to_str().unwrap()),
            ("XDG_STATE_HOME", state.to_str().unwrap()),
            ("RUGPULL_MODE", mode),
        ];
        let server = Path::new(args[separator + 1]);
        let mut guard = Guard::start_run(&env, &run_args, server, &args[separator + 2..]);
        guard.initialize("2025-06-18");
        guard
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names `tools/list` shows the host.
fn tool_names(g: &mut Guard) -> Vec<Value> {
    let answer = g.request(1, "tools/list", json!({})).json();
    let tools = answer.pointer("/result/tools").and_then(Value::as_array);
    let tools = tools.unwrap_or_else(|| panic!("no tool list: {answer}"));
    tools.iter().map(|t| t["name"].clone()).collect()
}

fn stop(mut g: Guard) {
    g.close_stdin();
    assert_eq!(
        g.exit_code(Duration::from_secs(10)),
        0,
        "{}",
        g.stderr_text()
    );
}

/// The `session` of the last `session_start` in the audit log.
fn last_session_in_log(state: &Path) -> String {
    let log = std::fs::read_to_string(state.join("mcp-guard/audit.jsonl")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "session_start")
        .map(|e| e["session"].as_str().unwrap().to_owned())
        .expect("a session in the audit log")
}

#[test]
fn status_shows_guarded_servers_their_pins_and_last_sessions() {
    let machine = Machine::new();
    let rugpull = support::testkit_bin("rugpull-server");
    let cursor = machine.put(
        ".cursor/mcp.json",
        &serde_json::to_string_pretty(&json!({"mcpServers": {
            "rug": {"command": rugpull, "env": {"RUGPULL_MODE": "--stable"}},
            "hosted": {"url": "https://mcp.example.com/mcp"}
        }}))
        .unwrap(),
    );
    machine.guard(&["wrap", "cursor", "--write"]);
    // Written after the wrap: this host's server stays unguarded.
    machine.put(
        ".gemini/settings.json",
        r#"{"mcpServers": {"plain": {"command": "/opt/bin/plain-server", "args": ["--x"]}}}"#,
    );

    let before = stdout(&machine.guard(&["status"]));
    assert!(
        before.contains("  rug: guarded, profile default\n"),
        "{before}"
    );
    assert!(before.contains("not pinned yet"), "{before}");
    assert!(before.contains("    last session: none in "), "{before}");

    // First session pins `add` and `search`; the second changes `search` and offers
    // `exfiltrate` too: both are held for approval, and `exfiltrate` is refused when called.
    let mut first = machine.start_entry(&cursor, "rug", "--stable");
    assert_eq!(tool_names(&mut first), [json!("add"), json!("search")]);
    stop(first);
    let mut second = machine.start_entry(&cursor, "rug", "--changed");
    assert_eq!(
        tool_names(&mut second),
        [json!("add")],
        "search changed, exfiltrate is new"
    );
    second
        .call_and_recv("2", "exfiltrate", json!({"path": "/etc/passwd"}))
        .assert_error("2", -32602);
    stop(second);
    let session = last_session_in_log(&machine.state());

    let text = stdout(&machine.guard(&["status"]));
    let cursor_header = format!("cursor ({})\n", cursor.display());
    assert!(text.contains(&cursor_header), "{text}");
    assert!(text.contains("  rug: guarded, profile default\n"), "{text}");
    assert!(
        text.contains(&format!("    command: {}\n", rugpull.display())),
        "{text}"
    );
    assert!(
        text.contains("pinned; awaiting approval: tool `exfiltrate` (new)"),
        "{text}"
    );
    assert!(text.contains("exited with code 0; 1 refusal;"), "{text}");
    assert!(
        text.contains("  hosted: remote (url): not started locally"),
        "{text}"
    );
    assert!(
        text.contains("  plain: not guarded (run `mcp-guard wrap`)\n"),
        "{text}"
    );
    assert!(text.contains("mcp-guard pin approve ID"), "{text}");

    let doc: Value = serde_json::from_str(&stdout(&machine.guard(&["status", "--json"]))).unwrap();
    let servers = doc.as_array().unwrap();
    assert_eq!(servers.len(), 3, "{doc:#}");
    let rug = servers.iter().find(|s| s["name"] == "rug").unwrap();
    assert_eq!(rug["host"], "cursor");
    assert_eq!(rug["config"], cursor.display().to_string());
    assert_eq!(rug["guarded"], true);
    assert_eq!(rug["profile"], "default");
    assert_eq!(rug["command"], json!([rugpull]));
    assert_eq!(rug["pin"]["pinned"], true);
    let awaiting = rug["pin"]["awaiting_approval"].as_array().unwrap();
    assert_eq!(awaiting.len(), 2, "{awaiting:?}");
    assert_eq!(awaiting[0], "tool `exfiltrate` (new)");
    assert!(
        awaiting[1]
            .as_str()
            .unwrap()
            .starts_with("tool `search` (changed"),
        "{awaiting:?}"
    );
    let last = &rug["last_session"];
    assert_eq!(
        last["session"],
        session.as_str(),
        "the second session: {doc:#}"
    );
    assert_eq!(last["refusals"], 1);
    assert_eq!(last["exit"]["code"], 0);
    assert!(last["ended"].is_string(), "{last}");
    let plain = servers.iter().find(|s| s["name"] == "plain").unwrap();
    assert_eq!(plain["host"], "gemini");
    assert_eq!(plain["guarded"], false);
    assert_eq!(plain["pin"], Value::Null);

    // The pin id status shows is the one `pin status` knows.
    let id = rug["pin"]["id"].as_str().unwrap();
    let pins = stdout(&machine.guard(&["pin", "status"]));
    assert!(pins.starts_with(&format!("{id}  ")), "{pins}");
}

#[test]
fn status_without_host_configs_says_where_it_looked() {
    let machine = Machine::new();
    let out = machine.guard(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no MCP host config found; looked at"), "{err}");
    assert!(err.contains(".cursor/mcp.json"), "{err}");
    assert!(err.contains("`mcp-guard wrap`"), "{err}");
    assert_eq!(stdout(&out), "");
    let json = machine.guard(&["status", "--json"]);
    assert_eq!(stdout(&json).trim(), "[]");
}

#[test]
fn a_codex_toml_entry_is_listed_and_a_broken_config_is_named() {
    let machine = Machine::new();
    machine.put(
        ".codex/config.toml",
        "[mcp_servers.clock]\ncommand = \"uvx\"\nargs = [\"mcp-server-time\"]\n",
    );
    machine.guard(&["wrap", "codex", "--write"]);
    let broken = machine.put(".gemini/settings.json", "{\"mcpServers\": {");

    let out = machine.guard(&["status", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} cannot be parsed", broken.display())),
        "{err}"
    );
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let servers = doc.as_array().unwrap();
    assert_eq!(servers.len(), 1, "{doc:#}");
    let clock = &servers[0];
    assert_eq!(
        (&clock["host"], &clock["scope"], &clock["name"]),
        (&json!("codex"), &json!("mcp_servers"), &json!("clock"))
    );
    assert_eq!(clock["guarded"], true);
    assert_eq!(clock["profile"], "time");
    assert_eq!(clock["command"], json!(["uvx", "mcp-server-time"]));
    assert_eq!(clock["pin"]["pinned"], false, "{clock}");
    assert_eq!(clock["last_session"], Value::Null);

    let text = stdout(&machine.guard(&["status"]));
    assert!(text.contains("  clock: guarded, profile time\n"), "{text}");
    assert!(text.contains("not pinned yet"), "{text}");
}
