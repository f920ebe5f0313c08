//! Shared by tests/real_servers.rs, profile_servers.rs and policy_init.rs: the real MCP peers
//! (installed in tests/peers by `scripts/setup-peers`, checked up to date), SDK client drivers
//! run with a deadline in their own process group, a private HOME for every run, and a TCP
//! listener that counts connections.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one driver run may take before it is killed (the drivers give up by themselves
/// after `DRIVER_SELF_TIMEOUT_MS`, reporting what they were doing).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const DRIVER_SELF_TIMEOUT_MS: &str = "90000";
/// After a driver exits, how long the processes it started get to disappear.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);
/// Set for every run: finds its processes even after they left its process group (the Python
/// SDK starts servers in a session of their own). The drivers pass MCP_GUARD_* on.
const MARKER_VAR: &str = "MCP_GUARD_TEST_MARKER";

pub fn guard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"))
}

pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

pub fn support_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/profile_support")
}

/// The installed peers; the test fails with what to run when they are missing.
pub struct Peers {
    pub dir: PathBuf,
}

impl Peers {
    pub fn get() -> Peers {
        let peers = Peers { dir: peers_dir() };
        let needed = [
            peers.node_server("everything"),
            peers.node_server("filesystem"),
            peers.node_server("memory"),
            peers
                .dir
                .join("node_modules/@modelcontextprotocol/sdk/package.json"),
            peers.venv_bin("python"),
            peers.venv_bin("mcp-server-time"),
            peers.venv_bin("mcp-server-git"),
        ];
        let missing: Vec<String> = needed
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "the real MCP peers are not installed (missing: {}).\n\
             Run `scripts/setup-peers` (or run the tests with `scripts/test`, which does it first).",
            missing.join(", ")
        );
        peers.assert_up_to_date(
            "node_modules/.mcp-guard-setup-stamp",
            &["package.json", "package-lock.json"],
        );
        peers.assert_up_to_date(".venv/.mcp-guard-setup-stamp", &["requirements.txt"]);
        peers
    }

    /// scripts/setup-peers writes `stamp` starting with the SHA-256 of `inputs` concatenated.
    fn assert_up_to_date(&self, stamp: &str, inputs: &[&str]) {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for input in inputs {
            let path = self.dir.join(input);
            hasher
                .update(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
        let want: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let have = std::fs::read_to_string(self.dir.join(stamp)).unwrap_or_default();
        assert!(
            have.starts_with(&format!("{want}-")),
            "the real MCP peers are out of date (tests/peers/{} changed since they were \
             installed).\nRun `scripts/setup-peers` (or run the tests with `scripts/test`).",
            inputs.join(", tests/peers/")
        );
    }

    pub fn node_server(&self, name: &str) -> PathBuf {
        self.dir.join(format!(
            "node_modules/@modelcontextprotocol/server-{name}/dist/index.js"
        ))
    }

    pub fn venv_bin(&self, name: &str) -> PathBuf {
        self.dir.join(".venv/bin").join(name)
    }

    /// `node ts_client.mjs SCENARIO OPTS...`
    pub fn ts_driver(&self, scenario: &str, opts: &[&str]) -> Vec<String> {
        let mut cmd = strings(&["node"]);
        cmd.push(self.dir.join("ts_client.mjs").display().to_string());
        cmd.push(scenario.to_owned());
        cmd.extend(strings(opts));
        cmd
    }

    /// `.venv/bin/python py_client.py SCENARIO OPTS...`
    pub fn py_driver(&self, scenario: &str, opts: &[&str]) -> Vec<String> {
        let mut cmd = vec![
            self.venv_bin("python").display().to_string(),
            self.dir.join("py_client.py").display().to_string(),
            scenario.to_owned(),
        ];
        cmd.extend(strings(opts));
        cmd
    }

    /// `node call_tools.mjs --calls JSON OPTS...`: calls tools, reports refusals.
    pub fn call_tools(&self, calls: &Value, opts: &[&str]) -> Vec<String> {
        let mut cmd = strings(&["node"]);
        cmd.push(support_dir().join("call_tools.mjs").display().to_string());
        cmd.push("--calls".to_owned());
        cmd.push(calls.to_string());
        cmd.extend(strings(opts));
        cmd
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn node_cmd(script: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = vec!["node".to_owned(), script.display().to_string()];
    cmd.extend(strings(args));
    cmd
}

pub fn path_cmd(program: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = vec![program.display().to_string()];
    cmd.extend(strings(args));
    cmd
}

/// `mcp-guard run GUARD_ARGS... -- SERVER...`
pub fn guarded(guard_args: &[&str], server: &[String]) -> Vec<String> {
    let mut cmd = vec![guard_bin().display().to_string(), "run".to_owned()];
    cmd.extend(strings(guard_args));
    cmd.push("--".to_owned());
    cmd.extend(server.iter().cloned());
    cmd
}

/// `DRIVER... -- SERVER...`
pub fn with_server(driver: &[String], server: &[String]) -> Vec<String> {
    let mut cmd = driver.to_vec();
    cmd.push("--".to_owned());
    cmd.extend(server.iter().cloned());
    cmd
}

/// A private HOME with empty XDG directories, so that runs touch none of the user's files (the
/// npm cache, `[filesystem] create` directories). Removed on drop.
pub struct TestHome {
    dir: tempfile::TempDir,
}

impl TestHome {
    pub fn new() -> TestHome {
        let dir = tempfile::Builder::new()
            .prefix("mcp-guard-profile-home-")
            .tempdir()
            .expect("tempdir");
        TestHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn xdg_data(&self) -> PathBuf {
        self.path().join(".local/share")
    }

    /// The variables mcp-guard reads (`${HOME}`, `${XDG_*}`), as `--env K=V` options for a
    /// driver (which sets them in the environment of what it launches).
    pub fn driver_env(&self) -> Vec<String> {
        let home = self.path().display().to_string();
        let mut out = Vec::new();
        for (k, v) in [
            ("HOME", home.clone()),
            ("XDG_CACHE_HOME", format!("{home}/.cache")),
            ("XDG_CONFIG_HOME", format!("{home}/.config")),
            ("XDG_DATA_HOME", format!("{home}/.local/share")),
            ("XDG_STATE_HOME", format!("{home}/.local/state")),
        ] {
            out.push("--env".to_owned());
            out.push(format!("{k}={v}"));
        }
        out
    }
}

/// A driver command followed by `home`'s variables (options come before `--`).
pub fn in_home(driver: Vec<String>, home: &TestHome) -> Vec<String> {
    let mut cmd = driver;
    cmd.extend(home.driver_env());
    cmd
}

// -------------------------------------------------------------------------------------------------
// Running a driver with a deadline

fn unique_marker() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "profile-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes (not zombies) of a run: in process group `pgid`, or carrying `marker` in their
/// environment. As "pid (comm) cmdline" lines.
fn live_processes_of_run(pgid: u32, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let marker_entry = format!("{MARKER_VAR}={marker}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" {
            continue;
        }
        let in_group = fields[2] == pgid.to_string();
        let marked = || {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|kv| kv == marker_entry.as_bytes())
            })
        };
        if in_group || marked() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            found.push(format!("{pid} ({comm}) {}", cmdline.trim_end()));
        }
    }
    found
}

fn kill_run(pgid: u32, marker: &str) {
    // SAFETY: plain kill(2) on the process group this run created.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
    for line in live_processes_of_run(pgid, marker) {
        if let Some(pid) = line
            .split(' ')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        {
            // SAFETY: plain kill(2) of a process that carries this run's marker.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

pub struct Outcome {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The one JSON document a successful driver prints.
    pub fn json(&self, what: &str) -> Value {
        assert!(
            self.success,
            "{what}: driver failed ({}).\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.status, self.stderr, self.stdout
        );
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: the driver did not print one JSON document ({e}).\n--- stdout ---\n{}\n\
                 --- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `cmd` in its own process group with a deadline; fails the test on a timeout or a
/// process of the run (a server, a guard) still alive after the driver exited.
pub fn run(what: &str, cmd: &[String]) -> Outcome {
    let start = Instant::now();
    let marker = unique_marker();
    // The guards of this run keep their trust-on-first-use pins in a directory of their own,
    // not the user's state (which the SDKs' default child environment would give them via
    // HOME): every driver passes `--env` on. A TestHome's own XDG_STATE_HOME wins.
    let state = tempfile::tempdir().expect("state tempdir");
    let mut cmd = cmd.to_vec();
    // A driver (`node ts_client.mjs … -- mcp-guard run …`), not the guard itself.
    let options_end = cmd.iter().position(|a| a == "--");
    let guard = guard_bin().display().to_string();
    let driven = |end: usize| cmd[0] != guard && cmd[end..].contains(&guard);
    if let Some(end) = options_end.filter(|e| driven(*e)) {
        if !cmd[..end].iter().any(|a| a.starts_with("XDG_STATE_HOME=")) {
            let setting = format!("XDG_STATE_HOME={}", state.path().display());
            cmd.splice(end..end, ["--env".to_owned(), setting]);
        }
    }
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .current_dir(peers_dir())
            .env("PEER_DRIVER_TIMEOUT_MS", DRIVER_SELF_TIMEOUT_MS)
            .env(MARKER_VAR, &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd[0]))
    };
    let pgid = child.id();
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if start.elapsed() > RUN_TIMEOUT {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut leftovers = Vec::new();
    if status.is_some() {
        let deadline = Instant::now() + LEFTOVER_GRACE;
        loop {
            leftovers = live_processes_of_run(pgid, &marker);
            if leftovers.is_empty() || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    kill_run(pgid, &marker);
    if status.is_none() {
        let _ = child.wait();
    }
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    eprintln!("{what}: finished in {:.2?}", start.elapsed());
    let Some(status) = status else {
        panic!(
            "{what}: did not finish within {RUN_TIMEOUT:?}; killed.\ncommand: {cmd:?}\n\
             --- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"
        );
    };
    assert!(
        leftovers.is_empty(),
        "{what}: processes still running {LEFTOVER_GRACE:?} after the client exited:\n{}\n\
         command: {cmd:?}\n--- stderr ---\n{stderr}",
        leftovers.join("\n")
    );
    Outcome {
        success: status.success(),
        status: status.to_string(),
        stdout,
        stderr,
    }
}

/// Runs a driver that must succeed and returns its JSON document.
pub fn run_json(what: &str, cmd: &[String]) -> Value {
    run(what, cmd).json(what)
}

/// The `calls` of a call_tools document, by position.
pub fn call(doc: &Value, i: usize) -> &Value {
    &doc["calls"][i]
}

/// Whether a call was refused: a tool error or a JSON-RPC error.
pub fn refused(call: &Value) -> bool {
    call["isError"] == true || call.get("error").is_some()
}

// -------------------------------------------------------------------------------------------------
// A TCP listener that answers HTTP and counts connections

/// Listens on 127.0.0.1 (an ephemeral port, never 443) and answers every connection with a
/// small HTTP response. Stops on drop.
pub struct CountingListener {
    pub port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl CountingListener {
    pub fn start() -> CountingListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let body = "reached the test listener\n";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        CountingListener {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// -------------------------------------------------------------------------------------------------
// The Python probe (tests/profile_support/probe/sitecustomize.py)

/// What the probe tried from inside a Python server, from its `mcp-guard-probe {...}` line.
pub fn probe_report(what: &str, stderr: &str) -> Value {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mcp-guard-probe "))
        .unwrap_or_else(|| panic!("{what}: the probe printed nothing.\n--- stderr ---\n{stderr}"));
    serde_json::from_str(line).expect("probe line is JSON")
}

/// `--env` options that load the probe into a Python server and aim it at `secret`, the
/// listener and a program outside every profile's exec allowlist.
pub fn probe_env(secret: &Path, listener: &CountingListener) -> Vec<String> {
    let program = ["/usr/bin/id", "/bin/id"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("id(1) is installed");
    let mut out = Vec::new();
    for kv in [
        format!("PYTHONPATH={}", support_dir().join("probe").display()),
        format!("MCP_GUARD_PROBE_READ={}", secret.display()),
        format!("MCP_GUARD_PROBE_PORT={}", listener.port),
        format!("MCP_GUARD_PROBE_EXEC={program}"),
    ] {
        out.push("--env".to_owned());
        out.push(kv);
    }
    out
}
