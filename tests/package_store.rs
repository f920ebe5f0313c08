//! Package launchers run from the guard's store: `npx -y @modelcontextprotocol/server-everything`,
//! `uvx mcp-server-time` and `pipx run mcp-server-time` (and `pnpm dlx`, `bunx`), started exactly
//! as host configs write them, as root and as an ordinary user. The first start fetches under the sandbox (npm registry / PyPI only) into a
//! fresh `$XDG_CACHE_HOME/mcp-guard/store`; then a real MCP exchange (initialize, a tool call);
//! a changed store entry is refused until `mcp-guard update`; a start with no network at all
//! works from the store. And the cache-poisoning attacks of issue 15 with their unguarded
//! controls: under the node / python profiles a server cannot append to another package in
//! `~/.npm/_npx`, `~/.npm/_cacache` or uv's cache.
//!
//! Downloads go to registry.npmjs.org and PyPI only, by name, through the fetch sandbox's proxy
//! (no extra `MCP_GUARD_FETCH_ALLOW`: the names alone must be enough).
#![cfg(target_os = "linux")]

#[path = "support/users.rs"]
mod users;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_guard::client::{Client, ClientError, Stderr};
use serde_json::{json, Value};
use users::{identities, Identity};

fn guard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"))
}

fn peers_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/.venv/bin")
}

/// A fresh cache/state/home for one identity.
struct Dirs {
    _root: tempfile::TempDir,
    cache: PathBuf,
    state: PathBuf,
    home: PathBuf,
}

impl Dirs {
    fn new(who: &Identity) -> Dirs {
        let root = who.scratch_dir();
        let make = |name: &str| {
            let p = root.path().join(name);
            std::fs::create_dir_all(&p).expect("mkdir");
            chown(who, &p);
            p
        };
        Dirs {
            cache: make("cache"),
            state: make("state"),
            home: make("home"),
            _root: root,
        }
    }
}

impl Dirs {
    /// `packages.lock`, parsed.
    fn lock(&self) -> Value {
        let text = std::fs::read_to_string(self.state.join("mcp-guard/packages.lock"))
            .expect("read packages.lock");
        serde_json::from_str(&text).expect("packages.lock is JSON")
    }
}

fn chown(who: &Identity, path: &Path) {
    if let Identity::Ordinary { uid, gid, .. } = who {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

/// `mcp-guard ARGS` as `who`, with the test's XDG directories and HOME.
fn guard(who: &Identity, dirs: &Dirs, args: &[&str]) -> Command {
    let mut cmd = Command::new(who.binary(&guard_bin()));
    who.apply(&mut cmd);
    let path = format!(
        "{}:{}",
        peers_bin().display(),
        match who {
            Identity::Current => std::env::var("PATH").unwrap_or_default(),
            Identity::Ordinary { .. } => "/usr/local/bin:/usr/bin:/bin".into(),
        }
    );
    cmd.args(args)
        .env("PATH", path)
        .env("HOME", &dirs.home)
        .env("XDG_CACHE_HOME", &dirs.cache)
        .env("XDG_STATE_HOME", &dirs.state)
        .env_remove("MCP_GUARD_FETCH_ALLOW")
        .current_dir(&dirs.home);
    cmd
}

/// initialize, then one tools/call, with mcp-guard's own client; returns both answers as
/// JSON-RPC replies (`{"result": …}`, `{"error": …}`, or the client's error when none came) and
/// the guard's stderr.
fn mcp_exchange(cmd: Command, tool: &str, arguments: Value) -> (Value, Value, String) {
    let reply = |answer: Result<Value, ClientError>| match answer {
        Ok(result) => json!({ "result": result }),
        Err(ClientError::Rpc { code, message, .. }) => {
            json!({"error": {"code": code, "message": message}})
        }
        Err(other) => json!({ "no answer": other.to_string() }),
    };
    // The first start downloads the server before it can answer.
    let mut client = match Client::spawn(cmd, Stderr::Capture, Duration::from_secs(300)) {
        Ok(client) => client,
        Err(e) => return (reply(Err(e)), Value::Null, String::new()),
    };
    let init = client.initialize("package-store-test");
    let call = match &init {
        Ok(_) => reply(client.call_tool(tool, arguments)),
        Err(_) => Value::Null,
    };
    let finished = client.finish(Duration::from_secs(30));
    (reply(init), call, finished.stderr)
}

struct Case {
    profile: &'static str,
    launch: &'static [&'static str],
    package: &'static str,
    tool: &'static str,
    arguments: Value,
    expect_text: &'static str,
}

fn store_lifecycle(case: &Case) {
    for who in identities() {
        eprintln!("--- {} as {}", case.launch.join(" "), who.label());
        let dirs = Dirs::new(&who);
        let mut args = vec![
            "run",
            "--no-audit",
            "--timeout",
            "3m",
            "--profile",
            case.profile,
        ];
        args.push("--");
        args.extend(case.launch);

        // 1. First start: fetched under the sandbox, locked, then a real exchange.
        let started = std::time::Instant::now();
        let (init, call, stderr) =
            mcp_exchange(guard(&who, &dirs, &args), case.tool, case.arguments.clone());
        eprintln!("first start (fetch) + exchange: {:?}", started.elapsed());
        assert!(init["result"]["serverInfo"].is_object(), "{init}\n{stderr}");
        let text = call["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(case.expect_text), "{call}\n{stderr}");
        assert!(
            stderr.contains("fetched into the store and locked"),
            "{stderr}"
        );
        let lock = dirs.lock();
        let entry = lock["packages"]
            .as_object()
            .and_then(|m| m.values().next())
            .expect("one lock entry")
            .clone();
        assert_eq!(entry["package"], case.package, "{lock}");
        assert!(entry["hash"].as_str().unwrap().starts_with("sha256:"));
        let entry_dir = dirs
            .cache
            .join("mcp-guard/store")
            .join(entry["entry"].as_str().unwrap());
        assert!(entry_dir.is_dir(), "{}", entry_dir.display());
        assert_no_user_caches(&dirs);

        // 2. Second start, with no network at all (root: a network namespace with nothing in
        // it): from the store.
        let mut cmd = guard(&who, &dirs, &args);
        if matches!(who, Identity::Current) && Path::new("/usr/bin/unshare").exists() {
            let program = cmd.get_program().to_owned();
            let mut wrapped = Command::new("/usr/bin/unshare");
            wrapped.arg("--net").arg(program).args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            wrapped.current_dir(&dirs.home);
            cmd = wrapped;
        }
        let started = std::time::Instant::now();
        let (init, call, stderr) = mcp_exchange(cmd, case.tool, case.arguments.clone());
        eprintln!("offline start + exchange: {:?}", started.elapsed());
        assert!(init["result"]["serverInfo"].is_object(), "{init}\n{stderr}");
        assert!(
            call["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains(case.expect_text),
            "{call}\n{stderr}"
        );
        assert!(!stderr.contains("fetching"), "{stderr}");

        // 3. A changed store entry is refused, with the way out.
        let victim = find_file(&entry_dir, if case.profile == "time" { "py" } else { "js" });
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&victim)
            .expect("open a store file");
        writeln!(f, "\n// planted").expect("append");
        drop(f);
        let out = guard(&who, &dirs, &args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Could not be started (126), the reason said: not a bad argument (2).
        assert_eq!(out.status.code(), Some(126), "{stderr}");
        assert!(
            stderr.contains("has changed since it was fetched")
                && stderr.contains(&format!("mcp-guard update {}", case.package)),
            "{stderr}"
        );

        // 4. `mcp-guard update PKG` fetches it again; the server starts.
        let out = guard(&who, &dirs, &["update", case.package])
            .stdin(Stdio::null())
            .output()
            .expect("update");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(case.package));
        let (init, _, stderr) = mcp_exchange(guard(&who, &dirs, &args), case.tool, json!({}));
        assert!(init["result"]["serverInfo"].is_object(), "{init}\n{stderr}");
        eprintln!("ok as {}", who.label());
    }
}

/// Nothing of the user's package caches was created or written: neither npm's, uv's, pipx's,
/// pnpm's nor bun's (the launchers themselves are never run).
fn assert_no_user_caches(dirs: &Dirs) {
    for cache in [
        ".npm",
        ".cache/uv",
        ".local/share/uv",
        ".local/pipx",
        ".local/share/pipx",
        ".local/share/pnpm",
        ".cache/pnpm",
        ".bun",
    ] {
        assert!(!dirs.home.join(cache).exists(), "{cache} was created");
    }
}

fn need_uv() {
    if !peers_bin().join("uv").exists() {
        panic!("tests/peers/.venv/bin/uv is missing: run scripts/setup-peers");
    }
}

/// A file with extension `ext` in the store entry (the package's own code).
fn find_file(dir: &Path, ext: &str) -> PathBuf {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("read_dir")
            .filter_map(Result::ok)
        {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("meta");
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && p.extension().is_some_and(|x| x == ext) {
                return p;
            }
        }
    }
    panic!("no .{ext} file in {}", dir.display());
}

#[test]
fn npx_everything_runs_from_the_store() {
    store_lifecycle(&Case {
        profile: "everything",
        launch: &["npx", "-y", "@modelcontextprotocol/server-everything"],
        package: "@modelcontextprotocol/server-everything",
        tool: "echo",
        arguments: json!({"message": "from the store"}),
        expect_text: "Echo: from the store",
    });
}

/// mcp-server-time under its profile, started with `launch`.
fn time_server(launch: &'static [&'static str]) -> Case {
    Case {
        profile: "time",
        launch,
        package: "mcp-server-time",
        tool: "get_current_time",
        arguments: json!({"timezone": "UTC"}),
        expect_text: "UTC",
    }
}

#[test]
fn uvx_time_runs_from_the_store() {
    need_uv();
    store_lifecycle(&time_server(&["uvx", "mcp-server-time"]));
}

/// `pipx run mcp-server-time`: the guard fetches it with the uv family's machinery into its own
/// store and runs the entry point from there. pipx is not run: where it is not installed, a
/// guard that ran it could not start the server; where it is, its `~/.local/pipx` /
/// `~/.local/share/pipx` would appear (they must not).
#[test]
fn pipx_run_time_runs_from_the_store() {
    need_uv();
    let pipx = Command::new("pipx").arg("--version").output().is_ok();
    eprintln!("pipx is {}installed", if pipx { "" } else { "not " });
    store_lifecycle(&time_server(&["pipx", "run", "mcp-server-time"]));
}

/// A host starts its servers together: `pnpm dlx`, `bunx`, `pipx run` and `uvx` (the last two
/// the same package) at once, sharing one store and lock. Every server answers a real tool
/// call; the lock keeps every guard's entry (each added under the lock's flock: without it, the
/// guards that read the empty lock together would each write back only their own); the package
/// both PyPI launchers name is fetched once (the second guard waits, then uses the entry).
/// pnpm and bun need not be installed: only their command lines are read.
#[test]
fn launchers_started_together_keep_every_lock_entry() {
    need_uv();
    for who in identities() {
        eprintln!("--- started together as {}", who.label());
        let dirs = Dirs::new(&who);
        let cases: [(&str, &[&str], &str, Value, &str); 4] = [
            (
                "memory",
                &["pnpm", "dlx", "@modelcontextprotocol/server-memory"],
                "read_graph",
                json!({}),
                "entities",
            ),
            (
                "everything",
                &["bunx", "@modelcontextprotocol/server-everything"],
                "echo",
                json!({"message": "together"}),
                "Echo: together",
            ),
            (
                "time",
                &["pipx", "run", "mcp-server-time"],
                "get_current_time",
                json!({"timezone": "UTC"}),
                "UTC",
            ),
            (
                "time",
                &["uvx", "mcp-server-time"],
                "get_current_time",
                json!({"timezone": "UTC"}),
                "UTC",
            ),
        ];
        let stderrs: Vec<String> = std::thread::scope(|scope| {
            let running: Vec<_> = cases
                .iter()
                .map(|(profile, launch, tool, arguments, expect)| {
                    let mut args = vec!["run", "--no-audit", "--profile", profile, "--"];
                    args.extend_from_slice(launch);
                    let cmd = guard(&who, &dirs, &args);
                    scope.spawn(move || {
                        let (init, call, stderr) = mcp_exchange(cmd, tool, arguments.clone());
                        let text = call["result"]["content"][0]["text"]
                            .as_str()
                            .unwrap_or_default();
                        assert!(
                            init["result"]["serverInfo"].is_object() && text.contains(expect),
                            "{launch:?}: {init}\n{call}\n{stderr}"
                        );
                        stderr
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let all = stderrs.join("\n");
        let lock = dirs.lock();
        let mut keys: Vec<&String> = lock["packages"]
            .as_object()
            .expect("packages")
            .keys()
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "npm:@modelcontextprotocol/server-everything",
                "npm:@modelcontextprotocol/server-memory",
                "uv:mcp-server-time"
            ],
            "{all}"
        );
        assert_eq!(
            all.matches("fetched into the store and locked").count(),
            3,
            "mcp-server-time fetched twice?\n{all}"
        );
        assert!(all.contains("waiting for another mcp-guard"), "{all}");
        let uv_entries: Vec<_> = std::fs::read_dir(dirs.cache.join("mcp-guard/store/uv"))
            .expect("uv store")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(uv_entries.len(), 1, "{uv_entries:?}");
        assert_no_user_caches(&dirs);
    }
}

/// Launcher flags the guard does not understand are refused before anything is fetched, naming
/// the flag and the forms it does understand.
#[test]
fn unknown_launcher_flags_are_refused_with_the_forms() {
    let who = Identity::Current;
    let dirs = Dirs::new(&who);
    for (launch, named, form) in [
        (
            &["pipx", "run", "--python", "3.12", "mcp-server-time"][..],
            "`pipx run --python` is not understood",
            "`pipx run --spec PACKAGE[==VERSION] APP ARGS…`",
        ),
        (
            &[
                "pnpm",
                "dlx",
                "--allow-build=x",
                "@modelcontextprotocol/server-memory",
            ],
            "`pnpm dlx --allow-build=x` is not understood",
            "`pnpm dlx --package=PACKAGE[@VERSION] BIN ARGS…`",
        ),
        (
            &["bunx", "--bun", "@modelcontextprotocol/server-memory"],
            "`bunx --bun` is not understood",
            "mcp-guard runs the bin with node, so not --bun",
        ),
    ] {
        let mut args = vec!["run", "--no-audit", "--"];
        args.extend_from_slice(launch);
        let out = guard(&who, &dirs, &args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named) && stderr.contains(form), "{stderr}");
        assert!(!dirs.cache.join("mcp-guard/store").exists(), "{stderr}");
    }
}

/// A server under the node / python profile appends to another package in the user's caches;
/// without the guard the same code does it.
#[test]
fn cache_poisoning_refused_under_node_and_python_profiles() {
    for who in identities() {
        eprintln!("--- cache poisoning as {}", who.label());
        let dirs = Dirs::new(&who);
        let targets = [
            dirs.home
                .join(".npm/_npx/0123abcd/node_modules/victim/index.js"),
            dirs.home.join(".npm/_cacache/content-v2/sha512/ab/cdef"),
            dirs.cache.join("uv/archive-v0/abc/victim/__init__.py"),
            dirs.home.join(".local/share/uv/tools/victim/bin/victim"),
        ];
        for t in &targets {
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            std::fs::write(t, "original\n").unwrap();
        }
        chown(&who, &dirs.home);
        chown(&who, &dirs.cache);
        let node_attack = "for (const f of process.argv.slice(1)) { try { \
            require('fs').appendFileSync(f, 'planted\\n'); console.error('WROTE ' + f) } \
            catch (e) { console.error('refused ' + f + ': ' + e.code) } }";
        let py_attack = "import sys\nfor f in sys.argv[1:]:\n    try:\n        \
            open(f, 'a').write('planted\\n'); print('WROTE', f, file=sys.stderr)\n    \
            except OSError as e:\n        print('refused', f, e, file=sys.stderr)";
        let python = match who {
            Identity::Current => peers_bin().join("python3"),
            Identity::Ordinary { .. } => PathBuf::from("/usr/bin/python3"),
        };
        let attacks: [(&str, Vec<String>); 2] = [
            ("node", vec!["node".into(), "-e".into(), node_attack.into()]),
            (
                "python",
                vec![python.display().to_string(), "-c".into(), py_attack.into()],
            ),
        ];
        for (profile, attack) in &attacks {
            let paths: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
            // Unguarded control: the same code, the same user, writes every file.
            let mut control = Command::new(&attack[0]);
            who.apply(&mut control);
            let out = control
                .args(&attack[1..])
                .args(&paths)
                .env("HOME", &dirs.home)
                .output()
                .expect("control");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.matches("WROTE").count(), targets.len(), "{stderr}");
            let before: Vec<String> = targets
                .iter()
                .map(|t| std::fs::read_to_string(t).unwrap())
                .collect();
            // Guarded: the profile's server cannot.
            let mut args = vec!["run", "--no-audit", "--profile", profile, "--"];
            args.extend(attack.iter().map(String::as_str));
            args.extend(paths.iter().map(String::as_str));
            let out = guard(&who, &dirs, &args)
                .stdin(Stdio::null())
                .output()
                .expect("guarded");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("refused"), "{profile}: {stderr}");
            assert!(!stderr.contains("WROTE"), "{profile}: {stderr}");
            for (t, b) in targets.iter().zip(&before) {
                assert_eq!(&std::fs::read_to_string(t).unwrap(), b, "{}", t.display());
            }
            eprintln!("{profile}: refused as {}", who.label());
        }
    }
}

/// The other reference servers, started exactly as host configs write them, each under its
/// profile: filesystem and memory through `npx -y`, git through `uvx`. First start: fetched
/// into the store under the sandbox, then a real exchange.
#[test]
fn the_other_reference_servers_start_as_host_configs_write_them() {
    need_uv();
    for who in identities() {
        eprintln!("--- as {}", who.label());
        let dirs = Dirs::new(&who);
        let served = dirs.home.join("served");
        std::fs::create_dir_all(&served).expect("mkdir");
        std::fs::write(served.join("notes.txt"), "hello").expect("write");
        let repo = dirs.home.join("repo");
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .args(args)
                .current_dir(&repo)
                .stdout(Stdio::null())
                .status()
                .expect("git");
            assert!(status.success(), "git {args:?}");
        };
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README"), "x").expect("write");
        git(&["add", "README"]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "one",
        ]);
        chown(&who, &dirs.home);
        let (served, repo) = (served.to_string_lossy(), repo.to_string_lossy());
        let cases: [(&str, Vec<&str>, &str, Value, &str); 3] = [
            (
                "filesystem",
                vec![
                    "npx",
                    "-y",
                    "@modelcontextprotocol/server-filesystem",
                    &served,
                ],
                "list_directory",
                json!({"path": &*served}),
                "notes.txt",
            ),
            (
                "memory",
                vec!["npx", "-y", "@modelcontextprotocol/server-memory"],
                "read_graph",
                json!({}),
                "entities",
            ),
            (
                "git",
                vec!["uvx", "mcp-server-git", "--repository", &repo],
                "git_status",
                json!({"repo_path": &*repo}),
                "main",
            ),
        ];
        for (profile, launch, tool, arguments, expect) in cases {
            let mut args = vec!["run", "--profile", profile, "--"];
            args.extend(launch.iter().copied());
            let (init, call, stderr) = mcp_exchange(guard(&who, &dirs, &args), tool, arguments);
            assert!(
                init.get("result").is_some(),
                "{profile}: no initialize answer: {init}\n{stderr}"
            );
            let text = call["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(
                text.contains(expect) && call["result"]["isError"] != true,
                "{profile}: {tool} answered {call}\n{stderr}"
            );
        }
    }
}
