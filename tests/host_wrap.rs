//! Issue 19: `mcp-guard wrap` / `unwrap` on host configs written as each host documents them,
//! through the real binary with a private HOME: round trips byte for byte, idempotence, env kept
//! in the host config, remote entries left alone, a profile per known package, and a wrapped
//! entry started exactly as a host would start it, by the TypeScript SDK's stdio client.

mod profile_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use profile_support::{in_home, run_json, with_server, Peers, TestHome};
use serde_json::Value;
use support::guard_bin;

const CLAUDE_DESKTOP: &str = r#"{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/Users/me/Desktop"
      ]
    },
    "github": {
      "command": "npx",
      "args": ["-y", "@acme/github-mcp"],
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_wrapTestSecret0123456789"
      }
    },
    "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=Europe/Paris"]},
    "local": { "command": "/opt/bin/local-server" },
    "remote": { "url": "https://mcp.example.com/mcp" }
  },
  "globalShortcut": "Ctrl+Space"
}
"#;

/// VS Code's mcp.json: JSON with comments and trailing commas, `servers`, `inputs`, `type`.
const VSCODE: &str = r#"// Workspace MCP servers
{
  "inputs": [
    { "type": "promptString", "id": "api-key", "description": "API key", "password": true },
  ],
  "servers": {
    /* the git server for this repo */
    "git": {
      "type": "stdio",
      "command": "uvx",
      "args": ["mcp-server-git", "--repository", "${workspaceFolder}"], // keep on one line
      "env": { "API_KEY": "${input:api-key}" },
    },
    "everything": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-everything"]
    },
    "docs": { "type": "http", "url": "https://docs.example.com/mcp" },
  },
}
"#;

const CLAUDE_CODE_USER: &str = r#"{
  "numStartups": 12,
  "mcpServers": {
    "memory": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-memory"],
      "env": {}
    }
  },
  "projects": {
    "/home/me/src/app": {
      "allowedTools": [],
      "mcpServers": {
        "py": { "type": "stdio", "command": "python3", "args": ["-m", "app_mcp"], "env": { "APP_DB": "postgres://u:p@db/app" } },
        "sse": { "type": "sse", "url": "http://localhost:9000/sse" }
      }
    }
  }
}
"#;

const CLAUDE_CODE_PROJECT: &str = r#"{
  "mcpServers": {
    "tools": { "command": "node", "args": ["./tools/server.js"], "env": { "TOOLS_MODE": "dev" } }
  }
}
"#;

const CURSOR: &str = r#"{
  "mcpServers": {
    "weather": { "command": "npx", "args": ["-y", "@acme/mcp-weather@1.2.0"] },
    "hosted": { "url": "https://hosted.example.com/sse", "headers": { "Authorization": "Bearer x" } }
  }
}
"#;

const WINDSURF: &str = r#"{
  "mcpServers": {
    "fs": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/code"] },
    "cloud": { "serverUrl": "https://cloud.example.com/mcp" }
  }
}
"#;

const GEMINI: &str = r#"{
  "theme": "Default",
  "mcpServers": {
    "pyserver": { "command": "python", "args": ["-m", "my_mcp_server"], "cwd": "./mcp", "timeout": 30000 },
    "remote": { "httpUrl": "https://api.example.com/mcp" }
  }
}
"#;

const CODEX: &str = r#"model = "o4-mini"

# MCP servers
[mcp_servers.memory]
command = "npx"   # from npm
args = ["-y", "@modelcontextprotocol/server-memory"]
env = { "MEMORY_NOTE" = "x" }

[mcp_servers.clock]
command = "uvx"
args = [
    "mcp-server-time",
]

[mcp_servers.bare]
command = "/usr/local/bin/bare-server"

[mcp_servers.remote]
url = "https://mcp.example.com/mcp"
"#;

/// Where each host keeps its user config, relative to HOME (Linux paths).
const USER_CONFIGS: &[(&str, &str)] = &[
    (".config/Claude/claude_desktop_config.json", CLAUDE_DESKTOP),
    (".config/Code/User/mcp.json", VSCODE),
    (".claude.json", CLAUDE_CODE_USER),
    (".cursor/mcp.json", CURSOR),
    (".codeium/windsurf/mcp_config.json", WINDSURF),
    (".gemini/settings.json", GEMINI),
    (".codex/config.toml", CODEX),
];

/// A HOME with host configs in it, and a project directory to run in.
struct Machine {
    home: tempfile::TempDir,
    project: tempfile::TempDir,
}

impl Machine {
    fn new(configs: &[(&str, &str)]) -> Machine {
        let machine = Machine {
            home: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
        };
        for (path, text) in configs {
            machine.put(&machine.home_file(path), text);
        }
        machine
    }

    fn home_file(&self, path: &str) -> PathBuf {
        self.home.path().join(path)
    }

    fn put(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `mcp-guard ARGS…` as the user of this machine; it must succeed.
    fn guard(&self, args: &[&str]) -> Output {
        let out = self.guard_may_fail(args);
        assert!(
            out.status.success(),
            "mcp-guard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn guard_may_fail(&self, args: &[&str]) -> Output {
        Command::new(guard_bin())
            .args(args)
            .current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CODEX_HOME")
            .output()
            .unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn backup_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.mcp-guard-backup", path.display()))
}

/// A JSON config parsed as the host does (comments and trailing commas allowed).
fn parse_jsonc(text: &str) -> Value {
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default());
    Value::from(parsed.unwrap().value.unwrap())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn guard_path() -> String {
    guard_bin().display().to_string()
}

fn expected_args(profile: &str, env: &[&str], original: &[&str]) -> Vec<String> {
    let mut args = vec!["run".to_owned(), "--profile".to_owned(), profile.to_owned()];
    for name in env {
        args.extend(["--env".to_owned(), name.to_string()]);
    }
    args.push("--".to_owned());
    args.extend(original.iter().map(|s| s.to_string()));
    args
}

/// A machine with only `USER_CONFIGS[index]`, after `wrap HOST --write`: the file and the
/// report.
fn wrapped_alone(index: usize, host: &str) -> (Machine, PathBuf, String) {
    let machine = Machine::new(&[USER_CONFIGS[index]]);
    let path = machine.home_file(USER_CONFIGS[index].0);
    let report = stderr(&machine.guard(&["wrap", host, "--write"]));
    (machine, path, report)
}

#[test]
fn every_host_wraps_and_unwraps_byte_for_byte() {
    let machine = Machine::new(USER_CONFIGS);
    machine.put(
        &machine.project.path().join(".mcp.json"),
        CLAUDE_CODE_PROJECT,
    );
    machine.put(&machine.project.path().join(".vscode/mcp.json"), VSCODE);
    let mut files: Vec<(PathBuf, &str)> = USER_CONFIGS
        .iter()
        .map(|(p, t)| (machine.home_file(p), *t))
        .collect();
    files.push((
        machine.project.path().join(".mcp.json"),
        CLAUDE_CODE_PROJECT,
    ));
    files.push((machine.project.path().join(".vscode/mcp.json"), VSCODE));

    // Without --write: the diff, and nothing touched.
    let preview = machine.guard(&["wrap"]);
    let diff = String::from_utf8_lossy(&preview.stdout).into_owned();
    assert!(
        diff.contains(&format!(
            "+    \"time\": {{\"command\": \"{}\"",
            guard_path()
        )),
        "{diff}"
    );
    assert!(
        stderr(&preview).contains("run again with --write"),
        "{}",
        stderr(&preview)
    );
    for (path, original) in &files {
        assert_eq!(
            &read(path),
            original,
            "{} changed without --write",
            path.display()
        );
        assert!(!backup_of(path).exists());
    }

    let wrapped = machine.guard(&["wrap", "--write"]);
    let report = stderr(&wrapped);
    for (path, original) in &files {
        let text = read(path);
        assert_ne!(
            &text,
            original,
            "{} was not wrapped:\n{report}",
            path.display()
        );
        assert_eq!(
            &read(&backup_of(path)),
            original,
            "{}'s backup",
            path.display()
        );
        assert!(text.contains(&guard_path()), "{text}");
    }
    // Comments and trailing commas are kept in VS Code's file.
    let vscode = read(&machine.home_file(".config/Code/User/mcp.json"));
    for kept in [
        "// Workspace MCP servers",
        "/* the git server for this repo */",
        "// keep on one line",
        "},\n  },\n}",
    ] {
        assert!(vscode.contains(kept), "lost {kept:?}:\n{vscode}");
    }

    // Wrapping again changes nothing.
    let again = machine.guard(&["wrap", "--write"]);
    let snapshot: Vec<String> = files.iter().map(|(p, _)| read(p)).collect();
    let twice = machine.guard(&["wrap", "--write"]);
    assert!(
        String::from_utf8_lossy(&twice.stdout).is_empty(),
        "second wrap printed a diff"
    );
    assert!(
        stderr(&again).contains("already wrapped"),
        "{}",
        stderr(&again)
    );
    let after: Vec<String> = files.iter().map(|(p, _)| read(p)).collect();
    assert_eq!(snapshot, after, "wrap twice differs from wrap once");

    let unwrapped = machine.guard(&["unwrap", "--write"]);
    for (path, original) in &files {
        assert_eq!(
            &read(path),
            original,
            "{} after unwrap:\n{}",
            path.display(),
            stderr(&unwrapped)
        );
        assert!(
            !backup_of(path).exists(),
            "{}'s backup left behind",
            path.display()
        );
    }
}

#[test]
fn claude_desktop_entries_get_profiles_env_names_and_remote_is_reported() {
    let (_machine, path, report) = wrapped_alone(0, "claude-desktop");
    let config = parse_jsonc(&read(&path));
    let servers = &config["mcpServers"];
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "filesystem",
            "filesystem",
            &[],
            &[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/Users/me/Desktop",
            ],
        ),
        (
            "github",
            "node",
            &["GITHUB_PERSONAL_ACCESS_TOKEN"],
            &["npx", "-y", "@acme/github-mcp"],
        ),
        (
            "time",
            "time",
            &[],
            &["uvx", "mcp-server-time", "--local-timezone=Europe/Paris"],
        ),
        ("local", "default", &[], &["/opt/bin/local-server"]),
    ];
    for (name, profile, env, original) in cases {
        assert_eq!(servers[name]["command"], guard_path().as_str(), "{name}");
        assert_eq!(
            strings(&servers[name]["args"]),
            expected_args(profile, env, original),
            "{name}"
        );
        assert!(
            report.contains(&format!("{name}: wrapped (profile {profile})")),
            "{report}"
        );
    }
    // The token stays in the host config, as a value only there; the args name it.
    assert_eq!(
        servers["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"],
        "ghp_wrapTestSecret0123456789"
    );
    assert!(!servers["github"]["args"].to_string().contains("ghp_"));
    assert_eq!(
        servers["remote"],
        serde_json::json!({"url": "https://mcp.example.com/mcp"})
    );
    assert!(report.contains("remote: not wrapped (remote)"), "{report}");
    assert_eq!(config["globalShortcut"], "Ctrl+Space");
}

#[test]
fn vscode_and_claude_code_scopes_are_wrapped() {
    let machine = Machine::new(&[USER_CONFIGS[1], USER_CONFIGS[2]]);
    machine.put(
        &machine.project.path().join(".mcp.json"),
        CLAUDE_CODE_PROJECT,
    );
    let out = machine.guard(&["wrap", "vscode", "claude-code", "--write"]);
    let report = stderr(&out);

    let vscode = parse_jsonc(&read(&machine.home_file(".config/Code/User/mcp.json")));
    let git = &vscode["servers"]["git"];
    assert_eq!(
        strings(&git["args"]),
        expected_args(
            "git",
            &["API_KEY"],
            &[
                "uvx",
                "mcp-server-git",
                "--repository",
                "${workspaceFolder}"
            ]
        )
    );
    assert_eq!(git["env"]["API_KEY"], "${input:api-key}");
    assert_eq!(git["type"], "stdio");
    assert_eq!(
        strings(&vscode["servers"]["everything"]["args"])[2],
        "everything"
    );
    assert_eq!(vscode["servers"]["docs"]["command"], Value::Null);
    assert!(report.contains("docs: not wrapped (remote)"), "{report}");

    let user = parse_jsonc(&read(&machine.home_file(".claude.json")));
    assert_eq!(strings(&user["mcpServers"]["memory"]["args"])[2], "memory");
    let project = &user["projects"]["/home/me/src/app"]["mcpServers"];
    assert_eq!(
        strings(&project["py"]["args"]),
        expected_args("python", &["APP_DB"], &["python3", "-m", "app_mcp"])
    );
    assert!(
        report.contains("sse [project /home/me/src/app]: not wrapped (remote)"),
        "{report}"
    );
    assert_eq!(user["numStartups"], 12);

    let local = parse_jsonc(&read(&machine.project.path().join(".mcp.json")));
    assert_eq!(
        strings(&local["mcpServers"]["tools"]["args"]),
        expected_args("node", &["TOOLS_MODE"], &["node", "./tools/server.js"])
    );
}

#[test]
fn codex_toml_entries_are_wrapped_in_place() {
    let (_machine, path, report) = wrapped_alone(6, "codex");
    let text = read(&path);
    let config: toml::Table = text.parse().unwrap();
    let servers = &config["mcp_servers"];
    let args = |name: &str| -> Vec<String> {
        servers[name]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        servers["memory"]["command"].as_str(),
        Some(guard_path().as_str())
    );
    assert_eq!(
        args("memory"),
        expected_args(
            "memory",
            &["MEMORY_NOTE"],
            &["npx", "-y", "@modelcontextprotocol/server-memory"]
        )
    );
    assert_eq!(
        args("clock"),
        expected_args("time", &[], &["uvx", "mcp-server-time"])
    );
    assert_eq!(
        args("bare"),
        expected_args("default", &[], &["/usr/local/bin/bare-server"])
    );
    assert!(servers["remote"].get("command").is_none());
    assert!(report.contains("remote: not wrapped (remote)"), "{report}");
    assert!(
        text.starts_with("model = \"o4-mini\"\n\n# MCP servers\n"),
        "{text}"
    );
    assert!(text.contains("# from npm"), "{text}");
}

#[test]
fn a_broken_config_is_named_and_the_others_are_still_done() {
    let machine = Machine::new(&[USER_CONFIGS[3]]);
    let broken = machine.project.path().join(".mcp.json");
    machine.put(&broken, "{\n  \"mcpServers\": {\n    \"a\" {}\n  }\n}\n");
    let out = machine.guard_may_fail(&["wrap", "claude-code", "cursor", "--write"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report = stderr(&out);
    assert!(
        report.contains(".mcp.json cannot be parsed") && report.contains("line 3"),
        "{report}"
    );
    assert_ne!(
        read(&machine.home_file(USER_CONFIGS[3].0)),
        CURSOR,
        "cursor was not wrapped"
    );

    let unknown = machine.guard_may_fail(&["wrap", "claude-dekstop"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("neither a host (claude-desktop, "),
        "{}",
        stderr(&unknown)
    );
}

/// A config kept in a dotfiles directory (symlinked), a server added after the first wrap, and
/// an unwrap after the backup was deleted.
#[test]
fn later_servers_symlinks_and_a_lost_backup() {
    use std::os::unix::fs::PermissionsExt;
    let machine = Machine::new(&[]);
    let real = machine.home_file("dotfiles/cursor.json");
    machine.put(&real, CURSOR);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = machine.home_file(".cursor/mcp.json");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    machine.guard(&["wrap", "cursor", "--write"]);
    assert!(link.is_symlink(), "the link was replaced by a file");
    // The backup lies beside the link: the tokens it holds stay out of the dotfiles.
    assert!(
        read(&real).contains("\"--profile\", \"node\""),
        "{}",
        read(&real)
    );
    assert_eq!(mode(&real), 0o640, "the config's permissions changed");
    assert_eq!(
        mode(&backup_of(&link)),
        0o600,
        "the backup (tokens) is not owner-only"
    );

    // A server added to the wrapped file is wrapped by the next run; the first backup stays.
    let added = r#"    "clock": { "command": "uvx", "args": ["mcp-server-time"] },"#;
    let with_clock = |text: &str| {
        text.replacen(
            "\"mcpServers\": {\n",
            &format!("\"mcpServers\": {{\n{added}\n"),
            1,
        )
    };
    std::fs::write(&real, with_clock(&read(&real))).unwrap();
    let report = stderr(&machine.guard(&["wrap", "cursor", "--write"]));
    assert!(report.contains("clock: wrapped (profile time)"), "{report}");
    assert!(report.contains("weather: already wrapped"), "{report}");
    assert!(report.contains("earlier backup kept"), "{report}");
    assert_eq!(read(&backup_of(&link)), CURSOR);

    // Unwrap restores both; the backup no longer matches the file, so it is kept.
    machine.guard(&["unwrap", "cursor", "--write"]);
    assert_eq!(read(&real), with_clock(CURSOR));
    assert!(backup_of(&link).exists());

    // Without the backup, the original launch comes from the entry's own args.
    std::fs::write(&real, CURSOR).unwrap();
    std::fs::remove_file(backup_of(&link)).unwrap();
    machine.guard(&["wrap", "cursor", "--write"]);
    std::fs::remove_file(backup_of(&link)).unwrap();
    machine.guard(&["unwrap", "cursor", "--write"]);
    assert_eq!(read(&real), CURSOR);
}

/// Write a Claude Desktop config in `home` with one entry, `node` running the peer
/// server-`name` with `env`, wrap it, and return the rewritten entry's `command` followed by its
/// `args`: exactly what the host would launch.
fn wrapped_launch(home: &TestHome, name: &str, env: (&str, &str)) -> Vec<String> {
    let server = Peers::get().node_server(name).display().to_string();
    let entry = serde_json::json!({ "command": "node", "args": [server], "env": { env.0: env.1 } });
    let config = home
        .path()
        .join(".config/Claude/claude_desktop_config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let text = serde_json::to_string_pretty(&serde_json::json!({ "mcpServers": { name: entry } }));
    std::fs::write(&config, text.unwrap()).unwrap();
    let out = Command::new(guard_bin())
        .args(["wrap", "--write"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let wrapped = &parse_jsonc(&read(&config))["mcpServers"][name];
    let mut launch = vec![wrapped["command"].as_str().unwrap().to_owned()];
    launch.extend(strings(&wrapped["args"]));
    launch
}

/// A driver that sets `name=value` in the server's environment, as a host does from `env`.
fn with_host_env(mut driver: Vec<String>, pairs: &[(&str, &str)]) -> Vec<String> {
    for (name, value) in pairs {
        driver.extend(["--env".to_owned(), format!("{name}={value}")]);
    }
    driver
}

#[test]
fn a_wrapped_entry_starts_as_the_host_would_start_it() {
    let peers = Peers::get();
    let home = TestHome::new();
    let launch = wrapped_launch(&home, "memory", ("MEMORY_TAG", "from-host"));
    assert_eq!(launch[1..4], ["run", "--profile", "memory"]);

    let driver = in_home(peers.ts_driver("memory", &[]), &home);
    let driver = with_host_env(driver, &[("MEMORY_TAG", "from-host")]);
    let doc = run_json("wrapped server-memory", &with_server(&driver, &launch));
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "memory-server");
    let tools: Vec<String> = strings(&doc["tools"]);
    assert!(tools.contains(&"create_entities".to_owned()), "{tools:?}");
    // The memory profile put the graph under the guard's data directory: the profile applied.
    let file = home.xdg_data().join("mcp-guard/memory/memory.jsonl");
    assert!(read(&file).contains("relays JSON-RPC"));
}

/// The entry's env reaches the server through `--env NAME`; the rest of the host's
/// environment does not (server-everything's get-env prints what it got).
#[test]
fn the_entrys_env_reaches_the_wrapped_server_and_nothing_else_does() {
    let peers = Peers::get();
    let home = TestHome::new();
    let launch = wrapped_launch(&home, "everything", ("WRAP_PROBE", "hostval"));
    assert_eq!(
        launch[1..6],
        ["run", "--profile", "everything", "--env", "WRAP_PROBE"]
    );

    let calls = serde_json::json!([{"name": "get-env"}]);
    let driver = in_home(peers.call_tools(&calls, &[]), &home);
    let secret = "AKIAWRAPTEST00000000";
    let driver = with_host_env(
        driver,
        &[("WRAP_PROBE", "hostval"), ("AWS_ACCESS_KEY_ID", secret)],
    );
    let doc = run_json(
        "wrapped server-everything: get-env",
        &with_server(&driver, &launch),
    );
    let env = doc["calls"][0]["text"].as_str().expect("get-env text");
    assert!(
        env.contains("WRAP_PROBE") && env.contains("hostval"),
        "{env}"
    );
    assert!(!env.contains(secret), "{env}");
}

#[test]
fn completions_and_man_page_are_generated() {
    let machine = Machine::new(&[]);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = machine.guard(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("wrap") && script.contains("unwrap"),
            "{shell}: {script}"
        );
    }
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completions bash) && complete -p mcp-guard",
            guard_bin().display()
        ))
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{}", stderr(&sourced));
    assert!(String::from_utf8_lossy(&sourced.stdout).contains("mcp-guard"));

    let man = machine.guard(&["man"]);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH mcp-guard"),
        "{page}"
    );
    assert!(page.contains("wrap"), "{page}");
}
