//! Shared by the `sandbox_*` tests: start the hostile server guarded (`mcp-guard run`), directly
//! (the control), or confined by the library alone with a chosen `SandboxConfig`, and run one
//! attack per `tools/call`.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mcp_guard::sandbox::{self, SandboxConfig};
use serde_json::Value;

#[path = "../support/mod.rs"]
pub mod support;

pub const SECRET_NAME: &str = "MCP_GUARD_TEST_SECRET";
pub const SECRET_VALUE: &str = "hunter2-do-not-leak";

pub fn hostile_bin() -> PathBuf {
    support::testkit_bin("hostile-server")
}

/// A running hostile server, spoken to over its stdio.
pub struct Server {
    /// Taken on drop, so the server is gone before its private directory is removed.
    session: Option<support::mcp::Session>,
    private_dir: Option<PathBuf>,
    /// The guard's own XDG_STATE_HOME (its pins), removed on drop.
    _state: tempfile::TempDir,
}

impl Server {
    /// `mcp-guard run -- hostile-server`, with the secret in the guard's environment.
    pub fn guarded() -> Server {
        let mut command = Command::new(support::guard_bin());
        command.args(["-q", "run", "--"]).arg(hostile_bin());
        Server::start(command, None)
    }

    /// `mcp-guard run ARGS -- hostile-server` as `who` (see `support::users`).
    pub fn guarded_as(who: &support::users::Identity, args: &[&str]) -> Server {
        Server::guarded_env_as(who, args, &[])
    }

    /// As [`Server::guarded_as`], with extra variables in the guard's environment.
    pub fn guarded_env_as(
        who: &support::users::Identity,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Server {
        Server::try_guarded_as(who, args, env)
            .unwrap_or_else(|e| panic!("cannot start the server: {e}"))
    }

    pub fn try_guarded_as(
        who: &support::users::Identity,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<Server, String> {
        let mut command = Command::new(who.binary(&support::guard_bin()));
        command
            .args(["-q", "run"])
            .args(args)
            .arg("--")
            .arg(who.binary(&hostile_bin()));
        who.apply(&mut command);
        // After `apply`, which removes the runner's XDG directories: the test's own stay.
        command.envs(env.iter().copied());
        Server::try_start(command, None)
    }

    /// The control, as `who`: the same server without the guard.
    pub fn direct_as(who: &support::users::Identity) -> Server {
        let mut command = Command::new(who.binary(&hostile_bin()));
        who.apply(&mut command);
        Server::start(command, None)
    }

    /// Any command that speaks MCP on its stdio (a guard command line built by the test).
    pub fn start_command(command: Command) -> Server {
        Server::start(command, None)
    }

    /// The control: the same server without the guard, same environment.
    pub fn direct() -> Server {
        Server::start(Command::new(hostile_bin()), None)
    }

    /// Confined by `sandbox::prepare` + `sandbox::apply_to_current_process` alone, the way the
    /// supervisor's child does it, with a config the CLI may not offer yet.
    pub fn confined(config: &SandboxConfig) -> Server {
        Server::try_confined(config)
            .unwrap_or_else(|e| panic!("cannot start the confined server: {e}"))
    }

    pub fn try_confined(config: &SandboxConfig) -> Result<Server, String> {
        let command = [hostile_bin().into_os_string()];
        let plan = sandbox::prepare(config, &command).map_err(|e| e.to_string())?;
        let private_dir = plan.private_dir.clone();
        let mut cmd = Command::new(&plan.program);
        cmd.args(&plan.argv[1..])
            .env_clear()
            .envs(&plan.env)
            .current_dir(&plan.cwd);
        // SAFETY: test-only; glibc's fork keeps malloc usable in the child, and the child only
        // applies the sandbox before its exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                sandbox::apply_to_current_process(&plan)
                    .map(drop)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
        }
        let result = Server::try_start(cmd, private_dir.clone());
        if result.is_err() {
            if let Some(dir) = &private_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        result
    }

    /// What `apply_to_current_process` reports for `config`, taken from a child that applies
    /// the sandbox, prints the report on its stderr and execs the server with no input.
    pub fn report_for(config: &SandboxConfig) -> Result<sandbox::EnforcementReport, String> {
        let command = [hostile_bin().into_os_string()];
        let plan = sandbox::prepare(config, &command).map_err(|e| e.to_string())?;
        let private_dir = plan.private_dir.clone();
        let mut cmd = Command::new(&plan.program);
        cmd.args(&plan.argv[1..])
            .env_clear()
            .envs(&plan.env)
            .stdin(Stdio::null());
        // SAFETY: as in `try_confined`.
        unsafe {
            cmd.pre_exec(move || {
                let report = sandbox::apply_to_current_process(&plan)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let json = serde_json::to_string(&report).map_err(std::io::Error::other)?;
                std::io::stderr().write_all(json.as_bytes())
            });
        }
        let output = cmd.output().map_err(|e| e.to_string());
        if let Some(dir) = &private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        serde_json::from_slice(&output?.stderr).map_err(|e| e.to_string())
    }

    fn start(command: Command, private_dir: Option<PathBuf>) -> Server {
        Server::try_start(command, private_dir)
            .unwrap_or_else(|e| panic!("cannot start the server: {e}"))
    }

    fn try_start(mut command: Command, private_dir: Option<PathBuf>) -> Result<Server, String> {
        let state = tempfile::tempdir().map_err(|e| e.to_string())?;
        // The guard may run as the unprivileged test user: it must reach `state/state`.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755));
        support::private_state(&mut command, state.path());
        command.env(SECRET_NAME, SECRET_VALUE);
        let session = support::mcp::Session::try_start(command)?;
        Ok(Server {
            session: Some(session),
            private_dir,
            _state: state,
        })
    }

    fn session(&mut self) -> &mut support::mcp::Session {
        // Only `drop` takes it.
        self.session.as_mut().expect("a running session")
    }

    /// pid of the process we started (the guard, for [`Server::guarded`]).
    pub fn pid(&self) -> i32 {
        self.session.as_ref().map_or(0, support::mcp::Session::pid)
    }

    /// Run attack `name`; returns its text (`SUCCEEDED: ...` or `BLOCKED: ...`).
    #[track_caller]
    pub fn attack(&mut self, name: &str, arguments: Value) -> String {
        match self.session().attack(name, arguments) {
            support::mcp::Reply::Text(text) => text,
            other => panic!("attack {name} got no text result: {other:?}"),
        }
    }

    /// The server (and the guard) still answer.
    #[track_caller]
    pub fn assert_alive(&mut self) {
        self.session().assert_alive();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.session.take());
        if let Some(dir) = &self.private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[track_caller]
pub fn assert_blocked(text: &str) {
    assert!(
        text.starts_with("BLOCKED:"),
        "the attack was not blocked: {text}"
    );
}

#[track_caller]
pub fn assert_succeeded(text: &str) {
    assert!(
        text.starts_with("SUCCEEDED:"),
        "the control attack did not succeed: {text}"
    );
}

/// The attack succeeds without the guard and is blocked under it, the guard surviving.
#[track_caller]
pub fn control_then_guarded(name: &str, arguments: Value) {
    let control = Server::direct().attack(name, arguments.clone());
    assert_succeeded(&control);
    let mut guarded = Server::guarded();
    let text = guarded.attack(name, arguments);
    assert_blocked(&text);
    guarded.assert_alive();
}

/// A temp directory holding `canary.txt` ("canary"), outside everything the sandbox grants.
pub struct Canary {
    pub dir: tempfile::TempDir,
}

pub const CANARY_TEXT: &str = "canary";

impl Canary {
    pub fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("sandbox-canary-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("canary.txt"), CANARY_TEXT).expect("write canary");
        Canary { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn file(&self) -> PathBuf {
        self.path("canary.txt")
    }

    pub fn file_str(&self) -> String {
        self.file().to_string_lossy().into_owned()
    }

    /// The canary is still there, unchanged.
    #[track_caller]
    pub fn assert_intact(&self) {
        let text = std::fs::read_to_string(self.file()).expect("the canary file is gone");
        assert_eq!(text, CANARY_TEXT, "the canary file was modified");
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
