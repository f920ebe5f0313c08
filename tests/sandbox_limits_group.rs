//! `ResourceGroup` and the rlimit fallback through the library, the way the supervisor uses
//! them: create the group, let the child join it before exec, ask which limit fired, drop it.

#[path = "sandbox_limits_common/mod.rs"]
mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_cgroups_removed, hostile, Reply, Session};
use mcp_guard::sandbox::limits::{self, CgroupCoverage, Mechanism, ResourceGroup};
use mcp_guard::sandbox::{Limits, Plan, SandboxConfig};
use serde_json::json;

fn plan(limits: Limits) -> Plan {
    let config = SandboxConfig {
        limits,
        ..SandboxConfig::default()
    };
    let plan = mcp_guard::sandbox::prepare(&config, &["/bin/true".into()]).expect("prepare");
    // The private HOME/TMPDIR is not needed here.
    if let Some(dir) = &plan.private_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    plan
}

fn group_name() -> String {
    format!("mcp-guard-{}", std::process::id())
}

/// `command`, joined to `group` in the child before exec.
fn in_group(mut command: Command, group: &Arc<ResourceGroup>) -> Command {
    let group = Arc::clone(group);
    // SAFETY: test-only; join writes the pid to a few cgroup.procs files.
    unsafe {
        command.pre_exec(move || {
            group
                .join(std::process::id() as i32)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
    }
    command
}

/// Groups of one test process share a name: run the group tests one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn limits_group_memory_limit_kills_and_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Session::start(hostile())
        .attack("memory_bomb", json!({"mib": 128}))
        .succeeded();
    let plan = plan(Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    });
    let group = Arc::new(
        ResourceGroup::create(&plan)
            .expect("create")
            .expect("a cgroup is usable here"),
    );
    assert!(group.coverage().memory.is_some(), "{:?}", group.coverage());
    let mut server = Session::start(in_group(hostile(), &group));
    assert!(matches!(
        server.attack("memory_bomb", json!({"mib": 128})),
        Reply::Closed
    ));
    server.finish();
    assert_eq!(group.limit_hit().as_deref(), Some("memory"));
    drop(group);
    assert_cgroups_removed(&group_name());
}

#[test]
fn limits_group_pids_limit_refuses_forks_and_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let plan = plan(Limits {
        pids: Some(16),
        ..Limits::default()
    });
    let group = Arc::new(
        ResourceGroup::create(&plan)
            .expect("create")
            .expect("a cgroup is usable here"),
    );
    let mut server = Session::start(in_group(hostile(), &group));
    server
        .attack("fork_bomb", json!({"count": 32}))
        .blocked_with(11);
    server.assert_alive();
    assert_eq!(group.limit_hit().as_deref(), Some("pids"));
    server.finish();
    drop(group);
    assert_cgroups_removed(&group_name());
}

/// kill_all reaches processes that left the server's session and process group.
#[test]
fn limits_group_kill_all_kills_the_whole_tree() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let group = Arc::new(
        ResourceGroup::create(&plan(Limits::default()))
            .expect("create")
            .expect("usable"),
    );
    let mut command = Command::new("sh");
    command.args(["-c", "setsid sleep 60 & sleep 60 & wait"]);
    let mut child = in_group(command, &group).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    while group.pids().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the tree did not start: {:?}",
            group.pids()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let members = group.pids();
    group.kill_all();
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while members
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        // The orphaned `setsid sleep` is reparented to init, which reaps it.
        assert!(Instant::now() < deadline, "survivors: {members:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(group);
    assert_cgroups_removed(&group_name());
}

/// Without a cgroup, memory falls back to RLIMIT_DATA: the allocation is refused, the server
/// survives; and root is told that RLIMIT_NPROC does not bind it.
#[test]
fn limits_rlimit_fallback_refuses_the_allocation() {
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    };
    let predicted = limits::predict_rlimits(&limits, CgroupCoverage::default());
    let memory = &predicted
        .limits
        .iter()
        .find(|(n, _, _)| n == "memory")
        .expect("memory")
        .2;
    assert!(
        matches!(memory, Mechanism::Rlimit(m) if m.starts_with("RLIMIT_DATA")),
        "{predicted}"
    );
    // SAFETY: getuid has no arguments.
    if unsafe { libc::getuid() } == 0 {
        let processes = &predicted
            .limits
            .iter()
            .find(|(n, _, _)| n == "processes")
            .expect("processes")
            .2;
        assert!(
            matches!(processes, Mechanism::NotEnforced(why) if why.contains("root")),
            "{predicted}"
        );
    }

    let mut command = hostile();
    // SAFETY: test-only; the hook only calls getrlimit/setrlimit and builds a small report.
    unsafe {
        command.pre_exec(move || {
            limits::apply_rlimits_to_current_process(&limits, Some(CgroupCoverage::default()));
            Ok(())
        });
    }
    let mut server = Session::start(command);
    let text = server
        .attack("memory_bomb", json!({"mib": 128}))
        .blocked()
        .to_owned();
    assert!(text.contains("allocation refused"), "{text}");
    server.assert_alive();
}

#[test]
fn limits_unlimited_and_defaults() {
    let effective = limits::EffectiveLimits::of(&Limits::default());
    assert_eq!(effective.memory_bytes, Some(limits::DEFAULT_MEMORY_BYTES));
    assert_eq!(effective.pids, Some(limits::DEFAULT_PIDS));
    let unlimited = Limits {
        memory_bytes: Some(limits::UNLIMITED),
        pids: Some(limits::UNLIMITED),
        ..Limits::default()
    };
    let effective = limits::EffectiveLimits::of(&unlimited);
    assert_eq!((effective.memory_bytes, effective.pids), (None, None));
}
