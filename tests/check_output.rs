//! `mcp-guard check`: the probe's findings, as text and as JSON, and no trace left behind.

#[path = "sandbox_limits_common/mod.rs"]
mod common;

use std::process::Command;

use common::support;
use serde_json::Value;

fn check(args: &[&str]) -> (std::process::ExitStatus, String, u32) {
    let child = Command::new(support::guard_bin())
        .arg("check")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run mcp-guard check");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8(out.stdout).expect("utf-8"),
        pid,
    )
}

#[test]
fn check_json_reports_the_kernel_and_the_default_run() {
    let (status, stdout, pid) = check(&["--json"]);
    let probe: Value = serde_json::from_str(&stdout).expect("check --json prints JSON");
    // SAFETY: the query form of landlock_create_ruleset reads no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if abi > 0 {
        assert_eq!(probe["landlock"]["abi"], abi);
    } else {
        assert!(probe["landlock"]["abi"].is_null());
    }
    assert!(probe["seccomp"]["filter_available"].is_boolean());
    assert!(probe["identity"]["uid"].is_u64());
    let layers = probe["default_run"]["layers"].as_array().expect("layers");
    for name in [
        "landlock",
        "landlock-network",
        "landlock-scope",
        "seccomp",
        "capabilities",
        "limits",
    ] {
        assert!(
            layers.iter().any(|l| l["layer"] == name),
            "{name} missing from {layers:?}"
        );
    }
    let all_enforced = layers.iter().all(|l| l["enforced"] == true);
    assert_eq!(
        status.success(),
        all_enforced,
        "exit status must say whether every layer is available"
    );
    // The throwaway cgroup it probed with is gone.
    common::assert_cgroups_removed(&format!("mcp-guard-{pid}"));
}

#[test]
fn check_text_names_each_layer_and_limit() {
    let (_, stdout, _) = check(&[]);
    for needle in [
        "landlock",
        "seccomp",
        "cgroup v2",
        "cgroup v1",
        "would enforce by default",
        "memory",
        "processes",
        "egress (hosts)",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
}

/// On this kind of machine (kernel 6.x, landlock ABI >= 6, seccomp, writable cgroups) every layer
/// is available; elsewhere the test only reports.
#[test]
fn check_this_machine_enforces_everything() {
    let (status, stdout, _) = check(&[]);
    let probe: Value = serde_json::from_str(&check(&["--json"]).1).expect("json");
    let capable = probe["landlock"]["abi"].as_u64().unwrap_or(0) >= 6
        && probe["seccomp"]["filter_available"] == true
        && probe["cgroups"]["usable"].is_string();
    if capable {
        assert!(status.success(), "a layer is missing:\n{stdout}");
    } else {
        eprintln!("not a fully capable machine; check says:\n{stdout}");
    }
}

/// `check` names the tier `hosts` mode would use, and it is the one `run` then uses.
#[test]
fn check_names_the_egress_tier() {
    let probe: Value = serde_json::from_str(&check(&["--json"]).1).expect("json");
    let tier = &probe["egress"]["tier"];
    assert!(
        tier == "namespace" || tier == "broker" || tier.is_null(),
        "{probe:#}"
    );
    if probe["user_namespaces"]["unprivileged_allowed"] == true {
        assert_eq!(tier, "namespace", "{probe:#}");
    }
}
