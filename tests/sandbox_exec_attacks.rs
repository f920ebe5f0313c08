//! Exec allowlist: only the server, its interpreters and ld.so may be executed, and binaries that
//! are not allowed cannot be read either (which is what closes the ld.so and copy bypasses).
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use harness::{control_then_guarded, path_str, Server};
use mcp_guard::sandbox::SandboxConfig;
use serde_json::json;

const SH_ARGS: [&str; 2] = ["-c", "echo pwned"];

fn ld_so() -> &'static str {
    [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/ld-linux.so.2",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("no dynamic loader found")
}

#[test]
fn exec_shell_directly() {
    control_then_guarded("exec", json!({"path": "/bin/sh", "args": SH_ARGS}));
}

#[test]
fn exec_shell_through_the_dynamic_loader() {
    control_then_guarded(
        "exec",
        json!({"path": ld_so(), "args": ["/bin/sh", "-c", "echo pwned"]}),
    );
}

#[test]
fn exec_shell_through_env() {
    control_then_guarded(
        "exec",
        json!({"path": "/usr/bin/env", "args": ["sh", "-c", "echo pwned"]}),
    );
}

#[test]
fn exec_script_with_a_shell_shebang_from_tmp() {
    control_then_guarded("exec_script", json!({"interpreter": "/bin/sh"}));
}

#[test]
fn exec_shell_from_memfd() {
    control_then_guarded("exec_memfd", json!({"path": "/bin/sh", "args": SH_ARGS}));
}

#[test]
fn exec_shell_copied_into_tmp() {
    control_then_guarded("exec_copy", json!({"path": "/bin/sh", "args": SH_ARGS}));
}

#[test]
fn exec_readable_binary_copied_into_tmp() {
    // The server's own binary is readable under the guard: the copy is refused for lack of
    // EXECUTE in the private dir, not for lack of READ. (stdin is /dev/null: it exits at once.)
    let own = path_str(&harness::hostile_bin());
    control_then_guarded("exec_copy", json!({"path": own, "args": []}));
}

#[test]
// Landlock does not check exec of a memfd (an internal mount); seccomp refuses memfds that are
// not sealed against exec.
fn exec_readable_binary_from_memfd() {
    let own = path_str(&harness::hostile_bin());
    control_then_guarded("exec_memfd", json!({"path": own, "args": []}));
}

#[test]
fn exec_allowed_interpreter_cannot_reach_the_shell() {
    // `env` allowed by policy: it runs, but what it tries to run is checked on its own.
    let mut config = SandboxConfig::default();
    config.fs.exec.push("/usr/bin/env".into());
    let mut server = Server::confined(&config);
    harness::assert_succeeded(&server.attack(
        "exec",
        json!({"path": "/usr/bin/env", "args": ["--version"]}),
    ));
    let text = server.attack(
        "exec",
        json!({"path": "/usr/bin/env", "args": ["sh", "-c", "echo pwned"]}),
    );
    harness::assert_blocked(&text);
}
