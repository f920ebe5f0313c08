//! Resource limits through `mcp-guard run`: each bomb goes beyond the limit without the guard (the
//! control) and is stopped under it; a bomb that kills the server gets the host a JSON-RPC error
//! naming the limit, and the server's cgroup is removed afterwards.

#[path = "sandbox_limits_common/mod.rs"]
mod common;

use common::{assert_cgroups_removed, children_of, guarded, hostile, Reply, Session};
use serde_json::json;

const EAGAIN: i32 = 11;
const EFBIG: i32 = 27;

/// The supervisor (the guard's child) names the server's cgroup after its pid.
fn cgroup_name(guard: &Session) -> String {
    let supervisors = children_of(guard.pid());
    assert_eq!(
        supervisors.len(),
        1,
        "expected one supervisor, found {supervisors:?}"
    );
    format!("mcp-guard-{}", supervisors[0])
}

#[track_caller]
fn assert_killed_by(reply: &Reply, limit: &str) {
    match reply {
        Reply::Error(error) => {
            let message = error["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(limit),
                "the error does not name the {limit} limit: {error}"
            );
        }
        other => panic!("expected a JSON-RPC error for the killed server, got {other:?}"),
    }
}

fn cpu_ms(text: &str) -> u64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("cpu_ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cpu_ms in {text}"))
}

fn policy(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("policy file");
    std::fs::write(file.path(), format!("version = 1\n{text}")).expect("write policy");
    file
}

#[test]
fn limits_memory_bomb() {
    Session::start(hostile())
        .attack("memory_bomb", json!({"mib": 256}))
        .succeeded();
    let mut guard = Session::start(guarded(&["--memory", "128MiB"]));
    let name = cgroup_name(&guard);
    assert!(
        !common::cgroup_dirs_named(&name).is_empty(),
        "no cgroup was made for the server"
    );
    assert_killed_by(&guard.attack("memory_bomb", json!({"mib": 256})), "memory");
    guard.finish();
    assert_cgroups_removed(&name);
}

#[test]
fn limits_fork_bomb() {
    Session::start(hostile())
        .attack("fork_bomb", json!({"count": 64}))
        .succeeded();
    let mut guard = Session::start(guarded(&["--pids", "32"]));
    let name = cgroup_name(&guard);
    let text = guard
        .attack("fork_bomb", json!({"count": 64}))
        .blocked_with(EAGAIN)
        .to_owned();
    assert!(
        text.contains("after 31 children") || text.contains("after 30 children"),
        "{text}"
    );
    guard.assert_alive();
    guard.finish();
    assert_cgroups_removed(&name);
}

fn wall_ms(text: &str) -> u64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("wall_ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wall_ms in {text}"))
}

/// 300 ms of CPU at 0.1 CPUs takes at least 2.7 s of wall time, whatever the machine's load.
#[test]
fn limits_cpu_bandwidth() {
    let spin = json!({"cpu_ms": 300, "ms": 20_000});
    let control = Session::start(hostile()).attack("cpu_spin", spin.clone());
    let control_wall = wall_ms(control.succeeded());
    let mut guard = Session::start(guarded(&["--cpus", "0.1"]));
    let text = guard.attack("cpu_spin", spin).succeeded().to_owned();
    assert!(cpu_ms(&text) >= 300, "{text}");
    assert!(
        wall_ms(&text) >= 2_500,
        "0.1 CPUs gave 300 ms of CPU too fast: {text}"
    );
    assert!(
        control_wall < wall_ms(&text),
        "the control was not faster ({control_wall} ms): {text}"
    );
    guard.assert_alive();
}

#[test]
fn limits_cpu_time() {
    let spin = json!({"cpu_ms": 2_000, "ms": 30_000});
    let control = Session::start(hostile()).attack("cpu_spin", spin.clone());
    assert!(cpu_ms(control.succeeded()) >= 2_000, "{control:?}");
    let policy = policy("[limits]\ncpu_time = \"1s\"\n");
    let mut guard = Session::start(guarded(&[
        "--policy",
        policy.path().to_str().expect("utf-8"),
    ]));
    assert_killed_by(&guard.attack("cpu_spin", spin), "SIGXCPU");
}

#[test]
fn limits_file_size_bomb() {
    Session::start(hostile())
        .attack("file_size_bomb", json!({"mib": 4}))
        .succeeded();
    let policy = policy("[limits]\nfile_size = \"1MiB\"\n");
    let mut guard = Session::start(guarded(&[
        "--policy",
        policy.path().to_str().expect("utf-8"),
    ]));
    guard
        .attack("file_size_bomb", json!({"mib": 4}))
        .blocked_with(EFBIG);
    guard.assert_alive();
}
