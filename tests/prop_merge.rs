//! Layering never turns a deny into an allow: whatever layers are stacked (built-in, profiles,
//! files, flags) and in whatever order, every deny of every layer survives the merge, and the
//! resolved policy grants nothing a deny covers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mcp_guard::policy::resolve::ServerCommand;
use mcp_guard::policy::{merge, parse_policy, Origin, Policy, Vars};
use proptest::prelude::*;

const DIRS: &[&str] = &["a", "a/b", "a/b/c", "d", "d/e"];
const COMMANDS: &[&str] = &["node", "npx", "python3", "sh", "curl"];
const SYSCALLS: &[&str] = &["ptrace", "personality", "io_uring_setup", "bpf", "mount"];
const TOOLS: &[&str] = &["read_file", "write_file", "delete_*", "*debug*", "echo"];

#[derive(Debug, Clone)]
struct Layer {
    read: Vec<usize>,
    write: Vec<usize>,
    exec: Vec<usize>,
    fs_deny: Vec<usize>,
    launch_allow: Vec<usize>,
    launch_deny: Vec<usize>,
    sys_allow: Vec<usize>,
    sys_deny: Vec<usize>,
    tools_allow: Vec<usize>,
    tools_deny: Vec<usize>,
}

/// One state per item of a universe: 0 absent, then the lists in order (`allow`, `deny`, …).
/// Within one layer an item is in at most one list (the validator refuses both).
fn states(n: usize, lists: u8) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0..=lists, n)
}

fn pick(states: &[u8], list: u8) -> Vec<usize> {
    (0..states.len()).filter(|&i| states[i] == list).collect()
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        states(DIRS.len(), 4),
        states(COMMANDS.len(), 2),
        states(SYSCALLS.len(), 2),
        states(TOOLS.len(), 2),
    )
        .prop_map(|(fs, launch, sys, tools)| Layer {
            read: pick(&fs, 1),
            write: pick(&fs, 2),
            exec: pick(&fs, 3),
            fs_deny: pick(&fs, 4),
            launch_allow: pick(&launch, 1),
            launch_deny: pick(&launch, 2),
            sys_allow: pick(&sys, 1),
            sys_deny: pick(&sys, 2),
            tools_allow: pick(&tools, 1),
            tools_deny: pick(&tools, 2),
        })
}

fn list(items: &[usize], names: &[&str], prefix: &str) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|&i| format!("\"{prefix}{}\"", names[i]))
        .collect();
    format!("[{}]", quoted.join(", "))
}

impl Layer {
    fn toml(&self, root: &Path) -> String {
        let r = format!("{}/", root.display());
        format!(
            "version = 1\n[filesystem]\nread = {}\nwrite = {}\nexec = {}\ndeny = {}\n\
             [launch]\nallow = {}\ndeny = {}\n[syscalls]\nallow = {}\ndeny = {}\n\
             [tools]\nallow = {}\ndeny = {}\n",
            list(&self.read, DIRS, &r),
            list(&self.write, DIRS, &r),
            list(&self.exec, DIRS, &r),
            list(&self.fs_deny, DIRS, &r),
            list(&self.launch_allow, COMMANDS, ""),
            list(&self.launch_deny, COMMANDS, ""),
            list(&self.sys_allow, SYSCALLS, ""),
            list(&self.sys_deny, SYSCALLS, ""),
            list(&self.tools_allow, TOOLS, ""),
            list(&self.tools_deny, TOOLS, ""),
        )
    }
}

fn origin(i: usize, n: usize) -> Origin {
    match i {
        0 => Origin::Builtin,
        _ if i + 1 == n => Origin::Flags,
        _ if i % 2 == 1 => Origin::Profile(format!("p{i}")),
        _ => Origin::File(PathBuf::from(format!("f{i}.toml"))),
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn layering_never_turns_a_deny_into_an_allow(layers in prop::collection::vec(layer(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in DIRS {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let n = layers.len();
        let mut parsed: Vec<(Origin, Policy)> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            // A layer that allows a path under its own deny is refused by the validator.
            let parsed_layer = parse_policy("layer", &l.toml(&root));
            prop_assume!(parsed_layer.is_ok());
            parsed.push((origin(i, n), parsed_layer.unwrap()));
        }
        let merged = merge(parsed);
        let p = &merged.policy;

        // Every deny of every layer is in the merged lists.
        for l in &layers {
            for &i in &l.fs_deny {
                let want = root.join(DIRS[i]);
                prop_assert!(p.filesystem.deny.iter().any(|v| Path::new(v.value.as_str()) == want));
            }
            for &i in &l.launch_deny {
                prop_assert!(p.launch.deny.iter().any(|v| v.value.as_str() == COMMANDS[i]));
            }
            for &i in &l.sys_deny {
                prop_assert!(p.syscalls.deny.iter().any(|v| v.value.0 == SYSCALLS[i]));
            }
            for &i in &l.tools_deny {
                prop_assert!(p.tools.deny.iter().any(|v| v.value.0 == TOOLS[i]));
            }
        }

        // Resolved: nothing granted lies under a deny; a denied syscall is never allowed.
        let resolved = merged.resolve(&Vars::from_pairs(&[]), None).expect("resolve");
        let fs = &resolved.sandbox.fs;
        let denied: Vec<PathBuf> = layers
            .iter()
            .flat_map(|l| l.fs_deny.iter().map(|&i| root.join(DIRS[i])))
            .collect();
        for granted in fs.read.iter().chain(&fs.write).chain(&fs.exec) {
            prop_assert!(
                !denied.iter().any(|d| granted.starts_with(d)),
                "{} granted though denied", granted.display()
            );
        }
        for d in &denied {
            prop_assert!(fs.deny.contains(d));
        }
        let sys = &resolved.sandbox.syscalls;
        for l in &layers {
            for &i in &l.sys_deny {
                prop_assert!(sys.deny.iter().any(|s| s == SYSCALLS[i]));
                prop_assert!(!sys.allow.iter().any(|s| s == SYSCALLS[i]), "{} allowed though denied", SYSCALLS[i]);
            }
        }

        // A command any layer denies is refused, even when a later layer allows it.
        for l in &layers {
            for &i in &l.launch_deny {
                let cmd = ServerCommand::new(&[OsString::from(COMMANDS[i])]);
                prop_assert!(
                    merged.check_launch(&cmd, &Vars::from_pairs(&[])).is_err(),
                    "{} launched though denied", COMMANDS[i]
                );
            }
        }
    }
}
