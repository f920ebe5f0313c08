//! `mcp-guard policy init`: start a server once under the guard, list what it offers, and write
//! a least-privilege starter policy.
//!
//! The starter is decided from the command alone ([`Starter::for_command`]): the base profile
//! (node, python or default), the launch allowlist, the network (off unless a package runner
//! has to download the server), and `arg_paths = "read"` when the command names directories.
//! The server is then started with exactly that policy (so the file is known to start it),
//! asked for its tools, prompts, resources and resource templates, and the final file allows
//! those by name: anything else is refused.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::resolve::ServerCommand;
use crate::client::{Client, ClientError, Stderr};

/// `initialize` may wait for a package runner to download the server.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(180);
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// After listing, how long to wait for `list_changed` notifications, and how many rounds.
const SETTLE: Duration = Duration::from_millis(1000);
const MAX_RELISTS: usize = 3;
/// After stdin closes, how long the guard gets to stop the server (its own grace is 5 s, then
/// SIGTERM, then 5 s more).
const EXIT_WAIT: Duration = Duration::from_secs(15);

/// Commands that download the server before running it (they need HTTPS to a registry).
const PACKAGE_RUNNERS: &[&str] = &["npx", "npm", "pnpm", "yarn", "bunx", "uvx", "uv", "pipx"];
const NODE_COMMANDS: &[&str] = &["node", "nodejs", "npx", "npm"];
const PYTHON_COMMANDS: &[&str] = &["python", "python3", "uv", "uvx"];

/// What the starter policy is built on, decided from the command.
#[derive(Debug, Clone, PartialEq)]
pub struct Starter {
    /// The command as the user wrote it (for comments).
    pub command: Vec<String>,
    /// `node`, `python` or `default`.
    pub base: &'static str,
    /// A name to add to `[launch] allow` (`None` when the base already allows it).
    pub launch: Option<String>,
    /// A package runner: keep the base's HTTPS for the download.
    pub downloads: bool,
    /// The command names existing directories (`arg_paths`).
    pub dir_args: bool,
}

impl Starter {
    pub fn for_command(command: &ServerCommand) -> Starter {
        let name = command
            .argv
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let interpreter = command.program.as_deref().and_then(shebang_interpreter);
        let family = |n: &str| {
            let n = n.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            if NODE_COMMANDS.contains(&n) {
                Some("node")
            } else if PYTHON_COMMANDS.contains(&n) {
                Some("python")
            } else {
                None
            }
        };
        let base = family(&name)
            .or_else(|| interpreter.as_deref().and_then(family))
            .unwrap_or("default");
        let base_allows = match base {
            "node" => NODE_COMMANDS,
            "python" => PYTHON_COMMANDS,
            _ => &[],
        };
        Starter {
            command: command.argv.clone(),
            base,
            launch: (!name.is_empty() && !base_allows.contains(&name.as_str())).then_some(name),
            downloads: command
                .argv
                .first()
                .and_then(|a| Path::new(a).file_name())
                .is_some_and(|n| PACKAGE_RUNNERS.contains(&n.to_string_lossy().as_ref())),
            dir_args: !command.dir_args().is_empty(),
        }
    }
}

/// The interpreter named by a script's `#!` line (`#!/usr/bin/env node` → `node`).
fn shebang_interpreter(program: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = std::str::from_utf8(head.get(..n)?).ok()?;
    let line = line.strip_prefix("#!")?.lines().next()?;
    let mut words = line.split_whitespace();
    let first = Path::new(words.next()?).file_name()?.to_string_lossy();
    let interpreter = if first == "env" {
        words.find(|w| !w.starts_with('-'))?.to_owned()
    } else {
        first.into_owned()
    };
    Some(interpreter)
}

/// What the server offered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub server: String,
    pub protocol_version: String,
    /// `None`: the server does not offer the feature at all.
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub templates: Option<Vec<String>>,
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A name glob matching exactly `name` (glob characters in a class of their own).
pub fn literal_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' | ',' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A URI pattern for a resource URI: lower-case scheme, glob characters escaped.
pub fn uri_pattern(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => format!("{}://{}", scheme.to_ascii_lowercase(), literal_glob(rest)),
        None => literal_glob(uri),
    }
}

/// A URI pattern for an RFC 6570 template: each `{expression}` becomes `*`.
pub fn template_pattern(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&literal_glob(&rest[..open]));
        match rest[open..].find('}') {
            Some(close) => {
                if !out.ends_with('*') {
                    out.push('*');
                }
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&literal_glob(&rest[open..]));
                rest = "";
            }
        }
    }
    out.push_str(&literal_glob(rest));
    match out.split_once("://") {
        Some((scheme, tail)) => format!("{}://{tail}", scheme.to_ascii_lowercase()),
        None => out,
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::from("[\n");
    for item in items {
        out.push_str("  ");
        out.push_str(&quote(item));
        out.push_str(",\n");
    }
    out.push(']');
    out
}

/// The starter policy; without an inventory (the file the server is first started with), no
/// item sections.
pub fn render(starter: &Starter, inventory: Option<&Inventory>) -> String {
    let cmd = crate::shell::join(&starter.command);
    let mut t = String::new();
    t.push_str(&format!(
        "# Starter policy for `{cmd}`, written by `mcp-guard policy init`.\n"
    ));
    if let Some(inv) = inventory {
        t.push_str(&format!(
            "# The server, {}, was started once under this policy (protocol {}) and listed what it\n\
             # offers below; everything else is refused.\n",
            inv.server, inv.protocol_version
        ));
    }
    t.push_str(&format!(
        "#\n# Check it after editing:  mcp-guard policy check FILE\n\
         # Use it:                  mcp-guard run --policy FILE -- {cmd}\n\
         # See it resolved:         mcp-guard policy show --policy FILE -- {cmd}\n\
         # Every key is documented in policies/README.md.\n"
    ));
    t.push_str("version = 1\n");
    let what = inventory.map_or_else(|| cmd.clone(), |i| i.server.clone());
    t.push_str(&format!(
        "description = {}\n",
        quote(&format!("Starter policy for {what}"))
    ));
    let base_note = match starter.base {
        "node" => "servers run with node/npx: node's install, the npm cache, npx's shell",
        "python" => "servers run with python/uvx: uv's cache and Pythons",
        _ => "what no policy means: the sandbox baseline only, credentials denied",
    };
    t.push_str(&format!(
        "# The base: {base_note} (`mcp-guard policy show --profile {}`).\n",
        starter.base
    ));
    t.push_str(&format!("extends = [{}]\n", quote(starter.base)));

    if let Some(name) = &starter.launch {
        t.push_str(
            "\n[launch]\n# The server's command; nothing else may be launched with this policy.\n",
        );
        t.push_str(&format!("allow = [{}]\n", quote(name)));
    }

    t.push_str(
        "\n[filesystem]\n\
         # The sandbox baseline covers the runtime, the server's own install directory and a private,\n\
         # empty HOME and TMPDIR. The server needed nothing more to start; add what its tools must\n\
         # reach, for example:\n\
         # read = [\"${HOME}/Documents\"]\n\
         # write = [\"${CWD}/out\"]\n",
    );
    if starter.dir_args {
        t.push_str(
            "# The directories named on the command line, read-only; \"write\" lets the server change them.\n\
             arg_paths = \"read\"\n",
        );
    }

    t.push_str("\n[network]\n");
    if starter.downloads {
        t.push_str(
            "# The package runner downloads the server over HTTPS (port 443, from the base profile).\n\
             # Once it is installed, run it directly and set mode = \"off\".\n",
        );
    } else {
        t.push_str(
            "# The server started without the network. If a tool must reach a service, allow its port:\n\
             # mode = \"ports\"\n\
             # connect = [443]\n\
             mode = \"off\"\n",
        );
    }

    let Some(inv) = inventory else {
        return t;
    };
    let section = |t: &mut String, name: &str, noun: &str, items: &Option<Vec<String>>| {
        t.push_str(&format!("\n[{name}]\n"));
        match items {
            Some(items) if !items.is_empty() => {
                t.push_str(&format!(
                    "# The {} {noun} the server listed; anything else (one it adds later) is refused.\n",
                    items.len()
                ));
                t.push_str(&format!("allow = {}\n", list(items)));
            }
            Some(_) => t.push_str(&format!("# The server listed no {noun}.\ndeny = [\"*\"]\n")),
            None => t.push_str(&format!(
                "# The server does not offer {noun}.\ndeny = [\"*\"]\n"
            )),
        }
    };
    let globs = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.iter().map(|n| literal_glob(n)).collect::<Vec<_>>())
    };
    section(&mut t, "tools", "tools", &globs(&inv.tools));
    section(&mut t, "prompts", "prompts", &globs(&inv.prompts));
    let resources = match (&inv.resources, &inv.templates) {
        (None, None) => None,
        (r, tpl) => {
            let mut all: Vec<String> = r
                .iter()
                .flatten()
                .map(|u| uri_pattern(u))
                .chain(tpl.iter().flatten().map(|u| template_pattern(u)))
                .collect();
            all.dedup();
            Some(all)
        }
    };
    section(
        &mut t,
        "resources",
        "resources and resource templates",
        &resources,
    );
    t
}

// -------------------------------------------------------------------------------------------------
// Talking to the server

/// Starts `command` under `guard run --no-pin --policy policy`, initializes and lists everything.
pub fn discover(
    guard: &Path,
    policy: &Path,
    command: &[OsString],
    quiet: bool,
) -> Result<Inventory, ClientError> {
    let mut run = std::process::Command::new(guard);
    if quiet {
        run.arg("--quiet");
    }
    // A probe, not the host: it must see everything and pin nothing on first use.
    run.args(["run", "--no-pin", "--policy"])
        .arg(policy)
        .arg("--")
        .args(command);
    let mut client = Client::spawn(run, Stderr::Inherit, INITIALIZE_TIMEOUT)?;
    let init = client.initialize("mcp-guard policy init")?;
    client.set_timeout(LIST_TIMEOUT);
    let caps = &init["capabilities"];
    let info = &init["serverInfo"];
    let mut inv = Inventory {
        server: match (info["name"].as_str(), info["version"].as_str()) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.to_owned(),
            _ => "the server".to_owned(),
        },
        protocol_version: init["protocolVersion"].as_str().unwrap_or("?").to_owned(),
        ..Inventory::default()
    };
    // Servers may add items once initialized (server-everything adds its sampling and
    // elicitation tools then): list, wait a moment, and list again what they say changed.
    let mut wanted = vec!["tools", "prompts", "resources"];
    for _ in 0..MAX_RELISTS {
        for feature in &wanted {
            if caps.get(feature).is_none() {
                continue;
            }
            match *feature {
                "tools" => inv.tools = Some(names(&mut client, "tools/list", "tools", "name")?),
                "prompts" => {
                    inv.prompts = Some(names(&mut client, "prompts/list", "prompts", "name")?)
                }
                _ => {
                    inv.resources = Some(names(&mut client, "resources/list", "resources", "uri")?);
                    // Templates are optional even for servers with resources.
                    inv.templates = names(
                        &mut client,
                        "resources/templates/list",
                        "resourceTemplates",
                        "uriTemplate",
                    )
                    .ok();
                }
            }
        }
        client.listen(SETTLE)?;
        let changed = client.take_list_changed();
        wanted = ["tools", "prompts", "resources"]
            .into_iter()
            .filter(|f| {
                changed
                    .iter()
                    .any(|c| c == &format!("notifications/{f}/list_changed"))
            })
            .collect();
        if wanted.is_empty() {
            break;
        }
    }
    client.finish(EXIT_WAIT);
    Ok(inv)
}

/// The sorted `key` of every item a list method returns.
fn names(
    client: &mut Client,
    method: &str,
    member: &str,
    key: &str,
) -> Result<Vec<String>, ClientError> {
    let mut names: Vec<String> = client
        .list_all(method, member)?
        .iter()
        .filter_map(|item| item[key].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The starter policy, in a private temporary file (mode 0600, removed on drop).
pub struct TempPolicy {
    file: tempfile::NamedTempFile,
}

impl TempPolicy {
    pub fn write(text: &str) -> std::io::Result<TempPolicy> {
        let mut file = tempfile::Builder::new()
            .prefix("mcp-guard-init-")
            .suffix(".toml")
            .tempfile()?;
        file.write_all(text.as_bytes())?;
        file.flush()?;
        Ok(TempPolicy { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    fn starter(argv: &[&str]) -> Starter {
        Starter::for_command(&ServerCommand {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            program: None,
        })
    }

    fn inventory() -> Inventory {
        Inventory {
            server: "demo 1.0".into(),
            protocol_version: crate::client::PROTOCOL_VERSION.into(),
            tools: Some(vec!["echo".into(), "weird*name".into()]),
            prompts: Some(vec![]),
            resources: Some(vec!["Demo://r/static/a.md".into()]),
            templates: Some(vec!["demo://r/dynamic/{id}/x{?q,r}".into()]),
        }
    }

    #[test]
    fn init_starter_from_the_command() {
        let s = starter(&["npx", "-y", "@scope/server"]);
        assert_eq!(
            (s.base, s.launch.as_deref(), s.downloads),
            ("node", None, true)
        );
        // The python profile launches `python3`, not `python3.12`: the starter adds it.
        let s = starter(&["/srv/venv/bin/python3.12", "-m", "server"]);
        assert_eq!(
            (s.base, s.launch.as_deref(), s.downloads),
            ("python", Some("python3.12"), false)
        );
        let s = starter(&["/opt/bin/my-server", "--port", "1"]);
        assert_eq!(
            (s.base, s.launch.as_deref()),
            ("default", Some("my-server"))
        );
    }

    #[test]
    fn init_rendered_policy_parses_and_allows_only_the_listed_items() {
        let text = render(&starter(&["node", "/srv/server.js"]), Some(&inventory()));
        let policy = parse_policy("init.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let tools: Vec<&str> = policy
            .tools
            .allow
            .iter()
            .map(|v| v.value.0.as_str())
            .collect();
        assert_eq!(tools, ["echo", "weird[*]name"]);
        assert_eq!(
            policy.prompts.deny.len(),
            1,
            "no prompts listed: all denied"
        );
        let res: Vec<&str> = policy
            .resources
            .allow
            .iter()
            .map(|v| v.value.0.as_str())
            .collect();
        assert_eq!(res, ["demo://r/static/a.md", "demo://r/dynamic/*/x*"]);
        assert!(text.contains("mode = \"off\""), "{text}");
        // The file the server is first started with has no item sections.
        let first = render(&starter(&["node", "/srv/server.js"]), None);
        assert!(parse_policy("first.toml", &first).is_ok() && !first.contains("[tools]"));
    }

    #[test]
    fn init_glob_escapes_match_literally() {
        for name in ["a*b", "q?", "[x]", "{a,b}", "back\\slash", "plain-name_1"] {
            let glob = globset::Glob::new(&literal_glob(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .compile_matcher();
            assert!(glob.is_match(name), "{name}");
            assert!(
                !glob.is_match(format!("{name}x")) || name.ends_with('*'),
                "{name}"
            );
        }
    }
}
