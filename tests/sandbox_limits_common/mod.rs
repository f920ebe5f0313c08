//! Shared by the `sandbox_seccomp_*` and `sandbox_limits_*` tests: a hostile-server session
//! started any way a test needs (directly, under `mcp-guard run` with flags, or with a library
//! layer applied in `pre_exec`), one attack per `tools/call`, every wait bounded.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[path = "../support/mod.rs"]
pub mod support;

// Not every test that includes this module looks at replies.
#[allow(unused_imports)]
pub use support::mcp::{Reply, Session};

pub fn hostile() -> Command {
    Command::new(support::testkit_bin("hostile-server"))
}

/// `mcp-guard -q run FLAGS... -- hostile-server`.
pub fn guarded(flags: &[&str]) -> Command {
    let mut command = Command::new(support::guard_bin());
    command
        .args(["-q", "run"])
        .args(flags)
        .arg("--")
        .arg(support::testkit_bin("hostile-server"));
    command
}

pub struct Victim(Child);

impl Victim {
    pub fn new() -> Victim {
        Victim(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A readable address in `pid`'s memory (its first readable mapping).
pub fn readable_address(pid: i32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|perms| perms.starts_with('r'))
        })
        .and_then(|l| l.split('-').next())
        .and_then(|start| u64::from_str_radix(start, 16).ok())
        .expect("a readable mapping")
}

/// The pids of `parent`'s children.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')').map(|(_, rest)| {
                        rest.split_whitespace().nth(1) == Some(&parent.to_string())
                    })
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Every cgroup directory named `name` under /sys/fs/cgroup (any hierarchy, any depth <= 6).
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if depth > 0 {
                walk(&path, name, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(std::path::Path::new("/sys/fs/cgroup"), name, 6, &mut found);
    found
}

/// Wait (bounded) until no cgroup directory named `name` is left.
#[track_caller]
pub fn assert_cgroups_removed(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cgroup_dirs_named(name);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "cgroups left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
